"""The ``check`` request's nested parts checked before anything runs: InvalidArgument naming the bad input.

Keys a part does not know are ignored (as the protocol ignores args it does not know: an older payload serves a
newer controller).
"""

import re

from agent_payload import errors

MIB = 1024 * 1024
#: threshold -> default
THRESHOLDS = {"disk_warn_pct": 20, "disk_crit_pct": 10, "log_warn_bytes": 100 * MIB, "log_crit_bytes": 1024 * MIB}
PROBE_TYPES = ("http", "tcp", "exec")
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 300
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")


def _bad(what, why):
    raise errors.InvalidArgument("{} {}".format(what, why))


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str(value, what, required=True):
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        _bad(what, "must be a non-empty string")
    return value


def _objects(value, arg):
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        _bad("argument " + arg, "must be a list of objects")
    return value


def services(value):
    """[{"project", "service", "config_hash"|None, "image_digest"|None}] of the request's "services"."""
    from agent_payload.deploy import check_project

    out, seen = [], set()
    for i, svc in enumerate(_objects(value, "services")):
        what = "services[{}]".format(i)
        project = check_project(_str(svc.get("project"), what + ".project"))
        service = check_project(_str(svc.get("service"), what + ".service"), "service")
        if (project, service) in seen:
            _bad(what, "repeats service {}/{}".format(project, service))
        seen.add((project, service))
        out.append({"project": project, "service": service,
                    "config_hash": _str(svc.get("config_hash"), what + ".config_hash", required=False),
                    "image_digest": _str(svc.get("image_digest"), what + ".image_digest", required=False)})
    return out


def thresholds(value):
    """The thresholds with their defaults filled in."""
    out = dict(THRESHOLDS)
    for key in THRESHOLDS:
        v = value.get(key)
        if v is None:
            continue
        if not _number(v) or v < 0 or (key.endswith("_pct") and v > 100):
            _bad("threshold " + key, "must be a number from 0 to 100" if key.endswith("_pct") else
                 "must be a number of bytes >= 0")
        out[key] = v
    if out["disk_crit_pct"] > out["disk_warn_pct"]:
        _bad("threshold disk_crit_pct", "({}) must not be above disk_warn_pct ({})".format(
            out["disk_crit_pct"], out["disk_warn_pct"]))
    if out["log_crit_bytes"] < out["log_warn_bytes"]:
        _bad("threshold log_crit_bytes", "({}) must not be below log_warn_bytes ({})".format(
            out["log_crit_bytes"], out["log_warn_bytes"]))
    return out


def _timeout(probe, what):
    t = probe.get("timeout")
    if t is None:
        return DEFAULT_TIMEOUT
    if not _number(t) or not 0 < t <= MAX_TIMEOUT:
        _bad(what + ".timeout", "must be a number of seconds above 0, at most {}".format(MAX_TIMEOUT))
    return t


def _probe(probe, what):
    kind = probe.get("type")
    if kind not in PROBE_TYPES:
        _bad(what + ".type", "must be one of {}, not {!r}".format(", ".join(PROBE_TYPES), kind))
    out = {"name": probe["name"], "type": kind, "timeout": _timeout(probe, what)}
    if kind == "http":
        url = _str(probe.get("url"), what + ".url")
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            _bad(what + ".url", "must be an http:// or https:// URL, not {!r}".format(url))
        status = probe.get("status", 200)
        codes = status if isinstance(status, list) else [status]
        if status is None:
            codes = [200]
        if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
            _bad(what + ".status", "must be an HTTP status (100-599) or a list of them")
        body = probe.get("body")
        if body is not None:
            _str(body, what + ".body")
            try:
                re.compile(body)
            except re.error as exc:
                _bad(what + ".body", "is not a valid regular expression: {}".format(exc))
        out.update(url=url, status=codes, body=body)
    elif kind == "tcp":
        port = probe.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            _bad(what + ".port", "must be a port number (1-65535)")
        out.update(host=_str(probe.get("host", "127.0.0.1"), what + ".host"), port=port)
    else:
        command = probe.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command) \
                or not command[0] or any("\x00" in a for a in command):
            _bad(what + ".command", "must be a non-empty list of strings (argv)")
        out.update(command=list(command),
                   container=_str(probe.get("container"), what + ".container", required=False))
    return out


def probes(value):
    """The probes checked, defaults filled in."""
    out, seen = [], set()
    for i, probe in enumerate(_objects(value, "probes")):
        what = "probes[{}]".format(i)
        name = _str(probe.get("name"), what + ".name")
        if not _NAME_RE.match(name):
            _bad(what + ".name", "{!r} must match {}".format(name, _NAME_RE.pattern))
        if name in seen:
            _bad(what + ".name", "{!r} is used by another probe".format(name))
        seen.add(name)
        out.append(_probe(probe, "probe {}".format(name)))
    return out


def checked(req):
    """(services, thresholds, probes) of a decoded ``check`` request."""
    return services(req.services), thresholds(req.thresholds), probes(req.probes)
