"""Health checks of one host (the ``check`` op, ``fleet check``'s host side), stdlib only.

One run gives rows ``{"check", "status", "detail", "perfdata"}`` with Nagios' states and some metrics:

- ``payload``: this payload ran (and could keep its counters);
- ``disk:/``, ``disk:<state root>``: free space (f_bavail, as df's Avail) under ``disk_warn_pct``/``disk_crit_pct``
  (host.py);
- ``service:<project>/<service>``: one per desired service (services.py): missing or exited CRITICAL, drifted
  (another config hash or image digest) WARNING naming the fields, unhealthy CRITICAL, its restart count grown or
  an OOM kill since the last check WARNING;
- ``container:<name>``: other containers that are unhealthy, or restarted / OOM-killed since the last check;
- ``log:<name>``: a container whose json log (rotated files included) is over ``log_warn_bytes``/``log_crit_bytes``;
- ``probe:<name>``: http, tcp and exec probes (probes.py; exec follows the Nagios plugin convention).

"Since the last check" is since the last run with ``counters`` true: the last-seen restart counts and OOM kills
per container id live in ``<root>/checks/counters.json`` (counters.py; 0600, written atomically under a flock).
"""

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
#: Nagios' order of badness (and exit codes: the index)
STATES = (OK, WARNING, CRITICAL, UNKNOWN)
_RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}  # as Icinga and fleet check rank them


def worst(statuses, default=OK):
    """The worst of ``statuses`` (CRITICAL > UNKNOWN > WARNING > OK)."""
    out = default
    for status in statuses:
        if _RANK[status] > _RANK[out]:
            out = status
    return out


def row(check, status, detail, perfdata=None):
    """One result row."""
    return {"check": check, "status": status, "detail": detail, "perfdata": list(perfdata or [])}


def perf(label, value, uom="", warn=None, crit=None, min=None, max=None):
    """One perfdata item: numbers (``value`` None for a plugin's "U"); ``warn``/``crit`` a number, or the Nagios
    range a plugin gave as it is when it is more than a number ("10:", "@5:10", "~:5")."""
    return {"label": label, "value": value, "uom": uom, "warn": warn, "crit": crit, "min": min, "max": max}
