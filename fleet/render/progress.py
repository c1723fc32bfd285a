"""Live per-host progress of a pull or push: one line per host redrawn in place on a terminal, plain lines elsewhere.

On a TTY the block looks like::

    web1  nginx:latest  3/4 layers  41.2MB/58.0MB  Downloading
    web2  nginx:latest  4/4 layers  58.0MB/58.0MB  Pull complete
    db1   nginx:latest  error: no route to host

and is redrawn with plain ANSI (cursor up, clear line) at most every ``interval`` seconds, so a fast
stream of chunk events costs a few writes per second, not one per chunk.  Without a TTY (or with a
non-ANSI terminal) each layer's status change is one line, ``web1: 3f4ca61ae4c3: Downloading``.
"""

from __future__ import annotations

import os
import sys
import time

from fleet.render.tables import error_text, human_size

#: Layer statuses after which the layer needs nothing more (pull and push).
DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists")
# After these the layer's bytes are all here (current then counts extraction, not download).
_DOWNLOADED = ("Download complete", "Verifying", "Extracting", "Pull complete", "Pushed")

_UP = "\x1b[{}A"
_CLEAR = "\x1b[2K"


def is_tty(stream) -> bool:
    """A terminal that understands ANSI: isatty() and TERM is not "dumb"."""
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def _done(status: str) -> bool:
    return status in DONE or status.startswith("Mounted from")


class _Host:
    """What one host has reported: its layers' status and byte counts, then its outcome."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.layers: dict[str, dict] = {}  # layer -> {"status", "current", "total"}
        self.last_status = "Waiting"
        self.final: str | None = None

    def update(self, data: dict) -> None:
        layer = str(data.get("layer") or "")
        status = str(data.get("status") or "")
        entry = self.layers.setdefault(layer, {"status": "", "current": 0, "total": None, "skip": False})
        entry["status"] = status
        if data.get("total") is not None:
            entry["total"] = data["total"]
        if status == "Already exists" or status == "Layer already exists" or status.startswith("Mounted from"):
            entry["skip"] = True  # nothing moves over the wire for this layer: leave it out of the bytes
        elif status in _DOWNLOADED:
            entry["current"] = entry["total"] if entry["total"] is not None else entry["current"]
        elif data.get("current") is not None:
            entry["current"] = max(entry["current"], data["current"])
        self.last_status = status

    def line(self, image: str, width: int) -> str:
        """``web1  nginx:latest  3/4 layers  41.2MB/58.0MB  Downloading`` (or the outcome)."""
        head = "{}  {}".format(self.name.ljust(width), image)
        if self.final is not None and self.final.startswith("error: "):
            return "{}  {}".format(head, self.final)
        moving = [e for e in self.layers.values() if not e["skip"]]
        done = sum(1 for e in self.layers.values() if _done(e["status"]))
        parts = [head]
        if self.layers:
            parts.append("{}/{} layers".format(done, len(self.layers)))
        if moving:
            current = sum(e["current"] or 0 for e in moving)
            total = sum(e["total"] or 0 for e in moving)
            parts.append("{}/{}".format(human_size(current), human_size(total)) if total
                         else human_size(current))
        parts.append(self.final if self.final is not None else self.current_status())
        return "  ".join(parts)

    def current_status(self) -> str:
        """The phase to show: the latest status of a layer still in flight, else the latest status."""
        busy = [e["status"] for e in self.layers.values() if not _done(e["status"])]
        return busy[-1] if busy else self.last_status


class ProgressView:
    """Receives fan-out events (``on_event``) and shows them; ``finish(results)`` writes the outcome lines.

    ``done_text`` is the outcome of a host that succeeded ("Pull complete", "Push complete").
    """

    def __init__(self, hosts, image: str, done_text: str = "Pull complete", stream=None, tty: bool | None = None,
                 quiet: bool = False, interval: float = 0.1, clock=time.monotonic, columns: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_tty(self.stream) if tty is None else tty
        self.quiet = quiet
        self.image = image
        self.done_text = done_text
        self.interval = interval
        self.clock = clock
        self.hosts = {h.name: _Host(h.name) for h in hosts}
        self.width = max((len(n) for n in self.hosts), default=0)
        self.drawn = 0  # lines of the block currently on screen
        self.last_draw: float | None = None
        self.seen: dict = {}  # (host, layer) -> status, for the plain-line mode
        if columns is None:
            import shutil
            columns = shutil.get_terminal_size((120, 24)).columns
        # a line that wraps would take two rows and break the cursor-up count: cut at the terminal's width
        self.columns = max(20, columns - 1)

    def start(self) -> None:
        """Draw the first frame (every host "Waiting") so the block is there before the first event."""
        if self.tty and not self.quiet:
            self.draw(self.clock())

    def on_event(self, host, name: str, data: dict) -> None:
        """The fan-out callback: progress events update the host and maybe redraw."""
        if self.quiet or name != "progress":
            return
        state = self.hosts.get(host.name)
        if state is None:
            state = self.hosts[host.name] = _Host(host.name)
            self.width = max(self.width, len(host.name))
        state.update(data)
        if self.tty:
            now = self.clock()
            if self.last_draw is None or now - self.last_draw >= self.interval:
                self.draw(now)
        else:
            key = (host.name, data.get("layer"))
            if self.seen.get(key) != data.get("status"):
                self.seen[key] = data.get("status")
                self._write("{}: {}: {}\n".format(host.name, data.get("layer"), data.get("status")))

    def finish(self, results) -> None:
        """Record each host's outcome and draw the final block (TTY) or the error lines (plain)."""
        if self.quiet:
            return
        for r in results:
            state = self.hosts.get(r.host.name)
            if state is None:
                continue
            state.final = self.done_text if r.ok else "error: " + error_text(r.error)
        if self.tty:
            self.draw(self.clock())

    def frame(self) -> list[str]:
        """The block's lines as they would be drawn now."""
        return [h.line(self.image, self.width)[:self.columns] for h in self.hosts.values()]

    def draw(self, now: float) -> None:
        """Redraw the block in place: move up over the previous frame, clear and rewrite each line."""
        lines = self.frame()
        out = [_UP.format(self.drawn)] if self.drawn else []
        for line in lines:
            out.append(_CLEAR + line + "\n")
        self._write("".join(out))
        self.drawn = len(lines)
        self.last_draw = now

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
