"""The event journal fed by real containers on this machine: create/start/die/destroy, kill, oom, health_status,
restarts, volumes; the ``events`` op's filters, times and follow over what the runtime recorded."""

import threading
import time

import pytest

from agent_payload import events
from agent_payload.ops import Context, dispatch
from agent_payload.runtime.spec import limit_flags
from tests.helpers import runtime
from tests.helpers.runtime import _run, _spec, _wait_for

pytestmark = runtime.integration
env, layers = runtime.env, runtime.layers  # fixtures by assignment (ruff flags imported fixtures as unused)


def _of(rt, cid):
    return [(e["Action"], e["Actor"]["Attributes"]) for e in events.read(rt.paths) if e["Actor"]["ID"] == cid]


def _actions(rt, cid):
    return [a for a, _ in _of(rt, cid)]


def _op(rt, **args):
    out = []
    dispatch(Context(rt.paths, "dev", []), "events", args, lambda name, d: out.append(d))
    return out


def test_a_container_s_life_create_start_die_destroy(env, layers):
    rec, code = _run(env, layers, ["sh", "-c", "exit 3"], name="ev-life", labels={"tier": "front"})
    assert code == 3
    env.remove([rec["id"]])
    assert _actions(env, rec["id"]) == ["create", "start", "die", "destroy"]
    attrs = dict(_of(env, rec["id"]))
    assert attrs["die"] == {"name": "ev-life", "image": "busybox:test", "tier": "front", "exitCode": "3"}
    assert attrs["create"] == {"name": "ev-life", "image": "busybox:test", "tier": "front"}


def test_kill_and_stop_record_the_signal_then_die(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"], name="ev-kill"))
    env.start(rec["id"])
    env.kill([rec["id"]], "KILL")
    assert _actions(env, rec["id"]) == ["create", "start", "kill", "die"]
    assert dict(_of(env, rec["id"]))["kill"]["signal"] == "9"
    assert dict(_of(env, rec["id"]))["die"]["exitCode"] == "137"
    env.start(rec["id"])
    env.stop([rec["id"]], time=1)
    after = _of(env, rec["id"])[4:]
    assert [a for a, _ in after][:2] == ["start", "kill"] and after[1][1]["signal"] == "15"  # the stop signal
    assert after[-1][0] == "die" and {a for a, _ in after[2:-1]} <= {"kill"}  # + SIGKILL if PID 1 ignored it


def test_an_auto_removed_container_is_destroyed_after_it_dies(env, layers):
    rec, code = _run(env, layers, ["true"], auto_remove=True)
    assert code == 0
    assert _wait_for(lambda: _actions(env, rec["id"]) == ["create", "start", "die", "destroy"])


def test_a_restart_policy_records_each_run(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "exit 1"], restart_policy={"Name": "on-failure",
                                                                          "MaximumRetryCount": 2}))
    env.start(rec["id"])
    assert _wait_for(lambda: _actions(env, rec["id"]).count("die") == 3, timeout=30)
    assert _actions(env, rec["id"]) == ["create"] + ["start", "die"] * 3


def test_an_oom_kill_is_recorded_before_the_die(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "x=a; while true; do x=$x$x; done"],
                           limits=limit_flags(memory="16m", memory_swap="16m").to_dict()))
    env.start(rec["id"])
    assert env.wait(rec["id"], timeout=60) == 137
    assert _actions(env, rec["id"]) == ["create", "start", "oom", "die"]


def test_health_status_changes_are_recorded_once_each(env, layers):
    hc = {"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 200 * 10 ** 6, "Retries": 1}
    rec = env.create(_spec(layers, ["sh", "-c", "sleep 1; touch /ok; sleep 1000"], healthcheck=hc))
    env.start(rec["id"])
    assert _wait_for(lambda: "health_status: healthy" in _actions(env, rec["id"]), timeout=15)
    assert _actions(env, rec["id"]) == ["create", "start", "health_status: unhealthy", "health_status: healthy"]
    got = _op(env, filters=["event=health_status", "container=" + rec["id"][:12]])
    assert [e["Action"] for e in got] == ["health_status: unhealthy", "health_status: healthy"]


def test_volumes_and_the_op_s_filters_and_times(env, layers):
    from agent_payload.runtime import volumes
    vols = volumes.Volumes(env.paths)
    vols.create("ev-data")
    vols.remove("ev-data", {})
    rec, _ = _run(env, layers, ["true"], name="ev-web")
    assert [(e["Type"], e["Action"]) for e in _op(env, filters=["type=volume"])] == [
        ("volume", "create"), ("volume", "destroy")]
    assert [e["Action"] for e in _op(env, filters=["container=ev-web", "event=die"])] == ["die"]
    assert [e["Action"] for e in _op(env, filters=["image=busybox:test"])] == ["create", "start", "die"]
    assert _op(env, since=str(time.time() + 60)) == []
    assert len(_op(env, since="1m", until=str(time.time() + 1))) == 5


def test_follow_streams_what_the_runtime_records(env, layers):
    got, stop, since = [], threading.Event(), time.time_ns()

    def follow():
        for ev in events.follow(env.paths, since=since, filters=events.Filters(["type=container"]),
                                stop=stop.is_set, poll=0.02):
            got.append(ev["Action"])
    t = threading.Thread(target=follow)
    t.start()
    try:
        _run(env, layers, ["true"])
        assert _wait_for(lambda: got == ["create", "start", "die"], timeout=10), got
        _run(env, layers, ["true"])
        assert _wait_for(lambda: got == ["create", "start", "die"] * 2, timeout=10), got
    finally:
        stop.set()
        t.join(10)


@pytest.mark.parametrize("bad", [["colour=red"]])
def test_a_bad_filter_changes_nothing(env, bad):
    from agent_payload import errors
    with pytest.raises(errors.InvalidArgument, match="Invalid filter 'colour'"):
        _op(env, filters=bad)
