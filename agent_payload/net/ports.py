"""Published ports (docker's ``-p``/``--publish`` and ``-P``) and their host sockets.

The ``-p`` grammar and its bindings are ``agent_payload/portspec.py`` (pure: the controller checks compose files
with it).  ``bind`` opens the host sockets (the userland proxy's): an address already in use is an error before
the container starts, as with Docker.
"""

import errno
import socket

from .. import errors
from ..portspec import PROTOCOLS, parse  # noqa: F401  (net.ports.parse: callers' spelling)


def parse_all(specs, publish_all=False, exposed=()):
    """Bindings for every ``-p`` (in order) plus, with ``-P``, a random host port per EXPOSEd port not yet bound."""
    bindings = []
    for spec in specs or []:
        bindings.extend(parse(spec))
    if publish_all:
        bound = {(b["container_port"], b["proto"]) for b in bindings}
        for entry in sorted(exposed or []):
            port, _, proto = str(entry).partition("/")
            proto = proto or "tcp"
            try:
                key = (int(port), proto)
            except ValueError:
                continue  # a malformed EXPOSE in an image: docker ignores it too
            if key not in bound and proto in ("tcp", "udp"):
                bindings.append({"proto": proto, "host_ip": "", "host_port": 0, "host_port_end": 0,
                                 "container_port": key[0]})
                bound.add(key)
    return bindings


def _open(proto, host_ip, port):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip or "0.0.0.0", port))
        if proto == "tcp":
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def bind(bindings):
    """Open the host socket of every binding; returns [(binding with its real host_port, socket)].

    A port in use is Conflict naming it (docker's "port is already allocated"); any other failure, such as an
    address this host does not have, says what the kernel said (docker's "listen tcp4 IP:PORT: bind: cannot
    assign requested address"). Nothing stays open; a random port is the kernel's choice.
    """
    opened = []
    try:
        for b in bindings:
            ports = range(b["host_port"], (b.get("host_port_end") or b["host_port"]) + 1) if b["host_port"] else [0]
            sock = None
            for port in ports:
                try:
                    sock = _open(b["proto"], b["host_ip"], port)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise _not_bound(b, port, exc)  # not about this port: the rest of a range fails alike
                    last_error = exc
            if sock is None:
                where = "{}:{}".format(b["host_ip"] or "0.0.0.0", b["host_port"] if len(ports) == 1 else
                                       "{}-{}".format(ports[0], ports[-1]))
                raise errors.Conflict("driver failed programming external connectivity: Bind for {}/{} failed: "
                                      "port is already allocated ({})".format(where, b["proto"], last_error))
            opened.append((dict(b, host_port=sock.getsockname()[1], host_port_end=sock.getsockname()[1]), sock))
    except BaseException:
        for _, sock in opened:
            sock.close()
        raise
    return opened


def _not_bound(b, port, exc):
    """A binding's socket failed for another reason than a port in use, e.g. an address this host lacks."""
    cls = errors.FailedPrecondition if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM) \
        else errors.Unavailable
    return cls("driver failed programming external connectivity: Error starting userland proxy: listen {}4 {}:{}: "
               "bind: {}".format(b["proto"], b["host_ip"] or "0.0.0.0", port, (exc.strerror or str(exc)).lower()),
               errno=exc.errno)


def docker_ports(bindings):
    """inspect's NetworkSettings.Ports: {"80/tcp": [{"HostIp", "HostPort"}]}."""
    out = {}
    for b in bindings:
        out.setdefault("{}/{}".format(b["container_port"], b["proto"]), []).append(
            {"HostIp": b.get("host_ip") or "0.0.0.0", "HostPort": str(b["host_port"])})
    return out


def ps_text(bindings):
    """ps's PORTS column: "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"."""
    return ", ".join("{}:{}->{}/{}".format(b.get("host_ip") or "0.0.0.0", b["host_port"], b["container_port"],
                                           b["proto"]) for b in bindings)
