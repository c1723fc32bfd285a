"""docker run/create's host flags through the payload's run/create/update ops on this machine's real runtime
(busybox image, private FLEET_ROOT, --network none): --add-host, --dns/--dns-search/--dns-option, --tmpfs,
--shm-size, --ulimit, --sysctl, --group-add, --device, --expose, --memory-reservation, --cpuset-cpus,
--oom-kill-disable (issue 13, item 9).  Each test states what Docker does; each one fails without the flag's
support (the op ignored the unknown args and the container had Docker's defaults)."""

import os

import pytest

from agent_payload import errors
from agent_payload.runtime import cgroups
from tests.helpers import images
from tests.helpers import runtime as runtime_helpers
from tests.helpers.images import _layer_with_links, op
from tests.helpers.runtime import BUSYBOX

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                 reason="needs root and /usr/bin/busybox (busybox-static)")]

env = images.env  # private FLEET_ROOT with images, cleanup of every process and mount
hook_root = runtime_helpers.hook_root


@pytest.fixture
def fx(env):
    env.image(["bb:1"], [_layer_with_links(), {"etc/group": b"root:x:0:\nstaff:x:50:\n"}])
    return env


def run(fx, command, **args):
    """Attached ``run`` on the network none: (exit code, output, inspect object)."""
    from agent_payload.ops import dispatch
    lines = []
    result = dispatch(fx.ctx, "run", dict({"image": "bb:1", "network": "none", "command": ["sh", "-c", command]},
                                          **args), lambda ev, data: lines.append(data["line"]) if ev == "log" else None)
    (obj,) = fx.rt.inspect([result["id"]])
    return result["exit_code"], "".join(lines), obj


def test_add_host_and_dns_flags_write_hosts_and_resolv_conf(fx):
    """docker run --add-host db:10.1.2.3 --add-host gw:host-gateway --add-host v6:[::1] --dns 10.9.9.9
    --dns-search example.com --dns-option ndots:2: /etc/hosts gets "10.1.2.3\\tdb", the gateway of the default
    bridge for gw and "::1\\tv6"; resolv.conf has exactly the given nameserver, search and options; inspect's
    HostConfig shows ExtraHosts (as given, brackets dropped), Dns, DnsSearch, DnsOptions."""
    code, out, obj = run(fx, "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
                         extra_hosts=["db:10.1.2.3", "gw:host-gateway", "v6:[::1]"], dns=["10.9.9.9"],
                         dns_search=["example.com"], dns_options=["ndots:2"])
    assert code == 0, out
    hosts, resolv = out.split("---\n")
    from agent_payload.net.networks import Networks
    gateway = Networks(fx.paths).default()["gateway"]
    assert "10.1.2.3\tdb\n" in hosts and "{}\tgw\n".format(gateway) in hosts and "::1\tv6\n" in hosts, hosts
    assert hosts.index("\tdb\n") < hosts.index("\t" + obj["Config"]["Hostname"]), hosts  # docker's order
    servers = [ln.split()[1] for ln in resolv.splitlines() if ln.startswith("nameserver")]
    assert servers == ["10.9.9.9"], resolv
    assert "search example.com\n" in resolv and "options ndots:2\n" in resolv, resolv
    hc = obj["HostConfig"]
    assert hc["ExtraHosts"] == ["db:10.1.2.3", "gw:host-gateway", "v6:::1"]
    assert (hc["Dns"], hc["DnsSearch"], hc["DnsOptions"]) == (["10.9.9.9"], ["example.com"], ["ndots:2"])


def test_tmpfs_shm_size_ulimit_sysctl_group_add_in_one_container(fx):
    """docker run --tmpfs /scratch:size=4m,exec --tmpfs /ro:ro --shm-size 8m --ulimit nofile=512:1024
    --sysctl net.core.somaxconn=77 --sysctl kernel.shmmax=65536 --group-add staff --group-add 1234:
    /scratch is a 4 MiB tmpfs without noexec (nosuid,nodev kept), /ro is read-only with noexec,nosuid,nodev,
    /dev/shm is 8 MiB; the soft/hard nofile limits are 512/1024; both sysctls hold inside (net.* in the
    container's network namespace, kernel.shm* in its IPC namespace) and not on the host; the process has the
    extra groups 50 and 1234.  inspect: Tmpfs, ShmSize, Ulimits, Sysctls, GroupAdd."""
    with open("/proc/sys/kernel/shmmax") as f:
        host_shmmax = f.read().strip()
    assert host_shmmax != "65536"
    script = "; ".join([
        "grep -E ' /(scratch|ro|dev/shm) ' /proc/mounts",
        "echo NOFILE $(ulimit -n) $(ulimit -Hn)",
        "echo SYSCTL $(cat /proc/sys/net/core/somaxconn) $(cat /proc/sys/kernel/shmmax)",
        "echo GROUPS $(id -G)",
        "touch /ro/x 2>/dev/null && echo RO-WRITABLE || echo RO-READONLY",
        "cp /bin/busybox /scratch/true && /scratch/true && echo SCRATCH-EXEC",
    ])
    code, out, obj = run(fx, script, tmpfs=["/scratch:size=4m,exec", "/ro:ro"], shm_size="8m",
                         ulimits=["nofile=512:1024"], sysctls=["net.core.somaxconn=77", "kernel.shmmax=65536"],
                         group_add=["staff", "1234"])
    assert code == 0, out
    mounts = {ln.split()[1]: ln.split() for ln in out.splitlines() if ln.startswith(("tmpfs", "shm"))}
    scratch, ro, shm = mounts["/scratch"], mounts["/ro"], mounts["/dev/shm"]
    assert "size=4096k" in scratch[3] and "noexec" not in scratch[3].split(","), scratch
    assert {"nosuid", "nodev"} <= set(scratch[3].split(",")), scratch
    assert {"ro", "noexec", "nosuid", "nodev"} <= set(ro[3].split(",")), ro
    assert "size=8192k" in shm[3], shm
    assert "NOFILE 512 1024" in out and "SYSCTL 77 65536" in out, out
    assert "RO-READONLY" in out and "SCRATCH-EXEC" in out, out
    groups = [ln for ln in out.splitlines() if ln.startswith("GROUPS")][0].split()[1:]
    assert "50" in groups and "1234" in groups, groups
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() == host_shmmax  # the host's own value is untouched
    hc = obj["HostConfig"]
    assert hc["Tmpfs"] == {"/scratch": "size=4m,exec", "/ro": "ro"}
    assert hc["ShmSize"] == 8 * 1024 * 1024
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 1024, "Soft": 512}]
    assert hc["Sysctls"] == {"net.core.somaxconn": "77", "kernel.shmmax": "65536"}
    assert hc["GroupAdd"] == ["staff", "1234"]


def test_defaults_match_docker(fx):
    """Without the flags, docker's inspect shows ShmSize 67108864 (and /dev/shm is 64m), no Tmpfs/Sysctls keys,
    ExtraHosts/Ulimits/GroupAdd null, Dns/DnsSearch/DnsOptions/Devices empty lists."""
    code, out, obj = run(fx, "grep ' /dev/shm ' /proc/mounts")
    assert code == 0 and "size=65536k" in out, out
    hc = obj["HostConfig"]
    assert hc["ShmSize"] == 67108864 and "Tmpfs" not in hc and "Sysctls" not in hc
    assert hc["ExtraHosts"] is None and hc["Ulimits"] is None and hc["GroupAdd"] is None
    assert (hc["Dns"], hc["DnsSearch"], hc["DnsOptions"], hc["Devices"]) == ([], [], [], [])
    assert (hc["MemoryReservation"], hc["CpusetCpus"], hc["OomKillDisable"]) == (0, "", False)


def test_device_node_and_its_cgroup_permissions(fx):
    """docker run --device /dev/loop0:/dev/xloop:r: the container has /dev/xloop, block 7:0, which it may open
    for reading (the default device policy refuses loop devices) but not for writing; inspect's Devices."""
    script = "; ".join([
        "ls -l /dev/xloop",
        "head -c 1 /dev/xloop > /dev/null 2>/tmp/err && echo READ-OK || sed 's/^/READ-ERR /' /tmp/err",
        "(echo x > /dev/xloop) 2>/tmp/err && echo WRITE-OK || echo WRITE-REFUSED",
    ])
    code, out, obj = run(fx, "mkdir -p /tmp; " + script, devices=["/dev/loop0:/dev/xloop:r"])
    assert code == 0, out
    listing = [ln for ln in out.splitlines() if "xloop" in ln and ln.startswith("b")]
    assert listing and "7," in listing[0] and listing[0].split()[4:6] == ["7,", "0"], out
    assert "READ-OK" in out and "WRITE-REFUSED" in out and "WRITE-OK" not in out, out
    assert obj["HostConfig"]["Devices"] == [{"PathOnHost": "/dev/loop0", "PathInContainer": "/dev/xloop",
                                             "CgroupPermissions": "r"}]


def test_expose_is_recorded(fx):
    """docker create --expose 7000-7001/udp --expose 80: Config.ExposedPorts has every port (-P would publish
    them: the compose expose test in test_deploy_ops_local shows that path)."""
    made = op(fx, "create", image="bb:1", network="none", expose=["7000-7001/udp", "80"])
    (obj,) = fx.rt.inspect([made["id"]])
    assert obj["Config"]["ExposedPorts"] == {"7000/udp": {}, "7001/udp": {}, "80/tcp": {}}


def _v1_files(cid):
    h = cgroups.detect()
    if h.mode not in ("v1", "hybrid") or not {"memory", "cpuset"} <= set(h.v1):
        pytest.skip("needs cgroup v1 memory and cpuset controllers")
    mem = os.path.join(h.v1["memory"].mount_point, "fleet", cid)
    cpuset = os.path.join(h.v1["cpuset"].mount_point, "fleet", cid)

    def read(directory, name):
        with open(os.path.join(directory, name)) as f:
            return f.read().strip()
    return lambda: {"soft": int(read(mem, "memory.soft_limit_in_bytes")),
                    "oom": read(mem, "memory.oom_control").split("\n")[0],
                    "cpus": read(cpuset, "cpuset.cpus")}


def test_memory_reservation_cpuset_oom_kill_disable_and_update(fx):
    """docker run -d -m 64m --memory-reservation 32m --cpuset-cpus 0 --oom-kill-disable: the cgroup's soft limit,
    cpuset and OOM switch are set (v1: memory.soft_limit_in_bytes, cpuset.cpus, memory.oom_control); inspect
    shows MemoryReservation, CpusetCpus, OomKillDisable.  docker update --memory-reservation 16m --cpuset-cpus
    0-1 changes them live."""
    made = op(fx, "run", image="bb:1", network="none", command=["sleep", "60"], detach=True, memory="64m",
              memory_reservation="32m", cpuset_cpus="0", oom_kill_disable=True)
    files = _v1_files(made["id"])
    assert files() == {"soft": 32 * 1024 * 1024, "oom": "oom_kill_disable 1", "cpus": "0"}
    (obj,) = fx.rt.inspect([made["id"]])
    hc = obj["HostConfig"]
    assert (hc["MemoryReservation"], hc["CpusetCpus"], hc["OomKillDisable"]) == (32 * 1024 * 1024, "0", True)
    ncpu = len(os.sched_getaffinity(0))
    wanted = "0-1" if ncpu > 1 else "0"
    op(fx, "update", containers=[made["id"]], memory_reservation="16m", cpuset_cpus=wanted)
    assert files()["soft"] == 16 * 1024 * 1024 and files()["cpus"] == wanted
    (obj,) = fx.rt.inspect([made["id"]])
    assert (obj["HostConfig"]["MemoryReservation"], obj["HostConfig"]["CpusetCpus"]) == (16 * 1024 * 1024, wanted)


@pytest.mark.parametrize("args,message", [
    ({"extra_hosts": ["nohost"]}, 'invalid argument "nohost" for "--add-host" flag: bad format for add-host'),
    ({"extra_hosts": ["db:999.1.1.1"]}, 'invalid IP address in add-host: "999.1.1.1"'),
    ({"dns": ["resolver"]}, 'invalid argument "resolver" for "--dns" flag: resolver is not an ip address'),
    ({"tmpfs": ["relative"]}, '"--tmpfs" flag: invalid mount path "relative": mount path must be absolute'),
    ({"shm_size": "lots"}, 'invalid argument "lots" for "--shm-size" flag: invalid size'),
    ({"ulimits": ["nofile=2:1"]}, "ulimit soft limit must be less than or equal to hard limit: 2 > 1"),
    ({"ulimits": ["bogus=1"]}, 'invalid argument "bogus=1" for "--ulimit" flag: invalid ulimit type: bogus'),
    ({"sysctls": ["kernel.hostname=x"]}, "sysctl 'kernel.hostname=x' is not allowed"),
    ({"sysctls": ["net.core.somaxconn=1"], "network": "host"}, 'sysctl "net.core.somaxconn" not allowed in host'),
    ({"devices": ["/dev/nosuch"]}, 'error gathering device information while adding custom device "/dev/nosuch"'),
    ({"devices": ["/dev/loop0:/dev/xloop:rwx"]}, "bad mode specified: rwx"),
    ({"memory_reservation": "1k"}, "Minimum memory reservation allowed is 6MB"),
    ({"memory": "8m", "memory_reservation": "16m"}, "Minimum memory limit can not be less than memory reservation"),
    ({"cpuset_cpus": "a-b"}, "Invalid value a-b for cpuset cpus"),
    ({"cpuset_cpus": "4096"}, "Requested CPUs are not available - requested 4096, available: 0"),
    ({"mac_address": "92:d0:c6:0a:29"}, '"--mac-address" flag: 92:d0:c6:0a:29 is not a valid mac address'),
    ({"mac_address": "92:d0:c6:0a:29:33"}, "conflicting options: mac-address and the network mode"),
    ({"links": ["a:b:c"]}, 'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c'),
    ({"links": ["nosuch"], "network": "host"}, "conflicting options: host type networking can't be used with links"),
    ({"volumes_from": ["nosuch"]}, "No such container: nosuch"),
])
def test_bad_values_are_refused_and_nothing_is_created(fx, args, message):
    """Docker refuses each bad value with one error naming the flag and the value; no container is made."""
    with pytest.raises((errors.InvalidArgument, errors.NotFound)) as exc:
        op(fx, "create", **dict({"image": "bb:1", "network": "none"}, **args))
    assert message in exc.value.message
    assert fx.rt.all_records() == []


def test_pull_policy_and_platform(fx):
    """docker run --pull never of a missing image: "No such image", nothing created; --pull always pulls even
    when the image is present (here its registry, 127.0.0.1:9, refuses: the pull's error, nothing created);
    --pull missing (the default) runs the present image.  --platform: the host's own os/arch runs, another is
    refused before anything is pulled (fleet runs no emulated images)."""
    from agent_payload.image.registry import host_platform
    fx.image(["127.0.0.1:9/bb:1"], [_layer_with_links()])
    with pytest.raises(errors.NotFound, match="No such image: 127.0.0.1:9/nosuch:latest"):
        op(fx, "create", image="127.0.0.1:9/nosuch", network="none", pull="never")
    with pytest.raises(errors.AgentError) as exc:
        op(fx, "create", image="127.0.0.1:9/bb:1", network="none", pull="always")
    assert "127.0.0.1:9" in exc.value.message
    assert fx.rt.all_records() == []
    own = "/".join(host_platform()[:2])
    made = op(fx, "create", image="127.0.0.1:9/bb:1", network="none", pull="missing", platform=own)
    assert fx.rt.lookup(made["id"])["image"] == "127.0.0.1:9/bb:1"
    other = "linux/s390x" if own != "linux/s390x" else "linux/amd64"
    with pytest.raises(errors.InvalidArgument, match='"--platform" flag: this host runs {} images only'.format(own)):
        op(fx, "create", image="127.0.0.1:9/bb:1", network="none", platform=other)
    with pytest.raises(errors.InvalidArgument, match="invalid pull option: 'sometimes'"):
        op(fx, "create", image="127.0.0.1:9/bb:1", network="none", pull="sometimes")
    assert len(fx.rt.all_records()) == 1


def test_volumes_from_shares_the_volumes_of_another_container(fx):
    """docker run --volumes-from src (rw, as in src) writes into src's anonymous and named volumes; --volumes-from
    src:ro mounts them read-only and sees what the first wrote; its own -v at one destination wins over the
    inherited one; inspect: HostConfig.VolumesFrom as given, the inherited mounts in Mounts.  An unknown
    container: "No such container"; a mode other than ro|rw: refused; nothing created."""
    src = op(fx, "create", image="bb:1", network="none", volumes=["/data", "shared:/shared", "/mine"],
             command=["true"])
    code, out, _ = run(fx, "echo hello > /data/f && echo there > /shared/g && echo WROTE", volumes_from=["{}".format(
        src["name"])])
    assert code == 0 and "WROTE" in out, out
    code, out, obj = run(fx, "cat /data/f /shared/g; touch /data/x 2>/dev/null || echo RO; ls /mine | wc -l",
                         volumes_from=["{}:ro".format(src["name"])], volumes=["/mine"])
    assert code == 0 and out.split() == ["hello", "there", "RO", "0"], out
    assert obj["HostConfig"]["VolumesFrom"] == ["{}:ro".format(src["name"])]
    points = {m["Destination"]: m for m in obj["Mounts"]}
    assert points["/data"]["RW"] is False and points["/shared"]["Name"] == "shared" and points["/mine"]["RW"]
    (src_obj,) = fx.rt.inspect([src["id"]])
    src_data = [m for m in src_obj["Mounts"] if m["Destination"] == "/data"][0]["Name"]
    assert points["/data"]["Name"] == src_data and points["/mine"]["Name"] != [
        m for m in src_obj["Mounts"] if m["Destination"] == "/mine"][0]["Name"]  # its own -v /mine won
    count = len(fx.rt.all_records())
    with pytest.raises(errors.NotFound, match="No such container: nosuch"):
        op(fx, "create", image="bb:1", network="none", volumes_from=["nosuch"])
    with pytest.raises(errors.InvalidArgument, match='"--volumes-from" flag: invalid mode: zz'):
        op(fx, "create", image="bb:1", network="none", volumes_from=[src["name"] + ":zz"])
    assert len(fx.rt.all_records()) == count


def test_exec_processes_get_the_container_s_ulimits_and_groups(fx):
    """docker exec into a container run with --ulimit nofile=300:400 --group-add 1234: the exec'd process has the
    same limits and extra group (runc applies the container's rlimits and docker its GroupAdd to every exec)."""
    from agent_payload.ops import dispatch
    made = op(fx, "run", image="bb:1", network="none", command=["sleep", "60"], detach=True,
              ulimits=["nofile=300:400"], group_add=["1234"])
    lines = []
    result = dispatch(fx.ctx, "exec", {"container": made["id"], "command": ["sh", "-c", "echo $(ulimit -n) "
                                                                            "$(ulimit -Hn) $(id -G)"]},
                      lambda ev, data: lines.append(data["line"]) if ev == "log" else None)
    assert result["exit_code"] == 0 and "".join(lines).split() == ["300", "400", "0", "1234"], lines
