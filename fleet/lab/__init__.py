"""`fleet lab`: SSH hosts in network namespaces, a registry, a mirror proxy, an auth registry, seed images, and
optionally Debian VMs under qemu (`--vm bookworm`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import hosts as _hosts
from . import netns as _netns
from . import registry as _registry
from . import seed as _seed
from . import services as _services
from . import state as _state
from . import vm as _vm
from fleet.errors import UsageError

from .state import LabError

__all__ = ["LabConfig", "LabError", "up", "down", "status", "start_service", "stop_service"]

Log = Callable[[str], None]


@dataclass
class LabConfig:
    """What lab to build: its name (prefix of every netns/link), subnet, host count and where its files go."""

    name: str = "fleetlab"
    subnet: str = "10.213.0.0/24"
    hosts: int = 3
    state_dir: Optional[Path] = None          # default: /var/lib/fleet-lab/<name>
    inventory: Path = Path("inventories/lab.yml")
    cache_dir: Path = field(default=Path("/var/cache/fleet-lab"))   # debs, seed images, VM images; survives down
    vms: list = field(default_factory=list)   # Debian suites to boot as VM hosts (vm-<suite>)

    def __post_init__(self):
        if not self.name or not self.name.replace("-", "").isalnum() or len(self.name) > 32:
            raise LabError("lab name must be 1-32 letters, digits or '-': {!r}".format(self.name))
        self.state_dir = Path(self.state_dir) if self.state_dir else Path("/var/lib/fleet-lab") / self.name
        self.state_dir = self.state_dir.absolute()
        if len(self.state_dir.parts) < 3:
            raise LabError("state_dir {} is too close to / for a directory that down deletes".format(self.state_dir))
        self.inventory = Path(self.inventory).absolute()
        self.cache_dir = Path(self.cache_dir).absolute()
        if self.hosts == 0 and not self.vms:
            raise UsageError("--hosts 0 leaves the lab without hosts; it is allowed only with --vm")


def _daemon_json(svc: dict) -> dict:
    """Each lab host's /etc/fleet/daemon.json: pulls go through the mirror proxy first, the registry second.

    The lab has no Internet, so Docker Hub itself is switched off as a last resort ("origin": false, an
    air-gapped Hub mirror): an image the mirrors lack is "manifest unknown", never a lookup of docker.io.
    """
    reg, mir, auth = ("{}:{}".format(svc[k].address, _registry.PORT) for k in ("registry", "mirror", "auth"))
    return {"registry-mirrors": ["http://" + mir, "http://" + reg], "insecure-registries": [reg, mir, auth],
            "registries": {"docker.io": {"origin": False}}}


def _lab_vars(svc: dict, state_dir: Path) -> dict:
    """all.vars the inventory gains, for tests and playbooks: the three registries and the auth login."""
    return {"fleet_lab_registry": "{}:{}".format(svc["registry"].address, _registry.PORT),
            "fleet_lab_mirror": "{}:{}".format(svc["mirror"].address, _registry.PORT),
            "fleet_lab_auth_registry": "{}:{}".format(svc["auth"].address, _registry.PORT),
            "fleet_lab_auth_user": _registry.AUTH_USER,
            "fleet_lab_auth_password_file": str(state_dir / _registry.PASSWORD_FILE)}


def up(cfg: LabConfig, log: Log = print) -> dict:
    """Build the lab, or repair it: idempotent; with everything running it changes nothing. Returns status(cfg)."""
    t0 = time.monotonic()
    bridge, gateway, _reg, nodes = _netns.plan(cfg.name, cfg.subnet, cfg.hosts)
    svc = _netns.service_nodes(cfg.name, cfg.subnet)
    old = _state.load_state(cfg.state_dir) or {}
    if not old and cfg.state_dir.is_dir() and any(cfg.state_dir.iterdir()):
        raise LabError("{} is not empty and holds no lab; pick another state_dir".format(cfg.state_dir))
    if old and (old.get("subnet") != cfg.subnet or len(old.get("hosts", [])) != cfg.hosts):
        raise LabError("lab {} exists with subnet {} and {} hosts; run `fleet lab down` first".format(
            cfg.name, old.get("subnet"), len(old.get("hosts", []))))
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    _state.claim_mountpoints(cfg.name, _hosts.MOUNT_POINTS)
    state = {"name": cfg.name, "subnet": cfg.subnet, "bridge": bridge, "state_dir": str(cfg.state_dir),
             "inventory": str(cfg.inventory), "hosts": old.get("hosts", []), "images": old.get("images", {}),
             "vms": old.get("vms", [])}
    for name in _services.SERVICES:
        state[name] = old.get(name, {})
    if old.get("inventory_dir_created"):
        state["inventory_dir_created"] = old["inventory_dir_created"]
    _state.save_state(cfg.state_dir, state)     # recorded before anything is made, so down can always clean up

    _netns.ensure_bridge(bridge, gateway)
    for node in list(svc.values()) + nodes:
        _netns.ensure_node_net(node, bridge, gateway)

    for name in _services.SERVICES:             # registry before the mirror that proxies to it
        state[name] = _services.ensure(cfg.name, cfg.state_dir, name, svc, state[name], log)
        _state.save_state(cfg.state_dir, state)

    key = _hosts.ensure_lab_key(cfg.state_dir)
    pubkey = key.with_suffix(".pub").read_text()
    daemon = _daemon_json(svc)
    recorded = {h["name"]: h for h in state["hosts"]}
    rows = []
    for node in nodes:
        paths = _hosts.prepare_host(cfg.state_dir, node, pubkey, daemon)
        pid = recorded.get(node.name, {}).get("sshd_pid")
        if not _hosts.sshd_running(pid, node.netns):
            pid = _hosts.start_sshd(node, paths)
            log("host {} {} up (sshd pid {})".format(node.name, node.address, pid))
        rows.append({"name": node.name, "address": node.address, "netns": node.netns, "veth": node.veth,
                     "role": node.role, "sshd_pid": pid, "sshd_config": str(paths["sshd_config"])})
        state["hosts"] = rows + [h for h in state["hosts"] if h["name"] not in {r["name"] for r in rows}]
        _state.save_state(cfg.state_dir, state)

    images = _seed.seed_images(cfg.cache_dir, log)
    creds = _services.auth_creds(cfg.state_dir)
    for img in images.values():
        if img["registry"] == "auth":
            _registry.push(img, svc["auth"].address, log, creds=creds)
        else:
            _registry.push(img, svc["registry"].address, log)
    state["images"] = images
    _state.save_state(cfg.state_dir, state)

    def save_vms(recs: list) -> None:
        state["vms"] = recs
        _state.save_state(cfg.state_dir, state)

    if cfg.vms or state["vms"]:
        save_vms(_vm.ensure(cfg.state_dir, cfg.cache_dir, cfg.vms or [v["suite"] for v in state["vms"]],
                            state["vms"], pubkey, daemon, log, save_vms))
    known = _hosts.write_known_hosts(cfg.state_dir, nodes, [_vm.known_hosts_line(v["port"], v["host_key"])
                                                            for v in state["vms"]])
    if not cfg.inventory.parent.exists():
        state["inventory_dir_created"] = str(cfg.inventory.parent)
        _state.save_state(cfg.state_dir, state)
    groups = {"vm": _vm.inventory_group(state["vms"])} if state["vms"] else {}
    _hosts.write_inventory(cfg.inventory, _hosts.render_inventory(cfg.name, nodes, key, known,
                                                                  _lab_vars(svc, cfg.state_dir), groups))
    _state.save_state(cfg.state_dir, state)
    log("lab {} ready in {:.1f}s: {} hosts, {} VMs, inventory {}".format(
        cfg.name, time.monotonic() - t0, len(nodes), len(state["vms"]), cfg.inventory))
    return status(cfg)


def _existing_state(cfg: LabConfig) -> dict:
    """lab.json of a lab that is up; LabError when there is none."""
    st = _state.load_state(cfg.state_dir)
    if not st:
        raise LabError("lab {} is not up (no {}); run `fleet lab up`".format(cfg.name, cfg.state_dir / "lab.json"))
    return st


def stop_service(cfg: LabConfig, service: str, log: Log = print) -> None:
    """Stop one service host's process ("mirror", "registry" or "auth") by PID; a no-op when it is not running.

    Its netns, address and files stay, so clients get 'connection refused' and start_service brings it back."""
    _services.check_name(service)
    st = _existing_state(cfg)
    _services.stop(service, st.get(service) or {}, log)


def start_service(cfg: LabConfig, service: str, log: Log = print) -> dict:
    """(Re)start one service host if it is not running; idempotent. Returns its status row (see status())."""
    _services.check_name(service)
    st = _existing_state(cfg)
    svc = _netns.service_nodes(cfg.name, st["subnet"])
    if service == "mirror" and not _services.process_running("registry", st.get("registry") or {}):
        log("note: the registry behind the mirror is not running; the mirror will answer 502")
    st[service] = _services.ensure(cfg.name, cfg.state_dir, service, svc, st.get(service) or {}, log)
    _state.save_state(cfg.state_dir, st)
    return _services.describe(service, st[service], cfg.state_dir)


def down(cfg: LabConfig, log: Log = print) -> None:
    """Remove everything up made: processes (by PID), namespaces, links, mount points, state_dir, inventory.

    Keeps cfg.cache_dir (debs, seed layouts). A lab that does not exist is a no-op."""
    st = _state.load_state(cfg.state_dir) or {}
    ours = bool(st) or (cfg.state_dir.is_dir() and not any(cfg.state_dir.iterdir()))   # never rmtree a stranger
    namespaces = _netns.list_netns(cfg.name)

    def victims() -> set[int]:
        pids: set[int] = set()
        for ns in namespaces:
            pids |= _netns.netns_pids(ns)
        if st:
            pids |= _state.pids_using(cfg.state_dir)
        recorded = [(h.get("sshd_pid"), _hosts.SSHD, h.get("netns")) for h in st.get("hosts", [])]
        for name in _services.SERVICES:
            rec = st.get(name) or {}
            recorded.append((rec.get("pid"), _services.EXES[name], rec.get("netns")))
        pids |= {pid for pid, exe, ns in recorded if _state.pid_matches(pid, exe, ns)}
        pids |= {v["pid"] for v in st.get("vms", []) if _vm.qemu_running(v)}
        return pids

    _vm.stop(st.get("vms", []), log)
    _state.kill_pids(victims, log)
    _remove_container_cgroups(cfg, log)
    _netns.teardown(cfg.name, log)
    _state.release_mountpoints(cfg.name, log)
    _hosts.remove_inventory(Path(st["inventory"]) if st.get("inventory") else cfg.inventory, cfg.name, log)
    if st.get("inventory_dir_created"):
        with contextlib.suppress(OSError):
            os.rmdir(st["inventory_dir_created"])     # only if up made it and it is empty now
    if ours:
        shutil.rmtree(cfg.state_dir)
        log("removed {}".format(cfg.state_dir))
    elif cfg.state_dir.exists():
        log("left {}: it holds no lab.json".format(cfg.state_dir))


def _remove_container_cgroups(cfg: LabConfig, log: Log) -> None:
    """The cgroups of containers still running on lab hosts when the lab went down (their shims were killed with
    the lab, so nobody else removes them): empty now that every process is gone, removed bottom-up."""
    ids = {p.name for p in cfg.state_dir.glob("hosts/*/var-lib-fleet/containers/*") if len(p.name) == 64}
    removed = set()
    for cid in ids:
        for top in list(Path("/sys/fs/cgroup").glob("*/fleet/" + cid)) + list(Path("/sys/fs/cgroup").glob(
                "fleet*/" + cid)):
            for sub in sorted((Path(d) for d, _s, _f in os.walk(top)), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            if not top.exists():
                removed.add(cid)
    if removed:
        log("removed the cgroups of {} container(s) left running".format(len(removed)))


def status(cfg: LabConfig) -> dict:
    """The lab as recorded in state_dir/lab.json, with live checks: each service and each host 'running'.

    'registry', 'mirror' and 'auth' each carry address, port, pid, running; 'auth' also user and password_file."""
    st = _state.load_state(cfg.state_dir)
    bridge = _netns.bridge_name(cfg.name)
    svc = _netns.service_nodes(cfg.name, cfg.subnet)
    if not st:
        out = {"name": cfg.name, "exists": False, "bridge": bridge, "state_dir": str(cfg.state_dir),
               "hosts": [], "vms": [], "inventory": None, "images": {}}
        for name in _services.SERVICES:
            out[name] = {"address": svc[name].address, "port": _registry.PORT, "pid": None, "running": False}
        return out
    out = {"name": st["name"], "exists": True, "bridge": st["bridge"], "state_dir": st["state_dir"],
           "hosts": _hosts.describe(st), "inventory": st.get("inventory"), "images": st.get("images", {}),
           "key": str(Path(st["state_dir"]) / "id_ed25519"),
           "known_hosts": str(Path(st["state_dir"]) / "known_hosts"), "vms": _vm.describe(st.get("vms", []))}
    for name in _services.SERVICES:
        rec = st.get(name) or {}
        if not rec.get("address"):
            rec = dict(rec, address=svc[name].address, port=_registry.PORT)
        out[name] = _services.describe(name, rec, Path(st["state_dir"]))
    return out
