"""Device cgroup, --init and the process flags of run/create end to end over SSH on the lab (issue 4)."""

import json
import time

import pytest

pytestmark = pytest.mark.integration

PREFIX = "pd-"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _inspect(lab, host, name):
    (obj,) = json.loads(lab.fleet("inspect", "-H", host, name, check=True).stdout)
    return obj


def _logs(lab, host, name):
    proc = lab.fleet("logs", "-H", host, "--prefix", name, check=True)
    return [line.split(" | ", 1)[1] for line in proc.stdout.splitlines() if " | " in line]


DEVICES = ("mknod /tmp/null c 1 3 && cat /tmp/null && echo NULL-OK; mknod /tmp/sda b 8 0 && echo MKNOD-OK; "
           "mknod /tmp/loop b 7 0; head -c1 /tmp/loop >/dev/null 2>/tmp/e && echo OPEN-OK || cat /tmp/e; "
           "echo x > /dev/null && echo DEVNULL-OK")


def test_device_policy_and_mknod(clean):
    lab = clean
    proc = lab.fleet("run", "-H", "web1", "--rm", "busybox", "sh", "-c", DEVICES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "NULL-OK" in out and "MKNOD-OK" in out and "DEVNULL-OK" in out, out
    assert "Operation not permitted" in out and "OPEN-OK" not in out, out
    proc = lab.fleet("run", "-H", "web1", "--rm", "--privileged", "busybox", "sh", "-c", DEVICES)
    assert proc.returncode == 0 and "OPEN-OK" in proc.stdout, proc.stdout + proc.stderr
    proc = lab.fleet("run", "-H", "web1", "--rm", "--cap-drop", "MKNOD", "busybox", "sh", "-c",
                     "mknod /tmp/n c 1 3 2>&1 || echo DENIED")
    assert "DENIED" in proc.stdout, proc.stdout + proc.stderr


def test_init_pid1_signals_and_exit_codes(clean):
    lab = clean
    name = PREFIX + "init"
    proc = lab.fleet("run", "-H", "web1", "--prefix", "--rm", "--init", "busybox", "sh", "-c", "ps -o pid,args; exit 3")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    rows = [line.split(" | ", 1)[1].split()[:3] for line in proc.stdout.splitlines() if " | " in line]
    assert ["1", "fleet-init", "--"] in rows and ["2", "sh", "-c"] in rows, proc.stdout
    proc = lab.fleet("run", "-H", "web1", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$")
    assert proc.returncode == 137, proc.stdout + proc.stderr
    lab.fleet("run", "-d", "-H", "web1", "--name", name, "--init", "busybox", "sh", "-c",
              "trap 'echo GOT-HUP' HUP; echo READY; while true; do sleep 0.1; done", check=True)
    deadline = time.monotonic() + 15
    while "READY" not in _logs(lab, "web1", name):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    lab.fleet("kill", "-H", "web1", "-s", "HUP", name, check=True)
    while "GOT-HUP" not in _logs(lab, "web1", name):
        assert time.monotonic() < deadline, _logs(lab, "web1", name)
        time.sleep(0.2)
    top = json.loads(lab.fleet("top", "-H", "web1", name, "--json", check=True).stdout)[0]
    cmds = [row[-1] for row in top["processes"]]
    assert cmds[0].startswith("fleet-init -- sh -c") and any(c.startswith("sh -c") for c in cmds[1:]), cmds
    t0 = time.monotonic()
    lab.fleet("stop", "-H", "web1", name, check=True)  # sh is not PID 1: SIGTERM kills it at once
    assert time.monotonic() - t0 < 8
    obj = _inspect(lab, "web1", name)
    assert obj["HostConfig"]["Init"] is True and obj["State"]["ExitCode"] == 143


def test_env_file_labels_stop_flags(clean, tmp_path):
    lab = clean
    name = PREFIX + "flags"
    envf, labf = tmp_path / "app.env", tmp_path / "labels"
    envf.write_text("# app settings\nGREETING=hello world\nMODE=file\n")
    labf.write_text("tier=backend\nowner=ops\n")
    lab.fleet("create", "-H", "web*", "--name", name, "--env-file", str(envf), "-e", "MODE=flag",
              "-l", "owner=me", "--label", "pd.test=1", "--label-file", str(labf), "--stop-signal", "SIGUSR1",
              "--stop-timeout", "2", "busybox", "sh", "-c",
              "trap 'echo USR1' USR1; trap '' TERM; echo \"$GREETING/$MODE\"; while true; do sleep 0.1; done",
              check=True)
    for host in ("web1", "web2"):
        obj = _inspect(lab, host, name)
        cfg = obj["Config"]
        assert "GREETING=hello world" in cfg["Env"] and "MODE=flag" in cfg["Env"]
        assert cfg["Labels"] == {"tier": "backend", "owner": "me", "pd.test": "1"}
        assert cfg["StopSignal"] == "SIGUSR1" and cfg["StopTimeout"] == 2
        assert "Init" not in obj["HostConfig"]
    rc, ps = lab.fleet_json("ps", "-H", "web*", "-a", "-f", "label=owner=me", "-f", "label=pd.test")
    assert rc == 0 and all([c["name"] for c in ps[h]["containers"]] == [name] for h in ("web1", "web2")), ps
    rc, ps = lab.fleet_json("ps", "-H", "web1", "-a", "-f", "label=owner=ops")
    assert ps["web1"]["containers"] == []
    lab.fleet("start", "-H", "web1", name, check=True)
    deadline = time.monotonic() + 15
    while "hello world/flag" not in _logs(lab, "web1", name):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    t0 = time.monotonic()
    lab.fleet("stop", "-H", "web1", name, check=True)  # USR1 is trapped, so SIGKILL after the 2 s stop timeout
    took = time.monotonic() - t0
    assert 1.5 < took < 9, took
    assert "USR1" in _logs(lab, "web1", name) and _inspect(lab, "web1", name)["State"]["ExitCode"] == 137


def test_bad_flags_exit_2(clean, tmp_path):
    lab = clean
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nBAD KEY=2\n")
    for flags, needle in ((["--env-file", str(bad)], str(bad)),
                          (["--env-file", str(tmp_path / "missing.env")], "missing.env"),
                          (["--stop-signal", "SIGFOO"], "Invalid signal"),
                          (["--label-file", str(tmp_path / "none")], "none")):
        proc = lab.fleet("run", "-H", "web1", "--name", PREFIX + "bad", *flags, "busybox", "true")
        assert proc.returncode == 2 and needle in proc.stderr, (flags, proc.stderr)
    rc, ps = lab.fleet_json("ps", "-H", "web1", "-a", "-f", "name=^" + PREFIX + "bad")
    assert ps["web1"]["containers"] == []
