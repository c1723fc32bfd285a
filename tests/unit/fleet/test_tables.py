"""Fleet tables: HOST first, docker's humanised columns, an ERROR column only when a host failed."""

import json
from types import SimpleNamespace

import pytest

from fleet.errors import RemoteError, TransportError
from fleet.render import tables
from fleet.transport.fanout import HostResult


def _host(name):
    return SimpleNamespace(name=name)


def test_host_table_success_has_no_error_column():
    results = [HostResult(_host("web1"), data={"v": ["a", "b"]}), HostResult(_host("web2"), data={"v": []})]
    text = tables.host_table(["VALUE"], results, lambda d: [[x] for x in d["v"]])
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "VALUE"]
    assert [line.split() for line in lines[1:]] == [["web1", "a"], ["web1", "b"]]


def test_failed_host_shows_its_error_in_the_table():
    results = [HostResult(_host("web1"), data={"v": ["a"]}),
               HostResult(_host("db9"), error=TransportError("ssh 10.0.0.9:22: Connection refused"))]
    lines = tables.host_table(["VALUE"], results, lambda d: [[x] for x in d["v"]]).splitlines()
    assert lines[0].split() == ["HOST", "VALUE", "ERROR"]
    assert lines[2].startswith("db9") and lines[2].endswith("ssh 10.0.0.9:22: Connection refused")


def test_json_carries_errors_as_data():
    results = [HostResult(_host("web1"), data={"x": 1}, uploaded=True),
               HostResult(_host("web2"), error=RemoteError("NotFound", "No such container: web"))]
    out = json.loads(tables.to_json(results))
    assert out[0] == {"host": "web1", "ok": True, "payload_uploaded": True, "x": 1}
    assert out[1]["ok"] is False and out[1]["error"]["kind"] == "NotFound"


@pytest.mark.parametrize("seconds,text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"), (86400 * 3, "3 days"),
])
def test_human_duration_matches_docker(seconds, text):
    assert tables.human_duration(seconds) == text


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (4260, "4.26kB"), (187_000_000, "187MB")])
def test_human_size_matches_docker(n, text):
    assert tables.human_size(n) == text


@pytest.mark.parametrize("stamp", ["2026-11-28T01:00:00.123456789Z", "2026-11-28T01:00:00Z",
                                   "2026-11-28T01:00:00.5+00:00", "2026-11-28T01:00:00+00:00"])
def test_ago_parses_rfc3339_variants(stamp):
    from datetime import datetime
    now = datetime.fromisoformat("2026-11-28T01:05:00+00:00").timestamp()
    expected = "4 minutes ago" if "." in stamp else "5 minutes ago"
    assert tables.ago(stamp, now=now) == expected


def test_short_id():
    assert tables.short_id("sha256:" + "ab" * 32) == "ab" * 6
    assert tables.short_id(None) == ""


def test_bare_ids_are_every_hosts_ids_one_per_line_without_a_host():
    """docker's quiet format is ``{{.ID}}``: ``-q`` with several hosts still gives bare IDs, in host order, and a
    failed host gives none (its error is said on stderr by the command)."""
    results = [HostResult(_host("web1"), data={"v": ["a1", "a2"]}),
               HostResult(_host("db9"), error=TransportError("ssh 10.0.0.9:22: Connection refused")),
               HostResult(_host("web2"), data={"v": ["b1"]})]
    assert tables.bare_ids(results, lambda d: d["v"]) == "a1\na2\nb1"
    assert tables.bare_ids(results[1:2], lambda d: d["v"]) == ""


def _name(name, cid=None, error=None):
    return {"name": name, "id": cid, "ok": error is None,
            "error": None if error is None else {"kind": "NotFound", "message": error}}


def test_name_table_has_one_row_per_host_and_name_with_each_error():
    results = [HostResult(_host("web1"), data={"removed": ["a" * 64], "results": [
                   _name("a", "a" * 64), _name("nosuch", error="No such container: nosuch")]}),
               HostResult(_host("web2"), data={"removed": ["b" * 64], "results": [_name("b", "b" * 64)]}),
               HostResult(_host("db9"), error=TransportError("ssh 10.0.0.9:22: Connection refused"))]
    lines = tables.name_table(["CONTAINER", "RESULT"], results, "removed", "removed").splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT", "ERROR"]
    assert lines[1].split() == ["web1", "a" * 12, "removed"]
    assert lines[2].split(None, 3) == ["web1", "nosuch", "failed",
                                       "Error response from daemon: No such container: nosuch"]
    assert lines[3].split() == ["web2", "b" * 12, "removed"]
    assert lines[4].startswith("db9") and lines[4].endswith("Connection refused")
    assert tables.names_failed(results)


def test_name_table_without_failures_has_no_error_column():
    results = [HostResult(_host("web1"), data={"stopped": ["a" * 64], "results": [_name("a", "a" * 64)]})]
    lines = tables.name_table(["CONTAINER", "RESULT"], results, "stopped", "stopped").splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT"]
    assert lines[1].split() == ["web1", "a" * 12, "stopped"]
    assert not tables.names_failed(results)


def test_name_table_reads_the_ids_of_a_result_without_names():
    """update (and an older payload) answer with IDs only: one row per ID."""
    results = [HostResult(_host("web1"), data={"updated": ["c" * 64]})]
    lines = tables.name_table(["CONTAINER", "RESULT"], results, "updated", "updated").splitlines()
    assert lines[1].split() == ["web1", "c" * 12, "updated"]


def test_json_keeps_every_name_result():
    results = [HostResult(_host("web1"), data={"removed": ["a" * 64], "results": [
        _name("a", "a" * 64), _name("nosuch", error="No such container: nosuch")]})]
    (obj,) = json.loads(tables.to_json(results))
    assert [(n["name"], n["ok"]) for n in obj["results"]] == [("a", True), ("nosuch", False)]
    assert obj["results"][1]["error"] == {"kind": "NotFound", "message": "No such container: nosuch"}


def test_missing_names_do_not_fail_when_ignored():
    """docker rm -f: a missing name (one of several, or the only one: the host's NotFound) is reported and does
    not fail the command; any other failure still does."""
    several = [HostResult(_host("web1"), data={"removed": ["a" * 64], "results": [
        _name("a", "a" * 64), _name("nosuch", error="No such container: nosuch")]})]
    alone = [HostResult(_host("web1"), error=RemoteError("NotFound", "No such container: nosuch"))]
    refused = [HostResult(_host("web1"), error=RemoteError("Conflict", "You cannot remove a running container"))]
    down = [HostResult(_host("web1"), error=TransportError("Connection refused"))]
    for results in (several, alone):
        assert tables.names_failed(results) and not tables.names_failed(results, ignore_missing=True)
    for results in (refused, down):
        assert tables.names_failed(results, ignore_missing=True)


def test_failed_names_for_docker_starts_last_line():
    """docker start a nosuch b ends with "Error: failed to start containers: nosuch" (each name once, in order;
    the only name given when the host answered with that name's error; nothing for an unreachable host)."""
    results = [HostResult(_host("web1"), data={"started": ["a" * 64], "results": [
                   _name("a", "a" * 64), _name("nosuch", error="No such container: nosuch")]}),
               HostResult(_host("web2"), data={"started": [], "results": [
                   _name("a", error="No such container: a"), _name("nosuch", error="No such container: nosuch")]})]
    assert tables.failed_names(results, ["a", "nosuch"]) == ["nosuch", "a"]
    assert tables.failed_names([HostResult(_host("web1"), error=RemoteError("NotFound", "No such container: x"))],
                               ["x"]) == ["x"]
    assert tables.failed_names([HostResult(_host("web1"), error=TransportError("Connection refused"))], ["x"]) == []
