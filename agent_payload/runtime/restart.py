"""Restart policies (docker's ``--restart``): parsing, the restart decision, the back-off, and the shim's restart loop.

Docker's rules (moby ``restartmanager``, ``daemon/monitor.go``, ``daemon/kill.go``), as fleet keeps them:

- ``no``: never; ``always``: after every exit; ``unless-stopped``: unless the user stopped or killed the
  container; ``on-failure[:N]``: after a non-zero exit, at most N times in a row (0 = no limit).
- Back-off before each restart: 100 ms, doubled after every exit, capped at 1 min; back to 100 ms when the
  run lasted 10 s or more.  ``RestartCount`` counts the restarts since the user last started the container.
- ``stop`` and ``kill`` (with SIGKILL or the container's stop signal) cancel the policy until the next user
  ``start``/``restart`` (state ``restart_cancelled``); every ``stop``/``kill`` also marks the container
  ``manually_stopped``, which ``unless-stopped`` remembers across boots.
- While waiting to restart the container is "restarting" (docker: Running and Restarting both true, Pid 0,
  ExitCode and FinishedAt of the run that ended).

State keys (state.json): ``restart_count``, ``restart_cancelled``, ``manually_stopped``, ``last_exit_code``.
The shim's side runs under the container lock, like every state change: ``after_exit`` decides and records,
``backoff_wait`` sleeps unless cancelled, ``record_restarted`` publishes the new init.
"""

import os
import time

from .. import errors, events
from ..linux import libc
from ..linux.consts import CLONE_NEWPID, PR_SET_CHILD_SUBREAPER
from . import health, reaper, records, states
from .policy import NO_POLICY, POLICIES, check_auto_remove  # noqa: F401  (restart.check and parse: callers' spelling)
from .policy import check_restart as check  # noqa: F401
from .policy import parse_restart as parse  # noqa: F401

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0  # a run this long resets the back-off
POLL = 0.05


def should_restart(policy, exit_code, manually_stopped, restart_count):
    """Docker's decision after an exit (and at boot): restart or not."""
    name = (policy or NO_POLICY).get("Name") or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


class Backoff:
    """Docker's restart delay: 100 ms, doubling per exit, at most 1 min, reset by a run of 10 s or more."""

    def __init__(self):
        self.timeout = 0.0

    def next(self, ran_for):
        """The delay before restarting after a run of ``ran_for`` seconds."""
        if ran_for >= RESET_AFTER:
            self.timeout = 0.0
        if self.timeout == 0.0:
            self.timeout = BACKOFF_START
        elif self.timeout < BACKOFF_MAX:
            self.timeout *= 2
        self.timeout = min(self.timeout, BACKOFF_MAX)
        return self.timeout


# ---------------------------------------------------------------- user side (stop, kill, start)

def mark_stopped(paths, container_id, cancel=True):
    """A user stop/kill: remember it (``unless-stopped``) and, with ``cancel``, end restarting; returns the state.

    Call before signalling, so that the shim, which reads these flags under the same lock when the process
    exits, never restarts what the user stopped.
    """
    with records.container_lock(paths, container_id):
        state = reaper.reconcile(paths, container_id, records.read_state(paths, container_id))
        if state.get("status") in ("running", "restarting"):
            state["manually_stopped"] = True
            if cancel:
                state["restart_cancelled"] = True
            records.write_state(paths, container_id, state)
    return state


def fresh_start_fields():
    """State fields a user ``start`` resets (docker's ResetRestartManager + HasBeenManuallyStopped=false)."""
    return {"restart_count": 0, "restart_cancelled": False, "manually_stopped": False}


# ---------------------------------------------------------------- shim side

def become_subreaper():
    """Make the shim inherit its orphaned descendants (a forked helper's children, an init forked by a middle
    process where ``fork_in_new_pidns`` needs one)."""
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)


def fork_in_new_pidns():
    """fork() into a fresh PID namespace: 0 in the child (its PID 1), the child's host PID in the caller.

    unshare(CLONE_NEWPID) only changes the namespace the caller's next children are born into, and works only
    while that is still the caller's own: so the caller unshares, forks the init, and goes back with setns() to
    its own namespace for the next run (one fork, no middle process).  Where that is refused, a middle process
    unshares, forks the init and exits; the caller, a subreaper, adopts the init and reaps the middle here,
    before it releases the init (which must not set its parent-death signal while the middle lives).
    """
    try:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _fork_via_middle()
    try:
        try:
            libc.unshare(CLONE_NEWPID)
        except OSError:
            return _fork_via_middle()
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                libc.setns(own, CLONE_NEWPID)  # our next children are born in our own namespace again
        return pid
    finally:
        os.close(own)


def _fork_via_middle():
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        pid = -1
        try:
            os.close(r)
            libc.unshare(CLONE_NEWPID)
            pid = os.fork()
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        if pid == 0:
            os.close(w)
            return 0  # the init
        try:
            os.write(w, str(pid).encode())
        finally:
            os._exit(0)  # the middle never returns
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(middle, 0)
    if not data or status != 0:
        raise errors.Internal("could not fork the container init in a new PID namespace (status {})".format(status))
    return int(data)


def after_exit(paths, container_id, code, oom_killed, ran_for, backoff):
    """Record a run's end under the container lock; returns the back-off delay if the policy restarts it, else None.

    Without a restart this is the plain exit record (and ``--rm`` removal); a force-removed container is left alone.
    """
    with records.container_lock(paths, container_id):
        lay = records.Layout(paths, container_id)
        if not os.path.exists(lay.config):
            return None  # force-removed while we were reaping
        config = records.read_config(paths, container_id)  # re-read: `update --restart` applies to the next exit
        state = records.read_state(paths, container_id)
        delay = backoff.next(ran_for)
        state.update(exit_code=code, finished_at=records.format_ns(), pid=0, oom_killed=bool(oom_killed),
                     paused=False, last_exit_code=code)
        count = state.get("restart_count") or 0
        if oom_killed:
            events.container(paths, "oom", config)
        events.container(paths, "die", config, exitCode=code)
        restart = not state.get("restart_cancelled") and should_restart(
            config.get("restart_policy"), code, state.get("manually_stopped"), count)
        if restart:
            records.move(paths, container_id, state, states.RESTARTING, restart_count=count + 1)
            return delay
        # --rm: removed in the next step under the same lock (the tombstone keeps this state for `wait`), so the
        # write needs no fsync: a crash in between leaves the container behind either way
        records.move(paths, container_id, state, states.EXITED, durable=not config.get("auto_remove"))
        if config.get("auto_remove"):
            records.remove_dir(paths, container_id, tombstone=True)
            events.container(paths, "destroy", config)
    if config.get("auto_remove"):
        records.gc_tombstones(paths)
        from . import volumes
        volumes.remove_anonymous_of(paths, config.get("mounts"))  # --rm: anonymous volumes go too, as docker
    return None


def _cancelled(paths, container_id):
    state = records.read_state(paths, container_id)
    return (not os.path.exists(records.Layout(paths, container_id).config) or state.get("restart_cancelled")
            or state.get("status") != "restarting")


def backoff_wait(paths, container_id, delay):
    """Sleep ``delay`` seconds unless a stop/kill/rm cancels the restart; True if the restart should go ahead.

    A cancelled restart is recorded as "exited" here (the shim then ends).
    """
    deadline = time.monotonic() + delay
    while True:
        if _cancelled(paths, container_id):
            give_up(paths, container_id)
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(POLL, left))


def give_up(paths, container_id, error=None):
    """A restarting container that will not run again: "exited" with the last run's code (under the lock)."""
    with records.container_lock(paths, container_id):
        if not os.path.exists(records.Layout(paths, container_id).config):
            return
        state = records.read_state(paths, container_id)
        if state.get("status") == states.RESTARTING:
            failed = {"error": error, "exit_code": 128} if error else {}
            records.move(paths, container_id, state, states.EXITED, **failed)


def record_restarted(paths, container_id, pid, pid_start, network_settings=None):
    """Publish a restart's new init in state.json; False if the restart was cancelled meanwhile: the caller then
    kills the init, removes the cgroup and only then records the exit (``give_up``), so that a stop or ``rm -f``
    waiting for "exited" finds nothing of the container left."""
    with records.container_lock(paths, container_id):
        if _cancelled(paths, container_id):
            return False
        state = records.read_state(paths, container_id)
        records.move(paths, container_id, state, states.RUNNING, pid=pid, pid_start=pid_start,
                     started_at=records.format_ns(), exit_code=None, error=None, oom_killed=False, paused=False,
                     health=health.initial(records.read_config(paths, container_id)),
                     network_settings=network_settings)
        events.container_of(paths, container_id, "start")  # under the lock, before the run's "die" (after_exit)
    return True


# ---------------------------------------------------------------- docker update --restart

def check_update(runtime, refs, policy):
    """Resolve every container and refuse a policy on an auto-remove one (docker's message); returns the IDs."""
    cids = [runtime._resolve(ref) for ref in refs]
    for cid in cids:
        if policy["Name"] != "no" and records.read_config(runtime.paths, cid).get("auto_remove"):
            raise errors.InvalidArgument(
                "Restart policy cannot be updated because AutoRemove is enabled for the container")
    return cids


def update_policy(runtime, refs, policy):
    """Store a new restart policy in each container's config.json (the shim reads it at the next exit)."""
    from ..state import store

    for cid in check_update(runtime, refs, policy):
        with records.container_lock(runtime.paths, cid):
            config = records.read_config(runtime.paths, cid)
            config["restart_policy"] = dict(policy)
            store.write_json_atomic(records.Layout(runtime.paths, cid).config, config)
