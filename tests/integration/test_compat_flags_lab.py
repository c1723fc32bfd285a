"""docker run/create/update's host flags through fleet's CLI over SSH on the lab (issue 13, item 9): the flags
reach the host's container, bad values exit 2 before any host is asked, and --cidfile writes the ID on this
machine.  The runtime-level cases (each flag on the real kernel) are in test_compat_flags_local.py."""

import json

import pytest

pytestmark = pytest.mark.integration

PREFIX = "cmpf-"
HOST = "web1"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def test_run_flags_reach_the_container(clean):
    """docker run --add-host db:10.1.2.3 --dns 10.9.9.9 --dns-search example.com --tmpfs /scratch:size=2m
    --shm-size 8m --ulimit nofile=512:1024 --sysctl net.core.somaxconn=77 --group-add 1234 busybox sh -c ...:
    the container sees each of them (one host: stdout is the container's output alone)."""
    script = "; ".join(["grep -w db /etc/hosts", "grep -E '^(nameserver|search)' /etc/resolv.conf",
                        "grep -E ' /(scratch|dev/shm) ' /proc/mounts | cut -d' ' -f2,4",
                        "echo $(ulimit -n) $(ulimit -Hn) $(cat /proc/sys/net/core/somaxconn) $(id -G)"])
    proc = clean.fleet("run", "-H", HOST, "--rm", "--name", PREFIX + "a", "--add-host", "db:10.1.2.3", "--dns",
                       "10.9.9.9", "--dns-search", "example.com", "--tmpfs", "/scratch:size=2m", "--shm-size", "8m",
                       "--ulimit", "nofile=512:1024", "--sysctl", "net.core.somaxconn=77", "--group-add", "1234",
                       "busybox", "sh", "-c", script)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    # raw output with one host is another part of issue 13 (item 5): a "web1 | " prefix is taken off if there
    lines = [line[len(HOST) + 3:] if line.startswith(HOST + " | ") else line for line in proc.stdout.splitlines()]
    assert lines[0] == "10.1.2.3\tdb" and lines[1:3] == ["nameserver 10.9.9.9", "search example.com"], lines
    mounts = dict(line.split(" ", 1) for line in lines[3:5])
    assert "size=2048k" in mounts["/scratch"] and "noexec" in mounts["/scratch"], mounts
    assert "size=8192k" in mounts["/dev/shm"], mounts
    assert lines[5].split() == ["512", "1024", "77", "0", "1234"], lines


def test_bad_values_exit_2_and_nothing_is_created(clean):
    """docker refuses a bad value before the daemon creates anything: one error naming flag and value, exit
    status 2 (docker's own is 125); a net.* sysctl with --network host is docker's daemon error."""
    for flags, needle in ((["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
                          (["--add-host", "db"], 'bad format for add-host: "db"'),
                          (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname=x' is not allowed"),
                          (["--sysctl", "net.core.somaxconn=1", "--network", "host"], "not allowed in host network"),
                          (["--device", "/dev/sda:/dev/sda:rwx"], "bad mode specified: rwx"),
                          (["--pull", "sometimes"], "invalid pull option: 'sometimes'")):
        proc = clean.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "bad", *flags, "busybox", "true")
        assert proc.returncode == 2 and needle in proc.stderr, (flags, proc.stdout, proc.stderr)
    rc, ps = clean.fleet_json("ps", "-H", HOST, "-a", "-f", "name=^" + PREFIX)
    assert rc == 0 and ps[HOST]["containers"] == []


def test_cidfile_create_update_and_inspect(clean, tmp_path):
    """docker create --cidfile F --memory-reservation 32m --cpuset-cpus 0 --expose 7000 --add-host gw:host-gateway:
    F holds the full ID (on the client: here this machine); a second create with the same F is refused (exit 2,
    nothing created), as with several hosts; docker update --memory-reservation 16m changes it; inspect shows
    MemoryReservation, CpusetCpus, ExtraHosts and ExposedPorts."""
    cidfile = tmp_path / "web.cid"
    proc = clean.fleet("create", "-H", HOST, "--name", PREFIX + "c", "--cidfile", str(cidfile), "-m", "64m",
                       "--memory-reservation", "32m", "--cpuset-cpus", "0", "--expose", "7000", "--add-host",
                       "gw:host-gateway", "busybox", "sleep", "300")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    cid = cidfile.read_text()
    assert len(cid) == 64
    again = clean.fleet("create", "-H", HOST, "--name", PREFIX + "d", "--cidfile", str(cidfile), "busybox")
    assert again.returncode == 2 and "container ID file found" in again.stderr
    several = clean.fleet("create", "-H", "web*", "--name", PREFIX + "e", "--cidfile", str(tmp_path / "x"),
                          "busybox")
    assert several.returncode == 2 and "--cidfile needs exactly one host" in several.stderr
    assert clean.fleet("start", "-H", HOST, cid).returncode == 0
    assert clean.fleet("update", "-H", HOST, "--memory-reservation", "16m", cid).returncode == 0
    (obj,) = json.loads(clean.fleet("inspect", "-H", HOST, cid, check=True).stdout)
    hc = obj["HostConfig"]
    assert (hc["MemoryReservation"], hc["CpusetCpus"], hc["ExtraHosts"]) == (16 << 20, "0", ["gw:host-gateway"])
    assert "7000/tcp" in obj["Config"]["ExposedPorts"]
    rc, ps = clean.fleet_json("ps", "-H", "web*", "-a", "-f", "name=^" + PREFIX)
    assert [c["name"] for h in ps.values() for c in h["containers"]] == [PREFIX + "c"]
