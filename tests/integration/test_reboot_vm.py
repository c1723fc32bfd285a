"""Containers survive a reboot of a systemd host (a Debian VM of the vm_lab), as docker's restart policies say at
daemon start: always / unless-stopped / on-failure (its exit non-zero) come back with their published ports
answering and their logs going on, one stopped by hand stays stopped; then restarting sshd and a logout with
logind's KillUserProcesses=yes kill none of them."""


from tests.helpers.vmlab import poll

PREFIX = "rb-"
DROPIN = "/etc/systemd/logind.conf.d/fleet-test-kill-user-processes.conf"
# login sessions of class "user" (this very ssh command's among them); systemd >= 256 (trixie) also lists the
# user manager's own session, of class "manager"
USER_SESSIONS = ("for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do "
                 "loginctl show-session \"$s\" -p Class --value; done | grep -cx user")
TICKER = "echo start; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"




def _states(vm_lab):
    """{host: {name: state}} of every VM host's test containers."""
    rc, ps = vm_lab.fleet_json("ps", "-a", "-H", "vm", "-f", "name=^" + PREFIX)
    assert rc == 0, ps
    return {host: {c["name"]: c["state"] for c in data["containers"]} for host, data in ps.items()}


def _get(vm_lab, host, port):
    """The HTTP status of the guest's 127.0.0.1:<port>/ (from inside the guest: only its sshd is forwarded)."""
    out = vm_lab.ssh(host, "python3 -c \"import urllib.request as u; print(u.urlopen("
                           "'http://127.0.0.1:{}/', timeout=10).status)\"".format(port), check=False)
    return out.stdout.strip()


def _all_answer(vm_lab):
    return all(_get(vm_lab, host, port) == "200" for host in vm_lab.vm_hosts for port in (18081, 18082))


def _run(vm_lab, *args):
    out = vm_lab.fleet("run", "-d", "-H", "vm", *args, timeout=900)
    assert out.returncode == 0, out.stderr


def _logs(vm_lab, host, name):
    return vm_lab.fleet("logs", "-H", host, name).stdout


def _boot_unit_ended(vm_lab, host):
    """fleet-boot.service (a oneshot) has run to its end, which is when systemd kills what is left in its cgroup."""
    props = dict(line.split("=", 1) for line in vm_lab.ssh(host, "systemctl show -p ActiveState -p Result "
                 "-p ExecMainExitTimestampMonotonic fleet-boot.service").stdout.split())
    return props["ActiveState"] == "inactive" and props["ExecMainExitTimestampMonotonic"] != "0" and \
        props["Result"] == "success"


def test_reboot_then_ssh_restart_and_logout_keep_the_right_containers(vm_lab):
    """Every VM host (bookworm, trixie) at once: one poweroff and boot of all guests."""
    hosts = vm_lab.vm_hosts
    running = {PREFIX + "always", PREFIX + "unless", PREFIX + "fail"}
    try:
        _run(vm_lab, "--name", PREFIX + "always", "--restart", "always", "-p", "18081:80", "nginx")
        _run(vm_lab, "--name", PREFIX + "unless", "--restart", "unless-stopped", "-p", "18082:80", "nginx")
        _run(vm_lab, "--name", PREFIX + "fail", "--restart", "on-failure", "busybox", "sh", "-c", TICKER)
        _run(vm_lab, "--name", PREFIX + "stopped", "--restart", "unless-stopped", "busybox", "sh", "-c", TICKER)
        assert vm_lab.fleet("stop", "-H", "vm", "-t", "1", PREFIX + "stopped").returncode == 0
        assert _all_answer(vm_lab)
        for host in hosts:
            poll("ticks before the reboot on " + host, lambda: "tick 1" in _logs(vm_lab, host, PREFIX + "fail"),
                 timeout=300)
        before = {h: (vm_lab.qemu_pid(h), vm_lab.ssh(h, "echo kept > /root/reboot-marker && sync && "
                                                        "cat /proc/sys/kernel/random/boot_id").stdout) for h in hosts}

        vm_lab.reboot(*hosts)

        for host in hosts:  # a new qemu and a new boot of the same disk (the lab's own guarantee)
            assert vm_lab.qemu_pid(host) != before[host][0]
            assert vm_lab.ssh(host, "cat /proc/sys/kernel/random/boot_id").stdout != before[host][1]
            assert vm_lab.ssh(host, "cat /root/reboot-marker").stdout.strip() == "kept"
        want = dict.fromkeys(running, "running")
        want[PREFIX + "stopped"] = "exited"
        for host in hosts:
            poll("fleet-boot.service run and ended on " + host, lambda: _boot_unit_ended(vm_lab, host), timeout=300)
        assert _states(vm_lab) == {host: want for host in hosts}
        assert _all_answer(vm_lab)
        for host in hosts:
            for name in (PREFIX + "always", PREFIX + "unless"):  # the access log holds the requests of both boots
                logs = _logs(vm_lab, host, name)
                assert logs.count("GET / HTTP") == 2, (host, logs)

            def second_run_ticks():
                runs = _logs(vm_lab, host, PREFIX + "fail").split("start\n")
                return len(runs) == 3 and runs[1].count("tick") >= 2 and runs[2].count("tick") >= 2
            poll("a second run's ticks appended to the first's on " + host, second_run_ticks, timeout=300)

        for host in hosts:
            vm_lab.ssh(host, "systemctl restart ssh")
        assert _states(vm_lab) == {host: want for host in hosts}

        # a container started from a login session outlives the logout, with logind killing the session's processes
        for host in hosts:
            vm_lab.ssh(host, "mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\\nKillUserProcesses=yes\\n' > "
                             "{} && systemctl restart systemd-logind".format(DROPIN))
        _run(vm_lab, "--name", PREFIX + "login", "busybox", "sleep", "100000")
        want[PREFIX + "login"] = "running"
        for host in hosts:
            poll("logind done with the run's session on " + host,
                  lambda: vm_lab.ssh(host, USER_SESSIONS).stdout.strip() == "1", timeout=60)
        assert _states(vm_lab) == {host: want for host in hosts}
        assert _all_answer(vm_lab)
    finally:
        for host in hosts:
            vm_lab.ssh(host, "rm -f {} /root/reboot-marker && systemctl restart systemd-logind".format(DROPIN),
                       check=False)
        vm_lab.remove_containers(PREFIX)
