"""runtime/states.py: docker's container states, the transition table, and the one checked move."""

import json
import os

import pytest

from agent_payload import errors
from agent_payload.runtime import inspect as inspectmod
from agent_payload.runtime import records, restart, states, status
from agent_payload.state import store
from agent_payload.state.paths import Paths

CID = "c" * 64


def _state(name, **extra):
    """A state.json dict as the code writes it for docker state ``name`` ("paused" is running + flag on disk)."""
    state = records.initial_state()
    if name == states.PAUSED:
        state.update(status=states.RUNNING, paused=True)
    else:
        state.update(status=name, paused=False)
    state.update(extra)
    return state


def _pairs():
    return [(frm, to) for frm in states.STATES for to in states.STATES]


def test_the_states_are_dockers_seven_and_every_reader_agrees():
    assert set(states.STATES) == {"created", "running", "paused", "restarting", "removing", "exited", "dead"}
    assert set(status.STATUSES) == set(states.STATES)  # ps --filter status=
    assert inspectmod._STATUS == set(states.STATES)  # inspect's State.Status
    assert set(states.TRANSITIONS) == set(states.STATES)
    for targets in states.TRANSITIONS.values():
        assert targets <= set(states.STATES)


@pytest.mark.parametrize("frm,to", [p for p in _pairs() if states.allowed(*p)])
def test_every_allowed_move_passes_and_lands_in_its_state(frm, to):
    new = states.transition(_state(frm), to, CID, exit_code=3)
    assert states.current(new) == to
    assert new["exit_code"] == 3
    assert new["status"] == (states.RUNNING if to == states.PAUSED else to)  # on-disk encoding unchanged


@pytest.mark.parametrize("frm,to", [p for p in _pairs() if not states.allowed(*p)])
def test_every_move_outside_the_table_is_refused_and_changes_nothing(frm, to):
    before = _state(frm)
    kept = dict(before)
    with pytest.raises(states.IllegalTransition) as info:
        states.transition(before, to, CID)
    assert isinstance(info.value, errors.Conflict)  # exit 1 kind on the wire, not bad input
    assert CID in str(info.value)
    assert before == kept


@pytest.mark.parametrize("frm,to,message", [
    ("exited", "paused", "Container {} is not running"),
    ("created", "paused", "Container {} is not running"),
    ("paused", "paused", "Container {} is already paused"),
    ("running", "running", "Container {} is not paused"),
    ("dead", "running", "container {} is marked for removal and cannot be started"),
    ("removing", "running", "container {} is marked for removal and cannot be started"),
    ("exited", "dead", "cannot move container {} from exited to dead"),
    ("restarting", "restarting", "cannot move container {} from restarting to restarting"),
])
def test_illegal_moves_are_refused_in_dockers_words(frm, to, message):
    with pytest.raises(states.IllegalTransition, match="^{}$".format(message.format(CID))):
        states.transition(_state(frm), to, CID)


EXPECTED = {  # written out, so that a change to the table is a change to this test too
    "created": {"running", "removing", "exited", "restarting"},
    "running": {"paused", "restarting", "exited", "removing"},
    "paused": {"running", "restarting", "exited", "removing"},
    "restarting": {"running", "exited", "removing"},
    "exited": {"running", "removing", "exited", "restarting"},
    "removing": {"dead"},
    "dead": {"removing"},
}


def test_the_table_is_exactly_the_documented_one():
    assert {frm: set(to) for frm, to in states.TRANSITIONS.items()} == EXPECTED


def test_a_sample_of_docker_lifecycle_moves_is_in_the_table():
    for frm, to in [("created", "running"), ("running", "paused"), ("paused", "running"), ("running", "exited"),
                    ("running", "restarting"), ("restarting", "running"), ("restarting", "exited"),
                    ("exited", "running"), ("exited", "removing"), ("removing", "dead")]:
        assert states.allowed(frm, to), (frm, to)
    for frm, to in [("created", "paused"), ("exited", "paused"), ("dead", "running"), ("restarting", "paused"),
                    ("removing", "running"), ("created", "dead")]:
        assert not states.allowed(frm, to), (frm, to)


def test_an_unknown_target_is_a_programming_error():
    with pytest.raises(ValueError):
        states.transition(_state("running"), "sleeping", CID)


def test_paused_is_the_running_status_with_a_flag_on_disk():
    assert states.current({"status": "running", "paused": True}) == "paused"
    assert states.current({"status": "running"}) == "running"
    assert states.current({"status": "restarting", "paused": True}) == "restarting"
    paused = states.transition(_state("running"), states.PAUSED, CID)
    assert (paused["status"], paused["paused"]) == ("running", True)
    resumed = states.transition(paused, states.RUNNING, CID)
    assert (resumed["status"], resumed["paused"]) == ("running", False)
    died = states.transition(paused, states.EXITED, CID)
    assert (died["status"], died["paused"]) == ("exited", False)


def test_the_paused_key_is_left_alone_unless_pausing_or_unpausing():
    old = {"status": "restarting", "pid": 0}  # a record from before the paused flag was written
    new = states.transition(old, states.EXITED, CID)
    assert new == {"status": "exited", "pid": 0}  # same keys: state.json written by older code stays as it was


def test_move_persists_the_same_state_json_keys(tmp_path):
    paths = Paths(root=str(tmp_path / "root"))
    os.makedirs(paths.container_dir(CID))
    records.write_state(paths, CID, records.initial_state())
    with records.container_lock(paths, CID):
        state = records.read_state(paths, CID)
        new = records.move(paths, CID, state, states.RUNNING, pid=42, paused=False)
    with open(records.Layout(paths, CID).state) as f:
        on_disk = json.load(f)
    assert on_disk == new
    assert set(on_disk) == set(records.initial_state()) | {"paused"}
    assert on_disk["status"] == "running" and on_disk["pid"] == 42
    with records.container_lock(paths, CID):
        with pytest.raises(states.IllegalTransition):
            records.move(paths, CID, records.read_state(paths, CID), states.DEAD)
    assert records.read_state(paths, CID) == on_disk  # a refused move writes nothing


def test_an_exit_recorded_before_start_published_running_is_still_recorded(tmp_path):
    """The crash window the table allows created -> exited for: the shim answered "started", the caller died
    before writing "running", the init then exits; the shim's record of it must not be refused."""
    paths = Paths(root=str(tmp_path / "root"))
    os.makedirs(paths.container_dir(CID))
    store.write_json_atomic(records.Layout(paths, CID).config, {"id": CID, "name": "n", "created": records.format_ns()})
    records.write_state(paths, CID, records.initial_state())
    assert restart.after_exit(paths, CID, 7, False, 1.0, restart.Backoff()) is None
    state = records.read_state(paths, CID)
    assert (state["status"], state["exit_code"]) == ("exited", 7)


@pytest.mark.parametrize("auto_remove", [False, True])
def test_exit_record_is_durable_unless_removed_at_once(tmp_path, monkeypatch, auto_remove):
    """The exit of a --rm container is written without fsync (it is removed in the same locked step, its
    tombstone keeps the state for `wait`); any other exit record is fsynced (file and directory)."""
    paths = Paths(root=str(tmp_path / "root"))
    os.makedirs(paths.container_dir(CID))
    store.write_json_atomic(records.Layout(paths, CID).config, {"id": CID, "name": "n", "created": records.format_ns(),
                                                                "auto_remove": auto_remove})
    records.write_state(paths, CID, records.initial_state())
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    assert restart.after_exit(paths, CID, 3, False, 1.0, restart.Backoff()) is None
    if auto_remove:
        assert synced == [] and not os.path.exists(paths.container_dir(CID))
        assert records.tombstone(paths, CID)[0]["exit_code"] == 3
    else:
        assert len(synced) == 2 and records.read_state(paths, CID)["exit_code"] == 3
