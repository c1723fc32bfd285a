"""The per-host deploy lock of a project: who deploys it now, held until released or until its holder is gone.

The holder is the process that carries the controller's SSH connection: the nearest ancestor of the op whose
command name is ``sshd`` (or OpenSSH 9.8's ``sshd-session``), else (an op not started over SSH: by hand, tests)
the op's parent.  The controller keeps one
connection per host open for the whole deploy, so that process lives exactly as long as the deploy can act on
this host; its pid and /proc start time (against pid reuse) are recorded.  When it is gone the lock is stale
and the next acquirer takes it over (and is told whose it was).

``deploys/<project>.lock`` (JSON, 0600) is read and replaced under a flock (``locks/deploy-<project>.lock``), so
two acquirers never both win.
"""

import os
import time

from agent_payload import errors
from agent_payload.runtime import records
from agent_payload.state import locks, store
from agent_payload.timestamps import format_ns

from . import check_project, deploys_dir

SSHD_NAMES = ("sshd", "sshd-session")


def _stat_fields(pid):
    """(comm, ppid) of a live process, or None."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    comm = data[data.find("(") + 1:data.rfind(")")]
    rest = data[data.rfind(")") + 2:].split()
    return comm, int(rest[1])


def holder_process(start=None, parent_at_start=None):
    """(pid, starttime) of the process that carries this op's connection (see the module doc).

    An op whose parent is no longer the process that started it (``parent_at_start``), or is init, was
    orphaned: its controller's session already ended (a controller killed mid-call), and its new parent (init, a
    subreaper) would hold the lock forever.  It gets no lock: Unavailable.
    """
    first = os.getppid() if start is None else start
    if start is None and (first == 1 or (parent_at_start is not None and first != parent_at_start)):
        raise errors.Unavailable("the session that asked for the deploy lock has ended: no lock taken")
    pid = first
    seen = 0
    while pid > 1 and seen < 64:
        fields = _stat_fields(pid)
        if fields is None:
            break
        if fields[0] in SSHD_NAMES:
            return pid, records.proc_starttime(pid)
        pid = fields[1]
        seen += 1
    return first, records.proc_starttime(first)


def _paths_of(paths, project):
    return os.path.join(deploys_dir(paths), project + ".lock"), paths.lock_file("deploy-" + project)


def read(paths, project):
    """The lock record of ``project`` ({holder, since, deploy_id, pid, starttime}) or None."""
    return store.read_json(_paths_of(paths, project)[0])


def alive(record):
    return bool(record) and records.is_alive(record.get("pid"), record.get("starttime"))


def acquire(paths, project, deploy_id, holder, process=None, parent_at_start=None):
    """Take the lock of ``project`` for ``deploy_id``; {"acquired": True, "took_over": {...}|None}.

    Conflict when another deploy holds it and its holder process lives; the same deploy_id re-acquiring is fine
    (and records the current connection).  ``process``: (pid, starttime) of the holder (default: holder_process,
    with ``parent_at_start``: the pid that started this payload process, to see that it was orphaned).
    """
    check_project(project)
    if not deploy_id:
        raise errors.InvalidArgument("deploy_id must not be empty")
    path, flock = _paths_of(paths, project)
    pid, start = process or holder_process(parent_at_start=parent_at_start)
    with locks.locked(flock):
        current = store.read_json(path)
        took_over = None
        if current and current.get("deploy_id") != deploy_id:
            if alive(current):
                raise errors.Conflict("project {} on this host is being deployed by {} since {} ({})".format(
                    project, current.get("holder") or "?", current.get("since"), current.get("deploy_id")))
            took_over = {"holder": current.get("holder"), "since": current.get("since"),
                         "deploy_id": current.get("deploy_id")}
        since = current.get("since") if current and current.get("deploy_id") == deploy_id else format_ns()
        store.write_json_atomic(path, {"project": project, "deploy_id": deploy_id, "holder": holder or "",
                                       "since": since, "pid": pid, "starttime": start,
                                       "acquired": time.time()})
    return {"acquired": True, "took_over": took_over}


def release(paths, project, deploy_id):
    """Give the lock back; {"released": bool} (False: ``deploy_id`` did not hold it; nothing changes)."""
    check_project(project)
    path, flock = _paths_of(paths, project)
    with locks.locked(flock):
        current = store.read_json(path)
        if not current or current.get("deploy_id") != deploy_id:
            return {"released": False}
        os.unlink(path)
    return {"released": True}


def check_held(paths, project, deploy_id):
    """FailedPrecondition unless ``deploy_id`` holds the lock of ``project`` (the swap ops require it)."""
    current = read(paths, project)
    if not current or current.get("deploy_id") != deploy_id or not alive(current):
        raise errors.FailedPrecondition("deploy {} does not hold the deploy lock of project {} on this host "
                                        "(deploy_lock first)".format(deploy_id, project))
