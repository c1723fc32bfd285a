"""The host's event journal: docker's ``events`` without a daemon (stdlib only).

Whatever changes a container, image, network or volume appends one JSON line in docker's message shape to
``<root>/events/events.jsonl``::

    {"Type": "container", "Action": "die", "Actor": {"ID": "<id>", "Attributes": {"name": ..., "image": ...,
     "exitCode": "0"}}, "scope": "local", "time": <unix s>, "timeNano": <ns>}

- appended with O_APPEND under an exclusive flock (``events.lock``), so that lines from concurrent writers (a
  shim recording an exit, an op creating a container) never interleave and rotation never races an append;
- bounded: when a line would take the file over ``MAX_BYTES`` it is rotated to ``events.jsonl.1`` (.1 to .2,
  ... keeping ``KEEP`` old files), so the journal never holds more than (KEEP + 1) * MAX_BYTES;
- the directory is 0700 and the files 0600 (state/perms.py): attributes carry container labels;
- recording never fails the action that records it: any error writing an event is swallowed (``record``).

Docker's daemon keeps the last events in memory only; a journal on disk lets ``fleet events --since`` show what
happened while nobody was watching, and lets the shim (which outlives the SSH session) record exits.

Reading (``read``): the rotated files oldest first, then the current one, filtered by time and docker's event
filters; following (``follow``) keeps reading the current file as it grows, across a rotation.
"""

import fcntl
import json
import os
import time

MAX_BYTES = 1 << 20
KEEP = 3
FILE = "events.jsonl"
POLL = 0.1

#: docker's ``events --filter`` keys this journal can match.
FILTER_KEYS = ("container", "event", "image", "label", "type", "network", "volume", "scope")
TYPES = ("container", "image", "network", "volume")


def directory(paths):
    return os.path.join(paths.root, "events")


def journal_path(paths):
    return os.path.join(directory(paths), FILE)


def _rotated(path, n):
    return "{}.{}".format(path, n)


def message(type_, action, actor_id, attributes=None, now_ns=None):
    """One event in docker's shape (attribute values are strings, as docker's)."""
    ns = time.time_ns() if now_ns is None else now_ns
    attrs = {str(k): str(v) for k, v in (attributes or {}).items() if v is not None}
    return {"status": action if type_ in ("container", "image") else None, "id": actor_id, "from": attrs.get("image"),
            "Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs}, "scope": "local",
            "time": ns // 10 ** 9, "timeNano": ns}


def append(paths, event, max_bytes=MAX_BYTES, keep=KEEP):
    """Append ``event`` (a message) to the journal under its flock, rotating first when it would be full."""
    d = directory(paths)
    if not os.path.isdir(d):
        os.makedirs(d, 0o700, exist_ok=True)
        os.chmod(d, 0o700)
    path = os.path.join(d, FILE)
    line = (json.dumps({k: v for k, v in event.items() if v is not None}, separators=(",", ":"),
                       sort_keys=True) + "\n").encode()
    lock = os.open(os.path.join(d, "events.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > max_bytes:
            for n in range(keep, 0, -1):
                src = path if n == 1 else _rotated(path, n - 1)
                if os.path.exists(src):
                    os.replace(src, _rotated(path, n))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def record(paths, type_, action, actor_id, attributes=None):
    """Record one event; never raises (an event is a side note: the action it describes has happened)."""
    try:
        append(paths, message(type_, action, actor_id, attributes))
    except Exception:  # noqa: BLE001 - a full disk or a read-only root must not fail a start or a kill
        pass


def container(paths, action, config, **extra):
    """Record a container event: attributes are docker's (``image``, ``name``, the labels, then ``extra``)."""
    try:
        attrs = dict(config.get("labels") or {})
        attrs.update(image=config.get("image"), name=config.get("name"))
        attrs.update(extra)
        record(paths, "container", action, config.get("id"), attrs)
    except Exception:  # noqa: BLE001 - see record()
        pass


def container_of(paths, container_id, action, **extra):
    """``container`` for a container known by its ID (its config read here; never raises)."""
    try:
        from agent_payload.runtime import records
        container(paths, action, records.read_config(paths, container_id), **extra)
    except Exception:  # noqa: BLE001 - see record()
        pass


# ---------------------------------------------------------------- filters

class Filters:
    """docker's ``events --filter``: values of one key OR, different keys AND."""

    def __init__(self, items):
        self.by_key = {}
        for item in items or []:
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or key not in FILTER_KEYS:
                from agent_payload import errors
                raise errors.InvalidArgument("Invalid filter '{}'".format(key if sep else item))
            self.by_key.setdefault(key, []).append(value)

    def _fuzzy(self, key, *sources):
        return any(s and (s == v or s.startswith(v)) for v in self.by_key[key] for s in sources)

    def match(self, ev):
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        actor = (ev.get("Actor") or {}).get("ID") or ""
        type_, action = ev.get("Type"), ev.get("Action") or ""
        for key, values in self.by_key.items():
            if key == "type":
                ok = type_ in values
            elif key == "event":  # docker: health_status / exec_* without their ": ..." part match as a prefix
                ok = any(action == v or (v in ("health_status", "exec_create", "exec_start")
                                         and action.startswith(v)) for v in values)
            elif key == "container":
                ok = type_ == "container" and self._fuzzy(key, actor, attrs.get("name"))
            elif key in ("network", "volume"):
                ok = type_ == key and self._fuzzy(key, actor, attrs.get("name"))
            elif key == "image":
                names = (attrs.get("image"),) if type_ == "container" else (actor, attrs.get("name"))
                ok = type_ in ("container", "image") and any(
                    n and (n in values or n.split(":")[0] in values or _digest_match(n, values)) for n in names)
            elif key == "label":
                ok = any(_label_match(attrs, v) for v in values)
            else:  # scope
                ok = "local" in values
            if not ok:
                return False
        return True


def _digest_match(name, values):
    return any(v.startswith("sha256:") and name.startswith(v) for v in values)


def _label_match(attrs, value):
    key, sep, want = value.partition("=")
    return key in attrs and (not sep or attrs[key] == want)


# ---------------------------------------------------------------- reading

def _parse(line):
    try:
        ev = json.loads(line)
    except ValueError:
        return None  # a torn line (the disk filled mid-write): skipped
    return ev if isinstance(ev, dict) else None


def _files(paths, keep=KEEP):
    path = journal_path(paths)
    return [_rotated(path, n) for n in range(keep, 0, -1)] + [path]


def read(paths, since=None, until=None, filters=None):
    """The recorded events (oldest first) with ``since`` <= timeNano <= ``until`` (ns) matching ``filters``."""
    for name in _files(paths):
        for ev in _read_file(name, since, until, filters):
            yield ev


def _wanted(ev, since, until, filters):
    ns = ev.get("timeNano") or 0
    if since is not None and ns < since:
        return False
    if until is not None and ns > until:
        return False
    return filters is None or filters.match(ev)


def follow(paths, since=None, until=None, filters=None, stop=None, poll=POLL):
    """The recorded events from ``since`` (None: only new ones), then new ones as they are appended, across a
    rotation, until ``until`` (ns) passes or ``stop()`` is true."""
    path = journal_path(paths)
    # open the current file first, so that nothing appended between reading the history and following is lost
    f = _open(path)
    start = f.seek(0, os.SEEK_END) if f is not None else 0
    if since is not None:
        for name in _files(paths)[:-1]:
            for ev in _read_file(name, since, until, filters):
                yield ev
        if f is not None:
            f.seek(0)
            for ev in _lines(f.read(start), since, until, filters):
                yield ev
    pending = b""
    while True:
        if until is not None and time.time_ns() > until:
            return
        if stop is not None and stop():
            return
        if f is None:
            f = _open(path)
            if f is None:
                time.sleep(poll)
                continue
        chunk = f.read()
        if chunk:
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            for ev in _lines(b"\n".join(lines), since, until, filters):
                yield ev
            continue
        if not _same(f, path):  # rotated: what was written to the old file is read above; go to the new one
            f.close()
            f, pending = _open(path), b""
            continue
        time.sleep(poll)


def _read_file(name, since, until, filters):
    try:
        with open(name, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return list(_lines(data, since, until, filters))


def _lines(data, since, until, filters):
    for line in data.splitlines():
        ev = _parse(line)
        if ev is not None and _wanted(ev, since, until, filters):
            yield ev


def _open(path):
    try:
        return open(path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _same(f, path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True  # not recreated yet: keep the old one
    mine = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
