"""A check run as text: the table (non-OK rows, or every row), JSON, a Nagios plugin status line with perfdata,
and the Prometheus textfile collector format (pure: a Report in, text out; the file write is atomic)."""

from __future__ import annotations

import json
import os
import re
import time

from fleet.check.model import EXIT_CODES, OK, SEVERITY, Report

HEADERS = ["HOST", "CHECK", "STATUS", "DETAIL"]


def summary(report: Report) -> str:
    counts = report.counts()
    parts = ["{} {}".format(counts[s], s.lower()) for s in ("CRITICAL", "UNKNOWN", "WARNING", "OK") if counts[s]]
    return "fleet check: {} — {} on {} host(s)".format(report.status, ", ".join(parts) or "no checks",
                                                        len(report.hosts))


def table(report: Report, all_rows: bool = False) -> str:
    from fleet.render import tables

    rows = [[r.host, r.check, r.status, " ".join(r.detail.split())] for r in report.rows
            if all_rows or r.status != OK]
    out = tables.render(HEADERS, rows) + "\n" if rows else ""
    healed = "".join("\nhealed: {} {}: {}".format(h, what, result) for h, what, result in report.healed)
    return out + summary(report) + healed


def to_json(report: Report) -> str:
    return json.dumps({"status": report.status, "exit_code": report.exit_code, "counts": report.counts(),
                       "checks": [r.to_json() for r in report.rows],
                       "hosts": [{"host": h.host, "up": h.up, "seconds": h.seconds, "metrics": h.metrics}
                                 for h in report.hosts],
                       "healed": [{"host": h, "what": w, "result": r} for h, w, r in report.healed]},
                      indent=2, sort_keys=True)


# ---------------------------------------------------------------- Nagios

def _perf_label(text: str) -> str:
    """A perfdata label: single-quoted, quotes doubled, no '=' (the plugin guidelines' grammar), no '|'."""
    return "'{}'".format(text.replace("'", "''").replace("=", "_").replace("|", "/"))


def _num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):  # a plugin's range ("80:", "@90:95"), passed on as it gave it
        return v
    return ("{:.6f}".format(v).rstrip("0").rstrip(".")) if isinstance(v, float) and not v.is_integer() \
        else str(int(v))


def perfdata(report: Report) -> str:
    items = []
    for h in report.hosts:
        if h.seconds is not None:
            items.append("{}={}s;;;0".format(_perf_label("{} duration".format(h.host)), _num(h.seconds)))
        for row in h.rows:
            for p in row.perfdata:
                spec = "{}{}".format("U" if p.value is None else _num(p.value), p.uom)
                tail = ";".join(_num(x) for x in (p.warn, p.crit, p.min, p.max)).rstrip(";")
                # host and check in the label: two checks' "used_pct" (disk:/, disk:<root>) stay apart
                items.append("{}={}{}".format(_perf_label("{} {} {}".format(h.host, row.check, p.label)), spec,
                                              ";" + tail if tail else ""))
    return " ".join(items)


def nagios(report: Report) -> str:
    """``FLEET STATUS - summary: first problems | perfdata``, then one line per non-OK row (long output)."""
    bad = [r for r in report.rows if r.status != OK]
    counts = report.counts()
    text = ", ".join("{} {}".format(counts[s], s.lower()) for s in ("CRITICAL", "UNKNOWN", "WARNING", "OK")
                     if counts[s]) or "no checks"
    text = "{} on {} host(s)".format(text, len(report.hosts))
    if bad:
        first = max(bad, key=lambda r: SEVERITY[r.status])
        text += ": {} {} {}".format(first.host, first.check, " ".join(first.detail.split()))
    text = text.replace("|", "/")  # '|' starts the perfdata
    line = "FLEET {} - {}".format(report.status, text)
    perf = perfdata(report)
    out = [line + (" | " + perf if perf else "")]
    out += ["{} {} {}: {}".format(r.status, r.host, r.check, " ".join(r.detail.split())).replace("|", "/")
            for r in bad]  # long output: '|' would start perfdata there too
    return "\n".join(out)


# ---------------------------------------------------------------- Prometheus

_METRICS = [
    ("fleet_check_status", "gauge", "State of one check on one host: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    ("fleet_host_up", "gauge", "1 when the host answered the check within the deadline, else 0."),
    ("fleet_check_duration_seconds", "gauge", "Seconds the host took to answer the check."),
    ("fleet_container_restarts_total", "counter", "Restarts of a container (its restart policy), as the host "
                                                  "counts them."),
    ("fleet_container_oom_kills_total", "counter", "OOM kills in a container's cgroup."),
    ("fleet_disk_free_bytes", "gauge", "Free bytes of a filesystem the host checks (/ and the fleet root)."),
    ("fleet_disk_size_bytes", "gauge", "Size in bytes of a filesystem the host checks."),
    ("fleet_check_last_run_timestamp_seconds", "gauge", "When this file was written (unix time)."),
]
_LABEL_ESCAPE = re.compile(r'[\\"\n]')


def _labels(**labels) -> str:
    esc = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}
    return "{" + ",".join('{}="{}"'.format(k, _LABEL_ESCAPE.sub(lambda m: esc[m.group()], str(v)))
                          for k, v in labels.items()) + "}"


def prometheus(report: Report, now: float | None = None) -> str:
    samples = {name: [] for name, _t, _h in _METRICS}
    for h in report.hosts:
        samples["fleet_host_up"].append((_labels(host=h.host), 1 if h.up else 0))
        if h.seconds is not None:
            samples["fleet_check_duration_seconds"].append((_labels(host=h.host), h.seconds))
        for row in h.rows:
            samples["fleet_check_status"].append((_labels(host=h.host, check=row.check), EXIT_CODES[row.status]))
        for c in h.metrics.get("containers") or []:
            lab = _labels(host=h.host, container=c.get("name", ""), project=c.get("project") or "",
                          service=c.get("service") or "")
            samples["fleet_container_restarts_total"].append((lab, int(c.get("restarts") or 0)))
            samples["fleet_container_oom_kills_total"].append((lab, int(c.get("oom_kills") or 0)))
        for d in h.metrics.get("disk") or []:
            lab = _labels(host=h.host, path=d.get("path", ""))
            samples["fleet_disk_free_bytes"].append((lab, int(d.get("free_bytes") or 0)))
            samples["fleet_disk_size_bytes"].append((lab, int(d.get("size_bytes") or 0)))
    samples["fleet_check_last_run_timestamp_seconds"].append(("", round(time.time() if now is None else now, 3)))
    out = []
    for name, kind, help_text in _METRICS:
        out.append("# HELP {} {}".format(name, help_text))
        out.append("# TYPE {} {}".format(name, kind))
        out.extend("{}{} {}".format(name, labels, _num(float(value))) for labels, value in samples[name])
    return "\n".join(out) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write ``path`` (0644) so that a reader (node_exporter) sees the old file or the new one, never half of one:
    a temporary file in the same directory (not ending in .prom, so the collector skips it), then a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".{}.tmp-{}".format(os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
