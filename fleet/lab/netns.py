"""Lab networking: naming, the address plan, the bridge, one netns per lab host joined by a veth pair."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Callable

from .state import LabError, run

IFNAMSIZ = 15
REGISTRY_OCTET = 2
MIRROR_OCTET = 3
AUTH_OCTET = 4
FIRST_HOST_OCTET = 11
SERVICES = {"registry": REGISTRY_OCTET, "mirror": MIRROR_OCTET, "auth": AUTH_OCTET}


@dataclass(frozen=True)
class Node:
    """One lab machine: a lab host (role web/db) or a service host (registry, mirror, auth)."""

    name: str
    address: str
    netns: str
    veth: str
    role: str


def tag(name: str) -> str:
    """A short, stable tag for interface names: the lab name itself, or a prefix plus a hash when it is too long."""
    if len(name) <= 8 and name.replace("-", "").isalnum():
        return name
    return name[:4] + hashlib.sha1(name.encode()).hexdigest()[:4]


def bridge_name(name: str) -> str:
    """The lab bridge in the root namespace, e.g. fl-fleetlab (at most 15 characters)."""
    return ("fl-" + tag(name))[:IFNAMSIZ]


def veth_prefix(name: str) -> str:
    """Prefix shared by the root-side ends of the lab's veth pairs."""
    return "fl" + tag(name) + "-"


def host_names(count: int) -> list[str]:
    """web1..webK then db1..dbM with M = count // 3 and K = count - M."""
    dbs = count // 3
    webs = count - dbs
    return ["web{}".format(i) for i in range(1, webs + 1)] + ["db{}".format(i) for i in range(1, dbs + 1)]


def plan(name: str, subnet: str, hosts: int) -> tuple[str, str, Node, list[Node]]:
    """Return (bridge, bridge address/prefix, registry node, lab host nodes) for a lab; raises on a subnet too small."""
    net = ipaddress.ip_network(subnet, strict=True)
    if net.version != 4:
        raise LabError("lab subnet must be IPv4: {}".format(subnet))
    if hosts < 0 or FIRST_HOST_OCTET + hosts >= net.num_addresses - 1:
        raise LabError("subnet {} has no room for {} hosts".format(subnet, hosts))
    base = net.network_address
    bridge = bridge_name(name)
    gateway = "{}/{}".format(base + 1, net.prefixlen)
    pre = veth_prefix(name)
    reg = service_nodes(name, subnet)["registry"]
    nodes = []
    for i, host in enumerate(host_names(hosts)):
        off = FIRST_HOST_OCTET + i
        role = "db" if host.startswith("db") else "web"
        nodes.append(Node(host, str(base + off), "{}-{}".format(name, host), pre + str(off), role))
    for n in list(service_nodes(name, subnet).values()) + nodes:
        if len(n.veth) > IFNAMSIZ:
            raise LabError("interface name too long: {}".format(n.veth))
    return bridge, gateway, reg, nodes


def service_nodes(name: str, subnet: str) -> dict[str, Node]:
    """The service hosts: registry (.2), mirror proxy (.3) and auth registry (.4), each in <name>-<service>."""
    base = ipaddress.ip_network(subnet, strict=True).network_address
    pre = veth_prefix(name)
    return {svc: Node(svc, str(base + octet), "{}-{}".format(name, svc), pre + str(octet), svc)
            for svc, octet in SERVICES.items()}


def link_exists(dev: str) -> bool:
    """True when a network interface of that name exists in the root namespace."""
    return os.path.exists("/sys/class/net/{}".format(dev))


def netns_exists(ns: str) -> bool:
    """True when /run/netns/<ns> exists."""
    return os.path.exists("/run/netns/{}".format(ns))


def list_netns(name: str) -> list[str]:
    """The named network namespaces of lab name: <name>-{registry,mirror,auth,webN,dbN} (and no other lab's)."""
    pattern = re.compile(re.escape(name) + r"-(registry|mirror|auth|web[0-9]+|db[0-9]+)")
    try:
        return sorted(n for n in os.listdir("/run/netns") if pattern.fullmatch(n))
    except FileNotFoundError:
        return []


def ensure_bridge(bridge: str, gateway: str) -> None:
    """Create the bridge (STP off, no forward delay) with the gateway address, and bring it up; idempotent."""
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    addrs = run(["ip", "-o", "-4", "addr", "show", "dev", bridge]).stdout
    if " {} ".format(gateway) not in addrs:
        run(["ip", "addr", "add", gateway, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def ensure_node_net(node: Node, bridge: str, gateway: str) -> None:
    """Create node's netns and veth pair (eth0 inside), address it, lo up, default route via the bridge; idempotent."""
    prefixlen = gateway.split("/")[1]
    gw = gateway.split("/")[0]
    if not netns_exists(node.netns):
        run(["ip", "netns", "add", node.netns])
    if not link_exists(node.veth):
        run(["ip", "-n", node.netns, "link", "del", "eth0"], check=False)
        run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
    run(["ip", "link", "set", node.veth, "master", bridge, "up"])
    ns = ["ip", "-n", node.netns]
    run(ns + ["link", "set", "lo", "up"])
    addrs = run(ns + ["-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    if " {}/{} ".format(node.address, prefixlen) not in addrs:
        run(ns + ["addr", "add", "{}/{}".format(node.address, prefixlen), "dev", "eth0"])
    run(ns + ["link", "set", "eth0", "up"])
    run(ns + ["route", "replace", "default", "via", gw, "dev", "eth0"])


def netns_pids(ns: str) -> set[int]:
    """PIDs of every process whose network namespace is ns (ip netns pids)."""
    if not netns_exists(ns):
        return set()
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return {int(p) for p in out.split() if p.isdigit()}


def teardown(name: str, log: Callable[[str], None]) -> None:
    """Delete the lab's namespaces, veths and bridge; quiet about parts that are already gone."""
    for ns in list_netns(name):
        run(["ip", "netns", "del", ns], check=False)
        log("deleted netns {}".format(ns))
    pre = veth_prefix(name)
    try:
        links = os.listdir("/sys/class/net")
    except FileNotFoundError:
        links = []
    for dev in sorted(links):
        if dev.startswith(pre) and dev[len(pre):].isdigit():
            run(["ip", "link", "del", dev], check=False)
    bridge = bridge_name(name)
    if link_exists(bridge):
        run(["ip", "link", "del", bridge], check=False)
        log("deleted bridge {}".format(bridge))
