"""Networking over SSH on the lab: published ports (DNAT, the proxy, random, -P, UDP), user networks with name
resolution and isolation, container:/host modes, bad input, and a clean host after rm -f of many containers."""

import concurrent.futures
import json

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration
PREFIX = "nt-"


@pytest.fixture
def clean(lab):
    yield
    lab.remove_containers(PREFIX)
    for host in lab.hosts:
        rc, nets = lab.fleet_json("network", "ls", "-H", host, "-f", "name=" + PREFIX)
        for n in nets[host].get("networks", []):
            lab.fleet("network", "rm", "-H", host, n["name"])


def _inspect(lab, host, *names):
    proc = lab.fleet("inspect", "-H", host, *names)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _curl(lab, host, url):
    return _ssh(lab, host, "curl -s -m 5 " + url).stdout


def _host_state(lab, host):
    """What fleet's networking leaves on a host: our nft rules per tag kind, veths, addresses, namespace files."""
    script = ("nft -j list table ip fleet 2>/dev/null || echo '{}'; echo ---; "
              "ls /sys/class/net | grep '^fv' | tr '\\n' ' '; echo; echo ---; "
              "find /var/lib/fleet/networks -path '*/ipam/*' -name '[0-9]*' | wc -l; echo ---; "
              "ls /run/fleet/netns 2>/dev/null | wc -l")
    out = _ssh(lab, host, script).stdout.split("---")
    rules = [i["rule"].get("comment", "") for i in json.loads(out[0] or "{}").get("nftables", []) if "rule" in i]
    return {"container_rules": [r for r in rules if r.startswith("fleet:")], "veths": out[1].split(),
            "addresses": int(out[2]), "netns": int(out[3])}


def test_published_port_from_another_host_the_host_itself_and_port_table(lab, clean):
    web1 = lab.address("web1")
    rc = lab.fleet("run", "-H", "web1", "-d", "-p", "8080:80", "--name", PREFIX + "web", "nginx")
    assert rc.returncode == 0, rc.stdout + rc.stderr
    rc, port = lab.fleet_json("port", "-H", "web1", PREFIX + "web")
    assert port["web1"]["ports"] == [{"container_port": 80, "proto": "tcp", "host_ip": "0.0.0.0", "host_port": 8080}]
    table = lab.fleet("port", "-H", "web1", PREFIX + "web").stdout
    assert "80/tcp" in table and "0.0.0.0:8080" in table
    ps = lab.fleet("ps", "-H", "web1", "-f", "name=" + PREFIX + "web").stdout
    assert "0.0.0.0:8080->80/tcp" in ps
    assert "nginx" in _curl(lab, "web2", "http://{}:8080/".format(web1))  # DNAT from another host
    assert "nginx" in _curl(lab, "web1", "http://{}:8080/".format(web1))  # the host's own address (OUTPUT)
    assert "nginx" in _curl(lab, "web1", "http://127.0.0.1:8080/")  # loopback: the userland proxy
    obj = _inspect(lab, "web1", PREFIX + "web")[0]
    assert obj["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert obj["NetworkSettings"]["IPAddress"].startswith("172.") and obj["HostConfig"]["NetworkMode"] == "default"
    # a second container cannot take the port: error before it starts, the first keeps serving
    rc = lab.fleet("run", "-H", "web1", "-d", "-p", "8080:80", "--name", PREFIX + "web2", "nginx")
    assert rc.returncode == 125 and "already allocated" in rc.stderr  # one host: docker run's 125
    assert "nginx" in _curl(lab, "web2", "http://{}:8080/".format(web1))


def test_random_publish_all_and_udp(lab, clean):
    web1 = lab.address("web1")
    assert lab.fleet("run", "-H", "web1", "-d", "-P", "--name", PREFIX + "pall", "nginx").returncode == 0
    rc, port = lab.fleet_json("port", "-H", "web1", PREFIX + "pall", "80/tcp")
    random_port = port["web1"]["ports"][0]["host_port"]
    assert random_port > 1024 and "nginx" in _curl(lab, "web2", "http://{}:{}/".format(web1, random_port))
    missing = lab.fleet("port", "-H", "web1", PREFIX + "pall", "443")
    assert missing.returncode == 1 and "No public port '443/tcp'" in missing.stdout
    # UDP: busybox has no UDP server, so the receiver is the host's python3 inside the container's network
    # namespace (its SandboxKey) -- what a published port targets; it echoes one datagram and exits (timeout 20)
    rc = lab.fleet("run", "-H", "web1", "-d", "-p", "5353:5353/udp", "--name", PREFIX + "udp", "busybox",
                   "sleep", "300")
    assert rc.returncode == 0, rc.stdout + rc.stderr
    sandbox = _inspect(lab, "web1", PREFIX + "udp")[0]["NetworkSettings"]["SandboxKey"]
    echo = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353)); "
            "d, a = s.recvfrom(100); s.sendto(b'echo:' + d, a)")
    assert _ssh(lab, "web1", "nsenter --net={} timeout 20 python3 -c \"{}\" >/dev/null 2>&1 &".format(
        sandbox, echo)).returncode == 0
    send = ("import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)\n"
            "for _ in range(10):\n"
            "    s.sendto(b'hello-udp', ('{}', 5353))\n"
            "    try:\n"
            "        print(s.recv(100).decode()); break\n"
            "    except OSError:\n"
            "        time.sleep(0.5)\n").format(web1)
    assert _ssh(lab, "web2", "python3 -c \"{}\"".format(send)).stdout.strip() == "echo:hello-udp"


def test_user_network_names_isolation_and_modes(lab, clean):
    net, other = PREFIX + "app", PREFIX + "other"
    assert lab.fleet("network", "create", "-H", "web1", net).returncode == 0
    assert lab.fleet("network", "create", "-H", "web1", "--subnet", "10.231.0.0/24", other).returncode == 0
    for name, network in (("busybox1", net), ("busybox2", net), ("busybox3", other)):
        args = ["run", "-H", "web1", "-d", "--network", network, "--name", PREFIX + name]
        if name == "busybox2":
            args += ["--network-alias", "db"]
        assert lab.fleet(*(args + ["busybox", "sleep", "300"])).returncode == 0
    ping = lab.fleet("exec", "-H", "web1", PREFIX + "busybox1", "ping", "-c", "1", "-W", "2", PREFIX + "busybox2")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert lab.fleet("exec", "-H", "web1", PREFIX + "busybox1", "ping", "-c", "1", "-W", "2", "db").returncode == 0
    info = _inspect(lab, "web1", PREFIX + "busybox1", PREFIX + "busybox3")
    ip1 = info[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    assert info[1]["NetworkSettings"]["Networks"][other]["IPAddress"].startswith("10.231.0.")
    assert lab.fleet("exec", "-H", "web1", PREFIX + "busybox3", "ping", "-c", "1", "-W", "2", ip1).returncode != 0
    unknown = lab.fleet("exec", "-H", "web1", PREFIX + "busybox3", "nslookup", PREFIX + "busybox1", "127.0.0.11")
    assert unknown.returncode != 0  # names of other networks are not visible
    # connect busybox3 to the app network: now it reaches busybox1 by name, at once
    assert lab.fleet("network", "connect", "-H", "web1", net, PREFIX + "busybox3").returncode == 0
    assert lab.fleet("exec", "-H", "web1", PREFIX + "busybox3", "ping", "-c", "1", "-W", "2", ip1).returncode == 0
    assert lab.fleet("network", "disconnect", "-H", "web1", net, PREFIX + "busybox3").returncode == 0
    assert lab.fleet("exec", "-H", "web1", PREFIX + "busybox3", "ping", "-c", "1", "-W", "2", ip1).returncode != 0
    # container: shares busybox1's namespace; host sees the lab host's own interface
    shared = lab.fleet("run", "-H", "web1", "--rm", "--network", "container:" + PREFIX + "busybox1", "busybox",
                       "ip", "-4", "addr")
    assert ip1 in shared.stdout
    host = lab.fleet("run", "-H", "web1", "--rm", "--network", "host", "busybox", "ip", "-4", "addr")
    assert lab.address("web1") in host.stdout
    in_use = lab.fleet("network", "rm", "-H", "web1", net)
    assert in_use.returncode == 1 and "active endpoints" in in_use.stdout
    rc, nets = lab.fleet_json("network", "ls", "-H", "web1")
    assert {n["name"] for n in nets["web1"]["networks"]} >= {"bridge", "host", "none", net, other}


def test_bad_network_input_is_refused_before_anything_changes(lab, clean):
    before = _host_state(lab, "web1")
    for args, text in ((["run", "-H", "web1", "-d", "-p", "80:80:80:80", "busybox"], "-p"),
                       (["run", "-H", "web1", "-d", "-p", "99999:80", "busybox"], "hostPort"),
                       (["run", "-H", "web1", "-d", "--network", "nt-nosuch", "busybox"], "not found"),
                       (["run", "-H", "web1", "-d", "--network", "none", "-p", "80", "busybox"], "conflicting")):
        rc = lab.fleet(*args)
        assert rc.returncode == 2 and text in rc.stderr, (args, rc.stdout, rc.stderr)
    assert lab.fleet("network", "create", "-H", "web1", "--subnet", "10.232.0.0/24", PREFIX + "n1").returncode == 0
    overlap = lab.fleet("network", "create", "-H", "web1", "--subnet", "10.232.0.128/25", PREFIX + "n2")
    assert overlap.returncode == 1 and "overlaps" in overlap.stdout
    rc, after = lab.fleet_json("ps", "-H", "web1", "-a", "-f", "name=^" + PREFIX)
    assert after["web1"]["containers"] == []
    assert _host_state(lab, "web1") == before


def test_rm_f_of_twenty_concurrent_containers_leaves_nothing(lab, clean):
    before = _host_state(lab, "web2")

    def start(i):
        return lab.fleet("run", "-H", "web2", "-d", "-p", "80", "--name", "{}many{}".format(PREFIX, i), "busybox",
                         "sleep", "300")
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(start, range(20)))
    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results if r.returncode]
    during = _host_state(lab, "web2")
    assert len(during["container_rules"]) == 20 and len(during["veths"]) == 20 and during["addresses"] == 20
    info = _inspect(lab, "web2", *["{}many{}".format(PREFIX, i) for i in range(20)])
    ips = [o["NetworkSettings"]["IPAddress"] for o in info]
    assert len(set(ips)) == 20  # no address handed out twice
    lab.remove_containers(PREFIX + "many")
    assert _host_state(lab, "web2") == before


def test_two_containers_on_a_user_network_ping_each_other_by_name_on_every_host(lab, clean):
    net = PREFIX + "pair"
    assert lab.fleet("network", "create", "-H", "all", net).returncode == 0
    for name in ("busybox1", "busybox2"):
        rc = lab.fleet("run", "-H", "all", "-d", "--network", net, "--name", PREFIX + name, "busybox", "sleep", "300")
        assert rc.returncode == 0, rc.stdout + rc.stderr
    ping = lab.fleet("exec", "-H", "all", PREFIX + "busybox1", "ping", "-c", "1", "-W", "2", PREFIX + "busybox2")
    assert ping.returncode == 0 and ping.stdout.count("1 packets received") == len(lab.hosts), ping.stdout
    # fleet run -p on several hosts reports each host's mapping
    run = lab.fleet("run", "-H", "all", "-d", "-p", "8081:80", "--name", PREFIX + "multi", "nginx")
    assert run.returncode == 0 and run.stdout.count("0.0.0.0:8081->80/tcp") == len(lab.hosts), run.stdout
