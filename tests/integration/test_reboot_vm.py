"""Containers survive a reboot of a systemd host (a Debian VM of the vm_lab), as docker's restart policies say at
daemon start: always / unless-stopped / on-failure (its exit non-zero) come back with their published ports
answering and their logs going on, one stopped by hand stays stopped; then restarting sshd and a logout with
logind's KillUserProcesses=yes kill none of them."""

import time

PREFIX = "rb-"
DROPIN = "/etc/systemd/logind.conf.d/fleet-test-kill-user-processes.conf"
TICKER = "echo start; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"


def _poll(what, fn, timeout=300, interval=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            assert value, "{} within {}s (last: {!r})".format(what, timeout, value)
            return value
        time.sleep(interval)


def _states(vm_lab, host):
    rc, ps = vm_lab.fleet_json("ps", "-a", "-H", host, "-f", "name=^" + PREFIX)
    assert rc == 0, ps
    return {c["name"]: c["state"] for c in ps[host]["containers"]}


def _get(vm_lab, host, port):
    """The HTTP status of the guest's 127.0.0.1:<port>/ (from inside the guest: only its sshd is forwarded)."""
    out = vm_lab.ssh(host, "python3 -c \"import urllib.request as u; print(u.urlopen("
                           "'http://127.0.0.1:{}/', timeout=10).status)\"".format(port), check=False)
    return out.stdout.strip()


def _run(vm_lab, host, *args):
    out = vm_lab.fleet("run", "-d", "-H", host, *args, timeout=900)
    assert out.returncode == 0, out.stderr


def test_reboot_then_ssh_restart_and_logout_keep_the_right_containers(vm_lab):
    host = vm_lab.vm_hosts[0]
    running = {PREFIX + "always", PREFIX + "unless", PREFIX + "fail"}
    try:
        _run(vm_lab, host, "--name", PREFIX + "always", "--restart", "always", "-p", "18081:80", "nginx")
        _run(vm_lab, host, "--name", PREFIX + "unless", "--restart", "unless-stopped", "-p", "18082:80", "nginx")
        _run(vm_lab, host, "--name", PREFIX + "fail", "--restart", "on-failure", "busybox", "sh", "-c", TICKER)
        _run(vm_lab, host, "--name", PREFIX + "stopped", "--restart", "unless-stopped", "busybox", "sh", "-c", TICKER)
        assert vm_lab.fleet("stop", "-H", host, "-t", "1", PREFIX + "stopped").returncode == 0
        assert _get(vm_lab, host, 18081) == "200" and _get(vm_lab, host, 18082) == "200"
        _poll("ticks before the reboot", lambda: "tick 1" in vm_lab.fleet("logs", "-H", host, PREFIX + "fail").stdout)

        vm_lab.reboot(host)

        want = dict.fromkeys(running, "running")
        want[PREFIX + "stopped"] = "exited"

        # fleet-boot.service (a oneshot) has run to its end, which is when systemd kills what is left in its cgroup
        def boot_unit_ended():
            props = dict(line.split("=", 1) for line in vm_lab.ssh(host, "systemctl show -p ActiveState -p Result "
                         "-p ExecMainExitTimestampMonotonic fleet-boot.service").stdout.split())
            return props["ActiveState"] == "inactive" and props["ExecMainExitTimestampMonotonic"] != "0" and \
                props["Result"] == "success"
        _poll("fleet-boot.service run and ended", boot_unit_ended)
        assert _states(vm_lab, host) == want
        assert _get(vm_lab, host, 18081) == "200" and _get(vm_lab, host, 18082) == "200"
        for name in (PREFIX + "always", PREFIX + "unless"):  # the access log holds the requests of both boots
            logs = vm_lab.fleet("logs", "-H", host, name).stdout
            assert logs.count("GET / HTTP") == 2, logs

        def second_run_ticks():
            runs = vm_lab.fleet("logs", "-H", host, PREFIX + "fail").stdout.split("start\n")
            return len(runs) == 3 and runs[1].count("tick") >= 2 and runs[2].count("tick") >= 2
        _poll("a second run's ticks appended to the first's", second_run_ticks)

        vm_lab.ssh(host, "systemctl restart ssh")
        assert _states(vm_lab, host) == want

        # a container started from a login session outlives the logout, with logind killing the session's processes
        vm_lab.ssh(host, "mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\\nKillUserProcesses=yes\\n' > {} "
                         "&& systemctl restart systemd-logind".format(DROPIN))
        _run(vm_lab, host, "--name", PREFIX + "login", "busybox", "sleep", "100000")
        want[PREFIX + "login"] = "running"
        _poll("logind done with the run's session", lambda: vm_lab.ssh(
            host, "loginctl list-sessions --no-legend | wc -l").stdout.strip() == "1", timeout=60)
        assert _states(vm_lab, host) == want
        assert _get(vm_lab, host, 18081) == "200"
    finally:
        vm_lab.ssh(host, "rm -f {} && systemctl restart systemd-logind".format(DROPIN), check=False)
        vm_lab.remove_containers(PREFIX)
