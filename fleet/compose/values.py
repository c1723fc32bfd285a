"""Compose value syntaxes checked on the controller: durations ("1m30s"), ports (short and long), expose, restart,
memory sizes and the x-fleet probe. Each raises ValueError with the message; convert.py adds file/service/key/line.

Ports: docker's ``-p`` grammar, ``[ip:][hostPort[-end]:]containerPort[-end][/proto]`` (compose's short syntax is
exactly it), parsed by the payload's own pure parser (agent_payload/portspec.py), so a value means the same
bindings on both sides ({"proto", "host_ip", "host_port", "host_port_end", "container_port"}), used for the
per-host port-conflict check and the probe.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

_MEMORY = re.compile(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?")
_RESTART = re.compile(r"no|always|unless-stopped|on-failure(?::\d+)?")
PROTOCOLS = ("tcp", "udp")


def duration_ns(text: Any) -> int:
    """Go's time.ParseDuration (compose's duration format: "1m30s", "500ms", "1.5h", "0") -> nanoseconds, by the
    payload's own parser (agent_payload/humanize.py); negative durations are refused."""
    from agent_payload.humanize import parse_duration

    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError("must be a duration string such as 30s or 1m30s, got {!r}".format(text))
    ns = parse_duration(text.strip())
    if ns is None:
        raise ValueError("invalid duration {!r}: want a number and a unit (ns, us, ms, s, m, h), e.g. 1m30s"
                         .format(text))
    if ns < 0:
        raise ValueError("invalid duration {!r}: cannot be negative".format(text))
    return ns


def seconds(text: Any) -> float:
    return duration_ns(text) / 1e9


def check_restart(value: str) -> str:
    if not _RESTART.fullmatch(value):
        raise ValueError("invalid restart policy {!r}: want no, always, on-failure[:max-retries] or unless-stopped"
                         .format(value))
    return value


def check_memory(value: str) -> str:
    """docker's RAMInBytes syntax: 512m, 1g, 1.5GB, 1048576 (bytes)."""
    if not _MEMORY.fullmatch(value.strip()):
        raise ValueError("invalid memory size {!r}: want a number with an optional unit (b, k, m, g), e.g. 512m"
                         .format(value))
    return value.strip()


def check_cpus(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("invalid cpus {!r}: want a number of CPUs such as 0.5".format(value)) from None
    if number < 0 or number != number:
        raise ValueError("invalid cpus {!r}: must be >= 0".format(value))
    return value


# ---- ports


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if sep else start
    except ValueError:
        raise ValueError("invalid {}Port: {} (in {})".format(what, text, spec)) from None
    if not (0 < start <= 65535 and 0 < end <= 65535) or end < start:
        raise ValueError("invalid {}Port: {} (in {})".format(what, text, spec))
    return start, end


def parse_publish(spec: str) -> list[dict]:
    """Bindings of one ``-p`` value (compose's short syntax) by the payload's own parse (agent_payload/portspec.py);
    ValueError with its message for what docker refuses."""
    from agent_payload import errors, portspec

    try:
        return portspec.parse(spec)
    except errors.InvalidArgument as exc:
        raise ValueError(exc.message) from None


def long_port_spec(port: Any) -> str:
    """Compose's long port syntax (a validated model.PortLong) as the ``-p`` string it means."""
    if port.mode not in (None, "host", "ingress"):
        raise ValueError("invalid mode {!r}: want host or ingress".format(port.mode))
    spec = str(port.target)
    if port.published not in (None, ""):
        spec = "{}:{}".format(port.published, spec)
        if port.host_ip:
            spec = "{}:{}".format(port.host_ip, spec)
    elif port.host_ip:
        spec = "{}::{}".format(port.host_ip, spec)
    if port.protocol:
        spec += "/" + port.protocol
    return spec


def expose_entries(value: Any) -> list[str]:
    """One ``expose`` entry ("80", 80, "80/udp", "8000-8002") -> ["80/tcp", ...] as docker's --expose does."""
    text = str(value)
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise ValueError("invalid proto: {} (in {}): want tcp or udp".format(proto, text))
    start, end = _port_range(port, "container", text)
    return ["{}/{}".format(p, proto) for p in range(start, end + 1)]


def overlaps(a: dict, b: dict) -> bool:
    """Two bindings claim the same host socket: same proto, overlapping fixed host ports, same or any address."""
    if a["proto"] != b["proto"] or not a["host_port"] or not b["host_port"]:
        return False
    if a["host_ip"] and b["host_ip"] and a["host_ip"] != b["host_ip"]:
        return False
    if a["host_port"] != a["host_port_end"] or b["host_port"] != b["host_port_end"]:
        return False  # a host port range takes the first free port of it: no fixed claim
    return a["host_port"] == b["host_port"]


def binding_text(b: dict) -> str:
    return "{}{}/{}".format(b["host_ip"] + ":" if b["host_ip"] else "", b["host_port"], b["proto"])


# ---- x-fleet probe


def check_probe(url: str) -> tuple[str, int]:
    """``http://:PORT/path`` or ``tcp://:PORT`` (run on the host itself) -> (scheme, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "tcp"):
        raise ValueError("invalid probe {!r}: want http://:PORT/path or tcp://:PORT".format(url))
    if parts.hostname or parts.username or parts.password or not parts.netloc.startswith(":"):
        raise ValueError("invalid probe {!r}: give no host (the probe runs on each host): http://:PORT/path or "
                         "tcp://:PORT".format(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port or not 0 < port <= 65535:
        raise ValueError("invalid probe {!r}: want a port in 1-65535".format(url))
    if parts.scheme == "tcp" and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError("invalid probe {!r}: a tcp probe has no path".format(url))
    return parts.scheme, port
