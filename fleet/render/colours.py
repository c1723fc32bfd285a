"""A colour per host for merged streams (``logs -f``, ``events``): on a terminal only, never with NO_COLOR.

https://no-color.org: a NO_COLOR variable with any non-empty value turns colours off; output that is not a TTY
(a pipe, a file, cron) never gets escape codes.
"""

from __future__ import annotations

import os

#: ANSI foreground colours, as docker compose cycles them for its service prefixes.
PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


def enabled(stream) -> bool:
    """True when ``stream`` is a terminal and NO_COLOR is unset or empty."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class HostPrefix:
    """``host | `` padded to the longest name, coloured per host (in selection order) when ``colour``."""

    def __init__(self, names, colour: bool):
        names = list(names)
        self.width = max((len(n) for n in names), default=0)
        self.colour = colour
        self._codes = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}

    def __call__(self, name: str) -> str:
        text = "{} | ".format(name.ljust(self.width))
        if not self.colour:
            return text
        return "\x1b[{}m{}\x1b[0m".format(self._codes.get(name, PALETTE[0]), text)
