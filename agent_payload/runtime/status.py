"""Docker-compatible presentation of container rows: the status text, human durations and the command column."""

import json
import time

from agent_payload.humanize import human_duration

from .. import errors
from ..timestamps import parse_ns
from . import health, states


def _since(stamp, now_ns):
    return max(0, now_ns - parse_ns(stamp)) / 1e9


def status_text(state, now_ns=None):
    """Docker's STATUS column: "Up 5 seconds", "Exited (0) 3 minutes ago",
    "Restarting (1) 2 seconds ago", "Created"."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    status = state.get("status")
    if status == "restarting" and state.get("finished_at"):
        return "Restarting ({}) {} ago".format(state.get("exit_code"),
                                               human_duration(_since(state["finished_at"], now_ns)))
    if status == "running" and state.get("started_at"):
        suffix = "" if state.get("paused") else health.ps_suffix(state)
        return "Up " + human_duration(_since(state["started_at"], now_ns)) + suffix
    if status == "exited" and state.get("finished_at"):
        return "Exited ({}) {} ago".format(state.get("exit_code"), human_duration(_since(state["finished_at"], now_ns)))
    return "Created"


def command_text(argv):
    """Docker's COMMAND column (untruncated): args containing a space are single-quoted, then Go-quoted."""
    path, args = argv[0], ["'{}'".format(a) if " " in a else a for a in argv[1:]]
    command = " ".join([path] + args) if args else path
    return json.dumps(command, ensure_ascii=False)


def ports_text(record):
    """Docker's PORTS column: published bindings while running ("0.0.0.0:8080->80/tcp"), else nothing."""
    if record.get("status") not in ("running", "restarting"):
        return ""
    bindings = (record.get("network_settings") or {}).get("ports") or []
    return ", ".join("{}:{}->{}/{}".format(b.get("host_ip") or "0.0.0.0", b["host_port"], b["container_port"],
                                           b["proto"]) for b in bindings)


def ps_row(record, now_ns=None):
    """A ``ps`` row from a container record."""
    return {"id": record["id"], "name": record["name"], "image": record["image"],
            "command": command_text(record["argv"]), "created": record["created"],
            "state": record["status"], "status": status_text(record, now_ns),
            "exit_code": record.get("exit_code"), "ports": ports_text(record), "image_id": record.get("image_id"),
            "labels": dict(record.get("labels") or {}), "mounts": ps_mounts(record), "networks": ps_networks(record)}


def ps_mounts(record):
    """docker's container summary Mounts, as ``ps --format {{.Mounts}}`` reads them: a volume's name (driver
    local), a bind's source path, a ``--mount type=tmpfs`` (no name); ``--tmpfs`` mounts are not listed."""
    out = []
    for m in record.get("mounts") or []:
        if m.get("type") == "volume":
            out.append({"name": m.get("source") or "", "driver": "local"})
        elif m.get("type") == "bind":
            out.append({"name": m.get("source") or "", "driver": ""})
        elif m.get("flag") == "mount":
            out.append({"name": "", "driver": ""})
    return out


def ps_networks(record):
    """The networks a container is attached to (its mode and every connected one), sorted; none for
    ``--network container:X``."""
    mode = record.get("network") or "bridge"
    names = set(record.get("networks") or {})
    if not mode.startswith("container:"):
        names.add(mode)
    return sorted(names)


# ---------------------------------------------------------------- ps filters (docker's daemon/list.go rules)

#: Docker's ``ps`` filter keys; the ones after ``since`` are docker's too but need features fleet lacks.
FILTER_KEYS = ("status", "name", "label", "ancestor", "exited", "id", "before", "since", "health", "volume")
UNSUPPORTED_KEYS = ("expose", "isolation", "is-task", "network", "publish")
STATUSES = states.STATES  # docker's seven (ps --filter status=)


class PsFilters:
    """Parsed ``-f key=value`` filters: values of one key are ORed, different keys ANDed.

    ``resolve(ref)`` gives a container record for ``before``/``since``; ``ancestor_of(value)`` gives the set of
    image references/IDs a value stands for (the ops layer knows images; the runtime does not).
    """

    def __init__(self, filters, resolve=None, ancestor_of=None, normalize=None):
        import re

        self.normalize = normalize or (lambda ref: ref)
        self.values = {}
        for item in filters or []:
            if not isinstance(item, str):
                raise errors.InvalidArgument("filters must be strings")
            key, sep, value = item.partition("=")
            if not sep:
                raise errors.InvalidArgument('bad format of filter (expected name=value): "{}"'.format(item))
            key = key.strip().lower()
            if key in UNSUPPORTED_KEYS:
                raise errors.InvalidArgument("filter '{}' is not supported by fleet yet".format(key))
            if key not in FILTER_KEYS:
                raise errors.InvalidArgument("invalid filter '{}'".format(key))
            self.values.setdefault(key, []).append(value)
        for value in self.values.get("status", []):
            if value not in STATUSES:
                raise errors.InvalidArgument("invalid filter 'status={}'".format(value))
        for value in self.values.get("health", []):
            if value not in health.STATUSES:
                raise errors.InvalidArgument("Unrecognised filter value for health: {}".format(value))
        self.exited = set()
        for value in self.values.get("exited", []):
            try:
                self.exited.add(int(value))
            except ValueError:
                raise errors.InvalidArgument("invalid filter 'exited={}'".format(value))
        self.names = []
        for value in self.values.get("name", []):
            try:
                self.names.append(re.compile(value))
            except re.error as exc:
                raise errors.InvalidArgument("invalid filter 'name={}': {}".format(value, exc))
        self.before = [resolve(v)["created"] for v in self.values.get("before", [])] if resolve else []
        self.since = [resolve(v)["created"] for v in self.values.get("since", [])] if resolve else []
        self.ancestors = [ancestor_of(v) if ancestor_of else {v} for v in self.values.get("ancestor", [])]

    def shows_stopped(self):
        """A status, before or since filter lists stopped containers even without ``-a`` (as docker)."""
        return any(k in self.values for k in ("status", "before", "since"))

    def match(self, rec):
        """True if the container record passes every filter."""
        v = self.values
        if "status" in v and rec.get("status") not in v["status"]:
            return False
        if "exited" in v and (rec.get("status") != "exited" or rec.get("exit_code") not in self.exited):
            return False
        if "health" in v:
            if health.status_of(rec) not in v["health"]:
                return False
        if "id" in v and not any(rec["id"].startswith(x) for x in v["id"]):
            return False
        name = rec.get("name") or ""
        if self.names and not any(p.search(name) or p.search("/" + name) for p in self.names):
            return False
        if "label" in v and not all(_label_match(rec.get("labels") or {}, x) for x in v["label"]):
            return False
        if self.ancestors and not any(_ancestor_match(rec, refs, self.normalize) for refs in self.ancestors):
            return False
        if "volume" in v and not any(m.get("source") == x or m.get("target") == x
                                     for x in v["volume"] for m in rec.get("mounts") or []):
            return False  # docker: a volume name, a bind source or a mount point
        created = parse_ns(rec["created"])
        if any(created >= parse_ns(b) for b in self.before) or any(created <= parse_ns(s) for s in self.since):
            return False
        return True


def _label_match(labels, expr):
    """``label=key`` needs the key; ``label=key=value`` needs that value (several label filters are ANDed)."""
    key, sep, value = expr.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _ancestor_match(rec, refs, normalize):
    """``ancestor=``: the container's image by reference (normalised) or by (abbreviated) image ID."""
    image_id = rec.get("image_id") or ""
    image = normalize(rec.get("image") or "")
    for ref in refs:
        if ref == image or ref == image_id:
            return True
        hexpart = ref.split(":", 1)[-1] if ref.startswith("sha256:") else ref
        if len(hexpart) >= 1 and all(c in "0123456789abcdef" for c in hexpart) and \
                image_id.split(":", 1)[-1].startswith(hexpart):
            return True
    return False


def size_text(rw, virtual):
    """Docker's SIZE column: ``2B (virtual 4.26MB)``."""
    from agent_payload.humanize import human_size

    return "{} (virtual {})".format(human_size(rw), human_size(virtual))
