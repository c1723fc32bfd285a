"""docker's ``-p``/``--publish`` grammar (nat.ParsePortSpec) as bindings: pure, shared by the payload (net/ports.py,
which opens the host sockets) and the controller (fleet/compose checks a compose file's ports before any host is
contacted).  Standard library only.

Grammar::

    [ip:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]      ip may be [v6] in brackets (refused: IPv4 only)

    80                 container port 80/tcp on a random host port of every address
    8080:80            host 8080 -> 80        127.0.0.1:8080:80   only on loopback
    127.0.0.1::80      random host port on loopback          8000-8002:80-82   three bindings
    8000-8010:80       the first free host port of 8000-8010 -> 80             53:53/udp

A binding is ``{"proto", "host_ip", "host_port", "host_port_end", "container_port"}`` with ``host_ip`` "" for
every address and ``host_port`` 0 for a random one.
"""

import ipaddress

from agent_payload import errors

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


def exposed_ports(values):
    """``expose`` values ("80", "80/udp", "8000-8002/tcp") as ExposedPorts keys ("80/tcp"); InvalidArgument
    naming a bad one (docker's "invalid containerPort")."""
    out = []
    for value in values or []:
        port, _, proto = value.partition("/")
        proto = proto.lower() or "tcp"
        low, _, high = port.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            first = last = 0
        if proto not in ("tcp", "udp", "sctp") or not (0 < first <= last <= 65535):
            raise errors.InvalidArgument("invalid containerPort: {}".format(value))
        out.extend("{}/{}".format(p, proto) for p in range(first, last + 1))
    return out
