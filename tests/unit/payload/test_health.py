"""HEALTHCHECK: docker's flag checks and messages, the image merge, probe commands and the state machine."""

import pytest

from agent_payload import errors
from agent_payload.runtime import health, status
from agent_payload.runtime.records import format_ns

S = 10 ** 9


def test_flags_build_a_cmd_shell_check_with_durations():
    hc = health.from_flags(**{"health_cmd": "curl -f localhost", "health_interval": "1m30s", "health_timeout": "500ms",
                           "health_retries": "4", "health_start_period": "2s"})
    assert hc == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 90 * S, "Timeout": S // 2,
                  "StartPeriod": 2 * S, "Retries": 4}
    assert health.from_flags() is None
    assert health.from_flags(**{"no_healthcheck": True}) == {"Test": ["NONE"]}
    assert health.from_flags(**{"health_interval": "2s"})["Test"] == []  # the image's test fills it in


@pytest.mark.parametrize("args,message", [
    ({"no_healthcheck": True, "health_cmd": "true"}, "--no-healthcheck conflicts with --health-* options"),
    ({"health_interval": "soon"}, 'invalid argument "soon" for "--health-interval" flag: time: invalid duration '
                                  '"soon"'),
    ({"health_timeout": "-1s"}, "--health-timeout cannot be negative"),
    ({"health_retries": -1}, "--health-retries cannot be negative"),
    ({"health_retries": "x"}, 'invalid argument "x" for "--health-retries" flag: strconv.ParseInt: parsing "x": '
                              'invalid syntax'),
    ({"health_start_period": "-2s"}, "--health-start-period cannot be negative"),
    ({"health_interval": "10us"}, "Interval in Healthcheck cannot be less than 1ms"),
])
def test_flag_errors_are_dockers(args, message):
    with pytest.raises(errors.InvalidArgument) as exc:
        health.from_flags(**args)
    assert exc.value.message == message


def test_merge_with_the_image_and_probe_argv():
    image = {"Test": ["CMD", "/bin/check", "--quick"], "Interval": 5 * S, "Retries": 7}
    assert health.merge(None, image) == {"Test": ["CMD", "/bin/check", "--quick"], "Interval": 5 * S, "Timeout": 0,
                                         "StartPeriod": 0, "Retries": 7}
    merged = health.merge(health.from_flags(**{"health_interval": "1s"}), image)
    assert merged["Test"] == ["CMD", "/bin/check", "--quick"] and merged["Interval"] == S and merged["Retries"] == 7
    assert health.merge(health.from_flags(**{"no_healthcheck": True}), image)["Test"] == ["NONE"]
    assert health.probe_argv(merged) == ["/bin/check", "--quick"]
    assert health.probe_argv({"Test": ["CMD-SHELL", "exit 1"]}) == ["/bin/sh", "-c", "exit 1"]
    assert health.probe_argv({"Test": ["NONE"]}) is None and health.probe_argv(None) is None
    assert health.initial({"healthcheck": {"Test": ["NONE"]}}) is None
    assert health.initial({"healthcheck": merged}) == {"Status": "starting", "FailingStreak": 0, "Log": []}


def _result(code, at_ns):
    return {"Start": format_ns(at_ns), "End": format_ns(at_ns + 1000), "ExitCode": code, "Output": ""}


def test_state_machine_streak_retries_start_period_and_log_cap():
    t0 = 1700000000 * S
    hc = {"Test": ["CMD", "x"], "Retries": 2, "StartPeriod": 10 * S}
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}
    h = health.apply_result(h, _result(1, t0 + S), t0, hc)  # inside the start period: not counted
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    h = health.apply_result(h, _result(1, t0 + 11 * S), t0, hc)
    assert h["Status"] == "starting" and h["FailingStreak"] == 1
    h = health.apply_result(h, _result(2, t0 + 12 * S), t0, hc)  # any non-zero code is a failure
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 2
    h = health.apply_result(h, _result(0, t0 + 13 * S), t0, hc)
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0
    for i in range(6):
        h = health.apply_result(h, _result(0, t0 + (14 + i) * S), t0, hc)
    assert len(h["Log"]) == 5 and h["Log"][-1]["Start"] == format_ns(t0 + 19 * S)
    # default retries (3); once healthy, failures in the start period count
    h = {"Status": "healthy", "FailingStreak": 0, "Log": []}
    for _ in range(2):
        h = health.apply_result(h, _result(1, t0 + S), t0, {"StartPeriod": 10 * S})
    assert h["Status"] == "healthy" and h["FailingStreak"] == 2
    assert health.apply_result(h, _result(1, t0 + S), t0, {})["Status"] == "unhealthy"


def test_go_duration_and_ps_text():
    assert [health.go_duration(n) for n in (30 * S, S // 2, 90 * S, 1500 * 10 ** 6, 3600 * S, 250)] == \
        ["30s", "500ms", "1m30s", "1.5s", "1h0m0s", "250ns"]
    now = 10 ** 18
    rec = {"status": "running", "started_at": format_ns(now - 5 * S)}
    assert status.status_text(dict(rec, health={"Status": "healthy"}), now) == "Up 5 seconds (healthy)"
    assert status.status_text(dict(rec, health={"Status": "starting"}), now) == "Up 5 seconds (health: starting)"
    assert status.status_text(dict(rec, health={"Status": "unhealthy"}), now) == "Up 5 seconds (unhealthy)"
    assert status.status_text(rec, now) == "Up 5 seconds"


def test_ps_health_filter():
    f = status.PsFilters(["health=healthy", "health=none"])
    assert f.match({"id": "a", "created": format_ns(), "health": {"Status": "healthy"}})
    assert f.match({"id": "a", "created": format_ns()})
    assert not f.match({"id": "a", "created": format_ns(), "health": {"Status": "starting"}})
    with pytest.raises(errors.InvalidArgument, match="^Unrecognised filter value for health: sick$"):
        status.PsFilters(["health=sick"])
