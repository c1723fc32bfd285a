"""cgroups wired into containers, end to end over SSH on the lab: --memory & co., OOM kill, update, stats,
pause/unpause, bad values, and no cgroup left behind by rm -f (the lab hosts share this machine's cgroup tree)."""

import json
import time

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

PREFIX = "cg-"
HOST = "web1"
MB = 1 << 20


def _cleanup(lab):
    """Remove every container this module made (names start with PREFIX), on every host."""
    lab.remove_containers(PREFIX)


@pytest.fixture
def clean(lab):
    _cleanup(lab)
    yield lab
    _cleanup(lab)


def _inspect(lab, name, host=HOST):
    (obj,) = json.loads(lab.fleet("inspect", "-H", host, name, check=True).stdout)
    return obj


def _sh(lab, command, host=HOST):
    return _ssh(lab, host, command)


def _cgroup_dirs(lab, cid, host=HOST):
    """Every /sys/fs/cgroup/<controller>/fleet/<id> (and a cgroup2 one) that exists on the host."""
    proc = _sh(lab, "ls -d /sys/fs/cgroup/*/fleet/{0} /sys/fs/cgroup/fleet/{0} 2>/dev/null; true".format(cid), host)
    return proc.stdout.split()


def _run_detached(lab, name, *args):
    lab.fleet("run", "-d", "-H", HOST, "--name", name, *args, check=True)
    obj = _inspect(lab, name)
    assert obj["State"]["Running"], obj["State"]
    return obj


def _log_lines(lab, name):
    return len(lab.fleet("logs", "-H", HOST, name, check=True).stdout.splitlines())


def test_memory_limit_shows_in_inspect_and_the_cgroup_and_update_changes_it_live(clean):
    lab = clean
    obj = _run_detached(lab, PREFIX + "mem", "--memory", "32m", "--cpus", "0.5", "--pids-limit", "50",
                        "-c", "512", "busybox", "sleep", "300")
    cid = obj["Id"]
    hc = obj["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == \
        (32 * MB, 64 * MB, 500000000, 512, 50)
    mem = "/sys/fs/cgroup/memory/fleet/{}/".format(cid)
    assert _sh(lab, "cat " + mem + "memory.limit_in_bytes").stdout.strip() == str(32 * MB)
    assert _sh(lab, "cat /sys/fs/cgroup/cpu/fleet/{}/cpu.cfs_quota_us".format(cid)).stdout.strip() == "50000"
    assert _sh(lab, "cat /sys/fs/cgroup/pids/fleet/{}/pids.max".format(cid)).stdout.strip() == "50"
    # the container's init really is in it (placed before it ran anything)
    procs = _sh(lab, "cat " + mem + "cgroup.procs").stdout.split()
    assert str(obj["State"]["Pid"]) in procs

    proc = lab.fleet("update", "-H", HOST, "--memory", "64m", PREFIX + "mem")
    assert proc.returncode == 0, proc.stderr
    assert "updated" in proc.stdout
    assert _sh(lab, "cat " + mem + "memory.limit_in_bytes").stdout.strip() == str(64 * MB)
    assert _inspect(lab, PREFIX + "mem")["HostConfig"]["Memory"] == 64 * MB  # persisted

    # stats --no-stream: one table, HOST first, docker's columns, the limit in the MEM USAGE / LIMIT column
    proc = lab.fleet("stats", "-H", HOST, "--no-stream", PREFIX + "mem")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "CONTAINER", "ID"] and "MEM USAGE / LIMIT" in lines[0]
    (row,) = [line for line in lines[1:] if PREFIX + "mem" in line]
    assert row.startswith(HOST) and cid[:12] in row and "/ 64MiB" in row, row
    rc, data = lab.fleet_json("stats", "-H", HOST, "--no-stream")
    (s,) = [s for s in data[HOST]["stats"] if s["name"] == PREFIX + "mem"]
    assert s["memory_limit"] == 64 * MB and 0 < s["memory_usage"] < 64 * MB and s["pids"] == 1

    lab.fleet("rm", "-f", "-H", HOST, PREFIX + "mem", check=True)
    assert _cgroup_dirs(lab, cid) == []


def test_cgroup_exists_without_limits_and_rm_f_removes_every_controller_dir(clean):
    lab = clean
    cid = _run_detached(lab, PREFIX + "plain", "busybox", "sleep", "300")["Id"]
    dirs = _cgroup_dirs(lab, cid)
    assert "/sys/fs/cgroup/memory/fleet/" + cid in dirs and "/sys/fs/cgroup/freezer/fleet/" + cid in dirs, dirs
    lab.fleet("rm", "-f", "-H", HOST, PREFIX + "plain", check=True)
    assert _cgroup_dirs(lab, cid) == []


def test_memory_hog_is_oom_killed(clean):
    lab = clean
    proc = lab.fleet("run", "-H", HOST, "--name", PREFIX + "hog", "--memory", "16m", "--memory-swap", "16m",
                     "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done")
    assert proc.returncode == 137, (proc.stdout, proc.stderr)
    obj = _inspect(lab, PREFIX + "hog")
    assert obj["State"]["OOMKilled"] is True and obj["State"]["ExitCode"] == 137, obj["State"]
    assert _cgroup_dirs(lab, obj["Id"]) == []  # the shim destroyed it after reaping

    # and a container that exits normally is not reported as OOM-killed
    proc = lab.fleet("run", "-H", HOST, "--name", PREFIX + "fine", "--memory", "16m", "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    assert _inspect(lab, PREFIX + "fine")["State"]["OOMKilled"] is False


def test_pause_freezes_and_unpause_resumes(clean):
    lab = clean
    name = PREFIX + "tick"
    obj = _run_detached(lab, name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")
    pid = obj["State"]["Pid"]
    time.sleep(0.5)
    lab.fleet("pause", "-H", HOST, name, check=True)
    rc, ps = lab.fleet_json("ps", "-H", HOST, "-f", "name=^" + name + "$")
    (c,) = ps[HOST]["containers"]
    assert c["state"] == "paused" and c["status"].startswith("Up ") and c["status"].endswith("(Paused)"), c
    state = _inspect(lab, name)["State"]
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    proc_state = _sh(lab, "grep ^State: /proc/{}/status".format(pid)).stdout.split()[1]
    assert proc_state in ("D", "T"), proc_state
    before = _log_lines(lab, name)
    time.sleep(1.0)
    assert _log_lines(lab, name) == before  # frozen: not one more line

    assert lab.fleet("pause", "-H", HOST, name).returncode != 0  # already paused
    lab.fleet("unpause", "-H", HOST, name, check=True)
    time.sleep(1.0)
    assert _log_lines(lab, name) > before
    state = _inspect(lab, name)["State"]
    assert state["Status"] == "running" and state["Paused"] is False

    # stop of a paused container thaws it first, so the stop signal acts at once
    lab.fleet("pause", "-H", HOST, name, check=True)
    started = time.monotonic()
    lab.fleet("kill", "-H", HOST, name, check=True)
    assert time.monotonic() - started < 10
    state = _inspect(lab, name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137

    proc = lab.fleet("pause", "-H", HOST, name)
    assert proc.returncode != 0 and "is not running" in proc.stdout + proc.stderr


@pytest.mark.parametrize("flag,value", [("--memory", "1k"), ("--cpus", "99"), ("--memory-swap", "8m"),
                                        ("--pids-limit", "x")])
def test_bad_values_exit_2_naming_the_flag_and_create_nothing(clean, flag, value):
    lab = clean
    name = PREFIX + "bad"
    for command in ("run", "create"):
        args = [command, "-H", "web*", "--name", name, flag, value]
        if flag == "--memory-swap":
            args += ["--memory", "16m"]  # swap below memory
        proc = lab.fleet(*args, "busybox", "true")
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert '"{}"'.format(flag) in proc.stderr, proc.stderr
    rc, ps = lab.fleet_json("ps", "-H", "web*", "-a", "-f", "name=^" + name + "$")
    assert all(not data["containers"] for data in ps.values())


def test_update_of_a_stopped_container_is_persisted_and_bad_update_changes_nothing(clean):
    lab = clean
    name = PREFIX + "upd"
    lab.fleet("create", "-H", HOST, "--name", name, "--memory", "32m", "busybox", "sleep", "300", check=True)
    lab.fleet("update", "-H", HOST, "--memory", "48m", "--memory-swap", "96m", name, check=True)
    hc = _inspect(lab, name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (48 * MB, 96 * MB)
    proc = lab.fleet("update", "-H", HOST, "--cpus", "99", name)
    assert proc.returncode == 2 and '"--cpus"' in proc.stderr
    assert lab.fleet("update", "-H", HOST, name).returncode == 2  # no flag at all
    lab.fleet("start", "-H", HOST, name, check=True)
    cid = _inspect(lab, name)["Id"]
    out = _sh(lab, "cat /sys/fs/cgroup/memory/fleet/{}/memory.limit_in_bytes".format(cid)).stdout.strip()
    assert out == str(48 * MB)
    assert _inspect(lab, name)["HostConfig"]["NanoCpus"] == 0


def _stats(lab, name):
    rc, data = lab.fleet_json("stats", "-H", HOST, "--no-stream", name)
    assert rc == 0, data
    (s,) = data[HOST]["stats"]
    return s


def test_stats_counts_the_bridge_traffic_and_block_io_of_a_container(clean):
    """NET I/O: the container's netns counters without lo (nginx on the bridge served 256 KiB to another host);
    BLOCK I/O: the cgroup's (8 MiB written with O_DIRECT); a --network host container counts no traffic (docker)."""
    lab = clean
    name = PREFIX + "web"
    html = _sh(lab, "d=$(mktemp -d) && head -c 262144 /dev/zero > $d/big && chmod 755 $d && chmod 644 $d/big && "
                    "echo $d").stdout.strip()
    assert html.startswith("/"), html
    try:
        _run_detached(lab, name, "-p", "8091:80", "-v", html + ":/var/www/html:ro", "nginx")
        before = _stats(lab, name)
        assert before["net_rx"] < 64 * 1024 and before["net_tx"] < 64 * 1024, before
        url = "http://{}:8091/big".format(lab.address(HOST))
        proc = _ssh(lab, "web2", "curl -s -m 10 -o /dev/null -w '%{size_download}' " + url)
        assert proc.stdout.strip() == str(256 * 1024), (proc.stdout, proc.stderr)
        after = _stats(lab, name)
        assert after["net_tx"] >= before["net_tx"] + 256 * 1024 and after["net_rx"] > before["net_rx"], after
        lines = lab.fleet("stats", "-H", HOST, "--no-stream", name, check=True).stdout.splitlines()
        column = lines[0].index("NET I/O")
        assert not lines[1][column:].startswith("0B / 0B"), lines
    finally:
        _sh(lab, "rm -rf " + html)
    disk = PREFIX + "disk"
    _run_detached(lab, disk, "--network", "host", "busybox", "sleep", "300")
    lab.fleet("exec", "-H", HOST, disk, "dd", "if=/dev/zero", "of=/blk", "bs=1M", "count=8", "oflag=direct",
              check=True)
    s = _stats(lab, disk)
    assert s["block_write"] >= 8 * MB, s
    assert (s["net_rx"], s["net_tx"]) == (0, 0), s
