"""`fleet lab up --vm`: a Debian guest under qemu is an ordinary fleet host (systemd, cgroup v2), reached over SSH
with strict host-key checking, pulling from the lab registries, and it comes back after a poweroff."""

import json

from tests.helpers.lab import fleet


def test_vm_host_answers_with_its_real_host_key(vm_lab):
    host = vm_lab.vm_hosts[0]
    assert vm_lab.vm_hosts == ["vm-" + s for s in sorted(vm_lab.boot.suites.split(","))]
    assert vm_lab.ssh(host, "hostname").stdout.strip() == host
    # The known_hosts entry is the guest's own key: a changed key would be refused.
    key = vm_lab.ssh(host, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    known = vm_lab._vars()[0]["fleet_known_hosts"]
    line = "[127.0.0.1]:{} {} {}".format(vm_lab.port(host), *key)
    assert line in open(known).read().splitlines()
    st = json.loads(fleet("lab", "status", "--json", *vm_lab.boot.common, check=True).stdout)
    assert [(v["name"], v["running"]) for v in st["vms"]] == [(h, True) for h in vm_lab.vm_hosts]


def test_vm_host_runs_systemd_and_cgroup_v2(vm_lab):
    host = vm_lab.vm_hosts[0]
    assert vm_lab.ssh(host, "cat /proc/1/comm").stdout.strip() == "systemd"
    rc, facts = vm_lab.fleet_json("facts", "-H", host)
    assert rc == 0, facts
    data = facts[host]
    assert data["cgroup"] == "v2" and data["boot_hook"] == "systemd", data
    assert data["hostname"] == host and "Debian" in data["distro"], data


def test_vm_host_pulls_and_runs_from_the_lab_registry(vm_lab):
    host = vm_lab.vm_hosts[0]
    out = vm_lab.fleet("run", "--rm", "-H", host, "busybox", "echo", "hello from the guest", timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello from the guest"
    assert "10.0.2.15" in vm_lab.ssh(host, "ip -4 -o addr show dev eth0").stdout


def test_vm_host_reboot_keeps_its_disk_and_key(vm_lab):
    host = vm_lab.vm_hosts[0]
    vm_lab.ssh(host, "echo before > /root/reboot-marker && sync")
    old_pid = vm_lab.qemu_pid(host)
    boot_id = vm_lab.ssh(host, "cat /proc/sys/kernel/random/boot_id").stdout
    vm_lab.reboot(host)
    assert vm_lab.qemu_pid(host) != old_pid
    assert vm_lab.ssh(host, "cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    assert vm_lab.ssh(host, "cat /root/reboot-marker").stdout.strip() == "before"
