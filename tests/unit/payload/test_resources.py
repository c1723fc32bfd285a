"""Resource flags as op args (spec.limit_flags), their place in ContainerSpec/inspect, and the paused view."""

import pytest

from agent_payload import errors
from agent_payload.runtime import inspect as inspectmod
from agent_payload.runtime import resources
from agent_payload.runtime.spec import ContainerSpec, limit_flags

MB = 1 << 20


def test_limit_flags_parse_docker_values_with_create_defaults():
    lim = limit_flags(**{"memory": "32m", "cpus": "0.5", "cpu_shares": 512, "pids_limit": "10"})
    assert lim.to_dict() == {"memory": 32 * MB, "memory_swap": 64 * MB, "nano_cpus": 500000000,
                             "cpu_shares": 512, "pids_limit": 10}
    assert limit_flags().to_dict() == {}
    # update: no create-time swap default (Limits.updated merges with the current values)
    assert limit_flags(update=True, memory="64m").to_dict() == {"memory": 64 * MB}


@pytest.mark.parametrize("args,flag", [({"memory": "1k"}, "--memory"), ({"cpus": "99"}, "--cpus"),
                                       ({"memory": "16m", "memory_swap": "8m"}, "--memory-swap"),
                                       ({"pids_limit": "x"}, "--pids-limit"), ({"cpu_shares": [1]}, "--cpu-shares"),
                                       ({"memory": True}, "--memory")])
def test_limit_flags_reject_bad_values_naming_the_flag(args, flag):
    with pytest.raises(errors.InvalidArgument) as exc:
        limit_flags(**args)
    assert '"{}"'.format(flag) in exc.value.message


def test_spec_validates_stored_limits():
    spec = ContainerSpec(image="busybox", image_id="sha256:" + "a" * 64, lowerdirs=["/l"], argv=["true"],
                         limits={"memory": 32 * MB})
    assert spec.validate().limits == {"memory": 32 * MB}
    spec.limits = {"memory": "32m"}
    with pytest.raises(errors.InvalidArgument):
        spec.validate()
    spec.limits = {"bogus": 1}
    with pytest.raises(errors.InvalidArgument):
        spec.validate()


def _record(**kw):
    rec = {"id": "c" * 64, "name": "x", "argv": ["sleep", "1"], "status": "running", "pid": 42,
           "started_at": "2026-01-01T00:00:00.000000000Z", "lowerdirs": []}
    rec.update(kw)
    return rec


def test_inspect_shows_limits_oom_and_paused(tmp_path):
    from agent_payload.state.paths import Paths

    paths = Paths(str(tmp_path), str(tmp_path / "etc"))
    obj = inspectmod.inspect_object(paths, _record(limits={"memory": 32 * MB, "memory_swap": 64 * MB,
                                                           "nano_cpus": 10 ** 9, "pids_limit": 5}, paused=True))
    hc = obj["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == \
        (32 * MB, 64 * MB, 10 ** 9, 0, 5)
    assert obj["State"]["Status"] == "paused" and obj["State"]["Paused"] and obj["State"]["Running"]
    assert obj["State"]["Pid"] == 42
    plain = inspectmod.inspect_object(paths, _record(status="exited", oom_killed=True, paused=True))
    assert plain["State"]["Status"] == "exited" and not plain["State"]["Paused"]
    assert plain["State"]["OOMKilled"] is True
    assert plain["HostConfig"]["Memory"] == 0 and plain["HostConfig"]["PidsLimit"] is None


def test_present_marks_only_running_paused_records():
    assert resources.present(_record(paused=True))["status"] == "paused"
    assert resources.present(_record(paused=False))["status"] == "running"
    assert resources.present(_record(status="exited", paused=True))["status"] == "exited"


NET_DEV = "\n".join([
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier",
    "    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0 0",
    "  eth0:   51200      40    0    0    0     0          0         0   409600     300    0    0    0     0       0 0",
    "  eth1:    1000       2    0    0    0     0          0         0     2000       3    0    0    0     0       0 0",
]) + "\n"


def test_net_io_sums_every_interface_but_loopback():
    assert resources.net_io(None, NET_DEV) == (52200, 411600)
    assert resources.net_io(None, NET_DEV.split("  eth0")[0]) == (0, 0)  # --network none: lo only


def test_net_io_of_a_process_on_the_host_network_is_zero():
    import os

    assert resources.net_io(os.getpid()) == (0, 0)  # docker counts nothing for --network host
    assert resources.net_io(0) == (0, 0)


def test_inspect_shows_the_block_io_limits_as_docker(tmp_path):
    from agent_payload.state.paths import Paths

    paths = Paths(str(tmp_path), str(tmp_path / "etc"))
    hc = inspectmod.inspect_object(paths, _record(limits={
        "blkio_weight": 300, "device_read_bps": [{"Path": "/dev/vda", "Rate": MB}],
        "blkio_weight_device": [{"Path": "/dev/vda", "Weight": 200}]}))["HostConfig"]
    assert (hc["BlkioWeight"], hc["BlkioDeviceReadBps"], hc["BlkioWeightDevice"]) == (
        300, [{"Path": "/dev/vda", "Rate": MB}], [{"Path": "/dev/vda", "Weight": 200}])
    assert hc["BlkioDeviceWriteBps"] == hc["BlkioDeviceReadIOps"] == hc["BlkioDeviceWriteIOps"] == []
    plain = inspectmod.inspect_object(paths, _record())["HostConfig"]
    assert plain["BlkioWeight"] == 0 and plain["BlkioDeviceReadBps"] == []
