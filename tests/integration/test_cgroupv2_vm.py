"""The cgroup v2 suite on systemd VM hosts (the ``vm_lab`` fixture: Debian guests under qemu, unified hierarchy):
every limit docker has, ``update``, ``stats``, ``pause``, OOM kills, the eBPF device policy, seccomp, bridge + nft
publishing, a user network's DNS, volumes and ``facts`` -- each READ BACK from the guest's kernel. A container's
cgroup is found through the guest's /proc/<pid>/cgroup, never by a hard-coded path (its placement is systemd's
and the shim's business). TCG emulation is slow: few tests, containers shared across asserts."""

import json

import pytest

from tests.helpers.vmlab import poll

pytestmark = pytest.mark.integration

PREFIX = "v2vm-"
MB = 1 << 20


@pytest.fixture(scope="module")
def vm(vm_lab):
    """The VM lab, with every container/network/volume of this module removed before and after the module (each
    test names its own; cleaning once saves the slow guest round trips)."""
    _cleanup(vm_lab)
    yield vm_lab
    _cleanup(vm_lab)


def _cleanup(lab):
    lab.remove_containers(PREFIX)
    for host in lab.vm_hosts:
        lab.fleet("network", "rm", "-H", host, PREFIX + "net")
        lab.fleet("volume", "rm", "-H", host, PREFIX + "vol")


def _run(lab, host, name, *args):
    """run -d; the container's inspect object (running)."""
    lab.fleet("run", "-d", "-H", host, "--name", name, *args, check=True)
    obj = _inspect(lab, host, name)
    assert obj["State"]["Running"], obj["State"]
    return obj


def _inspect(lab, host, name):
    (obj,) = json.loads(lab.fleet("inspect", "-H", host, name, check=True).stdout)
    return obj


def _sh(lab, host, command):
    return lab.ssh(host, command).stdout


def _cgroup(lab, host, pid):
    """The container's cgroup directory in the guest, from /proc/<pid>/cgroup's unified ("0::") line."""
    (line,) = [x for x in _sh(lab, host, "cat /proc/{}/cgroup".format(pid)).splitlines() if x.startswith("0::")]
    return "/sys/fs/cgroup" + line[3:]


def _files(lab, host, directory, *names):
    """{name: content stripped} of cgroup files in one SSH round trip (a missing file reads as None)."""
    script = "; ".join("echo '=={0}'; cat {1}/{0} 2>/dev/null || echo '<missing>'".format(n, directory)
                       for n in names)
    out, cur = {}, None
    for line in _sh(lab, host, script).splitlines():
        if line.startswith("==") and line[2:] in names:
            cur = line[2:]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return {k: (None if v == ["<missing>"] else "\n".join(v).strip()) for k, v in out.items()}


def _disk(lab, host):
    """(/dev/NAME, "MAJ:MIN") of the whole disk holding the guest's root filesystem (its virtio disk)."""
    out = _sh(lab, host, "d=$(awk '$5==\"/\"{print $3}' /proc/self/mountinfo | tail -n 1); "
                         "[ -e /sys/dev/block/$d/partition ] && d=$(cat /sys/dev/block/$d/../dev); "
                         "echo /dev/$(basename $(readlink -f /sys/dev/block/$d)) $d")
    path, dev = out.split()
    return path, dev


def _stats(lab, host, name):
    rc, data = lab.fleet_json("stats", "-H", host, "--no-stream", name)
    assert rc == 0, data
    (row,) = data[host]["stats"]
    return row




def test_memory_cpu_pids_limits_update_stats_and_pause_in_the_guest_kernel(vm):
    """--memory/--memory-swap/--cpus/--cpu-shares/--pids-limit land in memory.max, memory.swap.max, cpu.max,
    cpu.weight, pids.max; update changes them live; stats reads them; pause sets cgroup.freeze."""
    for host in vm.vm_hosts:
        name = PREFIX + "lim"
        obj = _run(vm, host, name, "--memory", "64m", "--memory-swap", "96m", "--cpus", "0.5", "--cpu-shares", "512",
                   "--pids-limit", "40", "busybox", "sleep", "600")
        cg = _cgroup(vm, host, obj["State"]["Pid"])
        got = _files(vm, host, cg, "memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max",
                     "cgroup.procs")
        assert got["memory.max"] == str(64 * MB) and got["memory.swap.max"] == str(32 * MB), got
        assert got["cpu.max"] == "50000 100000" and got["cpu.weight"] == "20", got  # runc's shares -> weight
        assert got["pids.max"] == "40" and str(obj["State"]["Pid"]) in got["cgroup.procs"].split(), got

        vm.fleet("update", "-H", host, "--memory", "128m", "--memory-swap", "256m", "--cpus", "1",
                 "--cpu-shares", "2048", "--pids-limit", "50", name, check=True)
        got = _files(vm, host, cg, "memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max")
        assert got == {"memory.max": str(128 * MB), "memory.swap.max": str(128 * MB), "cpu.max": "100000 100000",
                       "cpu.weight": "79", "pids.max": "50"}, got
        hc = _inspect(vm, host, name)["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == \
            (128 * MB, 256 * MB, 10 ** 9, 2048, 50)

        row = _stats(vm, host, name)
        assert row["memory_limit"] == 128 * MB and 0 < row["memory_usage"] < 128 * MB and row["pids"] == 1, row

        vm.fleet("pause", "-H", host, name, check=True)
        got = _files(vm, host, cg, "cgroup.freeze", "cgroup.events")
        assert got["cgroup.freeze"] == "1" and "frozen 1" in got["cgroup.events"], got
        assert _inspect(vm, host, name)["State"]["Status"] == "paused"
        vm.fleet("unpause", "-H", host, name, check=True)
        got = _files(vm, host, cg, "cgroup.freeze", "cgroup.events")
        assert got["cgroup.freeze"] == "0" and "frozen 0" in got["cgroup.events"], got
        vm.fleet("rm", "-f", "-H", host, name, check=True)
        assert _sh(vm, host, "test -d {} && echo left || echo gone".format(cg)).strip() == "gone"


def test_block_io_limits_are_io_max_and_io_weight_and_stats_count_the_disk(vm):
    """--device-{read,write}-{bps,iops} on the guest's virtio disk -> one io.max line; --blkio-weight ->
    io.weight (io.bfq.weight under BFQ); O_DIRECT writes show in stats' BLOCK I/O (io.stat)."""
    for host in vm.vm_hosts:
        path, dev = _disk(vm, host)
        name = PREFIX + "bio"
        obj = _run(vm, host, name, "--device-read-bps", path + ":1mb", "--device-write-bps", path + ":8mb",
                   "--device-read-iops", path + ":100", "--device-write-iops", path + ":400", "--blkio-weight", "300",
                   "busybox", "sleep", "600")
        cg = _cgroup(vm, host, obj["State"]["Pid"])
        got = _files(vm, host, cg, "io.max", "io.weight", "io.bfq.weight")
        (line,) = [x for x in got["io.max"].splitlines() if x.startswith(dev + " ")]
        assert line.split() == [dev, "rbps={}".format(MB), "wbps={}".format(8 * MB), "riops=100", "wiops=400"], got
        if got["io.bfq.weight"] is not None:
            assert got["io.bfq.weight"].splitlines()[0].split()[-1] == "300", got
        else:
            assert got["io.weight"].splitlines()[0] == "default {}".format(1 + (300 - 10) * 9999 // 990), got
        hc = _inspect(vm, host, name)["HostConfig"]
        assert hc["BlkioDeviceReadBps"] == [{"Path": path, "Rate": MB}] and hc["BlkioWeight"] == 300, hc

        vm.fleet("exec", "-H", host, name, "dd", "if=/dev/zero", "of=/blk", "bs=64k", "count=64", "oflag=direct",
                 check=True, timeout=300)
        assert _stats(vm, host, name)["block_write"] >= 4 * MB


def test_oom_kill_is_seen_through_memory_events(vm):
    for host in vm.vm_hosts:
        proc = vm.fleet("run", "-H", host, "--name", PREFIX + "hog", "--memory", "16m", "--memory-swap", "16m",
                        "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done", timeout=600)
        assert proc.returncode == 137, (proc.stdout, proc.stderr)
        state = _inspect(vm, host, PREFIX + "hog")["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137, state
        proc = vm.fleet("run", "-H", host, "--name", PREFIX + "fine", "--memory", "16m", "busybox", "true")
        assert proc.returncode == 0, proc.stderr
        assert _inspect(vm, host, PREFIX + "fine")["State"]["OOMKilled"] is False


def test_device_policy_refuses_a_mknod_disk_and_seccomp_filters_the_container(vm):
    """The eBPF device program: mknod of the guest's disk succeeds (CAP_MKNOD) but opening it is refused; the
    default seccomp filter is in the kernel's view of the container's process (Seccomp: 2), unconfined has none."""
    for host in vm.vm_hosts:
        _path, dev = _disk(vm, host)
        major, minor = dev.split(":")
        obj = _run(vm, host, PREFIX + "dev", "busybox", "sleep", "600")
        proc = vm.fleet("exec", "-H", host, PREFIX + "dev", "sh", "-c",
                        "mknod /tmp/disk b {} {} && echo made && head -c 1 /tmp/disk".format(major, minor))
        assert "made" in proc.stdout and proc.returncode != 0, (proc.stdout, proc.stderr)
        assert "Operation not permitted" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
        status = _sh(vm, host, "grep ^Seccomp: /proc/{}/status".format(obj["State"]["Pid"]))
        assert status.split() == ["Seccomp:", "2"], status
        free = _run(vm, host, PREFIX + "nosec", "--security-opt", "seccomp=unconfined", "busybox", "sleep", "600")
        status = _sh(vm, host, "grep ^Seccomp: /proc/{}/status".format(free["State"]["Pid"]))
        assert status.split() == ["Seccomp:", "0"], status


def test_published_port_user_network_dns_volume_net_io_and_facts(vm):
    """bridge + nft DNAT: the guest fetches the published port; a user network resolves a container by name; a
    named volume's file is on the guest's disk; stats counts the served bytes; facts' OVERLAY is the guest's."""
    fetch = ("python3 -c \"import urllib.request; "
             "print(len(urllib.request.urlopen('http://{}:18080/', timeout=20).read()))\"")
    for host in vm.vm_hosts:
        web = PREFIX + "web"
        _run(vm, host, web, "-p", "18080:80", "-v", PREFIX + "vol:/www", "busybox", "sh", "-c",
             "head -c 200000 /dev/zero > /www/index.html; exec httpd -f -p 80 -h /www")
        address = _sh(vm, host, "ip -4 -o addr show scope global | awk '{print $4}' | head -n 1").split("/")[0]
        for target in ("127.0.0.1", address):
            body = poll("the published port", lambda: vm.ssh(host, fetch.format(target), check=False).stdout,
                        timeout=60.0)
            assert body.strip() == "200000", body
        assert "18080" in _sh(vm, host, "nft list ruleset")
        row = _stats(vm, host, web)
        assert row["net_tx"] >= 2 * 200000 and row["net_rx"] > 0, row

        mountpoint = json.loads(vm.fleet("volume", "inspect", "-H", host, PREFIX + "vol", check=True).stdout)
        mountpoint = mountpoint[0]["Mountpoint"]
        assert _sh(vm, host, "wc -c < {}/index.html".format(mountpoint)).strip() == "200000"

        vm.fleet("network", "create", "-H", host, PREFIX + "net", check=True)
        db = _run(vm, host, PREFIX + "db", "--network", PREFIX + "net", "busybox", "sleep", "600")
        ip = list(db["NetworkSettings"]["Networks"].values())[0]["IPAddress"]
        proc = vm.fleet("run", "--rm", "-H", host, "--network", PREFIX + "net", "busybox",
                        "busybox", "nslookup", PREFIX + "db")
        assert proc.returncode == 0 and ip in proc.stdout, (proc.stdout, proc.stderr)

        rc, facts = vm.fleet_json("facts", "-H", host)
        assert rc == 0, facts
        loaded = "overlay" in _sh(vm, host, "awk '{print $NF}' /proc/filesystems").split()
        assert facts[host]["overlay_state"] == ("loaded" if loaded else "loadable"), facts
        assert facts[host]["cgroup"] == "v2"
