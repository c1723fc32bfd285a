"""What a check run produces: rows of (host, check, status, detail, perfdata) and the run's worst state.

Statuses are the Nagios plugin states with their exit codes: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3.  The run's
state is the worst of its rows in the order Icinga and most aggregators use, CRITICAL > UNKNOWN > WARNING > OK: a
check that could not run hides no failure, and an outage outranks a question mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


@dataclass
class Perf:
    """One Nagios perfdata item: 'label'=value[UOM];[warn];[crit];[min];[max]."""

    label: str
    value: float | None  # None: the plugin's "U" (no value could be determined)
    uom: str = ""
    warn: float | str | None = None  # a number, or a plugin's range as it gave it ("80:", "@90:95")
    crit: float | str | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def from_wire(cls, data: dict) -> "Perf":
        def num(key, ranges=False):
            v = data.get(key)
            if v is None or v == "":
                return None
            if ranges and isinstance(v, str):
                return v
            return float(v)
        value = data.get("value")
        return cls(str(data.get("label", "")), None if value is None else float(value), str(data.get("uom") or ""),
                   num("warn", True), num("crit", True), num("min"), num("max"))


@dataclass
class Row:
    host: str
    check: str
    status: str
    detail: str = ""
    perfdata: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"host": self.host, "check": self.check, "status": self.status, "detail": self.detail,
                "perfdata": [vars(p) for p in self.perfdata]}


@dataclass
class HostReport:
    """What one host gave: its rows, whether it answered, how long it took, and its metrics (check op data)."""

    host: str
    up: bool = False
    seconds: float | None = None
    rows: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


@dataclass
class Report:
    hosts: list = field(default_factory=list)  # HostReport, in inventory order
    healed: list = field(default_factory=list)  # what --heal did: (host, what, result)

    @property
    def rows(self) -> list:
        return [row for h in self.hosts for row in h.rows]

    @property
    def status(self) -> str:
        return worst(row.status for row in self.rows)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def counts(self) -> dict:
        out = {OK: 0, WARNING: 0, CRITICAL: 0, UNKNOWN: 0}
        for row in self.rows:
            out[row.status] += 1
        return out


def worst(statuses) -> str:
    """The worst status (OK for none)."""
    return max(statuses, key=SEVERITY.__getitem__, default=OK)
