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
from tests.helpers import runtime as local
from tests.helpers.runtime import _output, _run, needs_root

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


# ------------------------------------------------------------------------------------------ --init

def _lines(rt, cid):
    return _output(rt, cid).splitlines()


def test_init_is_pid1_with_the_command_as_its_child(env, layers):
    script = ("ps -o pid,ppid,args; echo COMM=$(cat /proc/1/comm); "
              "readlink /proc/1/exe > /dev/null 2>&1 && echo EXE-READABLE || echo exe-denied; "
              "readlink /proc/1/fd/1 > /dev/null 2>&1 && echo FD-READABLE || echo fd-denied; "
              "grep -E '^(CapEff|NoNewPrivs|Uid)' /proc/$$/status; echo PPID=$PPID; "
              "cat /proc/1/environ > /dev/null 2>&1 && echo ENV-READABLE || echo env-denied")
    rec, code = _run(env, layers, ["sh", "-c", script], init=True, no_new_privileges=True, env=["FOO=bar"])
    out = _output(env, rec["id"])
    assert code == 0, out
    rows = [line.split(None, 2) for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert ["1", "0", "fleet-init -- sh -c " + script] in rows, out
    assert any(r[1] == "1" and r[2].startswith("sh -c") for r in rows), out
    assert "COMM=fleet-init" in out and "PPID=1" in out, out
    # same setup as without --init: the docker default caps, no_new_privs
    assert "CapEff:\t00000000a80425fb" in out and "NoNewPrivs:\t1" in out, out
    # non-dumpable: the host interpreter behind /proc/1/exe is out of reach (no CAP_SYS_PTRACE)
    assert "exe-denied" in out and "fd-denied" in out and "env-denied" in out, out
    insp = env.inspect([rec["id"]])[0]
    assert insp["HostConfig"]["Init"] is True


def test_init_user_and_capabilities_of_pid1(env, layers):
    script = "grep -E '^(Uid|CapEff|CapPrm)' /proc/1/status /proc/self/status"
    rec, code = _run(env, layers, ["sh", "-c", script], init=True, user="1000:1000")
    out = _output(env, rec["id"])
    assert code == 0, out
    assert "/proc/1/status:Uid:\t1000\t1000\t1000\t1000" in out, out
    assert "/proc/1/status:CapEff:\t0000000000000020" in out, out  # CAP_KILL only (bit 5)
    assert "/proc/self/status:CapEff:\t0000000000000000" in out, out  # a non-root user's command: none


def test_init_exit_codes(env, layers):
    rec, code = _run(env, layers, ["sh", "-c", "exit 3"], init=True)
    assert code == 3
    rec, code = _run(env, layers, ["sh", "-c", "kill -9 $$"], init=True)
    assert code == 137
    rec, code = _run(env, layers, ["no-such-command"], init=True)
    assert code == 127 and "executable file not found" in _output(env, rec["id"])


def _zombies(rt, cid):
    """(members, zombies) of the container's PID namespace, seen from the host."""
    from agent_payload.runtime.inspect import namespace_members
    members = namespace_members(rt.lookup(cid)["pid"])
    zombies = []
    for pid in members:
        try:
            with open("/proc/{}/stat".format(pid)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies.append(pid)
        except OSError:
            pass
    return members, zombies


def test_init_reaps_orphans(env, layers):
    # five orphans (their parent, a subshell, exits at once) die after 0.2 s; the command then becomes a plain
    # `sleep`, which reaps nothing: only a reaping PID 1 keeps them from staying zombies
    script = "for i in 1 2 3 4 5; do (sleep 0.2 &); done; exec sleep 30"
    found = {}
    for init in (True, False):
        rec = env.create(local._spec(layers, ["sh", "-c", script], init=init))
        env.start(rec["id"])
        time.sleep(1.5)
        found[init] = _zombies(env, rec["id"])
        env.remove([rec["id"]], force=True)
    members, zombies = found[True]
    assert len(members) == 2 and zombies == [], found  # fleet-init and sleep
    members, zombies = found[False]
    assert len(zombies) == 5, found  # without --init, `sleep` is PID 1 and the orphans pile up


def test_init_forwards_signals_and_stop_works(env, layers):
    script = ("trap 'echo GOT-USR1' USR1; trap 'echo GOT-TERM; exit 7' TERM; echo READY; "
              "while true; do sleep 0.1; done")
    rec = env.create(local._spec(layers, ["sh", "-c", script], init=True))
    env.start(rec["id"])
    assert local._wait_for(lambda: "READY" in _output(env, rec["id"]))
    pid = env.lookup(rec["id"])["pid"]
    with open("/proc/{}/cmdline".format(pid), "rb") as f:
        assert f.read().replace(b"\0", b" ").startswith(b"fleet-init -- sh -c trap")
    with open("/proc/{}/environ".format(pid), "rb") as f:
        assert b"FLEET_ROOT=" not in f.read()  # the shim's host environment is gone from PID 1's memory
    env.kill([rec["id"]], "USR1")
    assert local._wait_for(lambda: "GOT-USR1" in _output(env, rec["id"]))
    t0 = time.monotonic()
    env.stop([rec["id"]], time=10)
    assert time.monotonic() - t0 < 5
    assert env.wait(rec["id"]) == 7 and "GOT-TERM" in _output(env, rec["id"])
    # a plain script that traps nothing: SIGTERM kills it (it is not PID 1), the init exits 143
    rec = env.create(local._spec(layers, ["sh", "-c", "echo UP; while true; do sleep 0.1; done"], init=True))
    env.start(rec["id"])
    assert local._wait_for(lambda: "UP" in _output(env, rec["id"]))
    t0 = time.monotonic()
    env.stop([rec["id"]], time=10)
    assert time.monotonic() - t0 < 5 and env.wait(rec["id"]) == 143


# ------------------------------------------------------------------------------------------ stop signal / timeout

def test_stop_uses_the_containers_stop_signal_and_timeout(env, layers):
    script = "trap '' TERM; trap 'echo GOT-USR1' USR1; echo UP; while true; do sleep 0.1; done"
    rec = env.create(local._spec(layers, ["sh", "-c", script], stop_signal="SIGUSR1", stop_timeout=1, init=True))
    env.start(rec["id"])
    assert local._wait_for(lambda: "UP" in _output(env, rec["id"]))
    t0 = time.monotonic()
    env.stop([rec["id"]])  # no -t: the container's 1 s, not 10
    took = time.monotonic() - t0
    assert 0.9 <= took < 5, took
    assert env.wait(rec["id"]) == 137 and "GOT-USR1" in _output(env, rec["id"])
    insp = env.inspect([rec["id"]])[0]
    assert insp["Config"]["StopTimeout"] == 1 and insp["Config"]["StopSignal"] == "SIGUSR1"
    t0 = time.monotonic()
    env.restart([rec["id"]], time=0)  # an explicit -t beats it
    assert env.lookup(rec["id"])["status"] == "running"
    env.stop([rec["id"]], time=0)
    assert time.monotonic() - t0 < 5
    plain = env.create(local._spec(layers, ["true"]))
    assert "StopTimeout" not in env.inspect([plain["id"]])[0]["Config"]
    assert "Init" not in env.inspect([plain["id"]])[0]["HostConfig"]


def test_default_device_policy_v2_container(env, layers, monkeypatch):
    """A whole container placed on this hybrid host's cgroup2 mount (FLEET_CGROUP_VERSION=2, a test-owned
    parent): the eBPF device program confines it as the v1 files do, and goes with the cgroup."""
    h = cgroups.detect()
    assert h.mode == "hybrid" and h.v2 is not None, h
    parent = "fleet-it-" + secrets.token_hex(4)
    monkeypatch.setenv(cgroups.VERSION_ENV, "2")
    monkeypatch.setenv(cgroups.PARENT_ENV, parent)
    top = os.path.join(h.v2.mount_point, parent)
    try:
        rec = env.create(local._spec(layers, ["sh", "-c", DEVICE_SCRIPT + "; sleep 30"]))
        env.start(rec["id"])
        assert local._wait_for(lambda: "CapEff" in _output(env, rec["id"]))
        pid = env.lookup(rec["id"])["pid"]
        with open("/proc/{}/cgroup".format(pid)) as f:
            assert "0::/{}/{}\n".format(parent, rec["id"]) in f.read()
        leaf = os.path.join(top, rec["id"])
        dfd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY)
        try:
            (prog,) = bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE)
        finally:
            os.close(dfd)
        out = _output(env, rec["id"])
        assert "NULL-OK" in out and "MKNOD-SDA" in out and "MKNOD-LOOP" in out, out
        assert "ERR head: /tmp/loop: Operation not permitted" in out and "OPEN-LOOP" not in out, out
        env.remove([rec["id"]], force=True)
        assert not os.path.exists(leaf)
        assert _freed(prog), "the device program outlived the container's cgroup"
    finally:
        if os.path.isdir(top):
            os.rmdir(top)
