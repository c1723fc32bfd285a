"""Inputs that must be refused before anything changes, and starts that fail on a host (fleet issue 9 items 4, 8
and 12), end to end over SSH on the lab."""

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

PREFIX = "in-"


@pytest.fixture
def clean(lab):
    def sweep():
        lab.remove_containers(PREFIX)
        rc, nets = lab.fleet_json("network", "ls", "-H", "all", "-f", "name=" + PREFIX)
        for host, data in nets.items():
            names = [n["name"] for n in data.get("networks", []) if n["name"].startswith(PREFIX)]
            if names:
                lab.fleet("network", "rm", "-H", host, *names)
    sweep()
    yield lab
    sweep()


def _containers(lab, host):
    rc, ps = lab.fleet_json("ps", "-H", host, "-a", "-f", "name=^" + PREFIX)
    assert rc == 0, ps
    return {c["name"]: c for c in ps[host]["containers"]}


def _volumes(lab, host):
    rc, vols = lab.fleet_json("volume", "ls", "-H", host)
    assert rc == 0, vols
    return sorted(v["name"] for v in vols[host]["volumes"])


def test_mounts_over_proc_and_empty_sections_are_refused_before_anything_changes(clean):
    lab = clean
    volumes_before = _volumes(lab, "web1")
    for flags, text in ((["-v", "/tmp:/proc"], '"/proc" cannot be mounted because it is not of type proc'),
                        (["-v", "/proc"], "not of type proc"),
                        (["-v", "data:/proc/sys"], '"/proc/sys" cannot be mounted because it is inside /proc'),
                        (["--mount", "type=tmpfs,dst=/proc"], "not of type proc"),
                        (["--mount", "type=bind,src=/tmp,dst=/proc/1"], "inside /proc"),
                        (["-v", ":/x"], "invalid spec: :/x: empty section between colons")):
        proc = lab.fleet("run", "-H", "web1", "-d", "--name", PREFIX + "bad", *flags, "busybox", "true")
        assert proc.returncode == 2 and text in proc.stderr, (flags, proc.stdout, proc.stderr)
    assert _containers(lab, "web1") == {}
    assert _volumes(lab, "web1") == volumes_before  # neither the anonymous nor the named volume was made
    # what docker lets a user mount replace still works, and /proc stays procfs
    proc = lab.fleet("run", "-H", "web1", "--rm", "--mount", "type=tmpfs,dst=/dev/shm,tmpfs-size=1m", "busybox",
                     "sh", "-c", "grep -c '^proc /proc proc' /proc/mounts; grep ' /dev/shm ' /proc/mounts")
    assert proc.returncode == 0 and "size=1024k" in proc.stdout, proc.stdout + proc.stderr


def test_subnets_no_bridge_may_use_are_refused(clean):
    lab = clean
    for subnet, kind in (("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
                         ("224.0.0.0/4", "multicast"), ("0.0.0.0/8", '"this network"'), ("240.0.0.0/4", "reserved")):
        proc = lab.fleet("network", "create", "-H", "web1", "--subnet", subnet, PREFIX + "lo")
        assert proc.returncode == 2 and "overlaps the {} range".format(kind) in proc.stderr, (proc.stdout,
                                                                                              proc.stderr)
    rc, nets = lab.fleet_json("network", "ls", "-H", "web1", "-f", "name=" + PREFIX)
    assert nets["web1"]["networks"] == []
    addrs = _ssh(lab, "web1", "ip -4 -o addr show | grep -v ' lo ' | grep -c ' inet 127\\.' || true").stdout
    assert addrs.strip() == "0"  # no bridge holds a loopback address


def test_a_start_that_fails_on_a_host_names_it_and_run_rm_leaves_nothing(clean):
    lab = clean
    volumes_before = _volumes(lab, "web1")
    for flags, text in ((["--user", "ghost"], "unable to find user ghost"),
                        (["-w", "/etc/passwd"], "/etc/passwd"),
                        (["-p", "10.99.99.99:8080:80"], "listen tcp4 10.99.99.99:8080: bind: cannot assign "
                                                        "requested address")):
        for mode in ([], ["-d"]):
            proc = lab.fleet("run", "-H", "web1", "--rm", *mode, "--name", PREFIX + "rm", "-v", "/anon", *flags,
                             "busybox", "true")
            out = proc.stdout + proc.stderr
            assert proc.returncode == 125, (flags, mode, out)  # docker run: the engine failed
            assert [line for line in out.splitlines() if line.startswith("web1") and text in line], (flags, out)
            assert "already allocated" not in out
            assert _containers(lab, "web1") == {}, (flags, mode)  # docker run --rm leaves nothing
    # attached with stdin (-i: commands/interactive.py): the same
    proc = lab.fleet("run", "-H", "web1", "--rm", "-i", "--name", PREFIX + "rm", "-v", "/anon", "--user", "ghost",
                     "busybox", "cat", input="")
    assert proc.returncode == 125 and "unable to find user ghost" in proc.stderr, (proc.stdout, proc.stderr)
    assert "web1" in proc.stderr and _containers(lab, "web1") == {}
    assert _volumes(lab, "web1") == volumes_before  # --rm took the anonymous volumes with it
    # without --rm the Created container stays, as docker leaves it; still 125 naming the host
    proc = lab.fleet("run", "-H", "web1", "-d", "--name", PREFIX + "kept", "--user", "ghost", "busybox", "true")
    assert proc.returncode == 125 and "web1" in proc.stderr and "unable to find user ghost" in proc.stderr, proc.stderr
    assert _containers(lab, "web1")[PREFIX + "kept"]["state"] == "created"
    # start of that container: the same failure, exit 1 (not 2: nothing the user typed was wrong)
    proc = lab.fleet("start", "-H", "web1", PREFIX + "kept")
    assert proc.returncode == 1 and "unable to find user ghost" in proc.stdout, proc.stdout + proc.stderr


def test_partial_failure_across_hosts(clean):
    """An address only web1 has: web1 runs, web2 fails with what the kernel said and keeps nothing."""
    lab = clean
    web1 = lab.address("web1")
    proc = lab.fleet("run", "-H", "web*", "--rm", "-d", "--name", PREFIX + "part", "-p", "{}:18080:80".format(web1),
                     "busybox", "sleep", "30")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert [line for line in out.splitlines() if line.startswith("web2") and "cannot assign requested address"
            in line and web1 in line], out
    assert list(_containers(lab, "web1")) == [PREFIX + "part"]
    assert _containers(lab, "web2") == {}
