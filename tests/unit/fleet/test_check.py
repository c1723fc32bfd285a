"""`fleet check` on the controller: states and exit codes, the Nagios and Prometheus formats, the deadline, the
overlap lock and the inventory's check configuration."""

import asyncio
import json
import re
import time
from types import SimpleNamespace

import pytest

from fleet.check import formats, run
from fleet.check.config import CheckConfigError, probes_of, thresholds_of
from fleet.check.model import CRITICAL, OK, UNKNOWN, WARNING, HostReport, Perf, Report, Row, worst
from fleet.errors import RemoteError, TransportError


def _report():
    web1 = HostReport("web1", up=True, seconds=0.25, rows=[
        Row("web1", "reachable", OK, "ssh"),
        Row("web1", "service:shop/web", CRITICAL, "container is unhealthy: curl failed"),
        Row("web1", "disk:/", OK, "78% free", [Perf("free", 78.0, "%", 20, 10, 0, 100),
                                               Perf("duration", 0.25, "s")])],
        metrics={"containers": [{"name": "shop-web-1", "project": "shop", "service": "web", "restarts": 3,
                                 "oom_kills": 1}],
                 "disk": [{"path": "/", "free_bytes": 780, "size_bytes": 1000}]})
    web2 = HostReport("web2", up=True, seconds=0.5, rows=[
        Row("web2", "service:shop/web", WARNING, "drifted: config hash"),
        Row("web2", "probe:it's|odd", UNKNOWN, "exec failed | badly", [Perf("load'1", 0.5, "", None, 2.0),
                                                                         Perf("mem", None, "B", "80:", "@90:95")])])
    db1 = HostReport("db1", rows=[Row("db1", "reachable", CRITICAL, "unreachable: connection refused")])
    return Report(hosts=[web1, web2, db1])


def test_worst_state_and_exit_codes():
    assert worst([]) == OK and worst([OK, WARNING]) == WARNING
    assert worst([WARNING, UNKNOWN]) == UNKNOWN and worst([UNKNOWN, CRITICAL, WARNING]) == CRITICAL
    r = _report()
    assert r.status == CRITICAL and r.exit_code == 2
    assert Report(hosts=[HostReport("h", rows=[Row("h", "x", UNKNOWN)])]).exit_code == 3
    assert Report(hosts=[HostReport("h", rows=[Row("h", "x", OK)])]).exit_code == 0


# The plugin guidelines' output: "TEXT | 'label'=value[UOM];[warn];[crit];[min];[max] ..." then long output lines
_RANGE = r"@?(?:-?[0-9.]+|~)?:?(?:-?[0-9.]+)?"
_PERF = r"'(?:[^'=]|'')+'=(?:-?[0-9.]+|U)(?:[a-zA-Z%]+)?(?:;{r}){{0,4}}".format(r=_RANGE)
_FIRST = re.compile(r"^FLEET (OK|WARNING|CRITICAL|UNKNOWN) - [^|]+(?: \| {p}(?: {p})*)?$".format(p=_PERF))


def test_nagios_output_follows_the_plugin_grammar():
    text = formats.nagios(_report())
    first, *long_output = text.splitlines()
    assert _FIRST.match(first), first
    assert first.startswith("FLEET CRITICAL - 2 critical, 1 unknown, 1 warning, 2 ok on 3 host(s): ")
    assert "'web1 disk:/ free'=78%;20;10;0;100" in first and "'web1 disk:/ duration'=0.25s" in first
    assert "'web2 probe:it''s/odd load''1'=0.5;;2" in first  # '|' never in a perfdata label
    labels = re.findall(r"'((?:[^']|'')+)'=", first.split(" | ", 1)[1])
    assert len(labels) == len(set(labels))  # every perfdata label once
    assert "'web1 duration'=0.25s;;;0" in first and "'web2 probe:it''s/odd mem'=UB;80:;@90:95" in first  # U, ranges
    assert all("|" not in line for line in long_output)
    assert long_output[0].startswith("CRITICAL web1 service:shop/web")
    ok = formats.nagios(Report(hosts=[HostReport("h", True, 0.1, [Row("h", "reachable", OK)])]))
    assert _FIRST.match(ok) and ok.startswith("FLEET OK - 1 ok on 1 host(s) | ")


def test_prometheus_textfile_parses_with_the_reference_parser(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    text = formats.prometheus(_report(), now=1700000000.0)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    status = {(s.labels["host"], s.labels["check"]): s.value for s in families["fleet_check_status"].samples}
    assert status[("web1", "service:shop/web")] == 2 and status[("web2", "probe:it's|odd")] == 3
    up = {s.labels["host"]: s.value for s in families["fleet_host_up"].samples}
    assert up == {"web1": 1, "web2": 1, "db1": 0}
    restarts = families["fleet_container_restarts"]  # a counter family: samples are ..._total
    assert restarts.type == "counter" and restarts.samples[0].name == "fleet_container_restarts_total"
    assert restarts.samples[0].value == 3 and restarts.samples[0].labels["service"] == "web"
    assert {s.labels["path"]: s.value for s in families["fleet_disk_free_bytes"].samples} == {"/": 780}
    assert families["fleet_check_last_run_timestamp_seconds"].samples[0].value == 1700000000.0
    assert all(f.documentation for f in families.values())
    path = tmp_path / "fleet.prom"
    formats.write_atomic(str(path), text)
    assert path.read_text() == text and (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.prom"]  # no temporary left behind


def test_table_shows_the_non_ok_rows_and_a_summary():
    text = formats.table(_report())
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "CHECK", "STATUS", "DETAIL"]
    assert not any(" OK " in line for line in lines[1:-1])
    assert lines[-1] == "fleet check: CRITICAL — 2 critical, 1 unknown, 1 warning, 2 ok on 3 host(s)"
    assert len(formats.table(_report(), all_rows=True).splitlines()) == 8
    data = json.loads(formats.to_json(_report()))
    assert data["status"] == "CRITICAL" and data["exit_code"] == 2 and len(data["checks"]) == 6


# ---------------------------------------------------------------- the runner

class Link:
    def __init__(self, host, behaviour):
        self.host, self.behaviour, self.calls = host, behaviour, []

    async def open(self):
        if self.behaviour == "blackhole":
            await asyncio.sleep(3600)
        if self.behaviour == "down":
            raise TransportError("ssh 10.0.0.9:22: connection refused")

    async def call(self, op, args, on_event=None, timeout=None):
        self.calls.append((op, args))
        if op == "image_resolve":
            return {"digest": "sha256:" + "a" * 64}
        if self.behaviour == "slow":
            await asyncio.sleep(3600)
        if self.behaviour == "error":
            raise RemoteError("Internal", "boom")
        return {"checks": [{"check": "disk:/", "status": "OK", "detail": "fine",
                            "perfdata": [{"label": "free", "value": 50, "uom": "%"}]}],
                "metrics": {"disk": [{"path": "/", "free_bytes": 1, "size_bytes": 2}]}}

    async def close(self):
        pass


def _hosts(*names):
    return [SimpleNamespace(name=n, address="10.0.0.{}".format(i), port=22) for i, n in enumerate(names, 1)]


def test_the_deadline_reports_slow_hosts_instead_of_waiting():
    hosts = _hosts("ok1", "slow", "hole", "down", "err")
    behaviour = {"ok1": "ok", "slow": "slow", "hole": "blackhole", "down": "down", "err": "error"}
    links = {}

    def link_for(h):
        links[h.name] = Link(h, behaviour[h.name])
        return links[h.name]
    args = {"services": [{"project": "shop", "service": "web", "config_hash": "h", "image": "reg/app:1"}]}
    t0 = time.monotonic()
    report = asyncio.run(run.run(hosts, lambda h: args, link_for, deadline=0.5))
    assert time.monotonic() - t0 < 2.5
    rows = {(r.host, r.check): r for r in report.rows}
    assert rows[("ok1", "disk:/")].status == OK and rows[("ok1", "reachable")].status == OK
    assert rows[("slow", "check")].status == UNKNOWN and "deadline" in rows[("slow", "check")].detail
    assert rows[("hole", "reachable")].status == CRITICAL and "no answer" in rows[("hole", "reachable")].detail
    assert rows[("down", "reachable")].status == CRITICAL and "refused" in rows[("down", "reachable")].detail
    assert rows[("err", "check")].status == UNKNOWN
    assert report.status == CRITICAL
    (sent,) = [a for op, a in links["ok1"].calls if op == "check"]
    assert sent["services"] == [{"project": "shop", "service": "web", "config_hash": "h",
                                 "image_digest": "sha256:" + "a" * 64}]
    resolves = [h for h, link in links.items() for op, _ in link.calls if op == "image_resolve"]
    assert len(resolves) == 1  # one image, resolved once for the whole run


# ---------------------------------------------------------------- configuration and the lock

def _host(**variables):
    return SimpleNamespace(name="web1", vars=variables)


def test_probes_and_thresholds_from_the_inventory():
    probes = probes_of(_host(fleet_checks=[
        {"type": "http", "url": "http://127.0.0.1:8080/healthz", "status": [200, 204], "body": "ok"},
        {"type": "tcp", "port": 5432},
        {"type": "exec", "command": "check_load -w 5", "container": "db", "name": "load"}]))
    assert [p["name"] for p in probes] == ["http:127.0.0.1:8080/healthz", "tcp:127.0.0.1:5432", "load"]
    assert probes[2]["command"] == ["check_load", "-w", "5"] and probes[1]["timeout"] == 5.0
    assert thresholds_of(_host(fleet_check_thresholds={"disk_warn_pct": 30, "log_warn_bytes": "100m"})) == {
        "disk_warn_pct": 30, "log_warn_bytes": 100 * 10 ** 6}
    for bad, needle in (([{"type": "smtp"}], "type must be"), ([{"type": "tcp", "port": 0}], "port"),
                        ([{"type": "http", "url": "ftp://x"}], "url"), ([{"type": "tcp", "port": 1, "x": 1}], "x"),
                        ([{"type": "http", "url": "http://a/", "body": "("}], "regular expression"),
                        ([{"type": "tcp", "port": 1}, {"type": "tcp", "port": 1}], "two probes"), ("x", "list")):
        with pytest.raises(CheckConfigError, match=needle):
            probes_of(_host(fleet_checks=bad))
    for bad in ({"disk_warn_pct": 101}, {"nope": 1}, {"log_crit_bytes": "lots"},
                {"disk_warn_pct": 10, "disk_crit_pct": 20}):
        with pytest.raises(CheckConfigError):
            thresholds_of(_host(fleet_check_thresholds=bad))


def test_an_overlapping_run_exits_3_at_once(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fleet.cli import app
    from fleet.commands import check as cmd

    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1}\n")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    session = SimpleNamespace(inventory_paths=lambda: [str(inv)])
    held = cmd.take_lock(cmd._lock_path(session, ["all"]))
    try:
        t0 = time.monotonic()
        res = CliRunner().invoke(app, ["-i", str(inv), "check", "-H", "all", "--format", "nagios"])
        assert res.exit_code == 3 and time.monotonic() - t0 < 5
        assert res.output.startswith("FLEET UNKNOWN - another fleet check of these hosts is still running (pid ")
    finally:
        import os
        os.close(held)
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1, fleet_checks: [{type: smtp}]}\n")
    res = CliRunner().invoke(app, ["-i", str(bad), "check", "-H", "all"])
    assert res.exit_code == 3 and "fleet_checks[0]" in res.output
