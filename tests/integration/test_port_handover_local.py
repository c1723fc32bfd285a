"""Port handover with real containers: a staged container takes over a live one's published port without one
refused connection, for each firewall backend (nftables, iptables, none = the userland proxy alone).

Inside a network namespace of the test's own ("the host", address 10.81.0.1 on a link to a second namespace,
"the other machine"), two busybox httpd containers serve "old" and "new". Client threads hammer the published
port from the other machine (PREROUTING DNAT), at the host's own address (OUTPUT DNAT) and at 127.0.0.1 (the
userland proxy) while the ports are handed over; every answer must be "old" or "new", none an error.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from agent_payload.ops import dispatch
from tests.helpers import images
from tests.helpers.images import _layer_with_links, op
from tests.helpers.runtime import _busybox_layer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/busybox"),
                                 reason="needs root (network namespaces) and /usr/bin/busybox")]

env = images.env  # the fixture: private FLEET_ROOT with an image store, cleanup of every process and mount


def test_create_op_records_staged_bindings_without_claiming_the_port(env):
    """publish_staged goes from the request to config.json; create binds nothing either way (start does)."""
    env.image(["bb:1"], [_layer_with_links()])
    def create(**args):  # op() takes the op's name as "name": the container's goes in the dict
        return dispatch(env.ctx, "create", dict(args, image="bb:1", publish=["8080:80"]), lambda *a: None)

    staged = create(name="staged", publish_staged=True)
    plain = create(name="plain")
    assert env.rt.lookup(staged["id"])["publish_staged"] is True
    assert env.rt.lookup(plain["id"])["publish_staged"] is False
    inspected = op(env, "inspect", containers=["staged"])["containers"]
    assert inspected[0]["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


SCRIPT = textwrap.dedent("""\
    import json, os, shutil, socket, subprocess, sys, threading, time
    sys.path.insert(0, {repo!r})
    from agent_payload import errors
    from agent_payload.linux import libc
    from agent_payload.linux.consts import CLONE_NEWNET
    from agent_payload.net import firewall, ports
    from agent_payload.runtime.containers import Runtime
    from agent_payload.runtime.spec import ContainerSpec
    from agent_payload.state.paths import Paths

    layer = {layer!r}  # made by the test (tests/helpers/runtime._busybox_layer)
    paths = Paths(root={root!r})
    rt = Runtime(paths)
    HOST, PORT = {host_ip!r}, 8080

    def spec(name, **kw):
        argv = ["sh", "-c", "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 80 -h /www" % name]
        return ContainerSpec(image="busybox:test", image_id="sha256:" + "ab" * 32, lowerdirs=[layer], argv=argv,
                             network="bridge", name=name, ports=ports.parse("%d:80" % PORT), **kw)

    def get(host, port, timeout=3):
        s = socket.create_connection((host, port), timeout=timeout)
        try:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            return read_body(s)
        finally:
            s.close()

    def read_body(s):
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().rsplit("\\r\\n\\r\\n", 1)[-1].strip()

    def wait_for(fn, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = fn()
                if value:
                    return value
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for " + repr(fn))
            time.sleep(0.02)

    def container_ip(cid):
        return rt.lookup(cid)["network_settings"]["endpoints"][0]["ip"]

    def rules(cid):
        return len(firewall.backend(paths).rules(firewall.container_tag(cid)))

    class Client(threading.Thread):
        # one fresh connection after the other until stopped: (start, end, "old"|"new"|"ERR ...")
        def __init__(self, host, netns=None):
            super().__init__(daemon=True)
            self.host, self.netns, self.results, self.stop = host, netns, [], threading.Event()

        def run(self):
            if self.netns:  # this thread only: its sockets live in the other machine's namespace
                libc.setns(os.open(self.netns, os.O_RDONLY), CLONE_NEWNET)
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    body = get(self.host, PORT)
                except Exception as exc:
                    body = "ERR {{}}: {{}}".format(type(exc).__name__, exc)
                self.results.append((start, time.monotonic(), body))

        def count(self, body, since=0.0):
            return sum(1 for s, _, b in list(self.results) if b == body and s >= since)

    out, ids = {{"backend": firewall.backend(paths).name}}, []
    try:
        old = rt.create(spec("old"))["id"]
        ids.append(old)
        rt.start(old)
        wait_for(lambda: get("127.0.0.1", PORT) == "old")
        # the new one stages the very port the old one serves: no "port is already allocated"
        new = rt.create(spec("new", publish_staged=True))["id"]
        ids.append(new)
        rt.start(new)
        wait_for(lambda: get(container_ip(new), 80) == "new")
        inspected = rt.inspect([new])[0]
        out["staged_inspect"] = [inspected["HostConfig"]["PortBindings"], inspected["NetworkSettings"]["Ports"]]
        out["staged_ps"] = [r["ports"] for r in rt.list() if r["id"] == new]
        out["staged_rules"] = rules(new)
        out["staged_answers"] = [get(HOST, PORT), get("127.0.0.1", PORT), get(HOST, PORT)]
        # connections made to the old one before the handover, used after it
        early = [socket.create_connection((h, PORT), timeout=3) for h in (HOST, "127.0.0.1")]
        clients = [Client(HOST), Client("127.0.0.1"), Client(HOST, netns={other!r})]
        for c in clients:
            c.start()
        wait_for(lambda: all(c.count("old") >= 20 for c in clients))
        result = rt.handover_ports(old, new)
        switched = time.monotonic()
        wait_for(lambda: all(c.count("new", since=switched) >= 20 for c in clients))
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(10)
        out["moved"] = [[b["host_port"], b["container_port"]] for b in result["moved"]]
        out["errors"] = [b for c in clients for _, _, b in c.results if b not in ("old", "new")]
        out["old_after_switch"] = [b for c in clients for s, _, b in c.results if s >= switched and b != "new"]
        out["counts"] = [[c.count("old"), c.count("new")] for c in clients]
        for s in early:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        out["early"] = [read_body(s) for s in early]
        for s in early:
            s.close()
        out["rules_after"] = [rules(old), rules(new)]
        rec = rt.lookup(new)
        out["new_record"] = [rec.get("publish_staged"), rec["network_settings"].get("staged_ports"),
                             [b["host_port"] for b in rec["network_settings"]["ports"]]]
        out["old_ports"] = rt.lookup(old)["network_settings"]["ports"]
        out["ps"] = {{r["name"]: r["ports"] for r in rt.list()}}
        out["again"] = rt.handover_ports(old, new)["moved"]  # idempotent: nothing left to move
        # and back (a rollback after the switch): the old one, never staged, takes its configured ports again
        out["back"] = [[b["host_port"], b["container_port"]] for b in rt.handover_ports(new, old)["moved"]]
        out["back_answers"] = [get(HOST, PORT), get("127.0.0.1", PORT), rules(old), rules(new)]
        rt.handover_ports(old, new)
        rt.stop([old], time=1)
        out["from_exited"] = rt.handover_ports(old, new)["moved"]
        rt.remove([old])
        ids.remove(old)
        out["after_old_removed"] = [get(HOST, PORT), get("127.0.0.1", PORT), rules(new)]
        out["from_none"] = rt.handover_ports(None, new)["moved"]
        rt.restart([new], time=1)  # no longer staged: a new run publishes the port as usual
        wait_for(lambda: get("127.0.0.1", PORT) == "new")
        out["after_restart"] = [get(HOST, PORT), get("127.0.0.1", PORT), rules(new)]
        # staged again for its next start (a start-first rollback brings a previous container back so)
        try:
            rt.stage_ports(new)
        except errors.Conflict as exc:
            out["stage_running"] = str(exc)
        rt.stop([new], time=1)
        rt.stage_ports(new)
        rt.start(new)
        wait_for(lambda: get(container_ip(new), 80) == "new")
        out["restaged"] = []
        for host in (HOST, "127.0.0.1"):
            try:
                out["restaged"].append(get(host, PORT))
            except ConnectionRefusedError:
                out["restaged"].append("refused")
        rt.handover_ports(None, new)
        out["handed_again"] = [get(HOST, PORT), get("127.0.0.1", PORT), rt.lookup(new)["publish_staged"]]
    finally:
        rt.remove(ids, force=True)
    out["rules_end"] = [rules(cid) for cid in (old, new)]
    print(json.dumps(out))
    """)


@pytest.fixture
def two_hosts():
    """Two namespaces linked by a veth pair: 'host' 10.81.0.1/24 and 'other' 10.81.0.2/24."""
    suffix = os.getpid() % 100000
    host, other = "flhohost{}".format(suffix), "flhoother{}".format(suffix)
    for ns in (host, other):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        a, b = "flhoa{}".format(suffix), "flhob{}".format(suffix)
        for cmd in (["ip", "link", "add", a, "netns", host, "type", "veth", "peer", "name", b, "netns", other],
                    ["ip", "-n", host, "addr", "add", "10.81.0.1/24", "dev", a],
                    ["ip", "-n", other, "addr", "add", "10.81.0.2/24", "dev", b],
                    ["ip", "-n", host, "link", "set", a, "up"], ["ip", "-n", other, "link", "set", b, "up"],
                    ["ip", "-n", host, "link", "set", "lo", "up"], ["ip", "-n", other, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True)
        yield host, other
    finally:
        for ns in (host, other):
            subprocess.run(["ip", "netns", "del", ns], check=False)


# a mount namespace of its own whose /sys shows the test namespace's links, with the host's cgroups bound back in
IN_NETNS = ("cg=$(mktemp -d) && mount --rbind /sys/fs/cgroup \"$cg\" && "
            "exec nsenter --net=/run/netns/\"$0\" sh -c "
            "'mount -t sysfs sysfs /sys && mount --rbind \"$0\" /sys/fs/cgroup && exec \"$@\"' \"$cg\" \"$@\"")


@pytest.mark.parametrize("backend", ["nftables", "iptables", "iptables-legacy", "none"])
def test_staged_container_takes_over_the_port_without_a_refused_connection(two_hosts, tmp_path, backend):
    host, other = two_hosts
    if backend == "iptables-legacy":  # a host whose rules are legacy ones: fleet detects and joins them
        if not shutil.which("iptables-legacy"):
            pytest.skip("no iptables-legacy on this machine")
        subprocess.run(["ip", "netns", "exec", host, "iptables-legacy", "-A", "INPUT", "-j", "ACCEPT"], check=True)
    _busybox_layer(str(tmp_path / "layer"))
    script = SCRIPT.format(repo=REPO, root=str(tmp_path / "root"), layer=str(tmp_path / "layer"),
                           host_ip="10.81.0.1", other="/run/netns/" + other)
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", IN_NETNS, host,
                           sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, FLEET_FIREWALL=backend.split("-")[0]))
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["backend"].startswith(backend.split("-")[0]) and ("legacy" in out["backend"]) == ("legacy" in backend)
    bindings, ports = out["staged_inspect"]
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert out["staged_ps"] == [""] and out["staged_rules"] == 0  # recorded, not routed
    assert out["staged_answers"] == ["old", "old", "old"]
    assert out["errors"] == [], out["errors"][:5]
    assert out["old_after_switch"] == []
    assert all(old >= 20 and new >= 20 for old, new in out["counts"]), out["counts"]
    assert out["moved"] == [[8080, 80]]
    assert out["early"] == ["old", "old"]  # conntrack (DNAT) and the old shim's relay keep them on the old one
    assert out["rules_after"] == ([0, 0] if backend == "none" else [0, 1])
    assert out["new_record"] == [False, None, [8080]]
    assert out["old_ports"] == []
    assert out["ps"]["new"] == "0.0.0.0:8080->80/tcp" and out["ps"]["old"] == ""
    assert out["again"] == []
    assert out["back"] == [[8080, 80]]
    assert out["back_answers"] == (["old", "old", 0, 0] if backend == "none" else ["old", "old", 1, 0])
    assert out["after_old_removed"] == ["new", "new", 0 if backend == "none" else 1]
    assert out["from_none"] == [] and out["from_exited"] == []
    assert out["after_restart"] == ["new", "new", 0 if backend == "none" else 1]
    assert "it is running" in out["stage_running"]
    assert out["restaged"] == ["refused", "refused"]
    assert out["handed_again"] == ["new", "new", False]
    assert out["rules_end"] == [0, 0]
