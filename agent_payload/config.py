"""The Docker-compatible daemon configuration (/etc/fleet/daemon.json): registry hosts, mirrors, insecure registries.

Keys honoured (unknown keys are kept and ignored, as dockerd ignores keys it does not use)::

    {"registry-mirrors": ["https://mirror.lan"],           # docker.io only; trusted to pull AND resolve tags
     "insecure-registries": ["reg.lan:5000", "10.0.0.0/8"], # plain http / unverified TLS (loopback always)
     "registries": {                                        # containerd's hosts.toml, as JSON, for ANY registry
        "reg.example:5000": {
            "mirrors": [{"url": "http://cache.lan:5000", "capabilities": ["pull"]},
                        {"url": "https://full.lan", "capabilities": ["pull", "resolve"], "skip_verify": true}],
            "origin": true},
        "default": {"mirrors": [{"url": "http://cache.lan:5000", "capabilities": ["pull"]}]}},
     "fleet-stall-timeout": 30}                             # fleet's own: seconds a registry may stall a pull

Hosts are tried in order, the origin (the registry itself) last unless ``"origin": false``.  ``default`` applies
to every registry without its own entry.  A ``pull`` mirror only serves content addressed by digest (manifests
by digest, blobs: the digest check makes an untrusted cache safe); only ``resolve`` hosts may turn a tag into
a digest.  ``capabilities`` defaults to ``["pull", "resolve"]`` as in containerd.  For docker.io the
``registries`` hosts come first, then ``registry-mirrors``.  Every validation error names the file and key.

``fleet-stall-timeout`` (no dockerd equivalent; default 30): a registry response that sends nothing for that
many seconds, or fewer than 32 KiB in any window of that many seconds (a trickle), is abandoned; the blob
download continues on the next host (mirror -> origin, with a Range request) or the pull fails naming the
registry and the blob.  It is also the socket timeout of every registry request.
"""

import json
import re
import socket
import urllib.parse

from . import errors
from .record import REQUIRED, Factory, Record
from .state import locks, store

#: Docker treats loopback registries as insecure out of the box (moby registry/config.go).
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")

#: daemon.json key of the registry stall timeout (fleet's own; dockerd has none).
STALL_KEY = "fleet-stall-timeout"

#: The hosts that make up Docker Hub: always secure, whatever the configuration says.
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class MirrorHost(Record):
    """One configured mirror: base URL (no trailing slash), what it may be asked, TLS verification."""

    FIELDS = (("url", REQUIRED), ("capabilities", ("pull", "resolve")), ("skip_verify", False))


class RegistryHosts(Record):
    """The hosts of one ``registries`` entry: mirrors in order, then the origin unless disabled."""

    FIELDS = (("mirrors", list), ("origin", True))


def _default_cidrs():
    import ipaddress
    return [ipaddress.ip_network(c) for c in DEFAULT_INSECURE_CIDRS]


class DaemonConfig(Record):
    """The subset of dockerd's daemon.json the payload honours.

    ``registry_mirrors`` are normalised base URLs without a trailing slash (used for docker.io only).
    ``insecure_registries`` keeps the raw host[:port] entries; ``insecure_cidrs`` the parsed networks,
    loopback included as dockerd does.
    """

    FIELDS = (("registry_mirrors", list), ("insecure_registries", list), ("insecure_cidrs", Factory(_default_cidrs)),
              ("registries", dict),  # "host[:port]" | "default" -> RegistryHosts
              ("init", False),  # "init": true makes every run/create without --init=false use --init (dockerd)
              ("bridge", None),  # "bridge": "none": no default bridge; containers without --network get none
              ("stall_timeout", 30),  # "fleet-stall-timeout": seconds without progress before a registry is left
              ("source", ""))

    def hosts_for(self, domain):
        """([MirrorHost] in order, use the origin?) for ``domain``: its entry or ``default``, then docker.io's
        ``registry-mirrors`` (both capabilities, as dockerd trusts them)."""
        entry = self.registries.get(domain) or self.registries.get("default") or RegistryHosts()
        mirrors = list(entry.mirrors)
        if domain == "docker.io":
            mirrors += [MirrorHost(url, ("pull", "resolve")) for url in self.registry_mirrors]
        return mirrors, entry.origin

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
    import ipaddress
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


def _validate_mirror(value, where):
    """Docker's ValidateMirror: an http(s) URL without query, fragment or credentials."""
    if not isinstance(value, str):
        raise errors.InvalidArgument("{}: invalid mirror: {!r} is not a string".format(where, value))
    uri = urllib.parse.urlsplit(value)
    if uri.scheme not in ("http", "https") or not uri.netloc:
        raise errors.InvalidArgument("{}: invalid mirror: unsupported scheme or host in {!r}".format(where, value))
    if uri.query or uri.fragment:
        raise errors.InvalidArgument("{}: invalid mirror: query or fragment at end of the URI {!r}".format(
            where, value))
    if uri.username or uri.password:
        # The URL itself is not echoed: it carries a credential.
        raise errors.InvalidArgument("{}: invalid mirror: username/password not allowed in URI".format(where))
    return value.rstrip("/")


def _parse_insecure(values, source):
    """Split ``insecure-registries`` into host[:port] entries and CIDRs (a scheme prefix is dropped, like dockerd)."""
    import ipaddress
    hosts, cidrs = [], []
    for i, value in enumerate(values):
        where = "{}: insecure-registries[{}]".format(source, i)
        if not isinstance(value, str) or not value:
            raise errors.InvalidArgument("{}: invalid insecure registry {!r}".format(where, value))
        for prefix in ("http://", "https://"):
            if value.startswith(prefix):
                value = value[len(prefix):]
        value = value.rstrip("/")
        if "/" in value:
            try:
                cidrs.append(ipaddress.ip_network(value, strict=False))
                continue
            except ValueError:
                raise errors.InvalidArgument("{}: insecure registry {!r} is not a valid CIDR".format(where, value))
        hosts.append(value)
    return hosts, cidrs


_HOST_KEY = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                       r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_CAPABILITIES = ("pull", "resolve")


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise errors.InvalidArgument("{}: must be an object".format(where))
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        raise errors.InvalidArgument("{}: unknown key {!r} (allowed: {})".format(where, unknown[0], ", ".join(allowed)))


def _parse_mirror_host(value, where):
    _check_keys(value, ("url", "capabilities", "skip_verify"), where)
    if "url" not in value:
        raise errors.InvalidArgument("{}: url is required".format(where))
    url = _validate_mirror(value["url"], where + ".url")
    caps = value.get("capabilities", list(_CAPABILITIES))
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise errors.InvalidArgument("{}.capabilities: must be a list of strings".format(where))
    for cap in caps:
        if cap not in _CAPABILITIES:
            raise errors.InvalidArgument("{}.capabilities: unsupported capability {!r} (allowed: pull, resolve; "
                                         "push goes to the registry itself)".format(where, cap))
    if "pull" not in caps or len(set(caps)) != len(caps):
        raise errors.InvalidArgument("{}.capabilities: must be [\"pull\"] or [\"pull\", \"resolve\"]".format(where))
    skip = value.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise errors.InvalidArgument("{}.skip_verify: must be true or false".format(where))
    return MirrorHost(url, tuple(c for c in _CAPABILITIES if c in caps), skip)


def _parse_registries(value, source, hub_mirrors=()):
    """The ``registries`` object -> {"host[:port]" | "default": RegistryHosts} (hub aliases -> docker.io)."""
    where = "{}: registries".format(source)
    if not isinstance(value, dict):
        raise errors.InvalidArgument("{}: must be an object".format(where))
    out = {}
    for key, entry in value.items():
        here = "{}[{!r}]".format(where, key)
        if not isinstance(key, str) or not (key == "default" or _HOST_KEY.match(key)):
            raise errors.InvalidArgument("{}: key must be \"default\" or a registry host[:port]".format(here))
        name = "docker.io" if key in ("index.docker.io", "registry-1.docker.io") else key
        if name in out:
            raise errors.InvalidArgument("{}: docker.io is configured twice".format(here))
        _check_keys(entry, ("mirrors", "origin"), here)
        mirrors = entry.get("mirrors", [])
        if not isinstance(mirrors, list):
            raise errors.InvalidArgument("{}.mirrors: must be a list".format(here))
        hosts = [_parse_mirror_host(m, "{}.mirrors[{}]".format(here, i)) for i, m in enumerate(mirrors)]
        origin = entry.get("origin", True)
        if not isinstance(origin, bool):
            raise errors.InvalidArgument("{}.origin: must be true or false".format(here))
        if not origin and not hosts and not (name == "docker.io" and hub_mirrors):
            raise errors.InvalidArgument("{}: origin is false and there are no mirrors: nothing to pull "
                                         "from".format(here))
        out[name] = RegistryHosts(hosts, origin)
    return out


def from_dict(data, source="daemon.json"):
    """Build a DaemonConfig from a parsed daemon.json object (unknown keys are ignored, as in Docker)."""
    if not isinstance(data, dict):
        raise errors.InvalidArgument("{}: top level must be a JSON object".format(source))
    mirrors = data.get("registry-mirrors") or []
    insecure = data.get("insecure-registries") or []
    for key, value in (("registry-mirrors", mirrors), ("insecure-registries", insecure)):
        if not isinstance(value, list):
            raise errors.InvalidArgument("{}: {} must be a list".format(source, key))
    cfg = DaemonConfig(source=source)
    cfg.registry_mirrors = [_validate_mirror(m, "{}: registry-mirrors[{}]".format(source, i))
                            for i, m in enumerate(mirrors)]
    hosts, cidrs = _parse_insecure(insecure, source)
    cfg.insecure_registries = hosts
    cfg.insecure_cidrs.extend(cidrs)
    if data.get("registries") is not None:
        # docker.io may turn its origin off and rely on registry-mirrors alone (an air-gapped Hub mirror)
        cfg.registries = _parse_registries(data["registries"], source, cfg.registry_mirrors)
    if not isinstance(data.get("init", False), bool):
        raise errors.InvalidArgument("{}: init must be a boolean".format(source))
    cfg.init = data.get("init", False)
    if data.get("bridge") not in (None, "none"):
        raise errors.InvalidArgument('{}: bridge: only "none" is supported (fleet names its default bridge '
                                     'fleet0; set its subnet with "bip")'.format(source))
    cfg.bridge = data.get("bridge")
    stall = data.get(STALL_KEY, cfg.stall_timeout)
    if isinstance(stall, bool) or not isinstance(stall, (int, float)) or not 0 < stall <= 3600:
        raise errors.InvalidArgument("{}: {} must be a number of seconds between 0 and 3600 (got {!r})".format(
            source, STALL_KEY, stall))
    cfg.stall_timeout = stall
    return cfg


def _read_raw(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument("invalid JSON in {}: {}".format(path, exc))


def load(paths):
    """Load ``paths.daemon_json``; a missing file gives the defaults, invalid JSON is InvalidArgument."""
    data = _read_raw(paths.daemon_json)
    if data is None:
        return DaemonConfig(source=paths.daemon_json)
    return from_dict(data, source=paths.daemon_json)


def update(paths, changes):
    """Merge ``changes`` (None removes a key) into daemon.json, validate the result, then write it (0644).

    Returns (changed, merged).  Nothing is written when validation fails or nothing changes; an unparsable
    current file is refused too (the merge would silently drop it).
    """
    if not isinstance(changes, dict):
        raise errors.InvalidArgument("daemon must be an object of daemon.json keys")
    path = paths.daemon_json
    with locks.locked(paths.lock_file("daemon-json")):
        current = _read_raw(path)
        if current is not None and not isinstance(current, dict):
            raise errors.InvalidArgument("{}: top level must be a JSON object".format(path))
        merged = dict(current or {})
        for key, value in changes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        from_dict(merged, source=path)
        if merged == (current or {}):
            return False, merged
        store.write_json_atomic(path, merged, mode=0o644)
        return True, merged
