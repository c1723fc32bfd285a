"""Fleet-wide tables: HOST first, docker's columns after it, an ERROR column when some host failed."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from agent_payload.humanize import human_duration, human_size  # noqa: F401 - re-exported for commands


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)$")


def render(headers: list[str], rows: list[list]) -> str:
    """Render rows as a plain, left-aligned table (docker's look)."""
    from tabulate import tabulate

    cells = [["" if c is None else str(c) for c in row] for row in rows]
    return tabulate(cells, headers=headers, tablefmt="plain", disable_numparse=True)


def host_table(headers: list[str], results, rows_of) -> str:
    """One table for many hosts: ``rows_of(data)`` gives a host's rows (without HOST); failed hosts get an ERROR."""
    failed = any(not r.ok for r in results)
    out_headers = ["HOST"] + headers + (["ERROR"] if failed else [])
    rows = []
    for r in results:
        if r.ok:
            for row in rows_of(r.data):
                rows.append([r.host.name] + list(row) + ([""] if failed else []))
        else:
            rows.append([r.host.name] + [""] * len(headers) + [error_text(r.error)])
    return render(out_headers, rows)


def bare_ids(results, ids_of) -> str:
    """``-q``: every host's IDs, one per line, without a host (docker's quiet format ``{{.ID}}``), in host order;
    ``ids_of(data)`` gives one host's. Failed hosts give none (say them on stderr). Empty when there are none."""
    return "\n".join(i for r in results if r.ok for i in ids_of(r.data))


def name_results(data: dict, key: str) -> list[dict]:
    """A host's per-name results ({"name", "id", "ok", "error"}); from ``key``'s IDs for a payload without them."""
    if "results" in data:
        return list(data["results"])
    return [{"name": cid, "id": cid, "ok": True, "error": None} for cid in data.get(key, [])]


def daemon_error(error: dict) -> str:
    """docker's wording of a per-name failure: "Error response from daemon: No such container: x"."""
    return "Error response from daemon: " + " ".join(str(error.get("message", "")).split())


def names_failed(results, ignore_missing: bool = False) -> bool:
    """True when a host failed, or a name failed on a host that answered. ``ignore_missing``: a name that does
    not exist is no failure (docker's ``rm -f``: it prints the error and exits 0)."""
    def missing(kind) -> bool:
        return ignore_missing and kind == "NotFound"

    def host_failed(r) -> bool:
        return not r.ok and not missing(getattr(r.error, "kind", None))

    return any(host_failed(r) or any(not n.get("ok", True) and not missing((n.get("error") or {}).get("kind"))
                                     for n in (r.data or {}).get("results", [])) for r in results)


def failed_names(results, given: list[str]) -> list[str]:
    """The names that failed on a host that answered, each once, in order (a request for one name ``given``
    fails as the host's own error, which the payload reported: a RemoteError)."""
    names: list[str] = []
    for r in results:
        if r.ok:
            failed = [n.get("name") for n in (r.data or {}).get("results", []) if not n.get("ok", True)]
        else:
            failed = list(given) if len(given) == 1 and getattr(r.error, "kind", None) else []
        names.extend(n for n in failed if n not in names)
    return names


def name_table(headers: list[str], results, key: str, label: str, id_of=None) -> str:
    """One row per host and name: the name's ID (``id_of``, default short_id) and ``label``, or its error.

    The ERROR column is there when a host or a name failed (a failed name shows the name it was given).
    """
    id_of = id_of or short_id
    failed = names_failed(results)
    rows = []
    for r in results:
        if not r.ok:
            rows.append([r.host.name] + [""] * len(headers) + [error_text(r.error)])
            continue
        for n in name_results(r.data or {}, key):
            if n.get("ok", True):
                rows.append([r.host.name, id_of(n.get("id") or n.get("name")), label] + ([""] if failed else []))
            else:
                rows.append([r.host.name, n.get("name"), "failed", daemon_error(n.get("error") or {})])
    return render(["HOST"] + headers + (["ERROR"] if failed else []), rows)


def error_text(error) -> str:
    """A one-line message for a host's error."""
    return " ".join(str(error).split())


def to_json(results, key_of=None) -> str:
    """Machine output: one object per host, its result data merged in, or its error as data."""
    out = []
    for r in results:
        if r.ok:
            obj = {"host": r.host.name, "ok": True, "payload_uploaded": r.uploaded}
            obj.update(r.data or {})
        else:
            err = r.error
            obj = {"host": r.host.name, "ok": False,
                   "error": {"kind": getattr(err, "kind", type(err).__name__), "message": str(err)}}
        out.append(obj)
    return json.dumps(out, indent=2, sort_keys=True)


def short_id(value: str | None, n: int = 12) -> str:
    """Docker's short form of an ID or digest (algorithm prefix dropped)."""
    if not value:
        return ""
    return value.split(":", 1)[-1][:n]


def ago(rfc3339: str | None, now: float | None = None) -> str:
    """"5 minutes ago" for an RFC 3339 timestamp (docker's CREATED column)."""
    if not rfc3339:
        return ""
    m = _RFC3339.match(rfc3339)
    if not m:
        return rfc3339
    base, frac, tz = m.groups()
    stamp = datetime.fromisoformat(base + (frac or "")[:7] + ("+00:00" if tz in ("Z", "z") else tz))
    then = stamp.timestamp()
    return human_duration((now or time.time()) - then) + " ago"
