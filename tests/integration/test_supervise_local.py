"""Restart policies, reconcile and the boot entry on this machine (payload level, real shims and namespaces; root)."""

import os
import signal
import sys
import time

import pytest

from agent_payload import errors
from agent_payload.runtime import boot, inspect as inspectmod, records
from tests.helpers import runtime as local

pytestmark = local.integration
env, layers = local.env, local.layers  # the runtime fixtures: private FLEET_ROOT, busybox layers, cleanup
_spec, _wait_for = local._spec, local._wait_for


hook_root = local.hook_root  # boot hooks under a private root (autouse)


def _state(rt, cid):
    return rt.lookup(cid)


def _ns_pid(pid):
    """The PID of ``pid`` inside its own PID namespace (last NSpid field)."""
    with open("/proc/{}/status".format(pid)) as f:
        return [int(x) for line in f if line.startswith("NSpid:") for x in line.split()[1:]][-1]


def test_on_failure_two_restarts_then_exited(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "echo run; exit 3"],
                           restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}))
    env.start(rec["id"])
    assert _wait_for(lambda: _state(env, rec["id"])["status"] == "exited"
                     and _state(env, rec["id"]).get("restart_count") == 2, timeout=10)
    time.sleep(0.5)  # and no third restart
    after = _state(env, rec["id"])
    assert after["status"] == "exited" and after["exit_code"] == 3 and after["restart_count"] == 2
    assert [ev["line"] for ev in env.logs(rec["id"])] == ["run\n"] * 3
    obj = inspectmod.inspect_object(env.paths, after)
    assert obj["RestartCount"] == 2
    assert obj["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_always_restarts_after_a_crash_in_a_fresh_pid_namespace_and_not_after_stop(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"], restart_policy={"Name": "always", "MaximumRetryCount": 0}))
    first = env.start(rec["id"])
    assert _ns_pid(first["pid"]) == 1
    os.kill(first["pid"], signal.SIGKILL)  # a crash, not a user kill
    assert _wait_for(lambda: _state(env, rec["id"])["status"] == "running"
                     and _state(env, rec["id"])["pid"] != first["pid"], timeout=5)
    second = _state(env, rec["id"])
    assert second["restart_count"] == 1 and second["shim_pid"] == first["shim_pid"]
    assert _ns_pid(second["pid"]) == 1  # PID 1 again: a new PID namespace per run
    assert records.is_alive(second["pid"], second["pid_start"])
    os.kill(second["pid"], signal.SIGKILL)
    assert _wait_for(lambda: _state(env, rec["id"]).get("restart_count") == 2
                     and _state(env, rec["id"])["status"] == "running", timeout=5)
    env.stop([rec["id"]], time=1)
    stopped = _state(env, rec["id"])
    assert stopped["status"] == "exited" and stopped["manually_stopped"]
    time.sleep(0.5)
    assert _state(env, rec["id"])["status"] == "exited"
    assert not records.is_alive(stopped["shim_pid"], stopped["shim_start"])
    env.start(rec["id"])  # a user start clears the count and the stop
    again = _state(env, rec["id"])
    assert again["status"] == "running" and again["restart_count"] == 0 and not again["manually_stopped"]
    env.kill([rec["id"]])  # SIGKILL by the user: no restart either
    time.sleep(0.5)
    assert _state(env, rec["id"])["status"] == "exited"


def test_restarting_state_wait_and_rm_force(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "sleep 0.2; exit 2"],
                           restart_policy={"Name": "unless-stopped", "MaximumRetryCount": 0}))
    env.start(rec["id"])
    assert env.wait(rec["id"], timeout=5) == 2  # docker's wait: the run ended (and a restart follows)
    seen = []

    def restarting():
        rows = [r for r in env.list() if r["id"] == rec["id"]]  # restarting shows without -a
        seen.extend(r["status"] for r in rows)
        return any(r["state"] == "restarting" for r in rows)
    assert _wait_for(restarting, timeout=10)
    assert any(s.startswith("Restarting (2) ") and s.endswith(" ago") for s in seen), seen
    obj = inspectmod.inspect_object(env.paths, _state(env, rec["id"]))
    if obj["State"]["Status"] == "restarting":
        assert obj["State"]["Running"] and obj["State"]["Restarting"] and obj["State"]["Pid"] == 0
    shim = _state(env, rec["id"])
    with pytest.raises(errors.Conflict):
        env.remove([rec["id"]])
    env.remove([rec["id"]], force=True)
    assert not records.is_alive(shim["shim_pid"], shim["shim_start"]) or _wait_for(
        lambda: not records.is_alive(shim["shim_pid"], shim["shim_start"]), timeout=3)
    assert not os.path.exists(os.path.join("/sys/fs/cgroup/fleet", rec["id"]))
    with pytest.raises(errors.NotFound):
        env.lookup(rec["id"])


def test_policy_validation_before_anything_is_created(env, layers):
    with pytest.raises(errors.InvalidArgument, match="Conflicting options"):
        env.create(_spec(layers, ["true"], auto_remove=True, restart_policy={"Name": "always"}))
    with pytest.raises(errors.InvalidArgument, match="unknown policy 'sometimes'"):
        env.create(_spec(layers, ["true"], restart_policy={"Name": "sometimes"}))
    assert env.all_records() == []


def test_boot_starts_what_docker_would_restart(env, layers, hook_root):
    policies = {"no": "no", "always": "always", "always-stopped": "always", "unless": "unless-stopped",
                "unless-stopped": "unless-stopped", "onfail": "on-failure", "never-started": "always"}
    ids = {}
    for name, policy in policies.items():
        ids[name] = env.create(_spec(layers, ["sleep", "1000"], name="b-" + name,
                                     restart_policy={"Name": policy, "MaximumRetryCount": 0}))["id"]
        if name != "never-started":
            env.start(ids[name])
    env.stop([ids["always-stopped"], ids["unless-stopped"]], time=0)
    # a "reboot": every shim and init dies at once (SIGKILL by PID)
    for name, cid in ids.items():
        st = records.read_state(env.paths, cid)
        for pid, start in ((st.get("shim_pid"), st.get("shim_start")), (st.get("pid"), st.get("pid_start"))):
            records.signal_process(pid, start, signal.SIGKILL)
    for cid in ids.values():
        st = records.read_state(env.paths, cid)
        assert _wait_for(lambda: not records.is_alive(st.get("shim_pid"), st.get("shim_start")), timeout=5)
    result = boot.boot(env, [sys.executable, "-m", "agent_payload"])  # the hook runs this; not run here
    started = {name for name, cid in ids.items() if cid in result["started"]}
    assert started == {"always", "always-stopped", "unless", "onfail"}, result
    assert result["failed"] == []
    for name, cid in ids.items():
        st = _state(env, cid)
        assert (st["status"] == "running") == (name in started), (name, st["status"])
    assert result["hook"] == "cron"
    text = (hook_root / "etc" / "cron.d" / "fleet-boot").read_text()
    assert text.count("@reboot root ") == 1 and text.rstrip().endswith("boot >/dev/null 2>&1")
    assert "FLEET_ROOT=" in text  # a private state root travels with the hook
    env.remove(list(ids.values()), force=True)  # rm -f: no restart policy brings them back


def test_hook_kinds(tmp_path, monkeypatch):
    from agent_payload.state.paths import Paths

    paths = Paths(root="/var/lib/fleet", config_dir="/etc/fleet")
    monkeypatch.setenv("FLEET_HOOK_ROOT", str(tmp_path))
    assert boot.kind(paths) == "none" and boot.install(paths, ["/usr/bin/python3", "/x/ab.pyz"]) == "none"
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert boot.install(paths, ["/usr/bin/python3", "/x/ab.pyz"]) == "systemd"
    unit = (tmp_path / "etc" / "systemd" / "system" / "fleet-boot.service").read_text()
    assert "ExecStart=/usr/bin/python3 /x/ab.pyz boot" in unit and "Type=oneshot" in unit
    assert "After=network-online.target" in unit and "WantedBy=multi-user.target" in unit
    link = tmp_path / "etc" / "systemd" / "system" / "multi-user.target.wants" / "fleet-boot.service"
    assert os.readlink(str(link)) == "../fleet-boot.service" and link.exists()
    boot.install(paths, ["/usr/bin/python3", "/x/cd.pyz"])  # a newer payload rewrites it
    assert "/x/cd.pyz boot" in (tmp_path / "etc" / "systemd" / "system" / "fleet-boot.service").read_text()
    assert boot.installed(paths) == "systemd"


def _health(rt, cid):
    return (rt.lookup(cid).get("health") or {})


def test_healthcheck_starting_unhealthy_healthy(env, layers):
    hc = {"Test": ["CMD-SHELL", "echo probing; test -f /ok"], "Interval": 200 * 10 ** 6, "Retries": 2}
    rec = env.create(_spec(layers, ["sh", "-c", "sleep 1.5; touch /ok; sleep 1000"], healthcheck=hc))
    env.start(rec["id"])
    assert _health(env, rec["id"])["Status"] == "starting"
    assert env.list()[0]["status"].endswith(" (health: starting)")
    assert _wait_for(lambda: _health(env, rec["id"]).get("Status") == "unhealthy", timeout=15)
    bad = _health(env, rec["id"])
    assert bad["FailingStreak"] >= 2
    assert any(e["ExitCode"] == 1 and e["Output"] == "probing\n" for e in bad["Log"]), bad["Log"]
    assert [r["id"] for r in env.list(filters=["health=unhealthy"])] == [rec["id"]]
    assert env.list()[0]["status"].endswith(" (unhealthy)")
    assert _wait_for(lambda: _health(env, rec["id"]).get("Status") == "healthy", timeout=5)
    good = _health(env, rec["id"])
    assert good["FailingStreak"] == 0 and good["Log"][-1]["ExitCode"] == 0 and len(good["Log"]) <= 5
    assert env.list(filters=["health=unhealthy"]) == [] and env.list()[0]["status"].endswith(" (healthy)")
    obj = inspectmod.inspect_object(env.paths, env.lookup(rec["id"]))
    assert obj["State"]["Health"]["Status"] == "healthy" and obj["Config"]["Healthcheck"]["Retries"] == 2
    env.stop([rec["id"]], time=0)


def test_healthcheck_timeout_and_start_period(env, layers):
    hc = {"Test": ["CMD", "sleep", "5"], "Interval": 100 * 10 ** 6, "Timeout": 300 * 10 ** 6, "Retries": 1}
    slow = env.create(_spec(layers, ["sleep", "1000"], healthcheck=hc))["id"]
    grace = env.create(_spec(layers, ["sleep", "1000"], healthcheck={
        "Test": ["CMD", "false"], "Interval": 100 * 10 ** 6, "StartPeriod": 60 * 10 ** 9, "Retries": 1}))["id"]
    env.start(slow)
    env.start(grace)
    assert _wait_for(lambda: _health(env, slow).get("Status") == "unhealthy", timeout=15)
    entry = _health(env, slow)["Log"][-1]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (300ms)"
    assert _wait_for(lambda: len(_health(env, grace).get("Log") or []) >= 3, timeout=15)
    assert _health(env, grace)["Status"] == "starting" and _health(env, grace)["FailingStreak"] == 0
    env.remove([slow, grace], force=True)
