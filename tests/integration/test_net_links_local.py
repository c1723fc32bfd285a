"""Network plumbing on the real kernel: namespace files, a bridge, veth pairs and addresses (inside a test netns)."""

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
    import os, socket, sys
    sys.path.insert(0, {repo!r})
    from agent_payload.linux import libc
    from agent_payload.linux.consts import CLONE_NEWNET
    from agent_payload.net import links, netns

    run = {run!r}
    links.ensure_bridge("fltest0", "10.77.0.1", 24)
    links.ensure_bridge("fltest0", "10.77.0.1", 24)  # idempotent

    def bridge_mac():
        with open("/sys/class/net/fltest0/address") as f:
            return f.read().strip()
    assert bridge_mac() == links.mac_for("10.77.0.1")
    listener = socket.socket()
    listener.bind(("10.77.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def probe(path, target):
        # connect from inside the namespace bound at path; returns the peer address the server saw
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            fd = os.open(path, os.O_RDONLY)
            libc.setns(fd, CLONE_NEWNET)
            try:
                s = socket.create_connection((target, port), timeout=3)
                s.close()
                os.write(w, b"ok")
            except OSError as exc:
                os.write(w, str(exc).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return os.read(r, 200).decode()

    paths = []
    for i, ip in enumerate(("10.77.0.2", "10.77.0.3")):
        path = os.path.join(run, "netns", "c{{}}".format(i))
        with netns.create(path) as holder:
            links.attach(holder.pid, path, "fltest0", "fvtest{{}}".format(i), ip, 24, "10.77.0.1")
        paths.append(path)
        assert netns.exists(path)
        assert probe(path, "10.77.0.1") == "ok", "container {{}} cannot reach the gateway".format(i)
        conn, peer = listener.accept()
        assert peer[0] == ip, peer
        conn.close()
    # a new holder inside an existing namespace names it for `ip link set ... netns PID`
    with netns.holder(paths[0]) as h:
        assert os.stat("/proc/{{}}/ns/net".format(h.pid)).st_ino == os.stat(paths[0]).st_ino
    links.detach(paths[1], "eth0")
    assert not links.exists("fvtest1")  # the host side went with it
    assert probe(paths[1], "10.77.0.1") != "ok"
    links.remove_link("fvtest0")  # explicit: a dying namespace takes its veths only later (asynchronously)
    assert not links.exists("fvtest0")
    # ports came and went: the gateway's MAC (in every container's neighbour cache) is still the bridge's own
    assert bridge_mac() == links.mac_for("10.77.0.1"), bridge_mac()
    for path in paths:
        netns.destroy(path)
        netns.destroy(path)  # idempotent
        assert not os.path.exists(path)
    links.remove_link("fltest0")
    assert not links.exists("fltest0")
    print("done")
    """)


@pytest.fixture
def test_netns():
    with scratch_netns("flnettest") as name:
        yield name


def test_bridge_veth_and_namespace_files(test_netns, tmp_path):
    script = SCRIPT.format(repo=REPO, run=str(tmp_path / "run"))
    done = subprocess.run(["ip", "netns", "exec", test_netns, sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
