"""Cleaning up after the dead: containers whose shim died (``reconcile`` kills what is left, destroys the cgroup,
tears the network down) and what killed payloads left in containers/ and locks/ (``reap``).

Above records.py (plain record I/O), net and cgroups: whoever reads a state that must be true (a "running"
container's shim is alive) loads it through ``load`` or ``reconcile`` here.
"""

import os
import signal

from .. import errors, net, timestamps
from ..state import locks, store
from . import cgroups, records, states, volumes


def destroy_cgroup(cid):
    """Remove a container's cgroup and anything left in it; nothing there (or no cgroup fs at all) is fine."""
    try:
        mgr = cgroups.attach(cid)
    except (errors.NotFound, errors.FailedPrecondition):
        return False
    mgr.destroy()
    return True


def reconcile(paths, container_id, state):
    """Fix a "running" or "restarting" state whose shim is gone (crashed, killed); call with ``container_lock`` held.

    The exit status is unknown then: record ``exit_code`` -1 and an error note, and kill an orphaned
    container process (its output has nowhere to go and nobody would ever reap or record it).
    """
    if state.get("status") not in ("running", "restarting") or records.is_alive(state.get("shim_pid"),
                                                                                state.get("shim_start")):
        return state
    records.signal_process(state.get("pid"), state.get("pid_start"), signal.SIGKILL)
    destroy_cgroup(container_id)  # kills what is left (a frozen init dies only once thawed) and removes it
    try:
        net.teardown(paths, container_id, state.get("network_settings"))  # rules, veths, addresses, netns
    except errors.AgentError:
        pass  # best effort: what is left is reaped by the next start of the same container or IPAM reap
    return records.move(paths, container_id, state, states.EXITED, exit_code=-1, finished_at=timestamps.format_ns(),
                        paused=False, error="shim (pid {}) exited unexpectedly; container exit status unknown".format(
                            state.get("shim_pid")))


def load(paths, container_id):
    """Read config + (reconciled) state under the container lock; NotFound if the container is gone."""
    with records.container_lock(paths, container_id):
        config = records.read_config(paths, container_id)
        state = reconcile(paths, container_id, records.read_state(paths, container_id))
    return config, state


def reap(paths):
    """Delete what killed payloads left in containers/ and locks/; never waits (a busy lock skips that part).

    * a container dir without config.json: creation writes config.json last, all under ``names_lock``, so once
      we hold that lock such a dir is a dead creator's (or one a removal is deleting anyway);
    * ``.trash-*`` dirs whose remover died (``locks.remove_tree``);
    * ``container-<id>.lock`` files of containers that no longer exist;
    * temp files of atomic writes (config, state) whose writer was killed.
    """
    try:
        entries = os.listdir(paths.containers)
    except FileNotFoundError:
        entries = []
    partial = [e for e in entries if records.ID_RE.match(e) and
               not os.path.exists(os.path.join(paths.containers, e, "config.json"))]
    if partial:
        fd = locks.acquire(paths.lock_file("containers"), blocking=False)
        if fd is not None:
            try:
                for cid in partial:
                    lay = records.Layout(paths, cid)
                    if not os.path.exists(lay.config):
                        made = store.read_json(lay.pending_volumes)
                        if made:  # the dead create's new volumes, unless a container uses them since
                            volumes.Volumes(paths).discard(made, volumes.all_configs(paths))
                        locks.remove_tree(lay.dir)
            finally:
                os.close(fd)
    if any(e.startswith(locks.TRASH) for e in entries):
        locks.reap_dirs(paths.containers)
    for cid in entries:
        if records.ID_RE.match(cid):
            locks.reap_temp_files(os.path.join(paths.containers, cid))
    try:
        lock_names = os.listdir(paths.locks)
    except FileNotFoundError:
        lock_names = []
    prefix = records.LOCK_PREFIX
    for name in lock_names:
        cid = name[len(prefix):-len(".lock")] if name.startswith(prefix) and name.endswith(".lock") else ""
        if records.ID_RE.match(cid) and not os.path.isdir(paths.container_dir(cid)):
            locks.reap(records.lock_path(paths, cid), lambda cid=cid: not os.path.isdir(paths.container_dir(cid)))
