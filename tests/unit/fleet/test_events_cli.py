"""``fleet events``: docker's text line with the host, merged by arrival when following and by time with --until,
--format/--json, filters and times checked before any host; colours only on a TTY without NO_COLOR."""

import io
import json
from types import SimpleNamespace

import pytest

from fleet.commands import events as cmd
from fleet.commands.common import Session
from fleet.render import colours
from fleet.transport.fanout import HostResult
from tests.helpers.cli_fakes import INVENTORY, _cli

NS = 1_764_842_400 * 10 ** 9  # 2025-12-04T10:00:00Z


def _ev(ns, action, name, **attrs):
    return {"Type": "container", "Action": action, "status": action, "id": name * 4, "from": "busybox",
            "Actor": {"ID": name * 4, "Attributes": dict(attrs, name=name, image="busybox")}, "scope": "local",
            "time": ns // 10 ** 9, "timeNano": ns}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Hosts that answer ``events`` by emitting ``per_host[name]`` in that order (web1's first, then web2's)."""
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    rec = SimpleNamespace(inventory=str(path), per_host={}, calls=[])

    def run_hosts(self, hosts, op, args, on_event=None, bounded=True, args_for=None):
        rec.calls.append((op, args, bounded))
        out = []
        for h in hosts:
            for ev in rec.per_host.get(h.name, []):
                on_event(h, "event", ev)
            out.append(HostResult(h, data={}))
        return out

    monkeypatch.setattr(Session, "run_hosts", run_hosts)
    return rec


def test_docker_s_text_line():
    ev = _ev(NS + 5, "die", "web", exitCode="137", b="2")
    assert cmd.text_line(ev) == ("2025-12-04T10:00:00.000000005Z container die webwebwebweb "
                                 "(b=2, exitCode=137, image=busybox, name=web)")
    assert cmd.text_line({"Type": "volume", "Action": "create", "Actor": {"ID": "v"}, "time": 1}) == \
        "1970-01-01T00:00:01.000000000Z volume create v"


def test_following_prints_by_arrival_with_the_host(fake):
    fake.per_host = {"web1": [_ev(NS + 2, "start", "a")], "web2": [_ev(NS + 1, "start", "b")]}
    result = _cli(fake, "events", "-H", "web")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("web1 | 2025-12-04T10:00:00.000000002Z container start aaaa")
    assert lines[1].startswith("web2 | 2025-12-04T10:00:00.000000001Z container start bbbb")
    assert "\x1b[" not in result.output  # not a terminal: no colours
    assert fake.calls == [("events", {"since": None, "until": None, "filters": [], "follow": True}, False)]


def test_with_until_all_hosts_are_sorted_by_time(fake):
    fake.per_host = {"web1": [_ev(NS + 1, "start", "a"), _ev(NS + 4, "die", "a")],
                     "web2": [_ev(NS + 2, "start", "b"), _ev(NS + 3, "die", "b")]}
    result = _cli(fake, "events", "-H", "web", "--since", "0", "--until", "10m", "-f", "type=container")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] + " " + line.split()[4] for line in result.output.splitlines()] == [
        "web1 start", "web2 start", "web2 die", "web1 die"]
    assert fake.calls == [("events", {"since": "0", "until": "10m", "filters": ["type=container"],
                                      "follow": False}, True)]


def test_format_and_json(fake):
    fake.per_host = {"web1": [_ev(NS, "start", "a", tier="x")]}
    result = _cli(fake, "events", "-H", "web1", "--until", "0",
                  "--format", "{{.Host}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.no}}")
    assert result.output == "web1 container start a <no value>\n"
    result = _cli(fake, "events", "-H", "web1", "--until", "0", "--format", "{{json .}}")
    row = json.loads(result.output)
    assert row["Host"] == "web1" and row["Actor"]["Attributes"]["tier"] == "x" and row["TimeNano"] == NS
    result = _cli(fake, "events", "-H", "web1", "--until", "0", "--json")
    assert json.loads(result.output) == dict(_ev(NS, "start", "a", tier="x"), host="web1")


@pytest.mark.parametrize("argv,message", [
    (["-f", "colour=red"], "Invalid filter 'colour'"),
    (["-f", "container"], "bad format of filter"),
    (["-f", "type=pod"], "Invalid filter 'type=pod'"),
    (["--since", "yesterday"], "invalid value for --since"),
    (["--until", "soon"], "invalid value for --until"),
    (["--format", "{{.Nope}}"], "unknown field .Nope"),
])
def test_bad_input_exits_2_before_any_host(fake, argv, message):
    result = _cli(fake, "events", "-H", "web", *argv)
    assert result.exit_code == 2 and message in result.output and fake.calls == []


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_colours_only_on_a_tty_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not colours.enabled(io.StringIO())
    assert colours.enabled(_Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colours.enabled(_Tty())
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value counts
    assert colours.enabled(_Tty())
    plain, coloured = colours.HostPrefix(["a", "bbb"], False), colours.HostPrefix(["a", "bbb"], True)
    assert plain("a") == "a   | "
    assert coloured("a").startswith("\x1b[36m") and coloured("a").endswith("a   | \x1b[0m")
    assert coloured("bbb") != coloured("a").replace("a  ", "bbb")  # another colour per host
