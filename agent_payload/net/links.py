"""Bridges, veth pairs, addresses and routes.

A container's veth pair, its address and default route go through rtnetlink (``linux/netlink.py``: no exec on
a container's start or removal)::

    host side:       link add <host_if> type veth peer name <ifname> address <mac> netns <container ns fd>
                     link set <host_if> master <bridge> up ; link set <host_if> type bridge_slave hairpin on
    container side:  addr add <ip>/<prefix> dev <ifname> ; link set <ifname> up ; route add default via <gw>
                     (a netlink socket made inside the namespace: Netlink.inside)

Bridges (made once per network) still go through the host's iproute2 (``ip -batch -``), as argv words in a
batch file, never a shell line; interface names are ours (derived from IDs).
"""

import errno
import ipaddress
import os
import sys
import time

from .. import errors

IP = "ip"


def _ip_batch(lines, netns_path=None):
    """Run ``ip -batch -`` with ``lines`` (lists of words) in our namespace or the one bound at ``netns_path``."""
    import subprocess

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
    import subprocess

    if not exists(ifname):
        return False
    out = subprocess.run([IP, "-o", "-4", "addr", "show", "dev", ifname], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=False).stdout.decode("utf-8", "replace")
    return any(" {}/".format(address) in line for line in out.splitlines())


def _netlink_error(exc, what):
    return errors.FailedPrecondition("{} failed: {}".format(what, exc.strerror or exc))


def remove_link(ifname):
    """Delete an interface (a bridge, or a veth: its peer goes with it); a missing one is fine.

    Returns once the interface is unregistered: its name is free, it has left its bridge and the namespace
    lookups.  The kernel's tail of a deletion (RCU grace periods and reference drains, ~15-20 ms for a veth pair)
    is waited for by a forked child rather than by the caller, when the caller has no other thread (a fork of a
    threaded process is not safe): the child is reaped by the next call, or by init once the caller exits.
    """
    _reap_deleters()
    if not exists(ifname):
        return
    if _single_threaded():
        _remove_in_child(ifname)
        return
    from ..linux.netlink import Netlink

    try:
        with Netlink() as nl:
            nl.delete_link(ifname)
    except OSError as exc:
        if exc.errno != errno.ENODEV and exists(ifname):
            raise _netlink_error(exc, "ip link del {}".format(ifname))


_deleters = []  # pids of forked deleters not reaped yet


def _single_threaded():
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _reap_deleters():
    for pid in list(_deleters):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid  # reaped by someone else (a subreaper's reap_orphans)
        if done:
            _deleters.remove(pid)


def _close_all_fds():
    """In a forked child about to do one syscall and exit: every inherited fd closed, stdio included."""
    import gc

    gc.disable()  # no finalizer may close an fd number the netlink socket reuses
    for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
        try:
            os.close(fd)
        except OSError:
            pass  # the listdir's own fd


def _remove_in_child(ifname):
    from ..linux.netlink import Netlink

    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            # nothing of the caller's may stay open for the ~20 ms this child lives: a published port's socket
            # (a restart binds it again), the SSH channel on stdout (the controller waits for its EOF)
            _close_all_fds()
            with Netlink() as nl:
                nl.delete_link(ifname)
        except OSError as exc:
            code = 0 if exc.errno == errno.ENODEV else (exc.errno or 1) & 0xFF
        except BaseException:
            code = 1
        os._exit(code)
    delay = 0.0002
    deadline = time.monotonic() + 30
    while exists(ifname):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
            if code and exists(ifname):
                raise _netlink_error(OSError(code, os.strerror(code)), "ip link del {}".format(ifname))
            return
        if time.monotonic() > deadline:
            break  # still there: the child's answer decides, below
        time.sleep(delay)
        delay = min(delay * 2, 0.005)
    else:
        _deleters.append(pid)  # gone from the host: the kernel finishes in the child
        return
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    if code and exists(ifname):
        raise _netlink_error(OSError(code, os.strerror(code)), "ip link del {}".format(ifname))


def attach(holder_pid, netns_path, bridge, host_if, ip, prefixlen, gateway, ifname="eth0", mtu=None,
           default_route=True, mac=None):
    """Wire a container namespace to ``bridge`` through a new veth pair; the container side is ``ifname`` (its
    MAC ``mac``, else derived from ``ip``).  ``holder_pid`` (a process in the namespace) is no longer needed:
    the peer is made inside the namespace by its file."""
    from ..linux.netlink import Netlink

    step = "ip link add {} type veth peer name {}".format(host_if, ifname)
    try:
        with Netlink() as nl:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                nl.add_veth(host_if, ifname, peer_netns_fd=fd, peer_mac=mac or mac_for(ip), mtu=mtu)
            finally:
                os.close(fd)
            step = "ip link set {} master {} up".format(host_if, bridge)
            nl.set_link(host_if, up=True, master=bridge)
            step = "ip link set {} type bridge_slave hairpin on".format(host_if)
            nl.set_hairpin(host_if)  # reach own published port
        with Netlink.inside(netns_path) as nl:
            step = "ip addr add {}/{} dev {}".format(ip, prefixlen, ifname)
            nl.add_address(ifname, ip, prefixlen)
            step = "ip link set {} up".format(ifname)
            nl.set_link(ifname, up=True)
            if default_route and gateway:
                step = "ip route add default via {}".format(gateway)
                nl.add_default_route(gateway)
    except BaseException as exc:
        remove_link(host_if)
        if isinstance(exc, OSError):
            raise _netlink_error(exc, step)
        raise


def detach(netns_path, ifname):
    """Remove the container side ``ifname`` (its host peer goes with it): ``network disconnect``."""
    from ..linux.netlink import Netlink

    try:
        with Netlink.inside(netns_path) as nl:
            nl.delete_link(ifname)
    except OSError as exc:
        raise _netlink_error(exc, "ip link del {}".format(ifname))


def set_sysctl(name, value):
    """Write ``/proc/sys/<name with dots as slashes>`` in the caller's namespace if it differs."""
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == str(value):
            return
    with open(path, "w") as f:
        f.write(str(value))
