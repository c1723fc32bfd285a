"""Container resources through cgroups: update (live limits), stats samples, pause/unpause (cleanup: reaper.py)."""

import os
import time

from .. import errors
from ..state import store
from . import cgroups, reaper, records, states
from .cgroups.limits import Limits

STATS_INTERVAL = 0.2  # s between the two CPU samples of one stats call (docker's CPU % is a rate)


def _running(state):
    return state.get("status") == "running"


def update(runtime, refs, change):
    """``docker update``: merge ``change`` (a Limits from ``limits.parse(update=True)``) into each container.

    Every container is resolved and every merge validated first; then each config.json is rewritten and a
    running container's cgroup gets the new values live. Returns {"updated": [id], "warnings": [str]}.
    """
    cids = [runtime._resolve(ref) for ref in refs]
    for cid in cids:  # validate all merges before changing anything
        Limits.from_dict(records.read_config(runtime.paths, cid).get("limits")).updated(change)
    for cid in cids:
        with records.container_lock(runtime.paths, cid):
            config = records.read_config(runtime.paths, cid)
            merged = Limits.from_dict(config.get("limits")).updated(change)
            state = reaper.reconcile(runtime.paths, cid, records.read_state(runtime.paths, cid))
            if _running(state):
                cgroups.attach(cid).apply(merged)  # first: a limit the kernel refuses is not persisted
            config["limits"] = merged.to_dict()
            store.write_json_atomic(records.Layout(runtime.paths, cid).config, config)
    return {"updated": cids, "warnings": list(change.warnings)}


def _online_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _sample(cid):
    try:
        return cgroups.attach(cid).stats()
    except errors.NotFound:
        return None  # exited between listing and sampling


def _own_netns(pid):
    """True if ``pid`` shares the payload's network namespace (``--network host``): docker counts no traffic."""
    try:
        return os.stat("/proc/{}/ns/net".format(pid)).st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True


def net_io(pid, dev_text=None):
    """(rx, tx) bytes of the container's network namespace: /proc/<init pid>/net/dev summed over its interfaces
    but lo, as docker sums its endpoints' counters; (0, 0) on the host's network or when the process is gone."""
    if dev_text is None:
        if not pid or _own_netns(pid):
            return 0, 0
        try:
            with open("/proc/{}/net/dev".format(pid)) as f:
                dev_text = f.read()
        except OSError:
            return 0, 0
    rx = tx = 0
    for line in dev_text.splitlines():
        name, sep, counters = line.partition(":")
        fields = counters.split()
        if not sep or name.strip() == "lo" or len(fields) < 9 or not fields[0].isdigit():
            continue  # the two header lines, loopback
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def stats(runtime, refs=None, all=False):
    """One ``docker stats --no-stream`` sample per container: given ``refs``, else running ones (``all``: every one).

    CPU % is docker's: (container CPU delta / host CPU delta) x online CPUs x 100 over ``STATS_INTERVAL``.
    Stopped containers show zeros, as docker does. NET I/O is the container's network namespace's (``net_io``).
    """
    if refs:
        recs = [runtime.lookup(ref) for ref in refs]
    else:
        recs = [rec for rec in runtime.all_records() if all or _running(rec)]
    live = [rec["id"] for rec in recs if _running(rec)]
    first = {cid: _sample(cid) for cid in live}
    sys1 = cgroups.system_cpu_usage_ns()
    if live:
        time.sleep(STATS_INTERVAL)
    second = {cid: _sample(cid) for cid in live}
    sys2 = cgroups.system_cpu_usage_ns()
    ncpu = _online_cpus()
    rows = []
    for rec in recs:
        a, b = first.get(rec["id"]), second.get(rec["id"])
        row = {"id": rec["id"], "name": rec["name"], "cpu_percent": 0.0, "memory_usage": 0, "memory_limit": 0,
               "memory_percent": 0.0, "net_rx": 0, "net_tx": 0, "block_read": 0, "block_write": 0, "pids": 0}
        if a is not None and b is not None:
            cpu_delta = (b["cpu_usage_ns"] or 0) - (a["cpu_usage_ns"] or 0)
            if sys2 > sys1 and cpu_delta > 0:
                row["cpu_percent"] = round(cpu_delta / (sys2 - sys1) * ncpu * 100.0, 2)
            row.update(memory_usage=b["memory_usage"] or 0, memory_limit=b["memory_limit"] or 0,
                       block_read=b["blkio_read"] or 0, block_write=b["blkio_write"] or 0,
                       pids=b["pids_current"] or 0)
            if rec.get("pid") and records.is_alive(rec["pid"], rec.get("pid_start")):
                row["net_rx"], row["net_tx"] = net_io(rec["pid"])
            if row["memory_limit"]:
                row["memory_percent"] = round(row["memory_usage"] * 100.0 / row["memory_limit"], 2)
        rows.append(row)
    return {"stats": rows}


def _set_paused(runtime, refs, pause):
    cids = [runtime._resolve(ref) for ref in refs]
    for ref, cid in zip(refs, cids):  # check every container before freezing any
        state = runtime._load(cid, ref)[1]
        if not _running(state):
            raise errors.Conflict("Container {} is not running".format(cid))
        if pause and state.get("paused"):
            raise errors.Conflict("container {} is already paused".format(cid))
        if not pause and not state.get("paused"):
            raise errors.Conflict("container {} is not paused".format(cid))
    for cid in cids:
        with records.container_lock(runtime.paths, cid):
            state = reaper.reconcile(runtime.paths, cid, records.read_state(runtime.paths, cid))
            if not _running(state):
                raise errors.Conflict("Container {} is not running".format(cid))
            mgr = cgroups.attach(cid)
            if pause:
                mgr.freeze()
            else:
                mgr.thaw()
            target = states.PAUSED if pause else states.RUNNING
            if states.current(state) != target:  # else paused (unpaused) meanwhile: the flag already says so
                records.move(runtime.paths, cid, state, target)
    return cids


def pause(runtime, refs):
    """Freeze every process of running containers (cgroup freezer); returns their IDs."""
    return _set_paused(runtime, refs, True)


def unpause(runtime, refs):
    """Thaw paused containers; returns their IDs."""
    return _set_paused(runtime, refs, False)


def thaw_if_paused(paths, cid):
    """Before stop/kill: thaw a paused container (a frozen task cannot act on a signal) and clear the flag."""
    with records.container_lock(paths, cid):
        state = records.read_state(paths, cid)
        if not state.get("paused"):
            return
        try:
            cgroups.attach(cid).thaw()
        except errors.NotFound:
            pass
        if states.current(state) == states.PAUSED:
            records.move(paths, cid, state, states.RUNNING)
        else:  # a stale flag on a record that is not "running" (no code writes one): cleared, status untouched
            records.write_state(paths, cid, dict(state, paused=False))


def present(rec):
    """A record as docker shows it: a running container that is frozen has status "paused"."""
    if _running(rec) and rec.get("paused"):
        return dict(rec, status="paused")
    return rec
