"""rtnetlink over a raw ``AF_NETLINK`` socket (stdlib ``socket`` + ``struct``): the few link, address and route
requests a container's network needs, without an exec of ``ip`` (each exec of iproute2 cost ~10 ms per start).

Every request carries NLM_F_ACK and waits for the kernel's answer: an error comes back as ``OSError(errno)``
exactly as ``ip`` would have reported it (EEXIST, ENODEV, ...).  A socket works in the network namespace it
was created in (``Netlink.inside(path)`` makes one in the namespace bound at ``path``, then returns the caller's
thread to its own namespace), so one socket per namespace is all the runtime needs.

Message layouts (<linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>)::

    nlmsghdr  u32 len, u16 type, u16 flags, u32 seq, u32 pid          then the family header, then attributes
    ifinfomsg u8 family, pad, u16 type, i32 index, u32 flags, u32 change
    ifaddrmsg u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index
    rtmsg     u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags
    rtattr    u16 len, u16 type, payload padded to 4 bytes (nested attributes are attributes in the payload)
"""

import errno
import ipaddress
import os
import socket
import struct

from . import libc
from .consts import CLONE_NEWNET, IFF_UP

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY = 1, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_ERR = struct.Struct("=i")


def attr(kind, payload):
    """One rtattr: header, payload, padding to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind, text):
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind, value):
    return attr(kind, struct.pack("=I", value))


def ifinfo(index=0, flags=0, change=0, family=socket.AF_UNSPEC):
    return _IFINFO.pack(family, 0, index, flags, change)


def mac_bytes(mac):
    return bytes(int(part, 16) for part in mac.split(":"))


class Netlink:
    """One NETLINK_ROUTE socket; ``request`` sends one message and waits for its acknowledgement."""

    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def inside(cls, netns_path):
        """A socket in the network namespace bound at ``netns_path``; the calling thread stays where it was."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc.setns(target, CLONE_NEWNET)
            finally:
                os.close(target)
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            finally:
                libc.setns(own, CLONE_NEWNET)  # back home; a failure here is fatal for the caller, and raised
        finally:
            os.close(own)
        return cls(sock)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg_type, body, flags=0):
        """Send one request (``body`` = family header + attributes); the answers before the ack (a GET's reply).

        Raises OSError(errno) when the kernel refuses the request.
        """
        self.seq += 1
        seq = self.seq
        data = _HDR.pack(_HDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0) + body
        self.sock.send(data)
        replies = []
        while True:
            chunk = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(chunk):
                length, kind, _flags, mseq, _pid = _HDR.unpack_from(chunk, offset)
                if length < _HDR.size:
                    raise OSError(errno.EPROTO, "malformed netlink reply")
                payload = chunk[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_ERROR:
                    code = -_ERR.unpack_from(payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                if kind == NLMSG_DONE:
                    return replies
                replies.append((kind, payload))

    # -- links

    def link_index(self, name):
        """The index of interface ``name`` in this socket's namespace (ENODEV if there is none)."""
        replies = self.request(RTM_GETLINK, ifinfo() + attr_str(IFLA_IFNAME, name))
        for kind, payload in replies:
            if kind == RTM_NEWLINK:
                return _IFINFO.unpack_from(payload)[2]
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV), name)

    def add_veth(self, name, peer, peer_netns_fd=None, peer_mac=None, mtu=None):
        """``ip link add NAME [mtu M] type veth peer name PEER [address MAC] [netns FD]``: the peer is made
        directly in the namespace of ``peer_netns_fd`` under its final name."""
        peer_attrs = attr_str(IFLA_IFNAME, peer)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if mtu:
            peer_attrs += attr_u32(IFLA_MTU, int(mtu))
        if peer_netns_fd is not None:
            peer_attrs += attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        info = attr_str(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs))
        body = ifinfo() + attr_str(IFLA_IFNAME, name) + (attr_u32(IFLA_MTU, int(mtu)) if mtu else b"")
        self.request(RTM_NEWLINK, body + attr(IFLA_LINKINFO, info), NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, name, up=None, master=None):
        """``ip link set NAME [master BRIDGE] [up|down]``."""
        attrs = attr_str(IFLA_IFNAME, name)
        if master is not None:
            attrs += attr_u32(IFLA_MASTER, self.link_index(master))
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        self.request(RTM_NEWLINK, ifinfo(flags=flags, change=change) + attrs)

    def set_hairpin(self, name, on=True):
        """``ip link set NAME type bridge_slave hairpin on`` (NAME must have its bridge master already)."""
        slave = attr(IFLA_BRPORT_MODE, struct.pack("=B", 1 if on else 0))
        info = attr_str(IFLA_INFO_SLAVE_KIND, "bridge") + attr(IFLA_INFO_SLAVE_DATA, slave)
        self.request(RTM_NEWLINK, ifinfo() + attr_str(IFLA_IFNAME, name) + attr(IFLA_LINKINFO, info))

    def delete_link(self, name):
        """``ip link del NAME`` (a veth's peer goes with it); ENODEV if there is none."""
        self.request(RTM_DELLINK, ifinfo() + attr_str(IFLA_IFNAME, name))

    # -- addresses and routes

    def add_address(self, name, ip, prefixlen):
        """``ip addr add IP/PREFIXLEN dev NAME``."""
        addr = ipaddress.ip_address(ip)
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        body = _IFADDR.pack(family, int(prefixlen), 0, RT_SCOPE_UNIVERSE, self.link_index(name))
        body += attr(IFA_LOCAL, addr.packed) + attr(IFA_ADDRESS, addr.packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, gateway):
        """``ip route add default via GATEWAY`` (main table)."""
        gw = ipaddress.ip_address(str(gateway))
        family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
        body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        self.request(RTM_NEWROUTE, body + attr(RTA_GATEWAY, gw.packed), NLM_F_CREATE | NLM_F_EXCL)
