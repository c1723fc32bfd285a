"""Port publishing specs (docker's ``-p``/``--publish`` and ``-P``) and their host sockets.

Grammar (docker's nat.ParsePortSpec)::

    [ip:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]      ip may be [v6] in brackets (refused: IPv4 only)

    80                 container port 80/tcp on a random host port of every address
    8080:80            host 8080 -> 80        127.0.0.1:8080:80   only on loopback
    127.0.0.1::80      random host port on loopback          8000-8002:80-82   three bindings
    8000-8010:80       the first free host port of 8000-8010 -> 80             53:53/udp

A binding is ``{"proto", "host_ip", "host_port", "host_port_end", "container_port"}`` with ``host_ip`` "" for
every address and ``host_port`` 0 for a random one. ``bind`` opens the host sockets (the userland proxy's): an
address already in use is an error before the container starts, as with Docker.
"""

import errno
import ipaddress
import socket

from .. import errors

PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text, what, spec):
    lo, sep, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if sep else start
    except ValueError:
        raise errors.InvalidArgument("invalid {}Port: {} (in -p {})".format(what, text, spec))
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise errors.InvalidArgument("invalid {}Port: {} (in -p {})".format(what, text, spec))
    return start, end


def parse(spec):
    """Bindings for one ``-p`` value; InvalidArgument naming the value for anything docker refuses."""
    if not isinstance(spec, str) or not spec.strip():
        raise errors.InvalidArgument("invalid -p value: empty port specification")
    raw, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise errors.InvalidArgument("invalid proto: {} (in -p {})".format(proto, spec))
    if proto == "sctp":
        raise errors.InvalidArgument("invalid -p {}: sctp ports are not supported by fleet".format(spec))
    if raw.startswith("["):
        raise errors.InvalidArgument("invalid -p {}: IPv6 host addresses are not supported by fleet".format(spec))
    parts = raw.split(":")
    if len(parts) > 3:
        raise errors.InvalidArgument("invalid -p {}: want [ip:][hostPort:]containerPort[/proto]".format(spec))
    host_ip, host = "", ""
    if len(parts) == 3:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    else:
        container = parts[0]
    if host_ip:
        try:
            addr = ipaddress.ip_address(host_ip)
        except ValueError:
            raise errors.InvalidArgument("invalid ip address: {} (in -p {})".format(host_ip, spec))
        if addr.version != 4:
            raise errors.InvalidArgument("invalid -p {}: IPv6 host addresses are not supported by fleet".format(spec))
        host_ip = "" if str(addr) == "0.0.0.0" else str(addr)
    if not container:
        raise errors.InvalidArgument("no port specified: {}<empty>".format(spec))
    c_start, c_end = _port_range(container, "container", spec)
    if not host:
        return [{"proto": proto, "host_ip": host_ip, "host_port": 0, "host_port_end": 0, "container_port": p}
                for p in range(c_start, c_end + 1)]
    h_start, h_end = _port_range(host, "host", spec)
    if c_end != c_start and (h_end - h_start) != (c_end - c_start):
        raise errors.InvalidArgument("invalid ranges specified for container and host Ports: {} and {} "
                                     "(in -p {})".format(container, host, spec))
    if c_start == c_end and h_end != h_start:  # one container port, the first free host port of a range
        return [{"proto": proto, "host_ip": host_ip, "host_port": h_start, "host_port_end": h_end,
                 "container_port": c_start}]
    return [{"proto": proto, "host_ip": host_ip, "host_port": h, "host_port_end": h, "container_port": c}
            for h, c in zip(range(h_start, h_end + 1), range(c_start, c_end + 1))]


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
