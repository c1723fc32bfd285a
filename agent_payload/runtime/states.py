"""The container state machine: docker's seven states, the moves between them, one checked ``transition``.

Modelled on runc's ``libcontainer/state_linux.go`` and youki's ``container/state.rs``: every status write goes
through ``transition(state, to, ...)``, which refuses a move the table does not list with a Conflict in docker's
wording. A leaf module (imports only ``errors``); callers hold the container's lock (``records.container_lock``)
around read, transition and write (``records.move``).

On disk (state.json, unchanged from before this module) "paused" is not a status of its own: it is
``status: "running"`` with ``paused: true`` (what ``docker inspect`` shows as Status "paused", Running true).
``current`` decodes that, ``transition`` encodes it. "removing" and "dead" are docker's; no code writes them today
(``rm`` deletes the container directory under the lock), they are in the table so that readers and filters agree.

Moves beyond docker's that the existing code makes, kept so that behaviour does not change:
created/exited -> exited/restarting: the shim records an init's exit (``restart.after_exit``) even when the
``start`` that launched it died before publishing "running" (the shim had already answered "started").
"""

from .. import errors

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"

STATES = (CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD)

# from -> the states it may move to
TRANSITIONS = {
    CREATED: frozenset({RUNNING, REMOVING, EXITED, RESTARTING}),  # EXITED, RESTARTING: see the module doc
    RUNNING: frozenset({PAUSED, RESTARTING, EXITED, REMOVING}),
    PAUSED: frozenset({RUNNING, RESTARTING, EXITED, REMOVING}),  # exits: the frozen init was killed (OOM, reaper)
    RESTARTING: frozenset({RUNNING, EXITED, REMOVING}),
    EXITED: frozenset({RUNNING, REMOVING, EXITED, RESTARTING}),  # EXITED, RESTARTING: see the module doc
    REMOVING: frozenset({DEAD}),
    DEAD: frozenset({REMOVING}),
}

# states whose init (or its restart) is alive: docker's State.Running
ALIVE = (RUNNING, PAUSED, RESTARTING)


class IllegalTransition(errors.Conflict):
    """A move the table does not allow (a Conflict: the request was valid, the container's state is not)."""


def current(state):
    """The docker state of a state.json dict ("paused" is ``status: running`` + ``paused: true`` on disk)."""
    status = state.get("status")
    if status == RUNNING and state.get("paused"):
        return PAUSED
    return status


def allowed(frm, to):
    """True if the table lets a container move from ``frm`` to ``to``."""
    return to in TRANSITIONS.get(frm, ())


def _refusal(container_id, frm, to):
    """Docker's wording for a refused move where it has one (daemon/pause.go, unpause.go, start.go)."""
    who = container_id or "(unknown)"
    if to == PAUSED:
        if frm == PAUSED:
            return "Container {} is already paused".format(who)
        return "Container {} is not running".format(who)
    if to == RUNNING:
        if frm == RUNNING:
            return "Container {} is not paused".format(who)  # running -> running can only be an unpause
        if frm in (REMOVING, DEAD):
            return "container {} is marked for removal and cannot be started".format(who)
    return "cannot move container {} from {} to {}".format(who, frm, to)


def check(state, to, container_id=None):
    """Raise IllegalTransition unless ``state`` may move to ``to``; returns the current state."""
    if to not in STATES:
        raise ValueError("unknown container state {!r}".format(to))
    frm = current(state)
    if not allowed(frm, to):
        raise IllegalTransition(_refusal(container_id, frm, to))
    return frm


def transition(state, to, container_id=None, **fields):
    """A new state dict: ``state`` moved to ``to`` with ``fields`` set, or IllegalTransition.

    The on-disk encoding of "paused" is kept: to "paused" writes ``status: running, paused: true``; leaving
    "paused" writes ``paused: false``. Otherwise the ``paused`` key is left as the caller's ``fields`` set it.
    """
    frm = check(state, to, container_id)
    new = dict(state)
    new.update(fields)
    if to == PAUSED:
        new.update(status=RUNNING, paused=True)
    else:
        new["status"] = to
        if frm == PAUSED:
            new["paused"] = False
    return new
