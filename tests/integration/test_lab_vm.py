"""`fleet lab up --vm`: each Debian guest under qemu is an ordinary fleet host (systemd, cgroup v2), reached over
SSH with strict host-key checking, pulling from the lab registries, and it comes back after a poweroff."""

import json

from tests.helpers.lab import fleet


def test_vm_hosts_answer_with_their_real_host_keys(vm_lab):
    assert vm_lab.vm_hosts == sorted("vm-" + s for s in vm_lab.boot.suites.split(","))
    known = open(vm_lab._vars()[0]["fleet_known_hosts"]).read().splitlines()
    for host in vm_lab.vm_hosts:
        assert vm_lab.ssh(host, "hostname").stdout.strip() == host
        # The known_hosts entry is the guest's own key (ssh's strict checking refuses any other).
        key = vm_lab.ssh(host, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        assert "[127.0.0.1]:{} {} {}".format(vm_lab.port(host), *key) in known
    st = json.loads(fleet("lab", "status", "--json", *vm_lab.boot.common, check=True).stdout)
    assert [(v["name"], v["running"]) for v in st["vms"]] == [(h, True) for h in vm_lab.vm_hosts]


def test_vm_hosts_run_systemd_and_cgroup_v2(vm_lab):
    rc, facts = vm_lab.fleet_json("facts", "-H", "vm")
    assert rc == 0, facts
    assert sorted(facts) == vm_lab.vm_hosts
    for host, data in facts.items():
        assert data["cgroup"] == "v2" and data["boot_hook"] == "systemd", data
        assert data["hostname"] == host and "Debian" in data["distro"], data
        assert vm_lab.ssh(host, "cat /proc/1/comm").stdout.strip() == "systemd"


def test_vm_hosts_pull_and_run_from_the_lab_registry(vm_lab):
    lab_vars = vm_lab._vars()[0]
    for host in vm_lab.vm_hosts:
        daemon = json.loads(vm_lab.ssh(host, "cat /etc/fleet/daemon.json").stdout)
        assert daemon["registry-mirrors"] == ["http://" + lab_vars["fleet_lab_mirror"],
                                              "http://" + lab_vars["fleet_lab_registry"]]
        out = vm_lab.fleet("run", "--rm", "-H", host, "busybox", "echo", "hello from " + host, timeout=900)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "hello from " + host
        assert "inet 10.0.2.15/24" in vm_lab.ssh(host, "ip -4 -o addr show dev eth0").stdout
