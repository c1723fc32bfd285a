"""The payload imports only the standard library and itself; fleet imports only the payload's pure modules."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# What fleet may import from the payload: the wire protocol, the pure reference parser (early validation),
# docker's humanised units (so both sides print the same words) and the atomic file writer (stdlib only).
FLEET_MAY_IMPORT = {"agent_payload", "agent_payload.protocol", "agent_payload.errors", "agent_payload.image",
                    "agent_payload.image.reference", "agent_payload.humanize",
                    "agent_payload.humanize.human_duration", "agent_payload.humanize.human_size",
                    "agent_payload.state", "agent_payload.state.store", "agent_payload.state.store.write_bytes_atomic",
                    "agent_payload.archive",  # cp's path rules + safe extractor: the same code on both ends
                    "agent_payload.containeropts",  # run/create's flag table and parse, shared with the hand CLI
                    "agent_payload.linux", "agent_payload.linux.seccomp",
                    "agent_payload.linux.seccomp.security_opt_args"}  # --security-opt: one parser and profile check


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, "{}.{}".format(node.module, alias.name)


def test_payload_imports_only_stdlib_and_itself():
    bad = []
    for path in sorted((ROOT / "agent_payload").rglob("*.py")):
        for lineno, name in _imports(path):
            top = name.split(".")[0]
            if top != "agent_payload" and top not in sys.stdlib_module_names and top != "__future__":
                bad.append("{}:{}: {}".format(path.relative_to(ROOT), lineno, name))
    assert not bad, "payload imports outside the stdlib:\n" + "\n".join(bad)


def test_fleet_reaches_payload_only_through_protocol():
    bad = []
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        for lineno, name in _imports(path):
            if name.startswith("agent_payload") and name not in FLEET_MAY_IMPORT:
                bad.append("{}:{}: {}".format(path.relative_to(ROOT), lineno, name))
    assert not bad, "fleet imports payload internals:\n" + "\n".join(bad)


def test_asyncssh_and_typer_stay_in_their_layers():
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for _lineno, name in _imports(path):
            if name.split(".")[0] == "asyncssh":
                assert rel.startswith("fleet/transport/"), rel
            if name.split(".")[0] == "typer":
                assert rel.startswith("fleet/cli/"), rel
