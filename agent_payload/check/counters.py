"""Last-seen counters of the containers (``<root>/checks/counters.json``, 0600, atomic, under a flock), and what
each container did since the last check that kept them.

``{"time": ns of that check, "containers": {id: {"name", "restarts", "started_at", "cgroup_oom", "oom_exit",
"oom_kills"}}}``: ``restarts`` is docker's RestartCount then; ``cgroup_oom`` the OOM kills its cgroup counted in the
run that started at ``started_at`` (``memory.events`` on v2, ``memory.oom_control`` on v1: the cgroup lives as long
as a run); ``oom_exit`` the end (finished_at) of the last run the shim recorded as OOM-killed; ``oom_kills`` every
OOM kill seen so far.

A container the file does not know is taken as it is (no news) when no check kept counters before, or when it
was created before the last check (a counters file lost or written by a dry run); one created since the last check
has everything it did counted as news.
"""

import contextlib
import os

from agent_payload import errors
from agent_payload.state import locks, perms, store
from agent_payload.timestamps import parse_ns


def checks_dir(paths):
    """``<root>/checks`` (0700)."""
    path = os.path.join(paths.root, "checks")
    if not os.path.isdir(path):
        perms.makedirs(path, perms.DIR_MODE)
    return path


def path_of(paths):
    return os.path.join(paths.root, "checks", "counters.json")


def load(paths):
    """The stored counters ({} when there are none or they are unreadable)."""
    try:
        data = store.read_json(path_of(paths)) or {}
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("containers", {}), dict) else {}


@contextlib.contextmanager
def session(paths, keep):
    """Yield the stored counters; with ``keep`` under the counters' flock (held until the new ones are saved)."""
    if not keep:
        yield load(paths)
        return
    checks_dir(paths)
    with locks.locked(paths.lock_file("check-counters")):
        yield load(paths)


def save(paths, data):
    store.write_json_atomic(os.path.join(checks_dir(paths), "counters.json"), data)


def cgroup_oom_kills(container_id, hierarchy):
    """OOM kills counted by the container's current cgroup (0 without one, or without the memory controller)."""
    from agent_payload.runtime import cgroups
    from agent_payload.runtime.cgroups import fs

    if hierarchy is None:
        return 0
    try:
        mgr = cgroups.attach(container_id, hierarchy=hierarchy)
    except (errors.AgentError, OSError):
        return 0
    if getattr(mgr, "version", None) == 2:
        return fs.read_keyed(mgr.path, "memory.events").get("oom_kill", 0)
    memory = getattr(mgr, "dirs", {}).get("memory")
    return fs.read_keyed(memory, "memory.oom_control").get("oom_kill", 0) if memory else 0


def _created_ns(rec):
    try:
        return parse_ns(rec.get("created") or "")
    except (ValueError, TypeError, errors.AgentError):
        return 0


def observe(rec, prev, last_time, cgroup_oom):
    """(entry to store, restarts since the last check, OOM kills since the last check) of one container record.

    ``prev``: its stored entry or None; ``last_time``: the last check's time (ns) or None (never);
    ``cgroup_oom``: ``cgroup_oom_kills`` of it now (0 when not running)."""
    restarts = rec.get("restart_count") or 0
    started = rec.get("started_at")
    exit_oom = rec.get("finished_at") if rec.get("oom_killed") else None
    if prev is None and (last_time is None or _created_ns(rec) <= last_time):
        entry = {"restarts": restarts, "started_at": started, "cgroup_oom": cgroup_oom, "oom_exit": exit_oom,
                 "oom_kills": cgroup_oom + (1 if exit_oom else 0)}
        return dict(entry, name=rec["name"]), 0, 0
    prev = prev or {"restarts": 0, "started_at": None, "cgroup_oom": 0, "oom_exit": None, "oom_kills": 0}
    new_restarts = restarts - prev["restarts"] if restarts >= prev["restarts"] else restarts  # reset by a start
    if started == prev.get("started_at"):
        new_oom = max(0, cgroup_oom - (prev.get("cgroup_oom") or 0))
    else:
        new_oom = cgroup_oom  # another run since: a fresh cgroup
    if exit_oom and exit_oom != prev.get("oom_exit"):
        new_oom += 1
    entry = {"name": rec["name"], "restarts": restarts, "started_at": started, "cgroup_oom": cgroup_oom,
             "oom_exit": exit_oom or prev.get("oom_exit"), "oom_kills": (prev.get("oom_kills") or 0) + new_oom}
    return entry, new_restarts, new_oom
