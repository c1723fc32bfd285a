"""What a deploy shows while it runs: one line per host, redrawn in place on a terminal, plain lines elsewhere.

On a TTY::

    web1  web      done (updated)         12.1s
    web2  web      waiting for health      3.4s
    db1   worker   pending

Without one, each change of a host's phase is one line (``web2: web: waiting for health``), so logs and CI show
the rollout as it went.
"""

from __future__ import annotations

import sys
import time

from fleet.render.progress import is_tty

_UP = "\x1b[{}A"
_CLEAR = "\x1b[2K"

#: the payload's swap phases as the view words them
PHASES = {"pulling": "pulling", "creating": "creating", "starting": "starting", "waiting": "waiting for health",
          "switching": "switching ports", "draining": "draining the old container", "done": "done",
          "rolling-back": "rolling back", "rolled-back": "rolled back", "removing": "removing"}


class DeployView:
    def __init__(self, hosts: list[str], stream=None, tty: bool | None = None, quiet: bool = False,
                 clock=time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_tty(self.stream) if tty is None else tty
        self.quiet = quiet
        self.clock = clock
        self.width = max((len(h) for h in hosts), default=0)
        self.state = {h: ["", "pending", None] for h in hosts}  # host -> [service, phase, started]
        self.drawn = 0

    def start(self) -> None:
        if self.tty and not self.quiet:
            self._draw()

    def phase(self, host: str, service: str, phase: str) -> None:
        """``host`` is now at ``phase`` (a PHASES key or free text) of ``service``."""
        entry = self.state.setdefault(host, ["", "pending", None])
        text = PHASES.get(phase, phase)
        if entry[0] == service and entry[1] == text:
            return
        if entry[2] is None or entry[0] != service:
            entry[2] = self.clock()
        entry[0], entry[1] = service, text
        if self.quiet:
            return
        if self.tty:
            self._draw()
        else:
            self.stream.write("{}: {}{}\n".format(host, service + ": " if service else "", text))
            self.stream.flush()

    def _draw(self) -> None:
        now = self.clock()
        out = []
        if self.drawn:
            out.append(_UP.format(self.drawn))
        svc_width = max((len(s[0]) for s in self.state.values()), default=0)
        for host, (service, text, started) in self.state.items():
            took = "" if started is None else "{:.1f}s".format(now - started)
            out.append("{}\r{}  {}  {:<28} {}\n".format(_CLEAR, host.ljust(self.width), service.ljust(svc_width),
                                                       text, took))
        self.drawn = len(self.state)
        self.stream.write("".join(out))
        self.stream.flush()
