"""fanout.on_host: the one per-host runner (connect, work, errors as data) behind fanout.run, files.run_on_hosts
and stream.on_host; on_hosts bounds it by --forks and keeps the hosts' order."""

import asyncio
from types import SimpleNamespace

import pytest

from fleet.errors import RemoteError, TransportError
from fleet.inventory.models import Host
from fleet.transport import fanout, files, invoke, ssh, stream


class Conn:
    closed = 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        Conn.closed += 1
        return False


@pytest.fixture
def hosts(monkeypatch):
    async def connect(host, opts):
        if host.name == "down":
            raise TransportError("ssh {}:22: Connection refused".format(host.address))
        return Conn()

    monkeypatch.setattr(ssh, "connect", connect)
    Conn.closed = 0
    return [Host(name=n, address="10.0.0.{}".format(i)) for i, n in enumerate(("web1", "down", "web2"), 1)]


def _run(coro):
    return asyncio.run(coro)


def test_data_uploaded_and_every_failure_as_data(hosts):
    async def ok(conn):
        return invoke.Invocation({"v": 1}, uploaded=True)

    async def remote(conn):
        raise RemoteError("NotFound", "No such container: web")

    async def slow(conn):
        await asyncio.sleep(5)

    async def broken(conn):
        raise RuntimeError("channel closed")

    web1 = hosts[0]
    res = _run(fanout.on_host(web1, ok))
    assert (res.ok, res.data, res.uploaded, res.host) == (True, {"v": 1}, True, web1)
    assert str(_run(fanout.on_host(web1, remote)).error) == "No such container: web"
    assert str(_run(fanout.on_host(web1, slow, timeout=0.01)).error) == "command timed out after 0.01s"
    err = _run(fanout.on_host(web1, broken)).error
    assert isinstance(err, TransportError) and str(err) == "RuntimeError: channel closed"
    err = _run(fanout.on_host(hosts[1], ok)).error
    assert isinstance(err, TransportError) and "Connection refused" in str(err)
    assert Conn.closed == 4  # the connection is closed whatever the work did


def test_a_timeout_without_a_limit_is_reported_not_raised(hosts):
    async def times_out(conn):
        raise asyncio.TimeoutError()

    err = _run(fanout.on_host(hosts[0], times_out)).error
    assert isinstance(err, TransportError) and str(err).startswith("TimeoutError")


def test_on_hosts_bounds_parallelism_and_keeps_order(hosts):
    running, peak = [0], [0]

    def work(name):
        async def run(conn):
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await asyncio.sleep(0.01)
            running[0] -= 1
            return invoke.Invocation({"name": name})
        return run

    many = hosts * 3
    results = _run(fanout.on_hosts([(h, work(h.name)) for h in many], fanout.RunOptions(forks=2)))
    assert [r.host for r in results] == many and peak[0] == 2
    assert [r.data["name"] for r in results if r.ok] == [h.name for h in many if h.name != "down"]


def test_files_and_stream_go_through_the_runner(hosts, monkeypatch):
    monkeypatch.setattr(files, "build", lambda: SimpleNamespace(sha256="x"))

    async def work(conn, host, payload):
        return {"on": host.name}

    results = files.run_on_hosts(hosts, work)
    assert [(r.data, str(r.error or "")) for r in results][0] == ({"on": "web1"}, "")
    assert "Connection refused" in str(results[1].error) and results[2].data == {"on": "web2"}

    async def call(conn, host, payload, op, args, frames, callback):
        callback("output", {"n": 1})
        raise ValueError("bad frame")

    seen = []
    monkeypatch.setattr(stream, "call", call)
    res = _run(stream.on_host(hosts[0], None, None, "exec", {}, asyncio.Queue(),
                              lambda h, n, d: seen.append((h.name, n))))
    assert str(res.error) == "ValueError: bad frame" and seen == [("web1", "output")]
