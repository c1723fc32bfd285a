"""The lab's service hosts (registry, mirror proxy, auth registry): start if not running, stop by PID, live checks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import mirror as _mirror
from . import registry as _registry
from .netns import Node, netns_pids
from .state import LabError, kill_pids, pid_matches

SERVICES = ("registry", "mirror", "auth")
EXES = {"registry": _registry.REGISTRY, "auth": _registry.REGISTRY, "mirror": _mirror.NGINX}


def check_name(svc: str) -> None:
    """Raise LabError unless svc names a lab service."""
    if svc not in SERVICES:
        raise LabError("unknown lab service {!r}: expected one of {}".format(svc, ", ".join(SERVICES)))


def auth_creds(state_dir: Path) -> tuple[str, str]:
    """(user, password) of the auth registry, making the password on first use."""
    password, _path = _registry.ensure_password(state_dir)
    return _registry.AUTH_USER, password


def process_running(svc: str, rec: dict) -> bool:
    """True when the recorded PID is the service's program, alive in the service's netns."""
    return pid_matches(rec.get("pid"), EXES[svc], rec.get("netns"))


def ensure(name: str, state_dir: Path, svc: str, nodes: dict[str, Node], rec: dict,
           log: Callable[[str], None]) -> dict:
    """Start service svc unless its recorded process runs; return its (updated) record for lab.json.

    nodes is netns.service_nodes(); the mirror proxies to nodes['registry']."""
    check_name(svc)
    node = nodes[svc]
    rec = dict(rec or {})
    rec.update({"address": node.address, "port": _registry.PORT, "netns": node.netns, "veth": node.veth})
    if svc == "auth":
        user, password = auth_creds(state_dir)
        paths = _registry.registry_paths(state_dir, "auth")
        paths["dir"].mkdir(parents=True, exist_ok=True)
        _registry.ensure_htpasswd(paths["htpasswd"], user, password)
        rec.update({"user": user, "password_file": str(Path(state_dir) / _registry.PASSWORD_FILE),
                    "htpasswd": str(paths["htpasswd"]), "config": str(paths["config"])})
    elif svc == "registry":
        rec["config"] = str(_registry.registry_paths(state_dir)["config"])
    else:
        rec["config"] = str(_mirror.mirror_paths(state_dir)["config"])
    if process_running(svc, rec):
        return rec
    if svc == "mirror":
        pid = _mirror.start_mirror(name, node, nodes["registry"].address, state_dir)
    elif svc == "auth":
        pid = _registry.start_registry(name, node, state_dir, "auth", creds=auth_creds(state_dir))
    else:
        pid = _registry.start_registry(name, node, state_dir)
    log("{} {}:{} up (pid {})".format(svc, node.address, _registry.PORT, pid))
    rec["pid"] = pid
    return rec


def stop(svc: str, rec: dict, log: Callable[[str], None]) -> int:
    """Stop the service by PID: its recorded process (if it still is the service) and anything else in its netns
    (nginx workers outlive a killed master). Returns how many processes were signalled; 0 when already stopped."""
    check_name(svc)
    ns = (rec or {}).get("netns")

    def find() -> set[int]:
        pids = netns_pids(ns) if ns else set()
        if process_running(svc, rec or {}):
            pids.add(rec["pid"])
        return pids

    n = kill_pids(find, log)
    if n:
        log("stopped {}".format(svc))
    return n


def describe(svc: str, rec: dict, state_dir: Path) -> dict:
    """The service's status row: address, port, pid, netns, config, running (process alive and serving)."""
    out = {k: rec.get(k) for k in ("address", "port", "pid", "netns", "config")}
    alive = process_running(svc, rec)
    if svc == "registry":
        out["running"] = alive and _registry.v2_ok(rec["address"])
    elif svc == "mirror":
        out["running"] = alive and _mirror.answers(rec["address"])
    else:
        try:
            password = (Path(state_dir) / _registry.PASSWORD_FILE).read_text().strip()
        except OSError:
            password = ""
        out["running"] = alive and bool(password) and _registry.v2_ok(rec["address"], (_registry.AUTH_USER, password))
        out.update({"user": rec.get("user", _registry.AUTH_USER), "password_file": rec.get("password_file")})
    return out
