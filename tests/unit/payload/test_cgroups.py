"""cgroups: mountinfo detection, Docker's limit parsing, and the v1/v2 managers on a fake cgroup tree (no root)."""

import errno
import os
import signal

import pytest

from agent_payload import errors
from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import fs, limits
from agent_payload.runtime.cgroups.v1 import V1Manager
from agent_payload.runtime.cgroups.v2 import V2Manager
from tests.helpers.cgroupfs import FakeKernel

MB = 1 << 20
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
"""
PURE_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


def _write_mountinfo(tmp_path, text):
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------------------------------------- detection

def test_detect_hybrid_v1_v2_and_none(tmp_path):
    h = cgroups.detect(_write_mountinfo(tmp_path, HYBRID), systemd_dir=str(tmp_path / "nope"))
    assert h.mode == "hybrid" and not h.systemd
    assert h.v1["cpu"].mount_point == h.v1["cpuacct"].mount_point == "/sys/fs/cgroup/cpu,cpuacct"
    assert "systemd" not in h.v1 and h.v2.mount_point == "/sys/fs/cgroup/unified"
    assert h.is_cgroupfs(os.makedev(0, 32)) and h.is_cgroupfs(os.makedev(0, 38))
    assert not h.is_cgroupfs(os.makedev(0, 28)) and not h.is_cgroupfs(os.makedev(0, 40))  # tmpfs, ext4
    assert cgroups.manager_class(h) is V1Manager  # runc: v1 controllers win on hybrid hosts

    (tmp_path / "systemd").mkdir()
    h = cgroups.detect(_write_mountinfo(tmp_path, PURE_V2), systemd_dir=str(tmp_path / "systemd"))
    assert h.mode == "v2" and h.systemd and h.v1 == {} and cgroups.manager_class(h) is V2Manager

    v1_only = "\n".join(line for line in HYBRID.splitlines() if "cgroup2" not in line)
    h = cgroups.detect(_write_mountinfo(tmp_path, v1_only), systemd_dir=str(tmp_path / "nope"))
    assert h.mode == "v1" and h.v2 is None

    h = cgroups.detect(_write_mountinfo(tmp_path, "50 23 0:40 / / rw - ext4 /dev/sda1 rw\n"), str(tmp_path))
    assert h.mode is None
    with pytest.raises(errors.FailedPrecondition, match="no cgroup hierarchy"):
        cgroups.manager_class(h)


def test_mountinfo_unescapes_and_prefers_whole_tree_mounts():
    text = ("60 1 0:50 /sub /a\\040b rw - cgroup cgroup rw,memory\n"
            "61 1 0:50 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    mounts = cgroups.parse_mountinfo(text)
    assert mounts[0].mount_point == "/a b" and mounts[0].root == "/sub"
    assert cgroups.Hierarchy(mounts, False).v1["memory"].mount_point == "/sys/fs/cgroup/memory"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".", "-x", "x" * 129, None, 5])
def test_container_id_must_be_one_safe_component(bad):
    with pytest.raises(errors.InvalidArgument):
        cgroups.check_container_id(bad)


@pytest.mark.parametrize("bad", ["../fleet", "fleet/../..", "a//b", "fl eet", "-x"])
def test_parent_is_validated(bad, monkeypatch):
    monkeypatch.delenv(cgroups.PARENT_ENV, raising=False)
    with pytest.raises(errors.InvalidArgument, match="invalid cgroup parent"):
        cgroups.resolve_parent(bad, "fleet")
    assert cgroups.resolve_parent(None, "fleet") == "fleet"
    monkeypatch.setenv(cgroups.PARENT_ENV, "/docker/fleet/")
    assert cgroups.resolve_parent(None, "fleet") == "docker/fleet"


# ---------------------------------------------------------------------------------------------- limits

@pytest.mark.parametrize("kw, want", [
    (dict(memory="32m"), dict(memory=32 * MB)),
    (dict(memory="6m"), dict(memory=6 * MB)),
    (dict(memory="1g", memory_swap="2g"), dict(memory=1 << 30, memory_swap=2 << 30)),
    (dict(memory="1.5g"), dict(memory=int(1.5 * (1 << 30)))),
    (dict(memory="64MiB"), dict(memory=64 * MB)),
    (dict(memory="8388608"), dict(memory=8 * MB)),
    (dict(memory=8 * MB), dict(memory=8 * MB)),
    (dict(memory="7000k"), dict(memory=7000 * 1024)),
    (dict(memory="0"), dict()),
    (dict(memory="32m", memory_swap="-1"), dict(memory=32 * MB, memory_swap=-1)),
    (dict(memory="32m", memory_swap="32m"), dict(memory=32 * MB, memory_swap=32 * MB)),
    (dict(memory_swap="-1"), dict(memory_swap=-1)),
    (dict(cpus="0.5"), dict(nano_cpus=500000000)),
    (dict(cpus="0.01"), dict(nano_cpus=10000000)),
    (dict(cpus="2"), dict(nano_cpus=2000000000)),
    (dict(cpus=1.5), dict(nano_cpus=1500000000)),
    (dict(cpus="0"), dict()),
    (dict(cpu_shares="512"), dict(cpu_shares=512)),
    (dict(cpu_shares=0), dict()),
    (dict(pids_limit="10"), dict(pids_limit=10)),
    (dict(pids_limit="-1"), dict(pids_limit=-1)),
    (dict(pids_limit=0), dict(pids_limit=-1)),
])
def test_parse_accepts(kw, want):
    assert limits.parse(ncpu=2, **kw) == limits.Limits(**want)


@pytest.mark.parametrize("kw, flag, message", [
    (dict(memory="abc"), "--memory", "invalid size: 'abc'"),
    (dict(memory="12q"), "--memory", "invalid size"),
    (dict(memory="1.2.3m"), "--memory", "invalid size"),
    (dict(memory="-5m"), "--memory", "invalid size"),
    (dict(memory=-5), "--memory", "must not be negative"),
    (dict(memory=True), "--memory", "invalid size"),
    (dict(memory="4m"), "--memory", "Minimum memory limit allowed is 6MB"),
    (dict(memory="6291455b"), "--memory", "Minimum memory limit allowed is 6MB"),
    (dict(memory="32m", memory_swap="16m"), "--memory-swap",
     "Minimum memoryswap limit should be larger than memory limit"),
    (dict(memory_swap="64m"), "--memory-swap", "You should always set the Memory limit when using Memoryswap"),
    (dict(memory="32m", memory_swap="-2"), "--memory-swap", "invalid size"),
    (dict(memory="32m", memory_swap=-2), "--memory-swap", "use -1 for unlimited"),
    (dict(memory="32m", memory_swap="lots"), "--memory-swap", "invalid size: 'lots'"),
    (dict(cpus="abc"), "--cpus", "failed to parse abc as a rational number"),
    (dict(cpus="nan"), "--cpus", "rational number"),
    (dict(cpus="-1"), "--cpus", "must not be negative"),
    (dict(cpus="0.001"), "--cpus", "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    (dict(cpus="2.5"), "--cpus", "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    (dict(cpus="0.0000000001"), "--cpus", "too precise"),
    (dict(cpu_shares="x"), "--cpu-shares", "not an integer"),
    (dict(cpu_shares="1.5"), "--cpu-shares", "not an integer"),
    (dict(cpu_shares=-3), "--cpu-shares", "must not be negative"),
    (dict(pids_limit="ten"), "--pids-limit", "not an integer"),
    (dict(pids_limit=-2), "--pids-limit", "positive number, or -1 or 0 for unlimited"),
])
def test_parse_rejects_naming_flag_and_value(kw, flag, message):
    with pytest.raises(errors.InvalidArgument) as info:
        limits.parse(ncpu=2, **kw)
    value = list(kw.values())[-1]
    assert 'invalid argument "{}" for "{}" flag'.format(value, flag) in info.value.message
    assert message in info.value.message


def test_cpu_shares_clamped_with_warning_and_weight_conversion():
    lim = limits.parse(cpu_shares=1)
    assert lim.cpu_shares == 2 and "adjusting to 2" in lim.warnings[0] and lim.cpu_weight == 1
    lim = limits.parse(cpu_shares=300000)
    assert lim.cpu_shares == 262144 and lim.cpu_weight == 10000
    # runc ConvertCPUSharesToCgroupV2Value: 1 + ((shares - 2) * 9999) / 262142
    assert limits.shares_to_weight(1024) == 39 and limits.shares_to_weight(512) == 20
    assert limits.shares_to_weight(None) is None and limits.shares_to_weight(0) is None


def test_derived_values_defaults_update_and_roundtrip():
    lim = limits.parse(memory="32m", cpus="0.5", pids_limit=10)
    assert lim.cpu_quota == 50000 and limits.Limits().cpu_quota is None
    full = lim.with_defaults()
    assert full.memory_swap == 64 * MB  # Docker: as much swap as memory
    assert limits.parse(memory="32m", memory_swap="-1").with_defaults().memory_swap == -1
    assert limits.Limits.from_dict(full.to_dict()) == full and limits.Limits().is_empty()
    assert full.host_config() == {"Memory": 32 * MB, "MemorySwap": 64 * MB, "NanoCpus": 500000000,
                                  "CpuShares": 0, "PidsLimit": 10}
    with pytest.raises(errors.InvalidArgument, match="unknown resource"):
        limits.Limits.from_dict({"memroy": 1})
    with pytest.raises(errors.InvalidArgument, match="must be an integer"):
        limits.Limits.from_dict({"memory": "32m"})

    up = full.updated(limits.parse(pids_limit="-1"))
    assert up.pids_limit == -1 and up.memory == 32 * MB and up.nano_cpus == 500000000
    assert full.updated(limits.parse(memory="48m")).memory == 48 * MB
    with pytest.raises(errors.InvalidArgument, match="Memory limit should be smaller than already set memoryswap"):
        full.updated(limits.parse(memory="128m"))
    assert full.updated(limits.parse(memory="128m", memory_swap="256m")).memory_swap == 256 * MB
    with pytest.raises(errors.InvalidArgument, match="Minimum memoryswap limit"):
        full.updated(limits.parse(memory_swap="16m", update=True))
    assert full.updated(limits.parse(memory_swap="40m", update=True)).memory_swap == 40 * MB
    with pytest.raises(errors.InvalidArgument, match="always set the Memory limit"):
        limits.Limits().updated(limits.parse(memory_swap="16m", update=True))

V1_LAYOUT = {"memory": ["memory"], "cpu,cpuacct": ["cpu", "cpuacct"], "pids": ["pids"], "freezer": ["freezer"],
             "blkio": ["blkio"]}


def _read(path):
    with open(path) as f:
        return f.read().strip()


# ---------------------------------------------------------------------------------------------- v1 manager

def test_v1_create_apply_update_stats_destroy(tmp_path, monkeypatch, sleeper):
    k = FakeKernel(monkeypatch, tmp_path, v1=V1_LAYOUT)
    h = k.hierarchy()
    lim = limits.parse(memory="32m", cpus="0.5", cpu_shares=512, pids_limit=10, ncpu=2).with_defaults()
    mgr = cgroups.create("c1", lim, hierarchy=h)
    assert isinstance(mgr, V1Manager)
    leaf = {c: os.path.join(str(tmp_path), m, "fleet", "c1") for m, cs in V1_LAYOUT.items() for c in cs}
    assert mgr.paths() == [leaf["memory"], leaf["cpu"], leaf["pids"], leaf["freezer"], leaf["blkio"]]  # cpuacct shared
    assert _read(leaf["memory"] + "/memory.limit_in_bytes") == str(32 * MB)
    assert _read(leaf["memory"] + "/memory.memsw.limit_in_bytes") == str(64 * MB)
    assert _read(leaf["cpu"] + "/cpu.cfs_quota_us") == "50000" and _read(leaf["cpu"] + "/cpu.cfs_period_us") == "100000"
    assert _read(leaf["cpu"] + "/cpu.shares") == "512" and _read(leaf["pids"] + "/pids.max") == "10"
    names = [w[1] for w in k.writes]
    # growing from unlimited: memsw must already allow the new memory limit -> memory first, memsw after
    assert names.index("memory.limit_in_bytes") < names.index("memory.memsw.limit_in_bytes")
    assert names.index("cpu.cfs_period_us") < names.index("cpu.cfs_quota_us")

    # a second payload process finds it from the id alone
    again = cgroups.attach("c1", hierarchy=h)
    assert again.paths() == mgr.paths()
    k.writes.clear()
    again.apply(lim.updated(limits.parse(memory="128m", memory_swap="256m", pids_limit=-1)))
    names = [w[1] for w in k.writes]
    assert names.index("memory.memsw.limit_in_bytes") < names.index("memory.limit_in_bytes")  # growing past memsw
    assert _read(leaf["pids"] + "/pids.max") == "max"
    assert _read(leaf["memory"] + "/memory.limit_in_bytes") == str(128 * MB)
    k.writes.clear()
    again.apply(limits.parse(memory="16m", memory_swap="20m"))
    names = [w[1] for w in k.writes]
    assert names.index("memory.limit_in_bytes") < names.index("memory.memsw.limit_in_bytes")  # shrinking

    p = sleeper()
    mgr.add(p.pid)
    assert mgr.pids() == [p.pid] and all(_read(d + "/cgroup.procs") == str(p.pid) for d in mgr.paths())
    with pytest.raises(errors.Conflict, match="has processes"):
        cgroups.create("c1", None, hierarchy=h)
    for name, text in {"memory.usage_in_bytes": "10485760", "memory.stat": "total_inactive_file 2097152\n",
                       "pids.current": "1"}.items():
        d = leaf["pids"] if name.startswith("pids") else leaf["memory"]
        open(os.path.join(d, name), "w").write(text)
    open(leaf["cpuacct"] + "/cpuacct.usage", "w").write("123456789")
    open(leaf["blkio"] + "/blkio.throttle.io_service_bytes_recursive", "w").write(
        "8:0 Read 4096\n8:0 Write 8192\n8:16 Read 1\n8:0 Total 12288\nTotal 12289\n")
    assert mgr.stats() == {"cpu_usage_ns": 123456789, "memory_usage": 8 * MB, "memory_limit": 16 * MB,
                           "pids_current": 1, "blkio_read": 4097, "blkio_write": 8192}

    assert mgr.oom_killed() is False
    open(leaf["memory"] + "/memory.oom_control", "w").write("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert mgr.oom_killed() is True

    mgr.destroy()
    assert p.wait(5) == -signal.SIGKILL
    assert not any(os.path.exists(d) for d in mgr.paths())
    assert not any(os.path.exists(os.path.dirname(d)) for d in mgr.paths())  # it made "fleet", so it removed it
    mgr.destroy()  # idempotent
    with pytest.raises(errors.NotFound):
        cgroups.attach("c1", hierarchy=h)


def test_v1_destroy_keeps_parent_it_did_not_create_and_siblings(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v1={"memory": ["memory"], "pids": ["pids"]})
    h = k.hierarchy()
    a = cgroups.create("a", None, hierarchy=h)
    b = cgroups.create("b", None, hierarchy=h)
    a.destroy()  # "fleet" still holds b: rmdir fails harmlessly
    assert os.path.isdir(b.paths()[0]) and not os.path.exists(a.paths()[0])
    cgroups.attach("b", hierarchy=h).destroy()  # attached: did not create "fleet", so leaves it
    assert os.path.isdir(os.path.join(str(tmp_path), "memory", "fleet"))
    fleet = os.path.join(str(tmp_path), "memory", "fleet")
    assert [e for e in os.listdir(fleet) if os.path.isdir(os.path.join(fleet, e))] == []


def test_v1_missing_controller_fails_before_anything_is_made(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v1={"memory": ["memory"], "freezer": ["freezer"]})
    with pytest.raises(errors.FailedPrecondition, match="--pids-limit needs the cgroup v1 pids controller"):
        cgroups.create("c", limits.parse(pids_limit=5), hierarchy=k.hierarchy())
    assert not os.path.exists(os.path.join(str(tmp_path), "memory", "fleet"))
    assert k.writes == []


def test_v1_bad_value_is_invalid_argument_naming_file_and_cleans_up(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v1={"pids": ["pids"]})
    real = k.write

    def einval(directory, name, data, check):
        if name == "pids.max":
            raise fs.fail(OSError(errno.EINVAL, "Invalid argument"), os.path.join(directory, name), data)
        return real(directory, name, data, check)

    monkeypatch.setattr(fs, "_write", einval)
    with pytest.raises(errors.InvalidArgument, match=r"writing '7' to .*/pids/fleet/c/pids.max: Invalid argument"):
        cgroups.create("c", limits.parse(pids_limit=7), hierarchy=k.hierarchy())
    assert not os.path.exists(os.path.join(str(tmp_path), "pids", "fleet"))


def test_v1_freeze_thaw_and_kill_all(tmp_path, monkeypatch, sleeper):
    k = FakeKernel(monkeypatch, tmp_path, v1={"freezer": ["freezer"], "pids": ["pids"]})
    mgr = cgroups.create("c", None, hierarchy=k.hierarchy())
    freezer = os.path.join(str(tmp_path), "freezer", "fleet", "c", "freezer.state")
    mgr.freeze()
    assert _read(freezer) == "FROZEN" and mgr.is_frozen()
    mgr.thaw()
    assert _read(freezer) == "THAWED" and not mgr.is_frozen()
    p, q = sleeper(), sleeper()
    mgr.add(p.pid)
    mgr.add(q.pid)
    k.writes.clear()
    mgr.kill_all(signal.SIGTERM)
    assert p.wait(5) == -signal.SIGTERM and q.wait(5) == -signal.SIGTERM
    # runc's order: freeze, signal, thaw -- nothing forks past us
    assert [w[2] for w in k.writes if w[1] == "freezer.state"] == ["FROZEN", "THAWED"]
    mgr.destroy()


def test_v1_oom_heuristic_without_oom_kill_counter(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v1={"memory": ["memory"]})
    mgr = cgroups.create("c", limits.parse(memory="8m"), hierarchy=k.hierarchy())
    d = mgr.paths()[0]
    open(d + "/memory.oom_control", "w").write("oom_kill_disable 0\nunder_oom 0\n")
    assert mgr.oom_killed() is False
    open(d + "/memory.failcnt", "w").write("3")
    open(d + "/memory.max_usage_in_bytes", "w").write(str(8 * MB))
    assert mgr.oom_killed() is True
    mgr.destroy()


# ---------------------------------------------------------------------------------------------- v2 manager

def test_v2_enables_controllers_top_down_and_writes_limits(tmp_path, monkeypatch, sleeper):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "io", "memory", "pids"])
    h = k.hierarchy()
    assert h.mode == "v2"
    lim = limits.parse(memory="32m", cpus="0.5", cpu_shares=1024, pids_limit=10, ncpu=2).with_defaults()
    mgr = cgroups.create("c2", lim, hierarchy=h)
    assert isinstance(mgr, V2Manager)
    top = os.path.join(str(tmp_path), "unified")
    leaf = os.path.join(top, "fleet", "c2")
    assert mgr.paths() == [leaf]
    assert _read(top + "/cgroup.subtree_control") == "cpu io memory pids"  # no systemd: we own the root
    assert _read(top + "/fleet/cgroup.subtree_control") == "cpu io memory pids"
    assert _read(leaf + "/cgroup.subtree_control") == ""  # a leaf: it holds processes
    assert _read(leaf + "/memory.max") == str(32 * MB) and _read(leaf + "/memory.swap.max") == str(32 * MB)
    assert _read(leaf + "/cpu.max") == "50000 100000" and _read(leaf + "/cpu.weight") == "39"
    assert _read(leaf + "/pids.max") == "10"

    cgroups.attach("c2", hierarchy=h).apply(limits.parse(memory_swap="-1", cpus="0", pids_limit=0))
    assert _read(leaf + "/memory.swap.max") == "max" and _read(leaf + "/pids.max") == "max"
    assert _read(leaf + "/cpu.max") == "50000 100000"  # --cpus 0 means "unchanged"
    mgr.apply(limits.Limits(nano_cpus=0))
    assert _read(leaf + "/cpu.max") == "max 100000"
    mgr.apply(limits.Limits(memory_swap=48 * MB))
    assert _read(leaf + "/memory.swap.max") == str(16 * MB)  # docker's memory+swap total minus memory.max
    with pytest.raises(errors.InvalidArgument, match="below the memory limit"):
        mgr.apply(limits.Limits(memory_swap=16 * MB))

    open(leaf + "/memory.current", "w").write(str(10 * MB))
    open(leaf + "/memory.stat", "w").write("anon 1\ninactive_file {}\n".format(2 * MB))
    open(leaf + "/cpu.stat", "w").write("usage_usec 1500\nuser_usec 1000\n")
    open(leaf + "/pids.current", "w").write("3")
    open(leaf + "/io.stat", "w").write("8:0 rbytes=100 wbytes=200 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n")
    assert mgr.stats() == {"cpu_usage_ns": 1500000, "memory_usage": 8 * MB, "memory_limit": 32 * MB,
                           "pids_current": 3, "blkio_read": 101, "blkio_write": 202}
    assert not mgr.oom_killed()
    open(leaf + "/memory.events", "w").write("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert mgr.oom_killed()

    p = sleeper()
    mgr.add(p.pid)
    assert mgr.pids() == [p.pid]
    mgr.destroy()  # SIGKILL through cgroup.kill
    assert p.wait(5) == -signal.SIGKILL
    assert ("fleet/c2", "cgroup.kill", "1") in [(os.path.relpath(w[0], "unified"), w[1], w[2]) for w in k.writes]
    assert not os.path.exists(os.path.join(top, "fleet"))


def test_v2_systemd_with_a_parent_never_writes_root_and_uses_it(tmp_path, monkeypatch):
    # a parent asked for ($FLEET_CGROUP_PARENT) on a systemd host: no scope layout, only what systemd enabled
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    open(top + "/cgroup.subtree_control", "w").write("memory pids")  # what systemd enabled
    h = k.hierarchy(systemd=True)
    monkeypatch.setenv(cgroups.PARENT_ENV, "fleet.slice")
    with pytest.raises(errors.FailedPrecondition, match="--cpus needs the cgroup v2 cpu controller.*systemd"):
        cgroups.create("c", limits.parse(cpus="1", ncpu=2), hierarchy=h)
    assert k.writes == [] and not os.path.exists(top + "/fleet.slice")
    mgr = cgroups.create("c", limits.parse(memory="64m"), hierarchy=h)
    assert mgr.paths() == [top + "/fleet.slice/c"]
    assert all(not w[0].endswith("unified") for w in k.writes)
    assert _read(top + "/fleet.slice/cgroup.subtree_control") == "memory pids"
    mgr.destroy()


def test_v2_no_internal_process_rule_is_explained(tmp_path, monkeypatch, sleeper):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["memory", "pids"])
    h = k.hierarchy()
    top = os.path.join(str(tmp_path), "unified")
    fs._write(top, "cgroup.subtree_control", "+memory +pids", h.is_cgroupfs)
    fs.mkdir(top, "mine", h.is_cgroupfs)  # e.g. the payload's own cgroup: it holds a process
    p = sleeper()
    fs._write(top + "/mine", "cgroup.procs", p.pid, h.is_cgroupfs)
    with pytest.raises(errors.FailedPrecondition, match="no-internal-process"):
        cgroups.create("y", limits.parse(memory="64m"), hierarchy=h, parent="mine")
    assert not os.path.exists(top + "/mine/y")


def test_v2_freeze_waits_for_frozen_and_thaws_on_timeout(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=[])
    mgr = cgroups.create("c", None, hierarchy=k.hierarchy())
    leaf = mgr.paths()[0]
    with pytest.raises(errors.Unavailable, match="did not freeze"):
        mgr.freeze(timeout=0.05)  # the fake kernel never reports "frozen 1"
    assert _read(leaf + "/cgroup.freeze") == "0"
    open(leaf + "/cgroup.events", "w").write("populated 1\nfrozen 1\n")
    mgr.freeze()
    assert mgr.is_frozen() and _read(leaf + "/cgroup.freeze") == "1"
    open(leaf + "/cgroup.events", "w").write("populated 1\nfrozen 0\n")
    mgr.thaw()
    assert not mgr.is_frozen()
    assert mgr.stats()["memory_usage"] is None and mgr.oom_killed() is False  # no memory controller
    mgr.destroy()


# ---------------------------------------------------------------------------------------------- the checked writer

def test_write_refuses_paths_not_on_cgroupfs(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("old")
    elsewhere = cgroups.Hierarchy(cgroups.parse_mountinfo(
        "1 1 0:9999 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"), False)
    with pytest.raises(errors.FailedPrecondition, match="not on a cgroup filesystem"):
        fs._write(str(tmp_path / "d"), "f", "x", elsewhere.is_cgroupfs)
    with pytest.raises(errors.FailedPrecondition, match="not on a cgroup filesystem"):
        fs.mkdir(str(tmp_path / "d"), "new", elsewhere.is_cgroupfs)
    with pytest.raises(errors.FailedPrecondition, match="not on a cgroup filesystem"):
        fs.rmdir(str(tmp_path), "d", elsewhere.is_cgroupfs)
    assert (tmp_path / "d" / "f").read_text() == "old" and not (tmp_path / "d" / "new").exists()
    # the real host's check, too (tmp is no cgroupfs)
    with pytest.raises(errors.FailedPrecondition, match="not on a cgroup filesystem"):
        fs._write(str(tmp_path / "d"), "f", "x", cgroups.Hierarchy(cgroups.parse_mountinfo(
            open("/proc/self/mountinfo").read()), False).is_cgroupfs)


def test_write_does_not_follow_links_out_of_cgroupfs(tmp_path):
    same = os.stat(str(tmp_path)).st_dev
    ok = lambda dev: dev == same  # noqa: E731
    (tmp_path / "d").mkdir()
    target = tmp_path / "target"
    target.write_text("keep")
    os.symlink(str(target), str(tmp_path / "d" / "memory.max"))
    with pytest.raises(errors.FailedPrecondition, match="memory.max"):
        fs._write(str(tmp_path / "d"), "memory.max", "1", ok)
    assert target.read_text() == "keep"
    if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != same:
        os.symlink("/dev/shm", str(tmp_path / "link"))  # a directory swapped for a link to another fs
        with pytest.raises(errors.FailedPrecondition, match="not on a cgroup filesystem"):
            fs.mkdir(str(tmp_path / "link"), "x", ok)
    with pytest.raises(errors.Internal):
        fs._write(str(tmp_path), "../etc/passwd", "x", ok)
    with pytest.raises(errors.FailedPrecondition, match="No such file"):
        fs._write(str(tmp_path / "d"), "nope", "1", ok)  # never creates files
