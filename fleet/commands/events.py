"""``fleet events``: docker's ``events`` across hosts, from each host's event journal (agent_payload/events.py).

Without ``--until`` it follows: the hosts' events are printed as they arrive (merged by arrival), each line
prefixed with its host, until Ctrl-C.  With ``--until`` it reads what the journals recorded between ``--since``
and ``--until`` and prints all hosts' events sorted by time.
"""

from __future__ import annotations

import json
import sys
import time

from fleet.commands.common import Session, exit_status, note, output
from fleet.errors import UsageError
from fleet.render import tables

#: docker's ``events --filter`` keys the payload matches (agent_payload/events.FILTER_KEYS).
FILTER_KEYS = ("container", "event", "image", "label", "type", "network", "volume", "scope")
TYPES = ("container", "image", "network", "volume")
#: ``--format`` fields: docker's events.Message, plus Host.
EVENT_FIELDS = {"Host": "HOST", "Type": "TYPE", "Action": "ACTION", "Status": "STATUS", "ID": "ID",
                "From": "FROM", "Actor": "ACTOR", "Scope": "SCOPE", "Time": "TIME", "TimeNano": "TIMENANO"}


def check_filters(filters: list[str]) -> list[str]:
    """docker's ``--filter KEY=VALUE`` checks, before a host is contacted (UsageError naming the bad one)."""
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError("bad format of filter (expected name=value): {}".format(item))
        if key.strip().lower() not in FILTER_KEYS:
            raise UsageError("Invalid filter '{}'".format(key))
        if key.strip().lower() == "type" and value not in TYPES:
            raise UsageError("Invalid filter 'type={}': the types are {}".format(value, ", ".join(TYPES)))
    return filters


def timestamp(ns: int) -> str:
    """docker's RFC3339NanoFixed, in UTC: 2026-12-04T10:00:00.000000000Z."""
    secs, frac = divmod(int(ns), 10 ** 9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".{:09d}Z".format(frac)


def text_line(ev: dict) -> str:
    """docker's default events line: ``TIME TYPE ACTION ID (k=v, ...)`` with the attributes sorted by key."""
    ns = ev.get("timeNano") or (ev.get("time") or 0) * 10 ** 9
    actor = ev.get("Actor") or {}
    line = "{} {} {} {}".format(timestamp(ns), ev.get("Type", ""), ev.get("Action", ""), actor.get("ID", ""))
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " ({})".format(", ".join("{}={}".format(k, attrs[k]) for k in sorted(attrs)))
    return line


def event_row(host: str, ev: dict) -> dict:
    actor = ev.get("Actor") or {}
    return {"Host": host, "Type": ev.get("Type", ""), "Action": ev.get("Action", ""),
            "Status": ev.get("status", ""), "ID": ev.get("id") or actor.get("ID", ""), "From": ev.get("from", ""),
            "Actor": actor, "Scope": ev.get("scope", "local"), "Time": ev.get("time", 0),
            "TimeNano": ev.get("timeNano", 0)}


def events(session: Session, patterns: list[str], since: str | None, until: str | None, filters: list[str],
           fmt: str | None, as_json: bool) -> int:
    """Show the events of every selected host: following (merged by arrival) without ``until``, else sorted."""
    from fleet.commands.containers import check_time
    from fleet.render import colours

    check_time("--since", since)
    check_time("--until", until)
    check_filters(filters)
    formatter = None
    if fmt is not None and not as_json:
        from fleet.render import formatting
        formatter = formatting.compile_format(fmt, EVENT_FIELDS, "events.Message")
        if formatter.table:
            raise UsageError('invalid --format "{}": events prints a line per event, not a table'.format(fmt))
    hosts = session.select(patterns)
    prefix = colours.HostPrefix([h.name for h in hosts], colours.enabled(sys.stdout))

    def show(host: str, ev: dict) -> None:
        if as_json:
            output(json.dumps(dict(ev, host=host), separators=(",", ":")))
        elif formatter is not None:
            output(formatter.line(event_row(host, ev)))
        else:
            output(prefix(host) + text_line(ev))

    follow = until is None
    args = {"since": since or None, "until": until or None, "filters": list(filters), "follow": follow}
    seen: list = []

    def on_event(host, name, data):
        if name != "event" or not isinstance(data, dict):
            return
        if follow:
            show(host.name, data)
        else:
            seen.append((data.get("timeNano") or 0, len(seen), host.name, data))

    results = session.run_hosts(hosts, "events", args, on_event, bounded=not follow)
    for _ns, _i, host, ev in sorted(seen, key=lambda s: s[:2]):
        show(host, ev)
    for r in results:
        if not r.ok:
            note("{}: error: {}".format(r.host.name, tables.error_text(r.error)))
    return exit_status(results)
