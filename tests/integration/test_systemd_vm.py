"""Shims on a systemd + cgroup v2 host (a Debian VM of the vm_lab): each in its own fleet-<id>.scope in fleet.slice
(never in ssh.service, a login's session scope or fleet-boot.service), the container in <scope>/container with the
controllers systemd enabled for the scope's accounting, so --cpus works; restarting sshd or ending the boot unit
kills nothing."""


import pytest

from tests.helpers.vmlab import poll

PREFIX = "sysd-"




def _inspect(vm_lab, host, name, fmt):
    out = vm_lab.fleet("inspect", "-H", host, "-f", fmt, name)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _cgroup(vm_lab, host, pid):
    """The cgroup v2 path of a guest process, from its /proc/<pid>/cgroup."""
    line = vm_lab.ssh(host, "cat /proc/{}/cgroup".format(pid)).stdout.strip()
    assert line.startswith("0::"), line
    return line[3:]


@pytest.fixture(scope="module")
def vm(vm_lab):
    host = vm_lab.vm_hosts[0]
    try:
        yield vm_lab, host
    finally:
        vm_lab.remove_containers(PREFIX)


def test_shim_and_container_in_fleet_scope_with_cpu_limit_surviving_ssh_restart(vm):
    vm_lab, host = vm
    out = vm_lab.fleet("run", "-d", "-H", host, "--name", PREFIX + "cpu", "--cpus", "0.5", "busybox",
                       "sleep", "100000", timeout=900)
    assert out.returncode == 0, out.stderr
    cid = _inspect(vm_lab, host, PREFIX + "cpu", "{{.Id}}")
    pid = _inspect(vm_lab, host, PREFIX + "cpu", "{{.State.Pid}}")
    scope = "/fleet.slice/fleet-{}.scope".format(cid)
    assert _cgroup(vm_lab, host, pid) == scope + "/container"
    shim = vm_lab.ssh(host, "cat /var/lib/fleet/containers/{}/shim.pid".format(cid)).stdout.split()[0]
    assert _cgroup(vm_lab, host, shim) == scope + "/supervisor"  # not ssh.service nor the login's session scope

    # --cpus read back from the kernel; the scope's accounting made systemd enable the controllers down to it
    # (io too, which nothing else on this guest asks for: logins delegate only cpu, memory and pids)
    assert vm_lab.ssh(host, "cat /sys/fs/cgroup{}/container/cpu.max".format(scope)).stdout.strip() == "50000 100000"
    ctrls = vm_lab.ssh(host, "cat /sys/fs/cgroup{}/container/cgroup.controllers".format(scope)).stdout.split()
    assert {"cpu", "io", "memory", "pids"} <= set(ctrls), ctrls
    props = vm_lab.ssh(host, "systemctl show -p Delegate -p CPUAccounting -p IOAccounting -p Slice "
                             "fleet-{}.scope".format(cid)).stdout.split()
    assert {"Delegate=yes", "CPUAccounting=yes", "IOAccounting=yes", "Slice=fleet.slice"} <= set(props), props

    vm_lab.ssh(host, "systemctl restart ssh")
    assert _inspect(vm_lab, host, PREFIX + "cpu", "{{.State.Running}} {{.State.Pid}}") == "true " + pid
    assert vm_lab.ssh(host, "kill -0 {} && echo alive".format(shim)).stdout.strip() == "alive"

    # daemon-reload does not rewrite what fleet wrote below the scope
    vm_lab.ssh(host, "systemctl daemon-reload")
    assert vm_lab.ssh(host, "cat /sys/fs/cgroup{}/container/cpu.max".format(scope)).stdout.strip() == "50000 100000"

    assert vm_lab.fleet("rm", "-f", "-H", host, PREFIX + "cpu").returncode == 0
    poll("the scope gone with its shim", lambda: vm_lab.ssh(
        host, "systemctl is-active fleet-{}.scope".format(cid), check=False).stdout.strip() in ("inactive", ""))


def test_boot_unit_starts_containers_and_its_end_kills_none(vm):
    vm_lab, host = vm
    name = PREFIX + "boot"
    # a unit as an older payload wrote it (KillMode=control-group), loaded: the next run rewrites it and reloads
    unit = "/etc/systemd/system/fleet-boot.service"
    vm_lab.ssh(host, "printf '[Service]\\nType=oneshot\\nExecStart=/bin/true\\n' > {0} && "
                     "systemctl daemon-reload".format(unit))
    assert vm_lab.ssh(host, "systemctl show -p KillMode fleet-boot.service").stdout.strip() == "KillMode=control-group"
    out = vm_lab.fleet("run", "-d", "-H", host, "--name", name, "--restart", "always", "busybox",
                       "sh", "-c", "echo started; exec sleep 100000", timeout=900)
    assert out.returncode == 0, out.stderr
    assert vm_lab.fleet("stop", "-H", host, "-t", "1", name).returncode == 0  # `always`: boot starts it again
    assert vm_lab.ssh(host, "systemctl show -p KillMode -p NeedDaemonReload fleet-boot.service").stdout.split() == [
        "KillMode=process", "NeedDaemonReload=no"]
    vm_lab.ssh(host, "systemctl start fleet-boot.service", timeout=300)  # a oneshot: returns once boot ended
    assert vm_lab.ssh(host, "systemctl is-active fleet-boot.service", check=False).stdout.strip() == "inactive"
    pid = _inspect(vm_lab, host, name, "{{.State.Pid}}")
    assert _inspect(vm_lab, host, name, "{{.State.Running}}") == "true"
    cid = _inspect(vm_lab, host, name, "{{.Id}}")
    assert _cgroup(vm_lab, host, pid) == "/fleet.slice/fleet-{}.scope/container".format(cid)
    shim = vm_lab.ssh(host, "cat /var/lib/fleet/containers/{}/shim.pid".format(cid)).stdout.split()[0]
    assert _cgroup(vm_lab, host, shim) == "/fleet.slice/fleet-{}.scope/supervisor".format(cid)  # left the unit's
    logs = vm_lab.fleet("logs", "-H", host, name)
    assert logs.stdout.split() == ["started", "started"], logs


def test_warm_payload_server_runs_in_its_own_scope(vm):
    """The warm server a command leaves behind lives in fleet-warm-<sha12>.scope in fleet.slice (never in the
    login session that started it, which logind would otherwise keep open), and later commands are answered."""
    vm_lab, host = vm
    for _ in range(2):  # the first may exec (and start the server); the second is answered either way
        out = vm_lab.fleet("ps", "-a", "-H", host)
        assert out.returncode == 0, out.stderr

    def server():
        units = vm_lab.ssh(host, "systemctl list-units --type=scope --state=active --no-legend --plain "
                                 "'fleet-warm-*'").stdout.split()
        return [u for u in units if u.startswith("fleet-warm-")]

    units = poll("the warm server's scope", server)
    assert len(units) == 1, units
    procs = vm_lab.ssh(host, "cat /sys/fs/cgroup/fleet.slice/{}/cgroup.procs".format(units[0])).stdout.split()
    assert len(procs) == 1, procs
    assert vm_lab.ssh(host, "cat /proc/{}/comm".format(procs[0])).stdout.strip().startswith("fleet-warm")
    assert _cgroup(vm_lab, host, procs[0]) == "/fleet.slice/" + units[0]
    sock = vm_lab.ssh(host, "ls /var/lib/fleet/payload/").stdout.split()
    assert any(name.endswith(".sock") for name in sock), sock
