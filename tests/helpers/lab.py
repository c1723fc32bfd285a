"""The lab for integration tests: its per-session name and subnet, the fleet CLI run as a user would, a ``Lab``
(what tests need to know about the running lab) and ``_ssh`` to run a command on a lab host.  The ``lab`` fixture
that builds it lives in tests/integration/conftest.py."""

import json
import os
import subprocess
import sys
from pathlib import Path


def _free_subnet() -> str:
    """A 10.213.X.0/24 (X in 100..199, from this process's ID on) that no lab on this machine uses yet: a lab's
    bridge holds its subnet's first address here, and two labs on one subnet break each other's routes."""
    try:
        used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    except OSError:
        used = ""
    for i in range(100):
        x = 100 + (os.getpid() + i) % 100
        if " 10.213.{}.".format(x) not in used:
            return "10.213.{}.0/24".format(x)
    return "10.213.{}.0/24".format(100 + os.getpid() % 100)


# Per test session, so that two sessions on one machine (a CI run beside a developer's) never share a lab:
# one's teardown would otherwise pull the lab from under the other.
LAB_NAME = "flit{}".format(os.getpid() % 10000)
LAB_SUBNET = _free_subnet()


def fleet(*args, inventory=None, check=False, timeout=600, input=None):
    """Run the fleet CLI as a user would; returns the CompletedProcess (text)."""
    cmd = [sys.executable, "-m", "fleet"]
    if inventory:
        cmd += ["-i", str(inventory)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError("fleet {} exited {}\nstdout:\n{}\nstderr:\n{}".format(
            " ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def fleet_json(*args, inventory=None):
    proc = fleet(*args, "--json", inventory=inventory)
    try:
        return proc.returncode, {h["host"]: h for h in json.loads(proc.stdout)}
    except ValueError:
        raise AssertionError("not JSON (exit {}):\n{}\n{}".format(proc.returncode, proc.stdout, proc.stderr))


class Lab:
    """What tests need to know about the running lab."""

    def __init__(self, inventory):
        self.inventory = Path(inventory)
        _rc, hosts = 0, json.loads(fleet("hosts", "-H", "all", "--json", inventory=inventory, check=True).stdout)
        self.hosts = {h["host"]: h for h in hosts}

    def address(self, name):
        return self.hosts[name]["address"]

    def fleet(self, *args, **kw):
        return fleet(*args, inventory=self.inventory, **kw)

    def fleet_json(self, *args):
        return fleet_json(*args, inventory=self.inventory)

    def remove_containers(self, prefix):
        """rm -f every container whose name starts with ``prefix``, on every host (test cleanup)."""
        rc, ps = self.fleet_json("ps", "-H", "all", "-a", "-f", "name=^" + prefix)
        for host, data in ps.items():
            names = [c["name"] for c in data.get("containers", [])]
            if names:
                self.fleet("rm", "-f", "-H", host, *names)


def _ssh(lab, host, command):
    import yaml
    inv = yaml.safe_load(lab.inventory.read_text())
    v = inv["all"]["vars"]
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                           "-o", "UserKnownHostsFile=" + v["fleet_known_hosts"],
                           "-i", v["ansible_ssh_private_key_file"],
                           "root@" + lab.address(host), command], capture_output=True, text=True, timeout=60)
