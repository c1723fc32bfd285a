"""Docker json-file logs: the shim's line writer and the reader behind ``logs`` (tail, follow, timestamps)."""

import json
import os
import time

from .records import format_ns

MAX_LINE = 16 * 1024  # Docker splits longer lines into 16K partial messages


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
        entry = {"log": raw.decode("utf-8", "replace"), "stream": self.stream, "time": format_ns()}
        self.f.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        self.f.flush()


def _event(raw, timestamps):
    """Decode one stored log line into a ``{"stream", "line", "time"}`` event (None if unparsable)."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    return {"stream": entry.get("stream", "stdout"), "line": entry.get("log", ""),
            "time": entry.get("time") if timestamps else None}


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


def read(path, tail=None, follow=False, timestamps=False, running=None, poll=0.1):
    """Yield log events from a json-file log (``path`` may also be an open binary file, which is closed at the end).

    ``tail``: only the last N lines (None = all).  ``follow``: keep reading new lines until
    ``running()`` returns False, then drain what is left and stop.  ``line`` keeps the text exactly as
    logged, including its newline; ``time`` is only filled in with ``timestamps``.
    """
    with (path if hasattr(path, "read") else open(path, "rb")) as f:
        start = _tail_offset(f, tail) if tail is not None else 0
        f.seek(start)
        pending = b""
        while True:
            chunk = f.read(65536)
            if chunk:
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                for raw in lines:
                    ev = _event(raw, timestamps) if raw else None
                    if ev is not None:
                        yield ev
                continue
            if not follow:
                break
            if running is None or not running():
                # the writer is done: one last read catches lines written before it finished
                rest = f.read()
                for raw in (pending + rest).split(b"\n"):
                    ev = _event(raw, timestamps) if raw else None
                    if ev is not None:
                        yield ev
                return
            time.sleep(poll)

