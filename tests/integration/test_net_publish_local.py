"""A container sandbox on the default bridge with a published port, reached three ways, then torn down to nothing.

Runs inside a test-owned network namespace ("the host"), with a second namespace as another machine on a link to
it: DNAT from the other machine (PREROUTING), DNAT from the host's own address (OUTPUT), and 127.0.0.1 through the
userland proxy. After teardown no rule, link, address or namespace file of the container is left.
"""

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")]

SCRIPT = textwrap.dedent("""\
    import json, os, socket, subprocess, sys, time
    sys.path.insert(0, {repo!r})
    from agent_payload import errors, net
    from agent_payload.linux import libc
    from agent_payload.linux.consts import CLONE_NEWNET
    from agent_payload.net import firewall, links, ports
    from agent_payload.net.networks import Networks
    from agent_payload.net.proxy import Proxy
    from agent_payload.state.paths import Paths

    paths = Paths(root={root!r}, config_dir={etc!r})
    cid = "c" * 64
    config = {{"name": "web", "network": "bridge", "ports": ports.parse_all(["8080:80", "127.0.0.1::80"])}}
    box = net.setup(paths, cid, config)
    ep = box.settings["endpoints"][0]

    # the "container": a server inside the sandbox answering with its name
    r, w = os.pipe()
    server = os.fork()
    if server == 0:
        fd = os.open(box.netns, os.O_RDONLY)
        libc.setns(fd, CLONE_NEWNET)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 80))
        s.listen(8)
        os.write(w, b"up")
        while True:
            c, peer = s.accept()
            c.sendall("hello from web to {{}}".format(peer[0]).encode())
            c.close()
    os.read(r, 2)
    proxy = Proxy(box.opened, ep["ip"]).start()

    def fetch(host, port, ns=None, path=None):
        rr, ww = os.pipe()
        pid = os.fork()
        if pid == 0:
            if ns or path:
                libc.setns(os.open(path or "/run/netns/" + ns, os.O_RDONLY), CLONE_NEWNET)
            try:
                s = socket.create_connection((host, port), timeout=3)
                os.write(ww, s.recv(200))
            except OSError as exc:
                os.write(ww, ("ERR " + str(exc)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return os.read(rr, 200).decode()

    out = {{}}
    out["backend"] = firewall.backend(paths).name
    out["settings_ports"] = box.settings["ports"]
    out["remote"] = fetch({host_ip!r}, 8080, ns={other!r})
    out["own_address"] = fetch({host_ip!r}, 8080)
    out["loopback"] = fetch("127.0.0.1", 8080)
    out["hairpin"] = fetch({host_ip!r}, 8080, path=box.netns)  # the container to its own published port
    random_port = box.settings["ports"][1]["host_port"]
    out["random_loopback"] = fetch("127.0.0.1", random_port)
    out["random_not_on_other_addresses"] = fetch({host_ip!r}, random_port)
    # a second container cannot take 8080
    try:
        net.setup(paths, "d" * 64, {{"name": "web2", "network": "bridge", "ports": ports.parse("8080:80")}})
        out["second"] = "started"
    except errors.Conflict as exc:
        out["second"] = str(exc)
    out["rules_before"] = len(firewall.backend(paths).rules(firewall.container_tag(cid)))
    proxy.close()
    os.kill(server, 9)
    os.waitpid(server, 0)
    net.teardown(paths, cid, box.settings)
    net.teardown(paths, cid, box.settings)  # idempotent
    nets = Networks(paths)
    out["rules_after"] = len(firewall.backend(paths).rules(firewall.container_tag(cid)))
    out["addresses_after"] = nets.pool(nets.default()).owners()
    out["veth_after"] = links.exists(ep["host_if"])
    out["netns_after"] = os.path.exists(box.netns)
    out["d_addresses"] = [o for o in nets.pool(nets.default()).owners().values() if o.startswith("d")]
    print(json.dumps(out))
    """)


@pytest.fixture
def two_hosts():
    """Two namespaces linked by a veth pair: 'host' 10.78.0.1/24 and 'other' 10.78.0.2/24."""
    suffix = os.getpid() % 100000
    host, other = "flpubhost{}".format(suffix), "flpubother{}".format(suffix)
    for ns in (host, other):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cmds = [["ip", "link", "add", "flpa{}".format(suffix), "netns", host, "type", "veth", "peer", "name",
                 "flpb{}".format(suffix), "netns", other],
                ["ip", "-n", host, "addr", "add", "10.78.0.1/24", "dev", "flpa{}".format(suffix)],
                ["ip", "-n", other, "addr", "add", "10.78.0.2/24", "dev", "flpb{}".format(suffix)],
                ["ip", "-n", host, "link", "set", "flpa{}".format(suffix), "up"],
                ["ip", "-n", other, "link", "set", "flpb{}".format(suffix), "up"],
                ["ip", "-n", host, "link", "set", "lo", "up"], ["ip", "-n", other, "link", "set", "lo", "up"]]
        for cmd in cmds:
            subprocess.run(cmd, check=True)
        yield host, other
    finally:
        for ns in (host, other):
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize("backend", ["nftables", "iptables", "none"])
def test_published_port_via_dnat_and_proxy_then_nothing_left(two_hosts, tmp_path, backend):
    import json
    host, other = two_hosts
    script = SCRIPT.format(repo=REPO, root=str(tmp_path / "root"), etc=str(tmp_path / "etc"), host_ip="10.78.0.1",
                           other=other)
    done = subprocess.run(["ip", "netns", "exec", host, sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, FLEET_FIREWALL=backend))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["backend"].startswith(backend)
    if backend == "none":  # the proxy alone: it answers every address, the container sees the bridge's address
        assert out["remote"].startswith("hello from web to 172.17.0.1")
    else:
        assert out["remote"].startswith("hello from web to 10.78.0.2")  # DNAT keeps the client's address
    assert out["own_address"].startswith("hello from web")
    assert out["loopback"].startswith("hello from web")  # the proxy
    assert out["hairpin"].startswith("hello from web")
    assert out["random_loopback"].startswith("hello from web")
    assert out["random_not_on_other_addresses"].startswith("ERR")  # bound to 127.0.0.1 only
    assert "already allocated" in out["second"] and out["d_addresses"] == []
    assert out["rules_before"] == (0 if backend == "none" else 2)
    assert out["rules_after"] == 0 and out["addresses_after"] == {} and not out["veth_after"]
    assert not out["netns_after"]
