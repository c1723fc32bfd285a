"""``fleet logs -f`` on many hosts: a colour per host only on a terminal, and ``--retry`` re-attaching a broken
host's stream from just after its last line while the others keep flowing."""

import pytest

from fleet.commands import containers as cmd
from fleet.errors import RemoteError, TransportError
from fleet.transport import fanout
from fleet.transport.fanout import HostResult
from tests.helpers.cli_fakes import INVENTORY, _cli


def test_since_after_is_one_nanosecond_after_the_last_line():
    assert cmd.since_after("2026-12-04T10:00:00.123456789Z") == "1796378400.123456790"
    assert cmd.since_after("1970-01-01T00:00:01.999999999Z") == "2.000000000"
    assert cmd.since_after("1970-01-01T00:00:01Z") == "1.000000001"


@pytest.fixture
def inv(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    return type("Rec", (), {"inventory": str(path)})


def _line(n, host_time):
    return {"stream": "stdout", "line": "{}\n".format(n), "time": host_time}


def test_retry_reattaches_a_broken_host_from_its_last_line(inv, monkeypatch):
    monkeypatch.setattr(cmd, "RETRY_DELAY", 0)
    monkeypatch.setattr("fleet.transport.pyzcache.current", lambda: None)
    calls = []

    async def on_host(host, work, ssh_opts=None, timeout=None):
        attempt = sum(1 for h, _ in calls if h == host.name)

        class Conn:
            pass
        # capture what the work sends: replace invoke.call for this one attempt
        sent = {}

        async def call(conn, host_, payload, op, args, on_event=None):
            sent.update(args)
            if host.name == "web1" and attempt == 0:
                on_event("log", _line(1, "2026-12-04T10:00:00.000000001Z"))
                on_event("log", _line(2, "2026-12-04T10:00:00.000000002Z"))
                raise TransportError("ConnectionLost: connection lost")
            on_event("log", _line("{}-{}".format(host.name, attempt), "2026-12-04T10:00:01.000000000Z"))
            return type("Inv", (), {"data": {}, "uploaded": False})
        monkeypatch.setattr("fleet.transport.invoke.call", call)
        try:
            await work(Conn())
        except TransportError as exc:
            calls.append((host.name, dict(sent)))
            return HostResult(host, error=exc)
        calls.append((host.name, dict(sent)))
        return HostResult(host, data={})

    monkeypatch.setattr(fanout, "on_host", on_host)
    result = _cli(inv, "logs", "-H", "web", "-f", "--retry", "--tail", "5", "c1")
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[:2] == ["web1 | 1", "web1 | 2"] and "web1 | web1-1" in out and "web2 | web2-0" in out
    assert "\x1b[" not in result.output  # not a terminal: no colours
    assert "web1 | stream broke (ConnectionLost: connection lost); re-attaching" in result.stderr
    web1 = [a for h, a in calls if h == "web1"]
    assert web1[0]["tail"] == 5 and web1[0]["since"] is None and web1[0]["timestamps"] is True
    assert web1[1]["since"] == "1796378400.000000003" and web1[1]["tail"] is None  # after line 2, no tail


def test_retry_does_not_retry_what_the_payload_refused(inv, monkeypatch):
    seen = []

    async def on_host(host, work, ssh_opts=None, timeout=None):
        seen.append(host.name)
        return HostResult(host, error=RemoteError("NotFound", "No such container: c1"))
    monkeypatch.setattr(fanout, "on_host", on_host)
    monkeypatch.setattr("fleet.transport.pyzcache.current", lambda: None)
    result = _cli(inv, "logs", "-H", "web", "-f", "--retry", "c1")
    assert result.exit_code == 1 and sorted(seen) == ["web1", "web2"]
    assert "web1 | error: No such container: c1" in result.stderr


def test_retry_needs_follow(inv):
    result = _cli(inv, "logs", "-H", "web", "--retry", "c1")
    assert result.exit_code == 2 and "--retry" in result.output
