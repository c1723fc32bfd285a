"""The warm payload server (agent_payload/warm/) with real processes: a built pyz, its remote command run as
sshd runs it, raw socket clients, and the server killed at every point of a connection's life."""

import os
import signal
import socket
import stat
import time

import pytest

from agent_payload import cli
from tests.helpers import warm
from tests.helpers.warm import Conn, alive, poll, result

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="the payload's state root wants root")]


@pytest.fixture(scope="module")
def built():
    return warm.build()


@pytest.fixture
def host(tmp_path, built):
    h = warm.Host(tmp_path, built)
    try:
        yield h
    finally:
        h.close()


def _started(host):
    proc = host.exec_rpc()
    assert proc.returncode == 0 and result(_json_lines(proc.stdout))["ok"], proc
    return host.server()


def _json_lines(text):
    import json
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _warm(host, op="ping", **args):
    c = Conn(host)
    try:
        hello = c.hello()
        assert hello and hello["type"] == "warm", hello
        c.send(host.request(op, **args))
        return hello, c.lines()
    finally:
        c.close()


def test_an_exec_starts_one_detached_server_that_answers_as_exec_does(host):
    proc = host.exec_rpc()  # returns once stdout is at EOF: the server holds no fd of the "SSH session"
    assert proc.returncode == 0 and proc.stderr == ""
    pid = host.server()
    st = os.lstat(host.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert os.getsid(pid) not in (os.getsid(0), pid)  # a session of its own that it does not lead: no terminal
    with open("/proc/{}/stat".format(pid)) as f:
        assert f.read().split(")")[-1].split()[1] == "1"  # double fork: reparented, nobody waits for it
    with open("/proc/{}/comm".format(pid)) as f, open("/proc/{}/cmdline".format(pid), "rb") as g:
        assert f.read() == "fleet-warm\n" and g.read().startswith(b"fleet-warm\0" + host.sha[:12].encode())
    fds = {os.readlink("/proc/{}/fd/{}".format(pid, n)) for n in os.listdir("/proc/{}/fd".format(pid))}
    assert not [f for f in fds if f.startswith("pipe:")], fds
    hello, lines = _warm(host)
    assert hello["payload"] == host.sha and hello["protocol"] == 1 and hello["pid"] != pid
    assert lines == _json_lines(proc.stdout)
    assert host.exec_rpc().returncode == 0 and host.servers() == [pid]  # single instance


def test_a_server_never_starts_from_in_process_calls_or_when_disabled(host, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", [str(host.pyz)])
    monkeypatch.setenv("FLEET_ROOT", str(host.root))
    assert cli.main(["ping"]) == 0  # a test calling main: argv given, never the real entry
    assert not os.path.exists(host.sock)
    proc = host.exec_rpc(env={"FLEET_WARM": "0"})
    assert proc.returncode == 0
    time.sleep(0.3)  # a server would have bound its socket well within this (negative check)
    assert not os.path.exists(host.sock) and host.servers() == []


def test_server_killed_before_accept_leaves_a_stale_socket_that_the_next_exec_replaces(host):
    pid = _started(host)
    os.kill(pid, signal.SIGSTOP)
    c = Conn(host)  # connected into the backlog; the server never accepts it
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), what="the server's death")
    assert c.hello() is None  # closed before the hello: nothing ran, the client falls back to exec
    c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.socket(socket.AF_UNIX).connect(host.sock)  # a stale socket file
    assert host.exec_rpc().returncode == 0
    new = host.server()
    assert new != pid
    assert result(_warm(host)[1])["ok"]


def test_server_killed_after_the_hello_the_child_still_answers(host):
    pid = _started(host)
    c = Conn(host)
    hello = c.hello()
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), what="the server's death")
    c.send(host.request("ping"))
    assert result(c.lines())["ok"]
    c.close()
    poll(lambda: not alive(hello["pid"]), what="the child's end")


def test_server_killed_while_a_child_runs_an_op_the_op_finishes_and_the_next_command_starts_a_server(host):
    pid = _started(host)
    c = Conn(host)
    hello = c.hello()
    c.send(host.request("events", follow=True, until="{:.3f}".format(time.time() + 1.5)))
    time.sleep(0.2)  # let the op start following (it ends by itself at "until")
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), what="the server's death")
    assert alive(hello["pid"])
    assert result(c.lines()) == {"type": "result", "ok": True, "data": {}}
    c.close()
    # the child never held the server's lock: the next exec starts a new server at once
    assert host.exec_rpc().returncode == 0
    assert host.server() != pid


def test_a_quiet_long_op_ends_when_its_client_goes_away(host):
    _started(host)
    c = Conn(host)
    hello = c.hello()
    c.send(host.request("events", follow=True))  # quiet forever: only the orphan watch can end it
    time.sleep(0.3)  # the op is following
    assert alive(hello["pid"])
    with open("/proc/{}/comm".format(hello["pid"])) as f, open("/proc/{}/cmdline".format(hello["pid"]), "rb") as g:
        comm, cmdline = f.read(), g.read()
    assert comm != "fleet-warm\n" and cmdline.endswith(str(host.pyz).encode() + b"\0--rpc\0")  # as if exec'd
    c.close()
    poll(lambda: not alive(hello["pid"]), timeout=10, what="the orphaned child's exit")


def test_two_concurrent_connections_get_independent_children(host):
    _started(host)
    a, b = Conn(host), Conn(host)
    ha, hb = a.hello(), b.hello()
    assert ha["pid"] != hb["pid"]
    until = "{:.3f}".format(time.time() + 1.0)
    a.send(host.request("events", follow=True, until=until))
    b.send(host.request("ping"))
    assert result(b.lines())["data"]["payload"] == host.sha  # answered while a's op still runs
    assert alive(ha["pid"])
    assert result(a.lines())["ok"]
    a.close()
    b.close()


def test_a_replaced_socket_path_ends_the_server_and_is_left_alone(host, tmp_path):
    pid = _started(host)
    other = str(tmp_path / "other.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(other)
    ino = os.stat(other).st_ino
    os.rename(other, host.sock)
    poll(lambda: not alive(pid), timeout=10, what="the server's exit")
    assert os.stat(host.sock).st_ino == ino
    s.close()


def test_a_removed_socket_path_ends_the_server(host):
    pid = _started(host)
    os.unlink(host.sock)
    poll(lambda: not alive(pid), timeout=10, what="the server's exit")


@pytest.mark.parametrize("how", ["removed", "world-writable", "replaced"])
def test_a_pyz_gone_or_untrusted_ends_the_server_before_it_serves(host, how):
    pid = _started(host)
    if how == "removed":
        os.unlink(host.pyz)
    elif how == "world-writable":
        os.chmod(host.pyz, 0o666)
    else:
        tmp = str(host.pyz) + ".new"
        with open(tmp, "wb") as f:
            f.write(host.built.data)
        os.chmod(tmp, 0o644)
        os.rename(tmp, host.pyz)  # same bytes, another file: not the one the server checked at start
    try:
        c = Conn(host)
    except (FileNotFoundError, ConnectionRefusedError):
        pass  # its idle tick saw the pyz first: the socket is already gone
    else:
        assert c.hello() is None  # closed without a hello: nothing ran
        c.close()
    poll(lambda: not alive(pid), what="the server's exit")
    assert not os.path.exists(host.sock)
    if how == "world-writable":
        proc = host.exec_rpc()
        assert proc.returncode == 3 and "refusing to run it" in proc.stderr  # the exec path refuses as before
        assert not os.path.exists(host.sock)


def test_an_idle_server_exits_and_removes_its_socket(host):
    host.env["FLEET_WARM_IDLE"] = "0.5"
    pid = _started(host)
    poll(lambda: not alive(pid), timeout=10, what="the idle exit")
    assert not os.path.exists(host.sock)


def test_the_deploy_lock_holder_of_a_warm_request_is_the_peer(host):
    _started(host)
    c = Conn(host)
    c.hello()
    c.send(host.request("deploy_lock", project="p", deploy_id="d1", holder="me"))
    assert result(c.lines())["data"]["acquired"] is True
    c.close()
    import json
    with open(str(host.root / "deploys" / "p.lock")) as f:
        assert json.load(f)["pid"] == os.getpid()  # this test process (the socket's peer), not the server
