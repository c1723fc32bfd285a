"""User-defined networks: name resolution through the embedded resolver, and isolation between networks."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.runtime import _busybox_layer, scratch_netns

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")]

SCRIPT = textwrap.dedent("""\
    import json, os, socket, struct, sys
    sys.path.insert(0, {repo!r})
    from agent_payload import net
    from agent_payload.linux import libc
    from agent_payload.linux.consts import CLONE_NEWNET
    from agent_payload.net import dns
    from agent_payload.net.networks import Networks
    from agent_payload.state.paths import Paths

    paths = Paths(root={root!r}, config_dir={etc!r})
    nets = Networks(paths)
    app = nets.create("app", subnet="10.79.1.0/24")
    other = nets.create("other", subnet="10.79.2.0/24")
    ids = ["a" * 64, "b" * 64, "c" * 64]
    boxes = [net.setup(paths, ids[0], {{"name": "web1", "network": "app"}}),
             net.setup(paths, ids[1], {{"name": "web2", "network": "app",
                                        "networks": {{"app": {{"aliases": ["db"]}}}}}}),
             net.setup(paths, ids[2], {{"name": "web3", "network": "other"}})]
    resolver = dns.Resolver(boxes[0].netns, dns.names_for(paths, ids[0]), upstreams=[]).start()

    def inside(box, fn):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            libc.setns(os.open(box.netns, os.O_RDONLY), CLONE_NEWNET)
            try:
                os.write(w, json.dumps(fn()).encode())
            except Exception as exc:
                os.write(w, json.dumps("ERR " + str(exc)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return json.loads(os.read(r, 65536).decode())

    def query(name, qtype=1):
        def ask():
            q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
            q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack("!HH", qtype, 1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(q, ("127.0.0.11", 53))
            resp = s.recv(4096)
            rcode = resp[3] & 0xF
            count = struct.unpack("!H", resp[6:8])[0]
            return [rcode, [socket.inet_ntoa(resp[-4 - 16 * i:len(resp) - 16 * i]) for i in range(count)]]
        return inside(boxes[0], ask)

    def connect(box, ip):
        def go():
            try:
                socket.create_connection((ip, 9), timeout=2).close()
                return "connected"
            except ConnectionRefusedError:
                return "refused"  # reached the peer (nothing listens on 9): routable
            except OSError as exc:
                return "ERR " + str(exc)
        return inside(box, go)

    ip2 = boxes[1].settings["endpoints"][0]["ip"]
    ip1 = boxes[0].settings["endpoints"][0]["ip"]
    out = {{
        "ip2": ip2,
        "web2": query("web2"), "alias": query("db"), "qualified": query("web2.app"), "short_id": query("b" * 12),
        "aaaa": query("web2", 28), "other_net": query("web3"), "unknown": query("nosuch"),
        "same_net": connect(boxes[1], ip1), "across_nets": connect(boxes[2], ip1),
    }}
    # network connect / disconnect of the running container: what its resolver answers follows at once
    nets.join(other, ids[0], "web1")
    out["ip3"], out["connected"] = boxes[2].settings["endpoints"][0]["ip"], query("web3")
    nets.leave(other, ids[0])
    out["disconnected"] = query("web3")
    resolver.close()
    for cid, box in zip(ids, boxes):
        net.teardown(paths, cid, box.settings)
    print(json.dumps(out))
    """)


@pytest.fixture
def host_ns():
    with scratch_netns("fldnstest", lo_up=True) as name:
        yield name


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_names_resolve_on_a_user_network_and_networks_are_isolated(host_ns, tmp_path, backend):
    script = SCRIPT.format(repo=REPO, root=str(tmp_path / "root"), etc=str(tmp_path / "etc"))
    done = subprocess.run(["ip", "netns", "exec", host_ns, sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, FLEET_FIREWALL=backend))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for key in ("web2", "alias", "qualified", "short_id"):
        assert out[key] == [0, [out["ip2"]]], (key, out[key])
    assert out["aaaa"] == [0, []]
    assert out["other_net"] == [2, []] and out["unknown"] == [2, []]  # not ours; no upstream: SERVFAIL
    assert out["same_net"] == "refused"  # reachable
    assert out["across_nets"].startswith("ERR")  # dropped by the isolation rules
    assert out["connected"] == [0, [out["ip3"]]] and out["disconnected"] == [2, []]


# Real containers (host busybox as the image, private state root) on a user network, inside a network namespace
# of the test's own.  PRELUDE makes the layer, the runtime, network "app" and container "target" on it; a scenario
# fills ``out`` and leaves its containers in ``ids``; everything is removed, and must leave no endpoint behind.
PRELUDE = """\
import json, os, shutil, subprocess, sys, time
sys.path.insert(0, {repo!r})
from agent_payload.net.networks import Networks
from agent_payload.runtime.containers import Runtime
from agent_payload.runtime.spec import ContainerSpec
from agent_payload.state.paths import Paths

layer = {layer!r}  # made by the test (tests/helpers/runtime._busybox_layer)
paths = Paths(root={root!r})
rt = Runtime(paths)
app = Networks(paths).create("app", subnet="10.79.4.0/24")

def spec(name, argv, network="app", **kw):
    return ContainerSpec(image="busybox:test", image_id="sha256:" + "ab" * 32, lowerdirs=[layer], argv=argv,
                         network=network, name=name, **kw)

def output(cid):
    return "".join(ev["line"] for ev in rt.logs(cid))

ids, out = [], {{}}
try:
    ids.append(rt.create(spec("target", ["sleep", "300"]))["id"])
    rt.start(ids[0])
{scenario}
finally:
    rt.remove(ids, force=True)
    out["leftover_endpoints"] = sorted(Networks(paths).endpoints(app))
    if not out["leftover_endpoints"]:
        Networks(paths).remove("app")
print(json.dumps(out))
"""

# each container's command *is* the lookup, started at once: the resolver must answer before it runs
FIRST_LOOKUPS = """\
out["failures"] = []
for i in range({tries}):  # half through busybox's own DNS client, half through ping's getaddrinfo
    argv = ["nslookup", "target", "127.0.0.11"] if i % 2 else ["ping", "-c1", "-W1", "target"]
    cid = rt.create(spec("try%d" % i, argv))["id"]
    ids.append(cid)
    rt.start(cid)
    code = rt.wait(cid, timeout=30)
    if code != 0:
        out["failures"].append([argv[0], code, output(cid)])
# a restart policy: every run's first action is the lookup too
cid = rt.create(spec("again", ["nslookup", "target", "127.0.0.11"], restart_policy={{"Name": "always"}}))["id"]
ids.append(cid)
rt.start(cid)
deadline = time.monotonic() + 30
while (rt.lookup(cid).get("restart_count") or 0) < 4 and time.monotonic() < deadline:
    time.sleep(0.05)
log = output(cid)
out["restarts"] = [rt.lookup(cid).get("restart_count"), log.count("Name:"), log.count("no servers"), log]
"""

# a running container on the default bridge (no resolver) is connected to "app": when connect returns, its
# resolv.conf names 127.0.0.11 and that answers; after a disconnect the end of its run leaves nothing behind
CONNECT = """\
cid = rt.create(spec("late", ["sleep", "300"], network="bridge"))["id"]
ids.append(cid)
rt.start(cid)
pid, sandbox = rt.lookup(cid)["pid"], rt.lookup(cid)["network_settings"]["sandbox"]
def resolv():
    with open("/proc/{{}}/root/etc/resolv.conf".format(pid)) as f:
        return f.read()
def lookup(name):
    return subprocess.run(["nsenter", "--net=" + sandbox, "/usr/bin/busybox", "nslookup", name, "127.0.0.11"],
                          capture_output=True, text=True, timeout=20).returncode
out["before"] = resolv()
rt.connect(cid, "app")
out["after"], out["lookup"] = resolv(), lookup("target")
cid2 = rt.create(spec("later", ["sleep", "300"], network="bridge"))["id"]
ids.append(cid2)
rt.start(cid2)
rt.connect(cid2, "app")
rt.disconnect(cid2, "bridge")  # the shim must learn of both, or the end of its run forgets the app endpoint
# disconnected from its only user network while stopped: the next run's resolv.conf is the host's again
cid3 = rt.create(spec("gone", ["cat", "/etc/resolv.conf"]))["id"]
ids.append(cid3)
rt.start(cid3)
rt.wait(cid3, timeout=20)
rt.disconnect(cid3, "app")
rt.start(cid3)
rt.wait(cid3, timeout=20)
out["runs"] = output(cid3)
"""


def _in_netns(host_ns, tmp_path, scenario, **kw):
    """Run PRELUDE + ``scenario`` in ``host_ns``; returns its ``out``."""
    body = textwrap.indent(scenario.format(**kw), "    ")
    _busybox_layer(str(tmp_path / "layer"))
    script = PRELUDE.format(repo=REPO, root=str(tmp_path / "root"), layer=str(tmp_path / "layer"), scenario=body)
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", IN_NETNS, host_ns,
                           sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# a mount namespace of its own whose /sys shows the test namespace's links, with the host's cgroups bound back in
IN_NETNS = ("cg=$(mktemp -d) && mount --rbind /sys/fs/cgroup \"$cg\" && "
            "exec nsenter --net=/run/netns/\"$0\" sh -c "
            "'mount -t sysfs sysfs /sys && mount --rbind \"$0\" /sys/fs/cgroup && exec \"$@\"' \"$cg\" \"$@\"")
needs_busybox = pytest.mark.skipif(not os.path.exists("/usr/bin/busybox"), reason="needs /usr/bin/busybox")


@needs_busybox
def test_resolver_answers_the_first_lookup_of_a_container_and_of_each_restart(host_ns, tmp_path):
    tries = 50
    out = _in_netns(host_ns, tmp_path, FIRST_LOOKUPS, tries=tries)
    assert out["failures"] == [], "{} of {} lookups failed: {}".format(len(out["failures"]), tries, out["failures"][:3])
    restarts, resolved, unanswered, log = out["restarts"]
    assert restarts >= 4 and resolved >= 4 and unanswered == 0, log  # the first run and at least 3 restarts
    assert out["leftover_endpoints"] == []


@needs_busybox
def test_connect_to_a_user_network_starts_the_resolver_before_it_returns(host_ns, tmp_path):
    out = _in_netns(host_ns, tmp_path, CONNECT)
    assert "127.0.0.11" not in out["before"]  # the default bridge has no embedded DNS
    assert out["after"].startswith("nameserver 127.0.0.11\n") and out["lookup"] == 0, out
    assert out["leftover_endpoints"] == []  # "later" was connected, then left "bridge": its shim knew of both
    assert out["runs"].startswith("nameserver 127.0.0.11\n") and out["runs"].count("127.0.0.11") == 1, out["runs"]


# --dns/--dns-search/--dns-option on a user network: resolv.conf keeps the embedded resolver as its only
# nameserver with the given search and options, and the resolver forwards names it does not know to the --dns
# servers (here a UDP socket of the test's on 127.0.0.1:53 of the test namespace, which answers NXDOMAIN)
DNS_FLAGS = """\
import socket, threading
up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
up.bind(("127.0.0.1", 53))
up.settimeout(30)
seen = []
def serve():
    try:
        data, addr = up.recvfrom(512)
    except OSError:
        return
    seen.append(data)
    up.sendto(data[:2] + bytes([0x81, 0x83]) + data[4:], addr)
threading.Thread(target=serve, daemon=True).start()
cid = rt.create(spec("dnsflags", ["sh", "-c", "cat /etc/resolv.conf; nslookup -type=a upstream.example. 127.0.0.11"],
                     dns=["127.0.0.1"], dns_search=["example.com"], dns_options=["ndots:3"]))["id"]
ids.append(cid)
rt.start(cid)
rt.wait(cid, timeout=30)
out["run"] = output(cid)
out["seen"] = [d.decode("latin-1") for d in seen]
"""


@needs_busybox
def test_dns_flags_on_a_user_network_feed_the_embedded_resolver(host_ns, tmp_path):
    """docker run --network app --dns 127.0.0.1 --dns-search example.com --dns-option ndots:3: resolv.conf names
    127.0.0.11 only, with "search example.com" and "options ndots:3"; the embedded resolver forwards an unknown
    name to the --dns server, not to the host's."""
    out = _in_netns(host_ns, tmp_path, DNS_FLAGS)
    resolv = out["run"].split("Server:")[0]
    assert [ln for ln in resolv.splitlines() if ln.startswith("nameserver")] == ["nameserver 127.0.0.11"], resolv
    assert "search example.com\n" in resolv and "options ndots:3\n" in resolv, resolv
    assert len(out["seen"]) == 1 and "upstream" in out["seen"][0], out
    assert out["leftover_endpoints"] == []


MAC = """\
cid = rt.create(spec("mac", ["cat", "/sys/class/net/eth0/address"],
                     networks={{"app": {{"aliases": [], "ip": None, "mac": "92:d0:c6:0a:29:33"}}}}))["id"]
ids.append(cid)
rt.start(cid)
rt.wait(cid, timeout=30)
out["run"] = output(cid)
out["inspect"] = rt.inspect([cid])[0]["Config"].get("MacAddress")
"""


@needs_busybox
def test_mac_address_is_the_container_interface_s(host_ns, tmp_path):
    """docker run --network app --mac-address 92:d0:c6:0a:29:33: eth0 has that address; inspect's
    Config.MacAddress shows it (the op's network_flags puts it on the first network, test_compat_flags_local)."""
    out = _in_netns(host_ns, tmp_path, MAC)
    assert out["run"] == "92:d0:c6:0a:29:33\n" and out["inspect"] == "92:d0:c6:0a:29:33", out
    assert out["leftover_endpoints"] == []


LINK = """\
cid = rt.create(spec("linker", ["sh", "-c", "cat /etc/hosts; ping -c1 -W2 db2 > /dev/null && echo PING-OK"],
                     links=["target:db2"]))["id"]
ids.append(cid)
rt.start(cid)
rt.wait(cid, timeout=30)
out["run"], out["links"] = output(cid), rt.inspect([cid])[0]["HostConfig"]["Links"]
out["target"] = [ids[0], rt.lookup(ids[0])["network_settings"]["endpoints"][0]["ip"]]
ids.append(rt.create(spec("stopped", ["true"]))["id"])
cid = rt.create(spec("linker2", ["true"], links=["stopped:x"]))["id"]
ids.append(cid)
try:
    rt.start(cid)
    out["stopped"] = "started"
except Exception as exc:
    out["stopped"] = str(exc)
"""


@needs_busybox
def test_link_puts_the_linked_container_in_etc_hosts(host_ns, tmp_path):
    """docker run --link target:db2 (legacy): /etc/hosts has "IP\\tdb2 ID12 target", so db2 answers; inspect's
    HostConfig.Links is ["/target:/linker/db2"]; a link to a container that is not running fails the start with
    docker's "Cannot link to a non running container: /stopped AS /linker2/x"."""
    out = _in_netns(host_ns, tmp_path, LINK)
    cid, ip = out["target"]
    assert "{}\tdb2 {} target\n".format(ip, cid[:12]) in out["run"] and "PING-OK" in out["run"], out["run"]
    assert out["links"] == ["/target:/linker/db2"]
    assert "Cannot link to a non running container: /stopped AS /linker2/x" in out["stopped"], out["stopped"]
    assert out["leftover_endpoints"] == []
