"""Import rules, all in one place: the payload imports only the standard library and itself, without cycles; fleet
imports only the payload's pure modules; asyncssh and typer stay in their layers.

The payload's import graph counts every import statement, top-level or inside a function (a lazy import is still
a dependency: it only moves the cycle to run time), with relative imports resolved and the implicit import of a
module's parent packages.  ``python -m tests.unit.test_imports`` prints the graph's cycles (strongly connected
components) with the lines that make them.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = "agent_payload"

# What fleet may import from the payload: the wire protocol (and its errors), the pure reference parser (early
# validation), docker's humanised units (so both sides print the same words), the atomic file writer, archive
# (cp's path rules + safe extractor: the same code on both ends), linux.seccomp (--security-opt: one parser
# and profile check), containeropts (run/create's flag table and parse, shared with the hand CLI), portspec
# (the -p grammar: compose files' ports checked before any host is contacted) and hostopts (--add-host, --tmpfs,
# --ulimit, --sysctl, --device, ...: one parse on both ends) and build.dockerfile (fleet build parses the Dockerfile
# before any host is contacted; with its word lexer build.shellwords and build.dfsyntax).
# Packages on the way (agent_payload.image ...) are imported implicitly.
FLEET_MAY_IMPORT = {"agent_payload.protocol", "agent_payload.errors", "agent_payload.image.reference",
                    "agent_payload.humanize", "agent_payload.state.store", "agent_payload.archive",
                    "agent_payload.linux.seccomp", "agent_payload.containeropts", "agent_payload.portspec",
                    "agent_payload.hostopts", "agent_payload.build.dockerfile", "agent_payload.build.shellwords",
                    "agent_payload.build.dfsyntax"}
# What those modules may use in turn (all of it pure or ctypes-only): nothing of the engine comes with them.
FLEET_MAY_REACH = FLEET_MAY_IMPORT | {"agent_payload", "agent_payload.image", "agent_payload.state",
                                      "agent_payload.linux", "agent_payload.record", "agent_payload.linux.bpf",
                                      "agent_payload.linux.libc", "agent_payload.linux.consts",
                                      "agent_payload.linux.seccomp_default", "agent_payload.linux.seccomp_tables",
                                      "agent_payload.fs", "agent_payload.build"}


# ---------------------------------------------------------------------------------------------- the graph

def _imports(path):
    """(lineno, dotted name) of every import in ``path``, absolute ones only (``from a import b`` gives a, a.b)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, "{}.{}".format(node.module, alias.name)


def module_name(root, path):
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class Graph:
    """Module -> {imported module: [line numbers]} over the .py files of ``package`` under ``root``."""

    def __init__(self, root=ROOT, package=PAYLOAD):
        self.root = Path(root)
        self.paths = {module_name(self.root, p): p for p in sorted((self.root / package).rglob("*.py"))}
        self.edges = {m: {} for m in self.paths}
        for mod, path in self.paths.items():
            for lineno, name in self.dependencies(mod, path):
                self._add(mod, name, lineno)

    def dependencies(self, mod, path):
        """(lineno, dotted name) of every import of module ``mod`` at ``path``: relative ones resolved, ``from a
        import b`` as a.b when that is a payload module, else as a."""
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package[:len(package) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                for alias in node.names:  # ``from pkg import sub`` imports the submodule, else pkg itself
                    sub = "{}.{}".format(base, alias.name)
                    yield node.lineno, sub if sub in self.paths else base

    def module_of(self, name):
        """The payload module a dotted name lives in (``a.b.func`` -> ``a.b``), or None outside the payload."""
        while name and name not in self.paths:
            name = name.rpartition(".")[0]
        return name or None

    def _add(self, mod, name, lineno):
        target = self.module_of(name)
        if target is None or target == mod:
            return
        self.edges[mod].setdefault(target, []).append(lineno)
        parent = target.rpartition(".")[0]
        while parent:  # importing a.b.c runs a and a.b first, unless we are inside them already
            if parent in self.paths and parent != mod and not mod.startswith(parent + "."):
                self.edges[mod].setdefault(parent, []).append(lineno)
            parent = parent.rpartition(".")[0]

    def cycles(self):
        """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
        index, low, on_stack, stack, out = {}, {}, set(), [], []
        for start in self.edges:
            if start in index:
                continue
            work = [(start, iter(sorted(self.edges[start])))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = len(index)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
        return sorted(out)

    def shortest_cycle(self, component):
        """A shortest import loop inside ``component``: [m0, m1, ..., m0]."""
        best = None
        for start in component:
            paths, todo = {start: [start]}, [start]
            while todo:
                mod = todo.pop(0)
                for dep in sorted(self.edges[mod]):
                    if dep == start:
                        if best is None or len(paths[mod]) + 1 < len(best):
                            best = paths[mod] + [start]
                    elif dep in component and dep not in paths:
                        paths[dep] = paths[mod] + [dep]
                        todo.append(dep)
        return best

    def describe(self, component):
        """A shortest loop, then one line per module of the cycle: its imports of other members, with line numbers."""
        loop = self.shortest_cycle(component)
        lines = ["  shortest loop: " + " -> ".join("{} (line {})".format(m, min(self.edges[m][n]))
                                                  for m, n in zip(loop, loop[1:])) + " -> " + loop[-1]]
        for mod in component:
            rel = self.paths[mod].relative_to(self.root)
            deps = ", ".join("{} (line {})".format(t, ", ".join(str(n) for n in sorted(set(self.edges[mod][t]))))
                             for t in sorted(self.edges[mod]) if t in component)
            lines.append("  {} [{}] imports {}".format(mod, rel, deps))
        return "\n".join(lines)

    def reachable(self, starts):
        seen, todo = set(), list(starts)
        while todo:
            mod = todo.pop()
            if mod not in seen:
                seen.add(mod)
                todo.extend(self.edges[mod])
        return seen


def report(graph):
    return "\n\n".join("import cycle of {} modules:\n{}".format(len(c), graph.describe(c)) for c in graph.cycles())


# ---------------------------------------------------------------------------------------------- the rules

def test_payload_has_no_import_cycles():
    graph = Graph()
    assert not graph.cycles(), "\n" + report(graph)


def test_cycle_finder_sees_lazy_relative_and_parent_package_cycles(tmp_path):
    """The finder itself: a cycle through a function-level relative import and one through a package __init__."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from .a import g\n",
             "c.py": "import os\n", "sub/__init__.py": "from . import x\n", "sub/x.py": "X = 1\n",
             "y.py": "def f():\n    from pkg.sub.x import X\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    assert Graph(tmp_path, "pkg").cycles() == [["pkg.a", "pkg.b"]]
    (pkg / "sub" / "x.py").write_text("def f():\n    from .. import y\n")  # x -> y -> pkg.sub (runs x first)
    assert Graph(tmp_path, "pkg").cycles() == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.x", "pkg.y"]]


def test_payload_imports_only_stdlib_and_itself():
    bad = []
    for path in sorted((ROOT / "agent_payload").rglob("*.py")):
        for lineno, name in _imports(path):
            top = name.split(".")[0]
            if top != "agent_payload" and top not in sys.stdlib_module_names and top != "__future__":
                bad.append("{}:{}: {}".format(path.relative_to(ROOT), lineno, name))
    assert not bad, "payload imports outside the stdlib:\n" + "\n".join(bad)


def test_fleet_reaches_payload_only_through_its_pure_modules():
    graph = Graph()
    bad = []
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        for lineno, name in graph.dependencies(module_name(ROOT, path), path):
            if name.split(".")[0] == PAYLOAD and graph.module_of(name) not in FLEET_MAY_IMPORT | {PAYLOAD}:
                bad.append("{}:{}: {}".format(path.relative_to(ROOT), lineno, name))
    assert not bad, "fleet imports payload internals:\n" + "\n".join(bad)
    extra = graph.reachable(FLEET_MAY_IMPORT) - FLEET_MAY_REACH
    assert not extra, "the payload modules fleet may import now import {}".format(sorted(extra))


def test_asyncssh_and_typer_stay_in_their_layers():
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for _lineno, name in _imports(path):
            if name.split(".")[0] == "asyncssh":
                assert rel.startswith("fleet/transport/"), rel
            if name.split(".")[0] == "typer":
                assert rel.startswith("fleet/cli/"), rel


if __name__ == "__main__":
    print(report(Graph()) or "no import cycles in {}".format(PAYLOAD))
