"""The Docker-compatible daemon configuration (/etc/fleet/daemon.json): registry mirrors and insecure registries."""

import ipaddress
import json
import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import List

from . import errors

#: Docker treats loopback registries as insecure out of the box (moby registry/config.go).
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")

#: The hosts that make up Docker Hub: always secure, whatever the configuration says.
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass
class DaemonConfig:
    """The subset of dockerd's daemon.json the payload honours.

    ``registry_mirrors`` are normalised base URLs without a trailing slash (used for docker.io only).
    ``insecure_registries`` keeps the raw host[:port] entries; ``insecure_cidrs`` the parsed networks,
    loopback included as dockerd does.
    """

    registry_mirrors: List[str] = field(default_factory=list)
    insecure_registries: List[str] = field(default_factory=list)
    insecure_cidrs: list = field(default_factory=lambda: [ipaddress.ip_network(c) for c in DEFAULT_INSECURE_CIDRS])
    source: str = ""

    def is_insecure(self, host):
        """True when ``host`` (host[:port]) may be reached over plain HTTP or with TLS unverified.

        Same rule as dockerd's ``isSecureIndex``: an exact host[:port] entry, else any address the host
        resolves to falls in an insecure CIDR (loopback by default).
        """
        if host in _HUB_HOSTS:
            return False
        if host in self.insecure_registries:
            return True
        hostname = _strip_port(host)
        if hostname in self.insecure_registries:
            return True
        for addr in _addresses(hostname):
            if any(addr in net for net in self.insecure_cidrs if addr.version == net.version):
                return True
        return False


def _strip_port(host):
    """``[::1]:5000`` -> ``::1``, ``reg:5000`` -> ``reg``, ``reg`` -> ``reg``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _addresses(hostname):
    """IP literals parse directly; names are resolved (as dockerd does), failures mean "no address"."""
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    if hostname == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(hostname, None)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
        except ValueError:
            continue
    return out


def _validate_mirror(value, source):
    """Docker's ValidateMirror: an http(s) URL without query, fragment or credentials."""
    if not isinstance(value, str):
        raise errors.InvalidArgument("{}: invalid mirror: {!r} is not a string".format(source, value))
    uri = urllib.parse.urlsplit(value)
    if uri.scheme not in ("http", "https") or not uri.netloc:
        raise errors.InvalidArgument("{}: invalid mirror: unsupported scheme or host in {!r}".format(source, value))
    if uri.query or uri.fragment:
        raise errors.InvalidArgument("{}: invalid mirror: query or fragment at end of the URI {!r}".format(
            source, value))
    if uri.username or uri.password:
        raise errors.InvalidArgument("{}: invalid mirror: username/password not allowed in URI".format(source))
    return value.rstrip("/")


def _parse_insecure(values, source):
    """Split ``insecure-registries`` into host[:port] entries and CIDRs (a scheme prefix is dropped, like dockerd)."""
    hosts, cidrs = [], []
    for value in values:
        if not isinstance(value, str) or not value:
            raise errors.InvalidArgument("{}: invalid insecure registry {!r}".format(source, value))
        for prefix in ("http://", "https://"):
            if value.startswith(prefix):
                value = value[len(prefix):]
        value = value.rstrip("/")
        if "/" in value:
            try:
                cidrs.append(ipaddress.ip_network(value, strict=False))
                continue
            except ValueError:
                raise errors.InvalidArgument("{}: insecure registry {!r} is not a valid CIDR".format(source, value))
        hosts.append(value)
    return hosts, cidrs


def from_dict(data, source="daemon.json"):
    """Build a DaemonConfig from a parsed daemon.json object (unknown keys are ignored, as in Docker)."""
    if not isinstance(data, dict):
        raise errors.InvalidArgument("{}: top level must be a JSON object".format(source))
    mirrors = data.get("registry-mirrors") or []
    insecure = data.get("insecure-registries") or []
    if not isinstance(mirrors, list) or not isinstance(insecure, list):
        raise errors.InvalidArgument("{}: registry-mirrors and insecure-registries must be lists".format(source))
    cfg = DaemonConfig(source=source)
    cfg.registry_mirrors = [_validate_mirror(m, source) for m in mirrors]
    hosts, cidrs = _parse_insecure(insecure, source)
    cfg.insecure_registries = hosts
    cfg.insecure_cidrs.extend(cidrs)
    return cfg


def load(paths):
    """Load ``paths.daemon_json``; a missing file gives the defaults, invalid JSON is InvalidArgument."""
    path = paths.daemon_json
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return DaemonConfig(source=path)
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument("invalid JSON in {}: {}".format(path, exc))
    return from_dict(data, source=path)
