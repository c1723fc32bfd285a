"""The embedded resolver of user-defined networks (Docker's 127.0.0.11), run by each container's shim.

A thread joins the container's network namespace just long enough to bind 127.0.0.11:53 (UDP and TCP) there,
then returns to the shim's own namespace: the listening sockets stay in the container, the upstream queries leave
from the host (so a host resolver on loopback, such as systemd-resolved's 127.0.0.53, works too).

The shim starts it before the container's init is released (runtime/shim.py), on every start and restart, so
the command's first lookup is answered, as Docker's resolver is up before the container's process runs.

Answers are live: every query reads the endpoint records of the networks the container is on now, so connect,
disconnect, restarts and new containers are seen at once. A name is a container name, an alias, or the short
(12 hex) ID of a container sharing a network; a known name gets its A records (none for AAAA, as Docker answers
an empty NOERROR); anything else is forwarded unchanged to the host's upstream servers (SERVFAIL without any).
"""

import os
import socket
import struct
import threading

from ..linux import libc
from ..linux.consts import CLONE_NEWNET

ADDRESS = "127.0.0.11"
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
TTL = 600
UPSTREAM_TIMEOUT = 3.0


def upstream_servers(path="/etc/resolv.conf"):
    """Nameservers the host uses (systemd-resolved's real upstreams when its stub is configured)."""
    candidates = [path]
    if os.path.exists("/run/systemd/resolve/resolv.conf"):
        candidates.insert(0, "/run/systemd/resolve/resolv.conf")
    for candidate in candidates:
        servers = []
        try:
            with open(candidate) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver":
                        servers.append(parts[1])
        except OSError:
            continue
        if servers:
            return servers
    return []


def parse_question(packet):
    """(id, flags, qname lower-case without the final dot, qtype, qclass, end offset) of a query; ValueError."""
    if len(packet) < 12:
        raise ValueError("short packet")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("want exactly one question")
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            raise ValueError("truncated name")
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed question name")
        labels.append(packet[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(packet):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, qclass, pos + 4


def build_answer(packet, addresses, rcode=0):
    """A response to ``packet`` (one question) with A records for ``addresses`` (a list of dotted quads)."""
    qid, flags, _name, qtype, _qclass, end = parse_question(packet)
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(addresses), 0, 0)
    answers = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
                       for a in addresses)
    return header + packet[12:end] + answers


class Resolver:
    """Serves 127.0.0.11:53 in the namespace at ``netns_path`` with names from ``names()`` ({name: [ip]})."""

    def __init__(self, netns_path, names, upstreams=None):
        self.netns_path = netns_path
        self.names = names
        self.upstreams = list(upstream_servers() if upstreams is None else upstreams)
        self.stop = threading.Event()
        self.udp = self.tcp = None

    def _bind_inside(self):
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(target, CLONE_NEWNET)
            try:
                self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self.udp.bind((ADDRESS, 53))
                self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.tcp.bind((ADDRESS, 53))
                self.tcp.listen(16)
            finally:
                libc.setns(own, CLONE_NEWNET)  # back home: upstream queries leave from the host
        finally:
            os.close(own)
            os.close(target)

    def start(self):
        """Load the name table once and bind inside the container (errors raise here), then serve in daemon threads.

        When this returns the sockets are bound and listening and the serving threads run: a query sent from the
        container from now on is answered (the shim calls this before it lets the container's init go on).
        """
        self.names()  # a table that cannot be read fails the start, not the container's first query
        ready, failure = threading.Event(), []

        def bind():
            try:
                self._bind_inside()
            except BaseException as exc:
                failure.append(exc)
            ready.set()

        t = threading.Thread(target=bind, name="dns-bind", daemon=True)
        t.start()  # setns affects only this thread; the shim's main thread never leaves the host namespace
        ready.wait()
        t.join()
        if failure:
            raise failure[0]
        threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True).start()
        threading.Thread(target=self._serve_tcp, name="dns-tcp", daemon=True).start()
        return self

    def answer(self, packet):
        """The response bytes for one query packet (None: drop it)."""
        try:
            _qid, _flags, name, qtype, qclass, _end = parse_question(packet)
        except ValueError:
            return None
        if qclass == CLASS_IN and qtype in (TYPE_A, TYPE_AAAA):
            found = self.names().get(name)
            if found:
                return build_answer(packet, sorted(found) if qtype == TYPE_A else [])
        return self._forward(packet)

    def _forward(self, packet):
        for server in self.upstreams:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                    s.settimeout(UPSTREAM_TIMEOUT)
                    s.sendto(packet, (server, 53))
                    return s.recv(65535)
            except OSError:
                continue
        try:
            return build_answer(packet, [], rcode=2)  # SERVFAIL
        except ValueError:
            return None

    def _serve_udp(self):
        while not self.stop.is_set():
            try:
                packet, client = self.udp.recvfrom(65535)
            except OSError:
                return
            threading.Thread(target=self._reply_udp, args=(packet, client), daemon=True).start()

    def _reply_udp(self, packet, client):
        reply = self.answer(packet)
        if reply:
            try:
                self.udp.sendto(reply, client)
            except OSError:
                pass

    def _serve_tcp(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._reply_tcp, args=(conn,), daemon=True).start()

    def _reply_tcp(self, conn):
        try:
            conn.settimeout(5.0)
            head = conn.recv(2)
            if len(head) == 2:
                size = struct.unpack("!H", head)[0]
                packet = b""
                while len(packet) < size:
                    chunk = conn.recv(size - len(packet))
                    if not chunk:
                        return
                    packet += chunk
                reply = self.answer(packet)
                if reply:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        for sock in (self.udp, self.tcp):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def names_for(paths, cid):
    """A ``names()`` callable: {name: {ip}} over the user-defined networks ``cid`` is on *now* (read per call, so a
    ``network connect``/``disconnect`` of the running container changes what it resolves at once)."""
    from .networks import Networks

    def names():
        nets = Networks(paths)
        table = {}
        for rec, _own in nets.endpoints_of(cid):
            if rec.get("default"):
                continue  # the default bridge has no name resolution (Docker)
            for other, ep in nets.endpoints(rec).items():
                for key in [ep.get("name"), other[:12]] + list(ep.get("aliases") or []):
                    if key:
                        table.setdefault(key.lower(), set()).add(ep["ip"])
                        table.setdefault("{}.{}".format(key.lower(), rec["name"].lower()), set()).add(ep["ip"])
        return table

    return names
