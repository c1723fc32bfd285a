"""What each host is checked for, from the inventory: ``fleet_checks`` (probes) and ``fleet_check_thresholds``
(group or host vars, already rendered by the inventory's jinja2), and the compose services it should run.

    fleet_checks:
      - {type: http, url: "http://127.0.0.1:8080/healthz", status: 200, body: "ok", timeout: 5}
      - {type: tcp, port: 5432}
      - {type: exec, command: ["/usr/lib/nagios/plugins/check_load", "-w", "5", "-c", "10"]}
      - {type: exec, container: db, command: "pg_isready -q", name: pg}
    fleet_check_thresholds: {disk_warn_pct: 20, disk_crit_pct: 10, log_warn_bytes: 100m, log_crit_bytes: 1g}

A malformed entry is a CheckConfigError naming the host, the var and the entry.
"""

from __future__ import annotations

import re
import shlex

from fleet.errors import UsageError

PROBE_TYPES = ("http", "tcp", "exec")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")
THRESHOLDS = ("disk_warn_pct", "disk_crit_pct", "log_warn_bytes", "log_crit_bytes")


class CheckConfigError(UsageError):
    """Bad check configuration in the inventory (a Nagios plugin's bad arguments: exit 3, UNKNOWN)."""


def _err(host: str, var: str, where: str, what: str) -> CheckConfigError:
    return CheckConfigError("host {}: {}{}: {}".format(host, var, where, what))


def _timeout(host, where, entry, default=5.0) -> float:
    value = entry.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
        raise _err(host, "fleet_checks", where, "timeout must be a number of seconds in (0, 300], got {!r}".format(
            value))
    return float(value)


def _probe(host: str, i: int, entry) -> dict:
    where = "[{}]".format(i)
    if not isinstance(entry, dict):
        raise _err(host, "fleet_checks", where, "must be a mapping, got {!r}".format(entry))
    kind = entry.get("type")
    if kind not in PROBE_TYPES:
        raise _err(host, "fleet_checks", where, "type must be one of {}, got {!r}".format(", ".join(PROBE_TYPES),
                                                                                          kind))
    known = {"http": {"url", "status", "body"}, "tcp": {"host", "port"}, "exec": {"command", "container"}}[kind]
    unknown = set(entry) - known - {"type", "name", "timeout"}
    if unknown:
        raise _err(host, "fleet_checks", where, "unknown key(s) for a {} probe: {}".format(kind, ", ".join(
            sorted(unknown))))
    out = {"type": kind, "timeout": _timeout(host, where, entry)}
    if kind == "http":
        url = entry.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise _err(host, "fleet_checks", where, "url must be http://HOST[:PORT]/PATH, got {!r}".format(url))
        status = entry.get("status", 200)
        statuses = status if isinstance(status, list) else [status]
        if not statuses or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599
                                   for s in statuses):
            raise _err(host, "fleet_checks", where, "status must be an HTTP status or a list of them, got {!r}"
                       .format(status))
        body = entry.get("body")
        if body is not None:
            try:
                re.compile(str(body))
            except re.error as exc:
                raise _err(host, "fleet_checks", where, "body is not a regular expression: {}".format(exc))
        out.update(url=url, status=statuses, body=None if body is None else str(body))
        default_name = "http:" + url.split("://", 1)[1]
    elif kind == "tcp":
        port = entry.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise _err(host, "fleet_checks", where, "port must be 1-65535, got {!r}".format(port))
        addr = entry.get("host", "127.0.0.1")
        if not isinstance(addr, str) or not addr:
            raise _err(host, "fleet_checks", where, "host must be an address, got {!r}".format(addr))
        out.update(host=addr, port=port)
        default_name = "tcp:{}:{}".format(addr, port)
    else:
        command = entry.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise _err(host, "fleet_checks", where, "command must be a list of strings or a command line, got "
                       "{!r}".format(entry.get("command")))
        container = entry.get("container")
        if container is not None and (not isinstance(container, str) or not container):
            raise _err(host, "fleet_checks", where, "container must be a container name, got {!r}".format(container))
        out.update(command=command, container=container)
        default_name = "exec:" + (container + ":" if container else "") + command[0].rsplit("/", 1)[-1]
    name = entry.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise _err(host, "fleet_checks", where, "name must be letters, digits and _.:/@- , got {!r}".format(name))
    out["name"] = name
    return out


def probes_of(host) -> list[dict]:
    """The host's ``fleet_checks`` as the check op's probes (CheckConfigError on a malformed one)."""
    entries = host.vars.get("fleet_checks")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _err(host.name, "fleet_checks", "", "must be a list of probes, got {!r}".format(entries))
    probes = [_probe(host.name, i, e) for i, e in enumerate(entries)]
    seen = set()
    for p in probes:
        if p["name"] in seen:
            raise _err(host.name, "fleet_checks", "", "two probes are named {!r}: give one a name:".format(p["name"]))
        seen.add(p["name"])
    return probes


def thresholds_of(host) -> dict:
    """The host's ``fleet_check_thresholds`` (percentages; sizes as bytes or docker sizes like 100m)."""
    from agent_payload import errors
    from agent_payload.humanize import from_human_size

    raw = host.vars.get("fleet_check_thresholds")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _err(host.name, "fleet_check_thresholds", "", "must be a mapping, got {!r}".format(raw))
    out = {}
    for key, value in raw.items():
        if key not in THRESHOLDS:
            raise _err(host.name, "fleet_check_thresholds", "." + str(key), "unknown threshold (known: {})".format(
                ", ".join(THRESHOLDS)))
        if key.endswith("_pct"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise _err(host.name, "fleet_check_thresholds", "." + key, "must be a percentage, got {!r}".format(
                    value))
            out[key] = value
        else:
            try:
                out[key] = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
                    else from_human_size(str(value))
            except errors.InvalidArgument as exc:
                raise _err(host.name, "fleet_check_thresholds", "." + key, exc.message)
    for a, b in (("disk_warn_pct", "disk_crit_pct"),):
        if a in out and b in out and out[b] > out[a]:
            raise _err(host.name, "fleet_check_thresholds", "", "{} ({}) is above {} ({}): critical must be the "
                       "lower free space".format(b, out[b], a, out[a]))
    return out
