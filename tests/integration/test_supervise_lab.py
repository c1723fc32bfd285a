"""Container supervision end to end over SSH on the lab: restart policies, reconcile of a killed shim, the boot
entry and its hook."""

import json
import os
import time

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

PREFIX = "sv-"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _inspect(lab, host, name):
    proc = lab.fleet("inspect", "-H", host, name, check=True)
    (obj,) = json.loads(proc.stdout)
    return obj


def _poll(what, predicate, deadline=15.0):
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < end, "timed out waiting for " + what
        time.sleep(0.2)


def _ps(lab, host, *args):
    rc, ps = lab.fleet_json("ps", "-H", host, *args)
    assert rc == 0, ps
    return ps[host]["containers"]


def _state_json(lab, host, cid):
    proc = _ssh(lab, host, "cat /var/lib/fleet/containers/{}/state.json".format(cid))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _kill_shim_and_init(lab, host, cid):
    """What a reboot (or an OOM killer) does to fleet: the shim and the container's init die by SIGKILL."""
    st = _state_json(lab, host, cid)
    pids = " ".join(str(p) for p in (st.get("shim_pid"), st.get("pid")) if p)
    assert pids, st
    proc = _ssh(lab, host, "kill -9 {0}; for i in $(seq 50); do kill -0 {0} 2>/dev/null || exit 0; sleep 0.1; "
                           "done; exit 1".format(pids))
    assert proc.returncode == 0, "processes {} survived SIGKILL".format(pids)


def test_restart_flags_are_checked_before_anything_is_created(clean):
    lab = clean
    for flags, message in ((["--restart", "always", "--rm"], "Conflicting options: cannot specify both --restart "
                                                              "and --rm"),
                           (["--restart", "sometimes"], "unknown policy 'sometimes'"),
                           (["--restart", "always:3"], "maximum retry count can only be used with 'on-failure'"),
                           (["--restart", "on-failure:-1"], "maximum retry count cannot be negative")):
        proc = lab.fleet("run", "-d", "-H", "web1", "--name", PREFIX + "bad", *flags, "busybox", "true")
        assert proc.returncode == 2 and message in proc.stderr, (flags, proc.stdout, proc.stderr)
    assert [c for c in _ps(lab, "web1", "-a") if c["name"].startswith(PREFIX)] == []


def test_on_failure_restarts_twice_then_stays_exited(clean):
    lab = clean
    name = PREFIX + "onf"
    lab.fleet("run", "-d", "-H", "web1", "--name", name, "--restart", "on-failure:2", "busybox",
              "sh", "-c", "echo run; exit 3", check=True)
    obj = _poll("two restarts", lambda: (lambda o: o if o["State"]["Status"] == "exited" and o["RestartCount"] == 2
                                         else None)(_inspect(lab, "web1", name)))
    assert obj["State"]["ExitCode"] == 3 and obj["State"]["Restarting"] is False
    assert obj["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    time.sleep(1.0)
    assert _inspect(lab, "web1", name)["RestartCount"] == 2  # no third one
    logs = lab.fleet("logs", "-H", "web1", "--prefix", name, check=True)
    assert logs.stdout.splitlines() == ["web1 | run"] * 3


def test_always_restarts_after_a_crash_but_not_after_stop(clean):
    lab = clean
    name = PREFIX + "always"
    lab.fleet("run", "-d", "-H", "web2", "--name", name, "--restart", "always", "busybox", "sleep", "1000",
              check=True)
    first = _inspect(lab, "web2", name)["State"]["Pid"]
    assert first > 0
    assert _ssh(lab, "web2", "kill -9 {}".format(first)).returncode == 0  # a crash: not fleet's kill
    obj = _poll("the restart", lambda: (lambda o: o if o["State"]["Status"] == "running"
                                        and o["State"]["Pid"] not in (0, first) else None)(_inspect(lab, "web2", name)))
    assert obj["RestartCount"] == 1
    (row,) = [c for c in _ps(lab, "web2") if c["name"] == name]
    assert row["state"] == "running" and row["status"].startswith("Up ")
    lab.fleet("stop", "-H", "web2", "-t", "1", name, check=True)
    time.sleep(1.0)
    obj = _inspect(lab, "web2", name)
    assert obj["State"]["Status"] == "exited" and obj["RestartCount"] == 1
    # update --restart changes the policy in place (docker update)
    lab.fleet("update", "-H", "web2", "--restart", "on-failure:1", name, check=True)
    assert _inspect(lab, "web2", name)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                                          "MaximumRetryCount": 1}


def test_restarting_container_shows_in_ps_and_rm_f_removes_it(clean):
    lab = clean
    name = PREFIX + "spin"
    lab.fleet("run", "-d", "-H", "web1", "--name", name, "--restart", "always", "busybox",
              "sh", "-c", "exit 4", check=True)
    row = _poll("a Restarting row", lambda: next((c for c in _ps(lab, "web1") if c["name"] == name
                                                  and c["state"] == "restarting"), None))
    assert row["status"].startswith("Restarting (4) ") and row["status"].endswith(" ago"), row
    cid = row["id"]
    st = _state_json(lab, "web1", cid)
    lab.fleet("rm", "-f", "-H", "web1", name, check=True)
    assert [c for c in _ps(lab, "web1", "-a") if c["name"] == name] == []
    # the shim may linger as a zombie until the host's init reaps it: only a live one (state other than Z) counts
    left = _ssh(lab, "web1", "s=$(awk '{{print $3}}' /proc/{}/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ] "
                             "&& echo alive; ls -d /sys/fs/cgroup/*/fleet/{} /sys/fs/cgroup/fleet/{} 2>/dev/null; "
                             "grep -c {} /proc/mounts".format(st["shim_pid"], cid, cid, cid[:12]))
    assert left.stdout.split() == ["0"], left.stdout  # no shim, no cgroup, no mount


def test_reconcile_after_the_shim_is_killed(clean):
    lab = clean
    name = PREFIX + "orphan"
    lab.fleet("run", "-d", "-H", "db1", "--name", name, "busybox", "sleep", "1000", check=True)
    cid = _inspect(lab, "db1", name)["Id"]
    _kill_shim_and_init(lab, "db1", cid)
    (row,) = [c for c in _ps(lab, "db1", "-a") if c["name"] == name]
    assert row["state"] == "exited" and row["status"].startswith("Exited (-1) "), row


def test_boot_starts_what_docker_would_restart_and_the_hook_is_the_lab_hosts_own(clean):
    lab = clean
    host = "db1"
    policies = {"always": "always", "always-stopped": "always", "unless": "unless-stopped",
                "unless-stopped": "unless-stopped", "onfail": "on-failure", "no": "no"}
    ids = {}
    for key, policy in policies.items():
        lab.fleet("run", "-d", "-H", host, "--name", PREFIX + key, "--restart", policy, "busybox", "sleep", "1000",
                  check=True)
        ids[key] = _inspect(lab, host, PREFIX + key)["Id"]
    lab.fleet("stop", "-H", host, "-t", "0", PREFIX + "always-stopped", PREFIX + "unless-stopped", check=True)
    for key, cid in ids.items():
        if key not in ("always-stopped", "unless-stopped"):
            _kill_shim_and_init(lab, host, cid)
    proc = lab.fleet("system", "boot", "-H", host, "--json", check=True)
    (result,) = json.loads(proc.stdout)
    assert result["ok"] and result["failed"] == [], result
    started = {key for key, cid in ids.items() if cid in result["started"]}
    assert started == {"always", "always-stopped", "unless", "onfail"}, result
    running = {c["name"] for c in _ps(lab, host)}
    assert {PREFIX + k for k in started} <= running
    assert not running & {PREFIX + "no", PREFIX + "unless-stopped"}
    # the hook: the lab host's own /etc/cron.d (this machine's /etc is never touched), naming a payload that exists
    rc, facts = lab.fleet_json("facts", "-H", host)
    kind = facts[host]["boot_hook"]
    if os.path.isdir("/etc/cron.d"):
        assert kind == "cron"
        cron = _ssh(lab, host, "cat /etc/cron.d/fleet-boot")
        assert cron.returncode == 0, cron.stderr
        (line,) = [ln for ln in cron.stdout.splitlines() if ln.startswith("@reboot root ")]
        pyz = [w for w in line.split() if w.endswith(".pyz")]
        assert len(pyz) == 1 and _ssh(lab, host, "test -f " + pyz[0]).returncode == 0, line
        assert not os.path.exists("/etc/cron.d/fleet-boot"), "the lab host wrote this machine's /etc/cron.d"
    else:
        assert kind == "none"


def test_healthcheck_goes_unhealthy_then_healthy(clean):
    lab = clean
    name = PREFIX + "health"
    bad = lab.fleet("run", "-d", "-H", "web2", "--name", name, "--no-healthcheck", "--health-cmd", "true", "busybox",
                    "true")
    assert bad.returncode == 2 and "--no-healthcheck conflicts with --health-* options" in bad.stderr, bad.stderr
    bad = lab.fleet("run", "-d", "-H", "web2", "--name", name, "--health-interval", "soon", "busybox", "true")
    assert bad.returncode == 2 and 'invalid argument "soon" for "--health-interval" flag' in bad.stderr, bad.stderr
    lab.fleet("run", "-d", "-H", "web2", "--name", name, "--health-cmd", "echo probe; test -f /ok",
              "--health-interval", "200ms", "--health-retries", "2", "busybox",
              "sh", "-c", "sleep 6; touch /ok; sleep 1000", check=True)

    def row_status():
        rows = [c for c in _ps(lab, "web2") if c["name"] == name]
        return rows[0]["status"] if rows else ""
    assert _poll("unhealthy", lambda: row_status().endswith(" (unhealthy)"))
    assert [c["name"] for c in _ps(lab, "web2", "-f", "health=unhealthy") if c["name"].startswith(PREFIX)] == [name]
    assert _poll("healthy", lambda: row_status().endswith(" (healthy)"))
    assert [c["name"] for c in _ps(lab, "web2", "-f", "health=healthy") if c["name"].startswith(PREFIX)] == [name]
    obj = _inspect(lab, "web2", name)
    h = obj["State"]["Health"]
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0 and 1 <= len(h["Log"]) <= 5
    assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "probe\n"
    assert obj["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "echo probe; test -f /ok"], "Interval": 200000000,
                                            "Timeout": 0, "StartPeriod": 0, "Retries": 2}
    table = lab.fleet("ps", "-H", "web2", check=True).stdout
    assert any(name in line and "(healthy)" in line for line in table.splitlines()), table


def test_log_rotation_keeps_max_file_files_and_logs_reads_across_them(clean):
    lab = clean
    name = PREFIX + "rot"
    bad = lab.fleet("run", "-d", "-H", "web1", "--name", name, "--log-opt", "max-size=big", "busybox", "true")
    assert bad.returncode == 2 and "invalid size: 'big'" in bad.stderr, bad.stderr
    bad = lab.fleet("run", "-d", "-H", "web1", "--name", name, "--log-opt", "max-bytes=1", "busybox", "true")
    assert bad.returncode == 2 and "unknown log opt 'max-bytes' for json-file log driver" in bad.stderr, bad.stderr
    lab.fleet("run", "-H", "web1", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox",
              "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done", check=True)
    obj = _inspect(lab, "web1", name)
    assert obj["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    listing = _ssh(lab, "web1", "ls {}".format(os.path.dirname(obj["LogPath"])))
    logs_on_disk = sorted(f for f in listing.stdout.split() if "-json.log" in f)
    base = os.path.basename(obj["LogPath"])
    assert logs_on_disk == [base, base + ".1", base + ".2"], listing.stdout
    tail = lab.fleet("logs", "-H", "web1", "--prefix", "--tail", "3", name, check=True)
    assert tail.stdout.splitlines() == ["web1 | line 297", "web1 | line 298", "web1 | line 299"]
    every = [ln.split(" | ")[1]
             for ln in lab.fleet("logs", "-H", "web1", "--prefix", name, check=True).stdout.splitlines()]
    first = int(every[0].split()[1])
    assert first > 0 and every == ["line {}".format(i) for i in range(first, 300)]  # three files, in order
    assert len(every) > 20


def test_log_driver_none_keeps_nothing(clean):
    lab = clean
    name = PREFIX + "nolog"
    lab.fleet("run", "-d", "-H", "web2", "--name", name, "--log-driver", "none", "busybox", "echo", "gone",
              check=True)
    obj = _inspect(lab, "web2", name)
    assert obj["HostConfig"]["LogConfig"]["Type"] == "none" and obj["LogPath"] == ""
    proc = lab.fleet("logs", "-H", "web2", name)
    assert proc.returncode != 0 and "configured logging driver does not support reading" in proc.stderr
