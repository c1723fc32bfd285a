"""Bridges, veth pairs, addresses and routes, through the host's iproute2 (``ip -batch -``: one exec per side).

Host side (the caller's network namespace)::

    link add <host_if> type veth peer name <tmp_if>     both ends start here ...
    link set <tmp_if> netns <holder pid>                ... and the peer moves into the container's namespace
    link set <host_if> master <bridge> ; link set <host_if> up

Container side (a child that setns()es into the namespace file, then execs ``ip -batch -``)::

    link set <tmp_if> name eth0 ; link set eth0 address <mac> ; addr add <ip>/<prefix> dev eth0
    link set eth0 up ; route add default via <gateway>

Commands are argv words in a batch file, never a shell line; interface names are ours (derived from IDs).
"""

import ipaddress
import os
import subprocess

from .. import errors

IP = "ip"


def _ip_batch(lines, netns_path=None):
    """Run ``ip -batch -`` with ``lines`` (lists of words) in our namespace or the one bound at ``netns_path``."""
    from .netns import enter

    script = "".join(" ".join(words) + "\n" for words in lines)
    try:
        proc = subprocess.run([IP, "-batch", "-"], input=script.encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, preexec_fn=(lambda: enter(netns_path)) if netns_path else None,
                              check=False)
    except FileNotFoundError:
        raise errors.FailedPrecondition("bridge networking needs the `ip` command (iproute2) on this host")
    if proc.returncode != 0:
        raise errors.FailedPrecondition("ip -batch failed: {} (commands: {})".format(
            proc.stderr.decode("utf-8", "replace").strip(), script.strip().replace("\n", "; ")))
    return proc.stdout.decode("utf-8", "replace")


def exists(ifname):
    """True if the interface exists in the caller's namespace."""
    return os.path.exists(os.path.join("/sys/class/net", ifname))


def mac_for(ip):
    """Docker's MAC for an address: 02:42 followed by the four IPv4 bytes (unique while the address is)."""
    return "02:42:" + ":".join("{:02x}".format(b) for b in ipaddress.ip_address(ip).packed)


def ensure_bridge(name, gateway, prefixlen, mtu=None):
    """Create bridge ``name`` with ``gateway/prefixlen``, up; an existing one gets the address if it lacks it.

    A new bridge gets a MAC address of its own (the gateway's, as ``mac_for``): a bridge without one takes the
    lowest of its ports', so removing a container's veth could change the gateway's MAC under the other
    containers, whose neighbour caches then send replies nowhere for seconds (docker sets one too).
    """
    lines = []
    if not exists(name):
        words = ["link", "add", "name", name, "type", "bridge"]
        if mtu:
            words[4:4] = ["mtu", str(mtu)]
        if gateway:
            words[4:4] = ["address", mac_for(gateway)]
        lines.append(words)
    if gateway and not _has_address(name, gateway):
        lines.append(["addr", "add", "{}/{}".format(gateway, prefixlen), "dev", name])
    lines.append(["link", "set", name, "up"])
    _ip_batch(lines)


def _has_address(ifname, address):
    if not exists(ifname):
        return False
    out = subprocess.run([IP, "-o", "-4", "addr", "show", "dev", ifname], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=False).stdout.decode("utf-8", "replace")
    return any(" {}/".format(address) in line for line in out.splitlines())


def remove_link(ifname):
    """Delete an interface (a bridge, or a veth: its peer goes with it); a missing one is fine."""
    if exists(ifname):
        try:
            _ip_batch([["link", "del", ifname]])
        except errors.FailedPrecondition:
            if exists(ifname):
                raise


def attach(holder_pid, netns_path, bridge, host_if, ip, prefixlen, gateway, ifname="eth0", mtu=None,
           default_route=True, mac=None):
    """Wire a container namespace to ``bridge`` through a new veth pair; the container side is ``ifname`` (its
    MAC ``mac``, else derived from ``ip``)."""
    tmp_if = "t" + host_if[1:]
    add = ["link", "add", host_if]
    if mtu:
        add += ["mtu", str(mtu)]
    add += ["type", "veth", "peer", "name", tmp_if]
    try:
        _ip_batch([add,
                   ["link", "set", tmp_if, "netns", str(holder_pid)],
                   ["link", "set", host_if, "master", bridge],
                   ["link", "set", host_if, "type", "bridge_slave", "hairpin", "on"],  # reach own published port
                   ["link", "set", host_if, "up"]])
        inside = [["link", "set", tmp_if, "name", ifname],
                  ["link", "set", ifname, "address", mac or mac_for(ip)],
                  ["addr", "add", "{}/{}".format(ip, prefixlen), "dev", ifname],
                  ["link", "set", ifname, "up"]]
        if default_route and gateway:
            inside.append(["route", "add", "default", "via", str(gateway)])
        _ip_batch(inside, netns_path)
    except BaseException:
        remove_link(host_if)
        raise


def detach(netns_path, ifname):
    """Remove the container side ``ifname`` (its host peer goes with it): ``network disconnect``."""
    _ip_batch([["link", "del", ifname]], netns_path)


def set_sysctl(name, value):
    """Write ``/proc/sys/<name with dots as slashes>`` in the caller's namespace if it differs."""
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == str(value):
            return
    with open(path, "w") as f:
        f.write(str(value))
