"""Plain-text tables in docker's style for the payload's hand CLI (the controller renders its own)."""

import calendar
import re
import time

from agent_payload.humanize import human_duration

_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def table(headers, rows):
    """Render ``rows`` (lists of cells) under ``headers`` as left-aligned columns, three spaces apart."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        padded = [c.ljust(w) for c, w in zip(r, widths)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines)


def ago(stamp, now=None):
    """"5 minutes ago" for an RFC 3339 timestamp; the input unchanged if it does not parse."""
    m = _STAMP.match(stamp or "")
    if not m:
        return stamp or ""
    fields = [int(x) for x in m.groups()[:6]]
    then = calendar.timegm(tuple(fields) + (0, 0, 0))
    tz = m.group(7)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        then -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return human_duration((now or time.time()) - then) + " ago"
