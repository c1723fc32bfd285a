"""Device cgroup and --init from inside busybox containers run by the payload's runtime on this machine (root).

The v1 device policy is proven end to end (this machine's containers use its v1 controllers); the v2 one at the
cgroup level, in a test-owned subtree of the cgroup2 mount, with real processes and the real eBPF program.
"""

import os
import secrets
import subprocess
import sys
import time

import pytest

from agent_payload import errors
from agent_payload.linux import bpf
from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import devices
from agent_payload.runtime.cgroups.v2 import V2Manager
from tests.integration import test_runtime_local as local
from tests.integration.test_runtime_local import _output, _run, needs_root

env = local.env
layers = local.layers
pytestmark = [pytest.mark.integration, needs_root]

# a loop device: present on every Linux host, and opening an unbound one read-only is harmless
LOOP = (7, 0)
DEVICE_SCRIPT = "; ".join([
    "mkdir -p /tmp",
    "mknod /tmp/null c 1 3 && cat /tmp/null && echo x > /tmp/null && echo NULL-OK",
    "mknod /tmp/sda b 8 0 && echo MKNOD-SDA",
    "mknod /tmp/loop b {} {} && echo MKNOD-LOOP".format(*LOOP),
    "head -c 1 /tmp/loop > /dev/null 2>/tmp/err && echo OPEN-LOOP || sed 's/^/ERR /' /tmp/err",
    "echo y > /dev/null && head -c 4 /dev/zero | wc -c | sed 's/^/ZERO /'",
    "grep -E '^Cap(Eff|Bnd)' /proc/self/status",
])


def test_default_device_policy_v1(env, layers):
    h = cgroups.detect()
    assert "devices" in h.v1, "this machine mounts the cgroup v1 devices controller"
    rec, code = _run(env, layers, ["sh", "-c", DEVICE_SCRIPT])
    out = _output(env, rec["id"])
    assert code == 0, out
    assert "NULL-OK" in out and "MKNOD-SDA" in out and "MKNOD-LOOP" in out, out  # CAP_MKNOD is back
    assert "ERR head: /tmp/loop: Operation not permitted" in out and "OPEN-LOOP" not in out, out
    assert "ZERO 4" in out, out
    eff = int([line for line in out.splitlines() if line.startswith("CapEff")][0].split()[1], 16)
    assert eff == 0xA80425FB  # Docker's default set, CAP_MKNOD (bit 27) included


def test_device_policy_lines_while_running_and_gone_after(env, layers):
    h = cgroups.detect()
    rec = env.create(local._spec(layers, ["sleep", "30"]))
    env.start(rec["id"])
    leaf = os.path.join(h.v1["devices"].mount_point, "fleet", rec["id"])
    with open(os.path.join(leaf, "devices.list")) as f:
        listed = set(f.read().split("\n")) - {""}
    assert listed == {r.line() for r in devices.DEFAULT_ALLOWED}, listed
    env.remove([rec["id"]], force=True)
    assert not os.path.exists(leaf)


def test_privileged_opens_any_device(env, layers):
    rec, code = _run(env, layers, ["sh", "-c", DEVICE_SCRIPT], privileged=True)
    out = _output(env, rec["id"])
    assert code == 0 and "OPEN-LOOP" in out and "NULL-OK" in out, out


# ------------------------------------------------------------------------------------------ v2, cgroup level

PROBE = "\n".join([
    "import os, sys",
    "sys.stdin.readline()",
    "path = sys.argv[1]",
    "os.mknod(path, 0o600 | 0o060000, os.makedev({}, {}))".format(*LOOP),
    "print('mknod ok', flush=True)",
    "try:",
    "    os.close(os.open(path, os.O_RDONLY)); print('open ok')",
    "except OSError as exc:",
    "    print('open errno', exc.errno)",
    "with open('/dev/null', 'w') as f: f.write('x')",
    "print('null ok')",
])


@pytest.fixture
def v2_cgroup():
    """A V2Manager in a test-owned subtree of this machine's cgroup2 mount; destroyed (and checked) afterwards."""
    h = cgroups.detect()
    assert h.v2 is not None, "this machine has a cgroup2 mount"
    base = "fleet-it-" + secrets.token_hex(4)
    mgr = V2Manager.create("c-" + secrets.token_hex(6), None, hierarchy=h, parent=base)
    try:
        yield mgr
    finally:
        mgr.destroy()
        top = os.path.join(h.v2.mount_point, base)
        if os.path.isdir(top):
            os.rmdir(top)


def _probe(mgr, tmp_path):
    node = str(tmp_path / "loop")
    p = subprocess.Popen([sys.executable, "-c", PROBE, node], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        mgr.add(p.pid)
        out, _ = p.communicate("go\n", timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return out


def _freed(prog_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.close(bpf.prog_fd_by_id(prog_id))
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_v2_default_policy_program(v2_cgroup, tmp_path):
    prog = v2_cgroup.apply_devices(devices.rules_for())
    dfd = os.open(v2_cgroup.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE) == [prog]
        again = v2_cgroup.apply_devices(devices.rules_for())  # re-applying replaces, never stacks
        assert bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE) == [again] and again != prog
    finally:
        os.close(dfd)
    assert _freed(prog), "the replaced program was not freed"
    out = _probe(v2_cgroup, tmp_path)
    assert out.split("\n")[:3] == ["mknod ok", "open errno 1", "null ok"], out
    v2_cgroup.destroy()
    assert _freed(again), "the device program outlived its cgroup"


def test_v2_privileged_attaches_nothing(v2_cgroup, tmp_path):
    first = v2_cgroup.apply_devices(devices.rules_for())
    assert v2_cgroup.apply_devices(devices.rules_for(privileged=True)) is None
    assert _freed(first)
    out = _probe(v2_cgroup, tmp_path)
    assert out.split("\n")[:3] == ["mknod ok", "open ok", "null ok"], out


def test_v1_manager_without_devices_controller_refuses():
    h = cgroups.detect()
    h.v1 = {k: v for k, v in h.v1.items() if k != "devices"}
    from agent_payload.runtime.cgroups.v1 import V1Manager
    mgr = V1Manager("c-" + secrets.token_hex(6), h)
    with pytest.raises(errors.FailedPrecondition, match="devices controller is not mounted"):
        mgr.apply_devices(devices.rules_for())
