"""The VM lab for integration tests: a lab of its own (own name and subnet, no netns hosts) with one Debian guest
per suite under qemu, built by `fleet lab up --hosts 0 --vm ...`.  ``VmLab`` is what tests get (the ``vm_lab``
fixture, tests/integration/conftest.py); ``VmLabBoot`` starts the boot in a background thread as soon as the session
knows a test needs it, so the guests boot while other tests run."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers.lab import LAB_SUBNET, Lab, fleet

# Suites booted for the session: one shared guest each (the Debian releases the mirror serves that fleet supports).
# FLEET_TEST_VM_SUITES overrides, e.g. "bookworm" alone for a quicker run by hand.
VM_SUITES = os.environ.get("FLEET_TEST_VM_SUITES", "bookworm,trixie")
VM_LAB_NAME = "flvm{}".format(os.getpid() % 10000)
BOOT_TIMEOUT = 2400          # a first run debootstraps each suite (minutes) before booting under TCG


def _vm_subnet() -> str:
    """A 10.213.X.0/24 for the VM lab's registries that neither the ``lab`` fixture nor any other lab here uses."""
    try:
        used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    except OSError:
        used = ""
    for i in range(100):
        x = 100 + (os.getpid() + 50 + i) % 100
        subnet = "10.213.{}.0/24".format(x)
        if subnet != LAB_SUBNET and " 10.213.{}.".format(x) not in used:
            return subnet
    raise RuntimeError("no free 10.213.X.0/24 for the VM lab")


def missing_tools() -> list:
    """What this machine lacks to build and boot VM hosts."""
    tools = ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "debugfs")
    return [t for t in tools if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]


class VmLabBoot:
    """`fleet lab up --vm` in a background thread (start()), its result (wait()) and `fleet lab down` (down())."""

    def __init__(self, suites=VM_SUITES):
        self.suites = suites
        self.dir = Path(tempfile.mkdtemp(prefix="fleet-vmlab-"))
        self.inventory = self.dir / "lab.yml"
        self.common = ["--name", VM_LAB_NAME, "--subnet", _vm_subnet(), "--inventory-out", str(self.inventory)]
        self.proc = None
        self.error = None
        self.seconds = None
        self._thread = None

    @property
    def up_args(self):
        return ["lab", "up", "--hosts", "0", "--vm", self.suites] + self.common

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._up, name="vm-lab-up", daemon=True)
            self._thread.start()

    def _up(self):
        t0 = time.monotonic()
        try:
            self.proc = fleet(*self.up_args, timeout=BOOT_TIMEOUT)
        except Exception as exc:          # noqa: BLE001 - reported by wait()
            self.error = exc
        self.seconds = time.monotonic() - t0

    def wait(self):
        """The VmLab once the guests answer; AssertionError with fleet's output when `lab up` failed."""
        self.start()
        self._thread.join(BOOT_TIMEOUT + 60)
        if self.error is not None or self.proc is None or self.proc.returncode != 0:
            detail = self.error or "exit {}\n{}\n{}".format(self.proc.returncode, self.proc.stdout[-3000:],
                                                           self.proc.stderr[-3000:])
            raise AssertionError("fleet {} failed: {}".format(" ".join(self.up_args), detail))
        return VmLab(self.inventory, self)

    def down(self):
        if self._thread is not None:
            self._thread.join(BOOT_TIMEOUT + 60)
        try:
            return fleet("lab", "down", *self.common, timeout=600)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class VmLab(Lab):
    """The running VM lab: ``vm_hosts`` (vm-<suite>), ssh() into a guest as root, reboot() a guest."""

    def __init__(self, inventory, boot):
        super().__init__(inventory)
        self.boot = boot
        self.vm_hosts = sorted(h for h in self.hosts if h.startswith("vm-"))

    def _vars(self):
        import yaml
        inv = yaml.safe_load(self.inventory.read_text())
        return inv["all"]["vars"], inv["all"]["children"]["vm"]["hosts"]

    def port(self, host):
        return self._vars()[1][host]["ansible_port"]

    def ssh(self, host, command, timeout=120, check=True):
        """Run a shell command as root in the guest (strict host-key checking against the lab's known_hosts)."""
        v, hosts = self._vars()
        proc = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                               "-o", "UserKnownHostsFile=" + v["fleet_known_hosts"], "-o", "ConnectTimeout=30",
                               "-i", v["ansible_ssh_private_key_file"], "-p", str(hosts[host]["ansible_port"]),
                               "root@127.0.0.1", command], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("ssh {} {!r} exited {}\nstdout:\n{}\nstderr:\n{}".format(
                host, command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def qemu_pid(self, host):
        st = json.loads(fleet("lab", "status", "--json", *self.boot.common).stdout)
        return {v["name"]: v for v in st["vms"]}[host]["pid"]

    def reboot(self, *hosts, timeout=600):
        """`systemctl poweroff` in each guest named (all of them if none is), wait for their qemu to exit, boot the
        same disks again (one `fleet lab up` boots every powered-off guest at once), wait until each sshd answers
        with the same host key. Returns the seconds it took."""
        hosts = hosts or tuple(self.vm_hosts)
        t0 = time.monotonic()
        pids = {host: self.qemu_pid(host) for host in hosts}
        for host in hosts:
            self.ssh(host, "systemctl poweroff", check=False, timeout=60)
        deadline = time.monotonic() + timeout
        for host, pid in pids.items():
            while _alive(pid):
                if time.monotonic() > deadline:
                    raise AssertionError("{}: qemu {} still runs {}s after systemctl poweroff".format(
                        host, pid, timeout))
                time.sleep(0.5)
        fleet(*self.boot.up_args, check=True, timeout=timeout)
        for host in hosts:
            self.ssh(host, "true")                 # strict checking: the same host key answers
        return time.monotonic() - t0


def poll(what, fn, timeout=120, interval=0.5):
    """``fn()``'s first truthy value, polled every ``interval`` s; AssertionError naming ``what`` (and the last
    value) after ``timeout`` s. Guests under TCG emulation take seconds for what takes milliseconds elsewhere."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            assert value, "{} within {}s (last: {!r})".format(what, timeout, value)
            return value
        time.sleep(interval)


def _alive(pid):
    try:
        stat = Path("/proc/{}/stat".format(pid)).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
