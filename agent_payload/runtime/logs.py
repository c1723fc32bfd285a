"""Docker json-file logs: the shim's line writer, rotation (max-size/max-file) and the reader behind ``logs``.

Rotation as docker's json-file driver: before an entry is written, a file that reached max-size is renamed
``<id>-json.log`` -> ``.1`` -> ``.2`` ... (the oldest beyond max-file - 1 is dropped; with max-file 1 the file is
truncated instead).  ``read`` goes through the rotated files oldest first, then the current one, and ``follow``
carries on into the new file when the one it follows is rotated away.
"""

import json
import os
import re
import time

from .. import errors, protocol
from ..humanize import parse_duration  # noqa: F401  (logs.parse_duration: callers' spelling)
from ..timestamps import days_from_civil, format_ns, parse_ns

MAX_LINE = 16 * 1024  # Docker splits longer lines into 16K partial messages


class RotatingFile:
    """The log file as the shim writes it: appends, rotating first when it reached ``max_size`` (None: never)."""

    def __init__(self, path, max_size=None, max_file=1):
        self.path, self.max_size, self.max_file = path, max_size, max(1, max_file)
        self.f = open(path, "ab")
        self.size = self.f.seek(0, os.SEEK_END)

    def write(self, data):
        if self.max_size is not None and self.size >= self.max_size:
            self._rotate()
        self.f.write(data)
        self.size += len(data)

    def _rotate(self):
        self.f.close()
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename("{}.{}".format(self.path, i - 1), "{}.{}".format(self.path, i))
                except FileNotFoundError:
                    pass
            os.rename(self.path, self.path + ".1")
            self.f = open(self.path, "ab")
        else:
            self.f = open(self.path, "wb")  # docker truncates a single file
        self.size = 0

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


class NullFile:
    """The ``none`` log driver: output is read from the container and dropped."""

    def write(self, data):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def open_writer(path, log_config=None):
    """The shim's log sink for a container's LogConfig (json-file with rotation, or none)."""
    from .logconfig import rotation

    if (log_config or {}).get("Type") == "none":
        return NullFile()
    size, count = rotation(log_config)
    return RotatingFile(path, size, count)


def rotated_paths(path):
    """Existing rotated files of a log, oldest first (``.N`` ... ``.1``)."""
    found, n = [], 1
    while os.path.exists("{}.{}".format(path, n)):
        found.append("{}.{}".format(path, n))
        n += 1
    return list(reversed(found))


def open_all(path):
    """Open the rotated files (oldest first) and the current log, so that a rotation meanwhile loses nothing."""
    files = []
    for p in rotated_paths(path):
        try:
            files.append(open(p, "rb"))
        except FileNotFoundError:
            continue
    try:
        files.append(open(path, "rb"))
    except BaseException:
        for f in files:
            f.close()
        raise
    return files


class LineWriter:
    """Split a byte stream into lines and append one json-file entry per line to an open log file."""

    def __init__(self, fileobj, stream):
        self.f = fileobj
        self.stream = stream
        self.buf = b""

    def feed(self, data):
        """Add bytes read from the container; write every complete (or over-long) line."""
        self.buf += data
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(self.buf) >= MAX_LINE:
                    self._emit(self.buf[:MAX_LINE])
                    self.buf = self.buf[MAX_LINE:]
                    continue
                break
            self._emit(self.buf[:nl + 1])
            self.buf = self.buf[nl + 1:]

    def close(self):
        """Flush a trailing partial line (written without a newline, as Docker does)."""
        if self.buf:
            self._emit(self.buf)
            self.buf = b""

    def _emit(self, raw):
        # docker's entry ("log" text, U+FFFD for bytes that are not UTF-8) plus, on just such lines, "raw": the
        # exact bytes in base64 (docker's readers ignore a key they do not know; see protocol.py, Output bytes)
        line = protocol.log_line(self.stream, raw)
        entry = {"log": line["line"], "stream": self.stream, "time": format_ns()}
        if "raw" in line:
            entry["raw"] = line["raw"]
        self.f.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        self.f.flush()


_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")
_DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?"
                       r"(Z|z|[+-]\d\d:\d\d)?$")


def parse_timestamp(value, now_ns=None):
    """Docker's ``--since``/``--until`` value (timetypes.GetTimestamp) as epoch nanoseconds.

    A Go duration is relative to now ("10m" = ten minutes ago); RFC 3339 with or without fraction and
    zone (no zone = this host's local time), a date, or unix seconds with an optional fraction.
    """
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidArgument("invalid time value: {!r}".format(value))
    value = value.strip()
    now_ns = time.time_ns() if now_ns is None else now_ns
    duration = parse_duration(value)
    if duration is not None and value != "0":
        return now_ns - duration
    m = _DATETIME.match(value)
    if m:
        year, month, day, hour, minute, sec, frac, zone = m.groups()
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(sec or 0))
        try:
            time.strptime("{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*fields), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise errors.InvalidArgument('invalid time value "{}": not a valid date and time'.format(value))
        if zone is None:
            secs = int(time.mktime(fields + (0, 0, -1)))
        else:
            secs = days_from_civil(*fields[:3]) * 86400 + fields[3] * 3600 + fields[4] * 60 + fields[5]
            if zone not in ("Z", "z"):
                offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
                secs -= offset if zone[0] == "+" else -offset
        return secs * 10 ** 9 + int((frac or "").ljust(9, "0"))
    m = _UNIX.match(value)
    if m and "-" not in value:
        return int(m.group(1)) * 10 ** 9 + int((m.group(2) or "").ljust(9, "0"))
    raise errors.InvalidArgument('failed to parse value as time or duration: "{}"'.format(value))


def _event(raw, timestamps, since=None, until=None):
    """Decode one stored log line into a ``{"stream", "line", "time"}`` event (None if unparsable or filtered)."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if since is not None or until is not None:
        try:
            stamp = parse_ns(entry.get("time") or "")
        except ValueError:
            return None
        if (since is not None and stamp < since) or (until is not None and stamp > until):
            return None
    event = {"stream": entry.get("stream", "stdout"), "line": entry.get("log", ""),
             "time": entry.get("time") if timestamps else None}
    if isinstance(entry.get("raw"), str):
        event["raw"] = entry["raw"]  # the line's exact bytes (base64) when they are not UTF-8
    return event


def _tail_offset(f, count):
    """Byte offset where the last ``count`` complete lines start (scans backwards in blocks)."""
    end = f.seek(0, os.SEEK_END)
    if count <= 0:
        return end
    pos, newlines, block = end, 0, 65536
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        # the file's final newline terminates the last line; it does not start one
        idx = len(chunk) - (1 if pos + step == end and chunk.endswith(b"\n") else 0)
        while True:
            idx = chunk.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            newlines += 1
            if newlines == count:
                return pos + idx + 1
    return 0


_FIRST_DELAY = 0.004


def _tail_start(files, count):
    """(index, offset) where the last ``count`` lines of the files, read in order, begin."""
    if count <= 0:
        return len(files) - 1, files[-1].seek(0, os.SEEK_END)
    remaining = count
    for i in range(len(files) - 1, -1, -1):
        if remaining <= 0:
            return i + 1, 0
        off = _tail_offset(files[i], remaining)
        if off > 0:
            return i, off
        files[i].seek(0)
        remaining -= files[i].read().count(b"\n")
    return 0, 0


def _events(data, timestamps, since, until):
    for raw in data.split(b"\n"):
        ev = _event(raw, timestamps, since, until) if raw else None
        if ev is not None:
            yield ev


def _rotated_away(f, follow_path):
    """True when ``follow_path`` is no longer the file ``f`` reads (renamed by a rotation, or truncated)."""
    try:
        st = os.stat(follow_path)
    except FileNotFoundError:
        return False  # between the rename and the new file: look again next time
    return st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell()


def _newer_rotated(f, follow_path):
    """Open the rotated files written after the one ``f`` reads (several rotations may pass between two polls).

    ``f`` is found among the rotated files by inode; if it is not there it was either dropped (unlinked: every
    rotated file is newer) or truncated in place (max-file 1: none is).
    """
    st = os.fstat(f.fileno())
    rotated = []
    for p in rotated_paths(follow_path):
        try:
            rotated.append(open(p, "rb"))
        except FileNotFoundError:
            continue
    inodes = [os.fstat(g.fileno()).st_ino for g in rotated]
    if st.st_ino in inodes:
        keep = inodes.index(st.st_ino) + 1
    else:
        keep = 0 if st.st_nlink == 0 else len(rotated)
    for g in rotated[:keep]:
        g.close()
    return rotated[keep:]


def read(path, tail=None, follow=False, timestamps=False, running=None, poll=0.1, since=None, until=None,
         offset=None, follow_path=None):
    """Yield log events from a json-file log and its rotated files.

    ``path``: the log's path (rotated files included), an open binary file, or a list of open files oldest
    first (``open_all``); files are closed at the end.  ``tail``: only the last N lines (None = all).
    ``follow``: keep reading new lines until ``running()`` returns False (or ``until`` has passed), then drain
    what is left and stop; with ``follow_path`` (set for a path) it moves on to the new file after a rotation.
    ``since`` and ``until`` (epoch ns) keep only lines logged in that window; ``offset`` starts at a byte offset
    of the current file (``start -a`` reads from where the log ended before the start).  ``line`` keeps the
    text exactly as logged, including its newline (``raw``: the bytes, base64, of a line that is not UTF-8);
    ``time`` is only filled in with ``timestamps``.
    """
    if isinstance(path, str):
        follow_path = follow_path or path
        files = open_all(path)
    else:
        files = list(path) if isinstance(path, list) else [path]
    try:
        if offset is not None:
            index, start = len(files) - 1, offset
        else:
            index, start = _tail_start(files, tail) if tail is not None else (0, 0)
        for i in range(index, len(files) - 1):
            files[i].seek(start if i == index else 0)
            for ev in _events(files[i].read(), timestamps, since, until):
                yield ev
        f = files[-1]
        f.seek(start if index == len(files) - 1 else 0)
        pending = b""
        delay = _FIRST_DELAY
        while True:
            chunk = f.read(65536)
            if chunk:
                delay = _FIRST_DELAY
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                for raw in lines:
                    ev = _event(raw, timestamps, since, until) if raw else None
                    if ev is not None:
                        yield ev
                continue
            if not follow:
                break
            if follow_path and _rotated_away(f, follow_path):
                rest = f.read()  # what was written before the rename, then the newer files from their start
                for ev in _events(pending + rest, timestamps, since, until):
                    yield ev
                pending = b""
                for g in _newer_rotated(f, follow_path):
                    files.append(g)
                    for ev in _events(g.read(), timestamps, since, until):
                        yield ev
                try:
                    f = open(follow_path, "rb")
                except FileNotFoundError:
                    time.sleep(delay)
                    continue
                files.append(f)
                continue
            if running is None or not running() or (until is not None and time.time_ns() > until):
                # the writer is done: one last read catches lines written before it finished
                rest = f.read()
                for ev in _events(pending + rest, timestamps, since, until):
                    yield ev
                return
            # Back off from a few ms to ``poll``: a short-lived container's last line (and its exit) is seen
            # within milliseconds, while an idle `logs -f` still wakes only 1/poll times a second.
            time.sleep(delay)
            delay = min(delay * 2, poll)
    finally:
        for f in files:
            f.close()
