"""The warm payload server over real SSH: the controller's side done by hand with asyncssh (an exec of the remote
command, then ``open_unix_connection`` = direct-streamlocal to ``<root>/payload/<sha>.sock``), on lab hosts."""

import asyncio
import json
import time

import pytest

from fleet.inventory import load_inventory, select
from fleet.transport import invoke
from fleet.transport.payload import build
from fleet.transport.ssh import SSHOptions, connect

pytestmark = pytest.mark.integration
HOST = "web2"


@pytest.fixture(scope="module")
def built():
    return build()


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def _open(lab):
    (host,) = select(load_inventory([str(lab.inventory)]), [HOST])
    return host, await connect(host, SSHOptions())


async def _warm(conn, path, sha, request=None, hello_only=False):
    """(hello, [lines]) of one request over a direct-streamlocal channel; None when no server answers."""
    try:
        reader, writer = await conn.open_unix_connection(path)
    except Exception:  # noqa: BLE001 - no socket / nobody listening: the controller would exec
        return None
    line = await reader.readline()
    if not line:
        writer.close()
        return None
    hello = json.loads(line)
    assert hello["type"] == "warm" and hello["payload"] == sha and hello["protocol"] == 1, hello
    if hello_only:
        return hello, reader, writer
    writer.write((json.dumps(request) + "\n").encode())
    writer.write_eof()
    lines = [json.loads(x) for x in (await reader.read()).decode().splitlines() if x.strip()]
    writer.close()
    return hello, lines


async def _until_warm(conn, path, sha):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = await _warm(conn, path, sha, {"protocol": 1, "payload": sha, "op": "ping", "args": {}})
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("no warm server at " + path)


async def _alive(conn, pid):
    proc = await conn.run("test -d /proc/{} && ! grep -q '^State:.Z' /proc/{}/status".format(pid, pid))
    return proc.exit_status == 0


def test_an_exec_leaves_a_server_that_answers_over_direct_streamlocal(lab, built):
    async def main():
        host, conn = await _open(lab)
        async with conn:
            path = invoke.payload_path(host, built)[:-4] + ".sock"
            t = time.monotonic()
            first = await invoke.call(conn, host, built, "ping", {})  # uploads if needed; starts the server
            assert time.monotonic() - t < 15  # the channel closed without waiting for the server (idle: 30 s)
            hello, lines = await _until_warm(conn, path, built.sha256)
            assert lines == [{"type": "result", "ok": True, "data": first.data}]
            # N sequential requests, warm over the one connection vs an exec each: printed, not asserted
            n = 10
            t = time.monotonic()
            for _ in range(n):
                await _warm(conn, path, built.sha256, {"protocol": 1, "payload": built.sha256, "op": "ps",
                                                       "args": {"all": True}})
            warm_ms = (time.monotonic() - t) / n * 1000
            t = time.monotonic()
            command = invoke.remote_command(host, built)
            for _ in range(n):  # always an exec (invoke.call itself may go warm)
                status, res, _err = await invoke._exec(conn, command, {"protocol": 1, "payload": built.sha256,
                                                                       "op": "ps", "args": {"all": True}}, None)
                assert status == 0 and res["ok"], res
            exec_ms = (time.monotonic() - t) / n * 1000
            print("ps over one SSH connection: warm {:.1f} ms, exec {:.1f} ms per request".format(warm_ms, exec_ms))
    _run(main())


def test_a_quiet_follow_ends_when_its_channel_closes_and_the_lock_holder_is_sshd(lab, built):
    async def main():
        host, conn = await _open(lab)
        async with conn:
            path = invoke.payload_path(host, built)[:-4] + ".sock"
            await invoke.call(conn, host, built, "ping", {})
            await _until_warm(conn, path, built.sha256)
            hello, reader, writer = await _warm(conn, path, built.sha256, hello_only=True)
            writer.write((json.dumps({"protocol": 1, "payload": built.sha256, "op": "events",
                                      "args": {"follow": True}}) + "\n").encode())
            writer.write_eof()
            await asyncio.sleep(0.3)
            assert await _alive(conn, hello["pid"])
            writer.close()  # the controller goes away: sshd closes the socket, the child's orphan watch ends it
            deadline = time.monotonic() + 10
            while await _alive(conn, hello["pid"]):
                assert time.monotonic() < deadline, "the quiet follow outlived its channel"
                await asyncio.sleep(0.05)
            _h, lines = await _warm(conn, path, built.sha256, {
                "protocol": 1, "payload": built.sha256, "op": "deploy_lock",
                "args": {"project": "warmlab", "deploy_id": "w1", "holder": "test", "action": "acquire"}})
            assert lines[-1]["ok"], lines
            root = invoke.payload_path(host, built).rsplit("/payload/", 1)[0]
            rec = await conn.run("cat {}/deploys/warmlab.lock".format(root), check=True)
            pid = json.loads(rec.stdout)["pid"]
            comm = (await conn.run("cat /proc/{}/comm".format(pid), check=True)).stdout.strip()
            assert comm in ("sshd", "sshd-session"), comm  # the process carrying this connection
            await invoke.call(conn, host, built, "deploy_lock", {"project": "warmlab", "deploy_id": "w1",
                                                                 "action": "release"})
    _run(main())
