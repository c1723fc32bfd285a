"""Docker compatibility (issue 13, per-name results): with several names each one is its own operation.

docker acts on every name it was given, prints each success, reports each failure ("Error response from
daemon: No such container: x") and exits 1 if any failed. fleet: one row per host and name, in the table and
in --json (``results``), exit 1 if any name failed on any host.
"""

import json

import pytest

pytestmark = pytest.mark.integration

PREFIX = "cn-"
HOST = "db1"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _run(lab, name, *command):
    lab.fleet("run", "-d", "-H", HOST, "--name", name, "busybox", *(command or ("sleep", "300")), check=True)


def _states(lab):
    rc, ps = lab.fleet_json("ps", "-H", HOST, "-a", "-f", "name=^" + PREFIX)
    assert rc == 0, ps
    return {c["name"]: c["state"] for c in ps[HOST]["containers"]}


def _results(lab, *args):
    proc = lab.fleet(*args, "-H", HOST, "--json")
    (obj,) = json.loads(proc.stdout)
    return proc.returncode, obj


def test_rm_f_removes_every_found_name_and_reports_the_missing_one(clean):
    """docker rm -f a nosuch b: a and b are removed, "Error response from daemon: No such container: nosuch",
    exit 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    proc = clean.fleet("rm", "-f", "-H", HOST, a, nosuch, b)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _states(clean) == {}
    rows = {line.split()[1]: line for line in proc.stdout.splitlines()[1:]}
    assert "Error response from daemon: No such container: " + nosuch in rows[nosuch]
    assert len(rows) == 3


def test_rm_reports_the_running_one_and_removes_the_stopped_one(clean):
    """docker rm a b with a stopped and b running: a is removed, b's error ("You cannot remove a running
    container ... Stop the container before attempting removal or force remove"), exit 1."""
    a, b = PREFIX + "stopped", PREFIX + "running"
    clean.fleet("create", "-H", HOST, "--name", a, "busybox", "true", check=True)
    _run(clean, b)
    rc, obj = _results(clean, "rm", a, b)
    assert rc == 1
    assert [(n["name"], n["ok"]) for n in obj["results"]] == [(a, True), (b, False)]
    assert "You cannot remove a running container" in obj["results"][1]["error"]["message"]
    assert _states(clean) == {b: "running"}


def test_stop_start_restart_act_on_every_found_name(clean):
    """docker stop/start/restart a nosuch b: a and b are stopped/started/restarted, nosuch is reported, exit 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    rc, obj = _results(clean, "stop", "-t", "0", a, nosuch, b)
    assert rc == 1
    assert [(n["name"], n["ok"]) for n in obj["results"]] == [(a, True), (nosuch, False), (b, True)]
    assert obj["results"][1]["error"] == {"kind": "NotFound", "message": "No such container: " + nosuch}
    assert _states(clean) == {a: "exited", b: "exited"}
    rc, obj = _results(clean, "start", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "running", b: "running"}
    rc, obj = _results(clean, "restart", "-t", "0", nosuch, a, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [False, True, True]
    assert _states(clean) == {a: "running", b: "running"}


def test_kill_signals_every_running_name_and_reports_the_others(clean):
    """docker kill a stopped b: a and b are killed; the stopped one is reported (not running), exit 1."""
    a, b, stopped = PREFIX + "a", PREFIX + "b", PREFIX + "stopped"
    _run(clean, a)
    _run(clean, b)
    clean.fleet("create", "-H", HOST, "--name", stopped, "busybox", "true", check=True)
    proc = clean.fleet("kill", "-H", HOST, a, stopped, b)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _states(clean) == {a: "exited", b: "exited", stopped: "created"}
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT", "ERROR"]
    assert [line.split()[2] for line in lines[1:]] == ["killed", "failed", "killed"]
    assert lines[2].split()[1] == stopped and "Error response from daemon: " in lines[2]


def test_pause_unpause_act_on_every_found_name(clean):
    """docker pause/unpause a nosuch b: a and b are paused/unpaused, nosuch reported, exit 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    rc, obj = _results(clean, "pause", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "paused", b: "paused"}
    rc, obj = _results(clean, "unpause", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "running", b: "running"}


def test_all_found_exits_0_with_one_row_per_name(clean):
    """docker stop a b: both stopped, exit 0; fleet: one row per name, no ERROR column."""
    a, b = PREFIX + "a", PREFIX + "b"
    _run(clean, a)
    _run(clean, b)
    proc = clean.fleet("stop", "-t", "0", "-H", HOST, a, b)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT"] and len(lines) == 3
