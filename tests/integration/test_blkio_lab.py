"""Block-IO flags end to end over SSH on the lab (this machine's cgroups: v1 blkio on hybrid hosts, io on v2):
--device-{read,write}-{bps,iops} and --blkio-weight read back from the container's cgroup files, inspect's
HostConfig, bad devices refused with exit 2 and nothing created."""

import json

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

PREFIX = "bio-"
HOST = "web1"
MB = 1 << 20


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _sh(lab, command):
    proc = _ssh(lab, HOST, command)
    assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    return proc.stdout


def _disk(lab):
    """(path, "MAJ:MIN") of a whole disk of the host (what the lab's hosts share with this machine)."""
    out = _sh(lab, "for d in /sys/block/*; do n=${d##*/}; case $n in loop*|ram*|zram*) continue;; esac; "
                   "[ -b /dev/$n ] && [ \"$(cat $d/size)\" != 0 ] && echo /dev/$n $(cat $d/dev) && break; done; true")
    if not out.strip():
        pytest.skip("the host has no whole-disk block device")
    path, dev = out.split()
    return path, dev


def test_throttles_and_weight_are_in_the_cgroup_and_in_inspect(clean):
    lab = clean
    path, dev = _disk(lab)
    name = PREFIX + "limited"
    lab.fleet("run", "-d", "-H", HOST, "--name", name, "--device-read-bps", path + ":1mb", "--device-write-bps",
              path + ":2mb", "--device-read-iops", path + ":100", "--device-write-iops", path + ":50",
              "--blkio-weight", "300", "busybox", "sleep", "300", check=True)
    (obj,) = json.loads(lab.fleet("inspect", "-H", HOST, name, check=True).stdout)
    hc = obj["HostConfig"]
    assert hc["BlkioDeviceReadBps"] == [{"Path": path, "Rate": MB}]
    assert hc["BlkioDeviceWriteBps"] == [{"Path": path, "Rate": 2 * MB}]
    assert hc["BlkioDeviceReadIOps"] == [{"Path": path, "Rate": 100}]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": path, "Rate": 50}]
    pid = obj["State"]["Pid"]
    lines = _sh(lab, "cat /proc/{}/cgroup".format(pid)).splitlines()
    blkio = [line.split(":", 2)[2] for line in lines if line.split(":")[1] == "blkio"]
    # docker discards the weight ("Weight discarded") where v1 has neither CFQ's nor BFQ's weight file
    weighs = not blkio or _sh(lab, "ls /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight "
                                   "2>/dev/null; true").strip() != ""
    assert hc["BlkioWeight"] == (300 if weighs else 0) and hc["BlkioWeightDevice"] == []
    if blkio:  # cgroup v1: one file per limit, "MAJ:MIN RATE"
        base = "/sys/fs/cgroup/blkio" + blkio[0]
        for file, rate in (("read_bps_device", MB), ("write_bps_device", 2 * MB), ("read_iops_device", 100),
                           ("write_iops_device", 50)):
            assert _sh(lab, "cat {}/blkio.throttle.{}".format(base, file)).split() == [dev, str(rate)]
    else:  # cgroup v2: one io.max line per device
        base = "/sys/fs/cgroup" + [line[3:] for line in lines if line.startswith("0::")][0]
        assert _sh(lab, "cat {}/io.max".format(base)).split() == [
            dev, "rbps={}".format(MB), "wbps={}".format(2 * MB), "riops=100", "wiops=50"]

    lab.fleet("update", "-H", HOST, "--blkio-weight", "700", name, check=True)
    (obj,) = json.loads(lab.fleet("inspect", "-H", HOST, name, check=True).stdout)
    assert obj["HostConfig"]["BlkioWeight"] == (700 if weighs else 0)
    assert obj["HostConfig"]["BlkioDeviceReadBps"] == [{"Path": path, "Rate": MB}]  # kept


@pytest.mark.parametrize("flag, value, needle", [
    ("--device-read-bps", "/dev/bio-nonexistent:1mb", "/dev/bio-nonexistent: no such file or directory"),
    ("--device-write-iops", "/dev/null:10", "/dev/null is not a block device"),
    ("--device-write-bps", "/dev/sda:fast", "invalid rate for device: /dev/sda:fast"),
])
def test_bad_devices_exit_2_naming_the_flag_and_create_nothing(clean, flag, value, needle):
    lab = clean
    proc = lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "bad", flag, value, "busybox", "true")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert flag in proc.stderr and needle in proc.stderr
    rc, ps = lab.fleet_json("ps", "-H", HOST, "-a", "-f", "name=^{}bad$".format(PREFIX))
    assert ps[HOST]["containers"] == []  # this test's own name only: another test's container is not its business
