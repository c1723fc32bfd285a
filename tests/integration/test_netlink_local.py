"""rtnetlink (agent_payload/linux/netlink.py) on the real kernel, inside a throwaway network namespace: the veth,
address and route requests links.attach/detach/remove_link make, with no `ip` binary reachable at all."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.runtime import scratch_netns

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")]

SCRIPT = textwrap.dedent("""\
    import errno, os, socket, subprocess, sys
    sys.path.insert(0, {repo!r})
    from agent_payload import errors
    from agent_payload.linux import netlink
    from agent_payload.net import links, netns

    run = {run!r}
    subprocess.run(["ip", "link", "add", "nltest0", "type", "bridge"], check=True)  # the bridge: not our part
    subprocess.run(["ip", "link", "set", "nltest0", "up"], check=True)
    links.IP = "/nonexistent/ip"  # the container's links must not need iproute2
    os.environ["PATH"] = "/nonexistent"

    def sysfs(ifname, rel):
        with open("/sys/class/net/{{}}/{{}}".format(ifname, rel)) as f:
            return f.read().strip()

    def inside(path, argv):
        # iproute2's view from inside the namespace (the test's own check, by absolute path)
        return subprocess.run(["/usr/bin/nsenter", "--net=" + path] + argv, capture_output=True, text=True,
                              env={{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}}, check=True).stdout

    path = os.path.join(run, "netns", "c0")
    home = os.stat("/proc/thread-self/ns/net").st_ino
    with netns.create(path) as holder:
        # made by this thread itself (no holder process), which is back in its own namespace
        assert holder.pid is None and os.stat("/proc/thread-self/ns/net").st_ino == home
        assert os.stat(path).st_ino != home and netns.exists(path)
        assert ",UP" in inside(path, ["ip", "-o", "link", "show", "dev", "lo"])
        links.attach(holder.pid, path, "nltest0", "fvnl0", "10.78.0.2", 24, "10.78.0.1", mtu=1400,
                     mac="02:42:0a:4e:00:99")
    assert sysfs("fvnl0", "master/ifindex") == sysfs("nltest0", "ifindex")
    assert sysfs("fvnl0", "brport/hairpin_mode") == "1"
    assert int(sysfs("fvnl0", "flags"), 16) & 1 and sysfs("fvnl0", "mtu") == "1400"
    addr = inside(path, ["ip", "-o", "addr", "show", "dev", "eth0"])
    assert "inet 10.78.0.2/24" in addr, addr
    link = inside(path, ["ip", "-o", "link", "show", "dev", "eth0"])
    assert "02:42:0a:4e:00:99" in link and "mtu 1400" in link and ",UP" in link, link
    route = inside(path, ["ip", "route", "show", "default"])
    assert route.startswith("default via 10.78.0.1 dev eth0"), route

    # the kernel's refusals come back as errno, and attach cleans up its half-made veth
    with netlink.Netlink() as nl:
        try:
            nl.add_veth("fvnl0", "eth9")
            raise AssertionError("a second fvnl0 was made")
        except OSError as exc:
            assert exc.errno == errno.EEXIST, exc
        try:
            nl.delete_link("nosuchif0")
            raise AssertionError("deleted a missing link")
        except OSError as exc:
            assert exc.errno == errno.ENODEV, exc
    try:  # eth0 exists in the namespace: the peer cannot be made, the host side must not stay behind
        links.attach(None, path, "nltest0", "fvnl1", "10.78.0.3", 24, "10.78.0.1")
        raise AssertionError("attached a second eth0")
    except errors.FailedPrecondition as exc:
        assert "File exists" in str(exc), exc
    assert not links.exists("fvnl1")
    with netns.create(os.path.join(run, "netns", "c1")) as holder:  # a second network: eth1, no default route
        p1 = os.path.join(run, "netns", "c1")
        links.attach(holder.pid, p1, "nltest0", "fvnl2", "10.78.0.4", 24, "10.78.0.1", ifname="eth1",
                     default_route=False)
    assert "default" not in inside(p1, ["ip", "route"])
    links.detach(p1, "eth1")
    assert not links.exists("fvnl2")
    links.remove_link("fvnl0")
    links.remove_link("fvnl0")  # a missing link is fine
    assert not links.exists("fvnl0")

    # remove_link returns once the veth is unregistered (name free, off the bridge); in a single-threaded
    # process the kernel's slow tail (~15-20 ms of RCU waits) runs in a forked child, reaped by a later call
    import threading, time
    while links._deleters:  # earlier calls' children
        links._reap_deleters()
        time.sleep(0.01)
    p2 = os.path.join(run, "netns", "c2")
    netns.create(p2).close()
    links.attach(None, p2, "nltest0", "fvnl3", "10.78.0.5", 24, "10.78.0.1")
    held = socket.socket()  # a published port's socket: the deleter child must not keep it bound
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    links.remove_link("fvnl3")
    assert not links.exists("fvnl3") and not os.path.exists("/sys/class/net/nltest0/brif/fvnl3")
    assert len(links._deleters) == 1, links._deleters
    fd_dir = "/proc/{{}}/fd".format(links._deleters[0])
    child_fds = {{os.readlink(os.path.join(fd_dir, n)) for n in os.listdir(fd_dir)}} if os.path.isdir(fd_dir) else set()
    assert "socket:[{{}}]".format(os.fstat(held.fileno()).st_ino) not in child_fds, child_fds
    assert not any(t.startswith("pipe:") or t.startswith("/") for t in child_fds), child_fds  # no stdio either
    held.close()
    links.attach(None, p2, "nltest0", "fvnl3", "10.78.0.5", 24, "10.78.0.1")  # the same names at once (a restart)
    deadline = time.monotonic() + 10
    while links._deleters and time.monotonic() < deadline:
        links._reap_deleters()
        time.sleep(0.01)
    assert not links._deleters, "the deleter child never finished"
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:  # another thread alive: no fork, the caller waits for the whole deletion itself
        links.remove_link("fvnl3")
        assert not links.exists("fvnl3") and not links._deleters
    finally:
        release.set()
        worker.join()
    for p in (path, p1, p2):
        netns.destroy(p)
    print("done")
    """)


@pytest.fixture
def test_netns():
    with scratch_netns("flnltest") as name:
        yield name


def test_links_through_netlink_without_iproute2(test_netns, tmp_path):
    script = SCRIPT.format(repo=REPO, run=str(tmp_path / "run"))
    done = subprocess.run(["ip", "netns", "exec", test_netns, sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
