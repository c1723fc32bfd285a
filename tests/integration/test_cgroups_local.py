"""cgroup managers on this machine's real kernel: v1 controllers, and v2 in a subtree of its cgroup2 mount (root)."""

import glob
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agent_payload import errors
from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import fs, limits
from agent_payload.runtime.cgroups.v1 import V1Manager
from agent_payload.runtime.cgroups.v2 import V2Manager

MB = 1 << 20
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")]

# Waits for one line on stdin (so it is inside the cgroup before it acts), then acts.
BUSY = "import sys; sys.stdin.readline()\nwhile True: pass\n"
HOG = "import sys; sys.stdin.readline(); chunks = []\nwhile True: chunks.append(bytearray(4 << 20))\n"
FORKER = textwrap.dedent("""\
    import os, sys, time
    sys.stdin.readline()
    kids, failed = [], 0
    for _ in range(15):
        try:
            pid = os.fork()
        except OSError:
            failed += 1
            continue
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        kids.append(pid)
    print(len(kids), failed, flush=True)
    sys.stdin.readline()
    for pid in kids:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
""")


@pytest.fixture
def env():
    """Starts processes and makes managers; kills/destroys them all (by PID / by path) even when a test fails."""
    state = {"procs": [], "managers": [], "dirs": []}

    def start(code):
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        state["procs"].append(p)
        return p

    state["start"] = start
    yield state
    for p in state["procs"]:
        if p.poll() is None:
            p.kill()
        p.wait(10)
    problems = []
    for mgr in state["managers"]:
        try:
            if mgr.is_frozen():
                mgr.thaw()
            mgr.destroy()
        except errors.AgentError as exc:
            problems.append(str(exc))
    for path in reversed(state["dirs"]):  # test-made parents the managers did not remove (they never made them)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append("{}: {}".format(path, exc))
    assert not problems, problems


def _utime(pid):
    with open("/proc/{}/stat".format(pid)) as f:
        return int(f.read().rsplit(")", 1)[1].split()[11])


def _go(p):
    p.stdin.write("go\n")
    p.stdin.flush()


def _v1_hierarchy():
    h = cgroups.detect()
    if h.mode not in ("v1", "hybrid"):
        pytest.skip("this host has no cgroup v1 controllers (mode {})".format(h.mode))
    return h


def _new_parents(h, parent):
    """Paths of ``parent`` under each v1 mount that do not exist yet (for cleanup by the test)."""
    out = []
    for m in sorted({h.v1[c].mount_point for c in cgroups.CONTROLLERS_V1 if c in h.v1}):
        path = os.path.join(m, parent)
        if not os.path.exists(path):
            out.append(path)
    return out


def test_v1_limits_freeze_stats_pids_and_destroy(env):
    h = _v1_hierarchy()
    env["dirs"] += _new_parents(h, "fleet")
    cid = "fleet-it-" + secrets.token_hex(6)
    lim = limits.parse(memory="32m", cpus="0.5", pids_limit=10).with_defaults()
    mgr = cgroups.create(cid, lim, hierarchy=h)
    env["managers"].append(mgr)
    assert isinstance(mgr, V1Manager)
    mem, cpu, pids, frz = (os.path.join(h.v1[c].mount_point, "fleet", cid)
                           for c in ("memory", "cpu", "pids", "freezer"))

    def read(d, name):
        with open(os.path.join(d, name)) as f:
            return f.read().strip()

    assert read(mem, "memory.limit_in_bytes") == str(32 * MB)
    if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
        assert read(mem, "memory.memsw.limit_in_bytes") == str(64 * MB)
    assert read(cpu, "cpu.cfs_quota_us") == "50000" and read(cpu, "cpu.cfs_period_us") == "100000"
    assert read(pids, "pids.max") == "10"

    busy = env["start"](BUSY)
    mgr.add(busy.pid)
    _go(busy)
    assert cgroups.attach(cid, hierarchy=h).pids() == [busy.pid]
    with open("/proc/{}/cgroup".format(busy.pid)) as f:
        assert ":memory:/fleet/{}\n".format(cid) in f.read()

    # stats: a busy loop capped at 0.5 CPU burns about 0.5 s of CPU per second
    time.sleep(0.3)
    s1, t1 = mgr.stats(), time.monotonic()
    time.sleep(1.0)
    s2, t2 = mgr.stats(), time.monotonic()
    rate = (s2["cpu_usage_ns"] - s1["cpu_usage_ns"]) / ((t2 - t1) * 1e9)
    assert 0.05 < rate < 0.65, rate  # the upper bound is the quota; the lower one only says it ran (busy host)
    assert s2["pids_current"] == 1 and s2["memory_limit"] == 32 * MB
    assert 0 <= s2["memory_usage"] < 32 * MB and s2["blkio_read"] >= 0 and s2["blkio_write"] >= 0

    # pause / unpause
    mgr.freeze()
    assert read(frz, "freezer.state") == "FROZEN" and mgr.is_frozen()
    u = _utime(busy.pid)
    time.sleep(0.3)
    assert _utime(busy.pid) == u  # frozen: no CPU at all
    mgr.thaw()
    assert read(frz, "freezer.state") == "THAWED"
    time.sleep(0.3)
    assert _utime(busy.pid) > u

    # pids.max = 10 holds: the busy loop + the forker + at most 8 children
    forker = env["start"](FORKER)
    mgr.add(forker.pid)
    _go(forker)
    made, failed = map(int, forker.stdout.readline().split())
    assert made == 8 and failed == 7, (made, failed)
    assert mgr.stats()["pids_current"] == 10
    _go(forker)
    assert forker.wait(10) == 0

    # live update
    mgr.apply(lim.updated(limits.parse(memory="64m", memory_swap="128m", pids_limit=-1)))
    assert read(mem, "memory.limit_in_bytes") == str(64 * MB) and read(pids, "pids.max") == "max"

    mgr.destroy()
    assert busy.wait(5) == -signal.SIGKILL
    assert glob.glob("/sys/fs/cgroup/*/fleet/{}".format(cid)) == []
    mgr.destroy()  # idempotent
    with pytest.raises(errors.NotFound):
        cgroups.attach(cid, hierarchy=h)


def test_v1_memory_hog_is_oom_killed(env):
    h = _v1_hierarchy()
    env["dirs"] += _new_parents(h, "fleet")
    cid = "fleet-it-" + secrets.token_hex(6)
    mgr = cgroups.create(cid, limits.parse(memory="32m").with_defaults(), hierarchy=h)
    env["managers"].append(mgr)
    hog = env["start"](HOG)
    mgr.add(hog.pid)
    assert not mgr.oom_killed()
    _go(hog)
    assert hog.wait(30) == -signal.SIGKILL
    assert mgr.oom_killed()
    mgr.destroy()
    assert glob.glob("/sys/fs/cgroup/*/fleet/{}".format(cid)) == []


def test_v1_destroy_kills_frozen_leftovers(env):
    h = _v1_hierarchy()
    env["dirs"] += _new_parents(h, "fleet")
    cid = "fleet-it-" + secrets.token_hex(6)
    mgr = cgroups.create(cid, None, hierarchy=h)
    env["managers"].append(mgr)
    p = env["start"](BUSY)
    mgr.add(p.pid)
    mgr.freeze()  # a paused container removed with rm -f
    cgroups.attach(cid, hierarchy=h).destroy()
    assert p.wait(5) == -signal.SIGKILL
    assert glob.glob("/sys/fs/cgroup/*/fleet/{}".format(cid)) == []


SELF_MOVER = textwrap.dedent("""\
    import sys, threading
    from agent_payload.runtime import cgroups
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    print(threading.get_native_id(), other.native_id, flush=True)
    sys.stdin.readline()
    cgroups.attach({cid!r}).add_self()
    print("moved", flush=True)
    sys.stdin.readline()
    release.set()
    other.join()
""")


def test_v1_add_self_moves_the_calling_thread_through_tasks(env):
    # The shim's init moves itself (cgroup v1): its own thread into each hierarchy's "tasks", which skips the RCU
    # grace period a write to cgroup.procs waits for. Only the calling thread moves (the init has no other): a
    # second thread here stays where it was, which a cgroup.procs write would have moved too.
    h = _v1_hierarchy()
    env["dirs"] += _new_parents(h, "fleet")
    cid = "fleet-it-" + secrets.token_hex(6)
    mgr = cgroups.create(cid, None, hierarchy=h)
    env["managers"].append(mgr)
    assert mgr.places_self
    p = env["start"](SELF_MOVER.format(cid=cid))
    caller, other = (int(t) for t in p.stdout.readline().split())
    _go(p)
    assert p.stdout.readline().strip() == "moved"

    def cgroup_of(tid):
        with open("/proc/{}/task/{}/cgroup".format(p.pid, tid)) as f:
            return {line.split(":")[1]: line.strip().split(":", 2)[2] for line in f}

    mine, theirs = cgroup_of(caller), cgroup_of(other)
    for controller in ("memory", "pids", "freezer", "cpuset"):
        if controller in h.v1:
            assert mine[controller] == "/fleet/" + cid, (controller, mine)
            assert theirs[controller] != "/fleet/" + cid, (controller, theirs)
    _go(p)
    assert p.wait(10) == 0


def test_v2_manager_in_a_subtree_of_the_cgroup2_mount(env):
    h = cgroups.detect()
    if h.v2 is None:
        pytest.skip("no cgroup2 mount on this host")
    top = h.v2.mount_point
    root_ctl = fs.read(top, "cgroup.subtree_control")
    base = "fleet-it-" + secrets.token_hex(4)
    cid = "c-" + secrets.token_hex(6)
    mgr = V2Manager.create(cid, None, hierarchy=h, parent=base + "/fleet")
    env["managers"].append(mgr)
    env["dirs"].append(os.path.join(top, base))  # removed by destroy() (it made it); this is the safety net
    leaf = os.path.join(top, base, "fleet", cid)
    assert mgr.paths() == [leaf] and os.path.isdir(leaf)
    available = mgr.available()
    if h.mode == "hybrid":
        assert fs.read(top, "cgroup.subtree_control") == root_ctl  # nothing we need there: root untouched

    busy = env["start"](BUSY)
    mgr.add(busy.pid)
    _go(busy)
    with open("/proc/{}/cgroup".format(busy.pid)) as f:
        assert "0::/{}/fleet/{}\n".format(base, cid) in f.read()
    assert V2Manager.attach(cid, hierarchy=h, parent=base + "/fleet").pids() == [busy.pid]

    time.sleep(0.3)
    assert mgr.stats()["cpu_usage_ns"] > 0  # cpu.stat is a core file: no controller needed
    mgr.freeze()
    assert fs.read_keyed(leaf, "cgroup.events")["frozen"] == 1
    u = _utime(busy.pid)
    time.sleep(0.3)
    assert _utime(busy.pid) == u
    mgr.thaw()
    time.sleep(0.3)
    assert _utime(busy.pid) > u

    if "memory" in available and "pids" in available:
        mgr.apply(limits.parse(memory="32m", pids_limit=10).with_defaults())
        assert fs.read(leaf, "memory.max").strip() == str(32 * MB) and fs.read(leaf, "pids.max").strip() == "10"
    else:
        # the refusal path is real: the controller is missing, so the limit cannot be honoured
        with pytest.raises(errors.FailedPrecondition, match="--memory needs the cgroup v2 memory controller"):
            mgr.apply(limits.parse(memory="32m"))

    mgr.kill_all(signal.SIGKILL)  # cgroup.kill (Linux >= 5.14) when present
    assert busy.wait(5) == -signal.SIGKILL
    mgr.destroy()
    assert not os.path.exists(os.path.join(top, base))


def test_v2_limits_enforced_or_refused_clearly(env):
    """On a v2 host with the controllers: limits and OOM for real.  On a hybrid host (this VM: its cgroup2 mount
    offers only hugetlb; memory, cpu and pids are bound to v1) each limit must be refused with a clear error
    naming the flag, before anything is created -- never silently ignored.  Both branches assert; none skips."""
    h = cgroups.detect()
    assert h.v2 is not None, "this machine has a cgroup2 mount (/sys/fs/cgroup/unified)"
    have = set(fs.read(h.v2.mount_point, "cgroup.controllers").split())
    if not {"memory", "pids", "cpu"} <= have:
        for flag, lim in (("--memory", limits.parse(memory="32m")), ("--pids-limit", limits.parse(pids_limit=10)),
                          ("--cpus", limits.parse(cpus="0.5"))):
            base = "fleet-it-" + secrets.token_hex(4)
            with pytest.raises(errors.FailedPrecondition, match=flag):
                V2Manager.create("c-" + secrets.token_hex(6), lim, hierarchy=h, parent=base + "/fleet")
            assert not os.path.exists(os.path.join(h.v2.mount_point, base)), "refused, yet something was created"
        return
    base = "fleet-it-" + secrets.token_hex(4)
    mgr = V2Manager.create("c-" + secrets.token_hex(6), limits.parse(memory="32m", pids_limit=10, cpus="0.5")
                           .with_defaults(), hierarchy=h, parent=base + "/fleet")
    env["managers"].append(mgr)
    env["dirs"].append(os.path.join(h.v2.mount_point, base))
    hog = env["start"](HOG)
    mgr.add(hog.pid)
    _go(hog)
    assert hog.wait(30) == -signal.SIGKILL and mgr.oom_killed()
    mgr.destroy()
