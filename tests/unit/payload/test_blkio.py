"""Block-IO flags: docker's syntax (hostopts, both ends), Limits fields and HostConfig, and the cgroup files v1 and
v2 managers write for them (a recorded fake cgroupfs; the lab and the VM suite read the real kernel's)."""

import os

import pytest

from agent_payload import errors, hostopts
from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import fs, limits
from agent_payload.runtime.cgroups.v1 import V1Manager
from agent_payload.runtime.cgroups.v2 import V2Manager, blkio_to_io_weight
from agent_payload.runtime.spec import limit_flags

MB = 1 << 20


@pytest.mark.parametrize("kw, want", [
    ({"device_read_bps": ["/dev/sda:1mb"]}, {"device_read_bps": [{"Path": "/dev/sda", "Rate": MB}]}),
    ({"device_write_bps": ["/dev/sda:512k", "/dev/sdb:10"]},
     {"device_write_bps": [{"Path": "/dev/sda", "Rate": 512 * 1024}, {"Path": "/dev/sdb", "Rate": 10}]}),
    ({"device_read_iops": ["/dev/sda:100", "/dev/sda:200"]},  # a device given twice: the last one
     {"device_read_iops": [{"Path": "/dev/sda", "Rate": 200}]}),
    ({"device_write_iops": ["/dev/disk/by-path/pci-0000:00:04.0:7"]},  # colons in the path: the last one splits
     {"device_write_iops": [{"Path": "/dev/disk/by-path/pci-0000:00:04.0", "Rate": 7}]}),
    ({"blkio_weight": "300", "blkio_weight_device": ["/dev/sda:0", "/dev/vda:1000"]},
     {"blkio_weight": 300, "blkio_weight_device": [{"Path": "/dev/sda", "Weight": 0},
                                                   {"Path": "/dev/vda", "Weight": 1000}]}),
    ({"blkio_weight": "0"}, {}),  # 0: not set, as docker
])
def test_blkio_flags_parse_to_hostconfig_shapes(kw, want):
    got = {k: v for k, v in hostopts.blkio_from_flags(**kw).items() if v is not None}
    assert got == want
    assert limits.parse(**kw).to_dict() == want


@pytest.mark.parametrize("kw, flag, why", [
    ({"device_read_bps": ["/dev/sda"]}, "--device-read-bps", "bad format: /dev/sda"),
    ({"device_read_bps": [":1mb"]}, "--device-read-bps", "bad format: :1mb"),
    ({"device_write_bps": ["sda:1mb"]}, "--device-write-bps", "bad format for device path: sda:1mb"),
    ({"device_write_bps": ["/dev/sda:fast"]}, "--device-write-bps", "invalid rate for device: /dev/sda:fast"),
    ({"device_read_bps": ["/dev/sda:-1"]}, "--device-read-bps", "invalid rate for device"),
    ({"device_read_iops": ["/dev/sda:1k"]}, "--device-read-iops", "<device-path>:<number>. Number must"),
    ({"device_write_iops": ["/dev/sda:-3"]}, "--device-write-iops", "invalid rate for device"),
    ({"blkio_weight_device": ["/dev/sda:5"]}, "--blkio-weight-device", "invalid weight for device: /dev/sda:5"),
    ({"blkio_weight_device": ["/dev/sda:1001"]}, "--blkio-weight-device", "invalid weight for device"),
    ({"blkio_weight": "5"}, "--blkio-weight", "Range of blkio weight is from 10 to 1000"),
    ({"blkio_weight": "1001"}, "--blkio-weight", "Range of blkio weight is from 10 to 1000"),
    ({"blkio_weight": "heavy"}, "--blkio-weight", "invalid syntax"),
])
def test_bad_blkio_flags_name_the_flag_and_the_value(kw, flag, why):
    with pytest.raises(errors.InvalidArgument) as exc:
        hostopts.blkio_from_flags(**kw)
    value = list(kw.values())[0]
    value = value[0] if isinstance(value, list) else value
    assert exc.value.message.startswith('invalid argument "{}" for "{}" flag: '.format(value, flag))
    assert why in exc.value.message


def _a_disk():
    """(path, major, minor) of a whole-disk block device of this machine, or skip the test."""
    for name in sorted(os.listdir("/sys/block")):
        path = "/dev/" + name
        if os.path.exists(path) and not name.startswith(("loop", "ram", "zram")):
            st = os.stat(path)
            return path, os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.skip("no block device on this machine")


def test_the_payload_checks_the_devices_exist_as_whole_disks(tmp_path):
    with pytest.raises(errors.InvalidArgument, match='"--device-read-bps" flag: /dev/nonexistent-v2: no such'):
        limit_flags(device_read_bps=["/dev/nonexistent-v2:1mb"])
    with pytest.raises(errors.InvalidArgument, match='"--device-write-iops" flag: /dev/null is not a block device'):
        limit_flags(device_write_iops=["/dev/null:10"])
    path, major, minor = _a_disk()
    got = limit_flags(device_read_bps=[path + ":1mb"], blkio_weight=500)
    assert got.to_dict() == {"device_read_bps": [{"Path": path, "Rate": MB}], "blkio_weight": 500}
    assert limits.block_device(path, "--x") == (major, minor)


def test_limits_roundtrip_update_and_inspect_fields():
    lim = limits.parse(blkio_weight="300", device_read_bps=["/dev/sda:1mb"], device_write_iops=["/dev/sda:50"],
                       blkio_weight_device=["/dev/sda:200"])
    assert limits.Limits.from_dict(lim.to_dict()) == lim
    assert lim.host_config_blkio() == {
        "BlkioWeight": 300, "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 200}],
        "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": MB}], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [{"Path": "/dev/sda", "Rate": 50}]}
    assert limits.Limits().host_config_blkio()["BlkioDeviceReadBps"] == []  # docker CLI's empty lists
    merged = lim.updated(limits.parse(update=True, blkio_weight="700"))  # docker update --blkio-weight
    assert merged.blkio_weight == 700 and merged.device_read_bps == lim.device_read_bps
    for bad in ({"device_read_bps": [{"Path": "/dev/sda"}]}, {"device_read_bps": [{"Path": "sda", "Rate": 1}]},
                {"blkio_weight_device": [{"Path": "/dev/sda", "Rate": 1}]}, {"device_read_iops": "x"},
                {"device_write_bps": [{"Path": "/dev/sda", "Rate": True}]}):
        with pytest.raises(errors.InvalidArgument):
            limits.Limits.from_dict(bad)


# ------------------------------------------------------------------------------------------ managers

class Recorder:
    """A cgroup tree on a tmp dir whose device mountinfo calls cgroupfs; fs._write records (dir, file, value)
    after checking that the file exists, as the kernel's files do."""

    def __init__(self, monkeypatch, root, v1):
        self.root, self.writes = str(root), []
        dev = os.stat(self.root).st_dev
        if v1:
            line = "40 1 {}:{} / {}/blkio rw - cgroup cgroup rw,blkio".format(os.major(dev), os.minor(dev), self.root)
        else:
            line = "60 1 {}:{} / {}/unified rw - cgroup2 cgroup2 rw".format(os.major(dev), os.minor(dev), self.root)
        self.hierarchy = cgroups.Hierarchy(cgroups.parse_mountinfo(line + "\n"), False)
        real = fs._write

        def write(directory, name, data, is_cgroupfs):
            assert os.path.exists(os.path.join(directory, name)), name
            self.writes.append((name, str(data)))
            real(directory, name, data, is_cgroupfs)

        monkeypatch.setattr(fs, "_write", write)
        monkeypatch.setattr(limits, "block_device", lambda path, flag: {"/dev/sda": (8, 0), "/dev/vda": (254, 0)}[path])

    def leaf(self, sub, files):
        path = os.path.join(self.root, sub, "fleet", "c1")
        os.makedirs(path)
        for name in files:
            open(os.path.join(path, name), "w").close()
        return path


LIM = limits.parse(blkio_weight="500", blkio_weight_device=["/dev/sda:200"], device_read_bps=["/dev/sda:1mb"],
                   device_write_bps=["/dev/vda:0"], device_read_iops=["/dev/sda:100"],
                   device_write_iops=["/dev/vda:30"])
THROTTLE_V1 = [("blkio.throttle.read_bps_device", "8:0 1048576"), ("blkio.throttle.write_bps_device", "254:0 0"),
               ("blkio.throttle.read_iops_device", "8:0 100"), ("blkio.throttle.write_iops_device", "254:0 30")]


def test_v1_writes_throttle_lines_and_weights_where_the_kernel_has_them(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path, v1=True)
    rec.leaf("blkio", [name for name, _ in THROTTLE_V1] + ["blkio.weight", "blkio.weight_device"])
    V1Manager("c1", rec.hierarchy).apply(LIM)
    assert rec.writes == [("blkio.weight", "500"), ("blkio.weight_device", "8:0 200")] + THROTTLE_V1


def test_v1_prefers_bfq_and_skips_weights_without_cfq_or_bfq(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path, v1=True)
    leaf = rec.leaf("blkio", [name for name, _ in THROTTLE_V1] + ["blkio.bfq.weight", "blkio.bfq.weight_device"])
    V1Manager("c1", rec.hierarchy).apply(LIM)
    assert rec.writes[:2] == [("blkio.bfq.weight", "500"), ("blkio.bfq.weight_device", "8:0 200")]
    for name in ("blkio.bfq.weight", "blkio.bfq.weight_device"):
        os.unlink(os.path.join(leaf, name))
    del rec.writes[:]
    V1Manager("c1", rec.hierarchy).apply(LIM)  # a kernel with neither (blk-mq without BFQ): throttles only
    assert rec.writes == THROTTLE_V1


def test_v2_writes_io_max_and_the_converted_io_weight(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path, v1=False)
    leaf = rec.leaf("unified", ["io.max", "io.weight", "cgroup.controllers"])
    with open(os.path.join(leaf, "cgroup.controllers"), "w") as f:
        f.write("io memory pids")
    V2Manager("c1", rec.hierarchy).apply(LIM)
    assert rec.writes == [("io.weight", str(blkio_to_io_weight(500))), ("io.max", "8:0 rbps=1048576"),
                          ("io.max", "254:0 wbps=max"), ("io.max", "8:0 riops=100"), ("io.max", "254:0 wiops=30")]
    assert (blkio_to_io_weight(10), blkio_to_io_weight(500), blkio_to_io_weight(1000)) == (1, 4950, 10000)
    open(os.path.join(leaf, "io.bfq.weight"), "w").close()  # BFQ: its weight as given, per-device weights too
    del rec.writes[:]
    V2Manager("c1", rec.hierarchy).apply(LIM)
    assert rec.writes[:2] == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 200")]


def test_v2_without_the_io_controller_names_the_flag(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path, v1=False)
    leaf = rec.leaf("unified", ["io.max", "cgroup.controllers"])
    with open(os.path.join(leaf, "cgroup.controllers"), "w") as f:
        f.write("memory pids")
    with pytest.raises(errors.FailedPrecondition, match="--device-read-bps needs the cgroup v2 io controller"):
        V2Manager("c1", rec.hierarchy).apply(limits.parse(device_read_bps=["/dev/sda:1mb"]))
    assert rec.writes == []


def test_v1_turns_block_io_counting_on_for_every_disk_without_limiting(tmp_path, monkeypatch):
    (tmp_path / "cg").mkdir()
    rec = Recorder(monkeypatch, tmp_path / "cg", v1=True)
    rec.leaf("blkio", ["blkio.throttle.read_bps_device"])
    sys_block = tmp_path / "sys-block"
    for name, dev in (("vda", "254:0"), ("loop0", "7:0"), ("sda", "8:0"), ("zram0", "253:0"), ("odd", "")):
        (sys_block / name).mkdir(parents=True)
        (sys_block / name / "dev").write_text(dev + "\n")
    V1Manager("c1", rec.hierarchy)._count_block_io(str(sys_block))
    assert rec.writes == [("blkio.throttle.read_bps_device", "8:0 0"), ("blkio.throttle.read_bps_device", "254:0 0")]


def test_weights_are_discarded_where_v1_cannot_weigh_block_io(tmp_path, monkeypatch):
    """docker: "Your kernel does not support Block I/O weight ... Weight discarded" (blk-mq without BFQ)."""
    rec = Recorder(monkeypatch, tmp_path, v1=True)
    (tmp_path / "blkio").mkdir()
    got = cgroups.without_unsupported_weights(LIM, rec.hierarchy)
    assert (got.blkio_weight, got.blkio_weight_device) == (None, None)
    assert got.device_read_bps == LIM.device_read_bps  # throttles stay
    for name in ("blkio.weight", "blkio.bfq.weight"):
        (tmp_path / "blkio" / name).write_text("100\n")
        assert cgroups.without_unsupported_weights(LIM, rec.hierarchy) == LIM
        (tmp_path / "blkio" / name).unlink()
    (tmp_path / "v2").mkdir()
    v2 = Recorder(monkeypatch, tmp_path / "v2", v1=False)
    assert cgroups.without_unsupported_weights(LIM, v2.hierarchy) == LIM  # v2: io.weight or io.bfq.weight
