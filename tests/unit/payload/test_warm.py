"""The warm server's pieces in-process: wire formats, knobs, the systemd scope request (a fake systemd), and that
an in-process call never counts as a real payload's entry."""

import json
import os
import socket

import pytest

from agent_payload import protocol, warm
from agent_payload.linux import sdbus
from agent_payload.runtime.cgroups import scope
from agent_payload.warm import child, client, server


def test_the_protocol_number_is_the_payloads():
    assert warm.PROTOCOL == protocol.PROTOCOL_VERSION


def test_the_hello_line_is_the_contracts_json_and_the_front_matches_it_without_json():
    line = warm.hello_line("ab" * 32, 4242)
    assert line.endswith(b"\n")
    assert json.loads(line) == {"type": "warm", "pid": 4242, "payload": "ab" * 32,
                                "protocol": protocol.PROTOCOL_VERSION}
    assert warm.is_hello(line[:-1], "ab" * 32)
    assert not warm.is_hello(line[:-1], "cd" * 32)
    assert not warm.is_hello(line[:-1].replace(b"4242", b"x"), "ab" * 32)
    assert not warm.is_hello(b'{"type":"result","ok":false}', "ab" * 32)


def test_a_hand_message_and_its_fds_arrive_whole():
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        env = {b"PATH": b"/bin", b"ODD": b"a=b\xff", b"EMPTY": b""}
        argv = [b"run", b"--rm", b"x y", b""]
        msg = client.hand_message(b"/srv/\xe9", argv, env)
        assert msg.startswith(warm.HAND_PREFIX)
        import array
        b.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, w, r]))])
        (cwd, got_argv, got_env), fds = child._recv_hand(a)
        assert (cwd, got_argv, got_env) == (b"/srv/\xe9", argv, env)
        assert len(fds) == 3 and all(fd not in (r, w) for fd in fds)
        os.write(fds[1], b"via the passed fd")
        assert os.read(r, 100) == b"via the passed fd"
        for fd in fds:
            os.close(fd)
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


def test_knobs(monkeypatch):
    assert warm.enabled({}) and warm.enabled({"FLEET_WARM": "1"}) and not warm.enabled({"FLEET_WARM": "0"})
    assert warm.idle_timeout({}) == warm.DEFAULT_IDLE == 30
    assert warm.idle_timeout({"FLEET_WARM_IDLE": "2.5"}) == 2.5
    assert warm.idle_timeout({"FLEET_WARM_IDLE": "soon"}) == warm.idle_timeout({"FLEET_WARM_IDLE": "-1"}) == 30


def test_no_test_process_is_a_real_payload(monkeypatch, tmp_path):
    pyz = tmp_path / ("ab" * 32 + ".pyz")
    pyz.write_bytes(b"")
    monkeypatch.setattr("sys.argv", [str(pyz)])
    assert warm.real_payload() is None  # __main__ (pytest's) has no _trusted: not the payload's own entry


class FakeSystemd:
    def __init__(self, refuse=(), result="done"):
        self.refuse, self.result, self.calls = list(refuse), result, []

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def subscribe(self):
        pass

    def start_transient_unit(self, name, props, mode="fail"):
        self.calls.append((name, dict(props)))
        if self.refuse:
            raise sdbus.DBusError(self.refuse.pop(0), "no")
        return "/job/1"

    def wait_job(self, job, deadline, done=None):
        return self.result


def test_the_server_asks_for_a_scope_of_its_own_in_fleet_slice():
    fake = FakeSystemd()
    assert server.place_in_scope("0123456789ab" + "c" * 52, connect=fake)
    (name, props), = fake.calls
    assert name == "fleet-warm-0123456789ab.scope"
    assert props["Slice"] == ("s", "fleet.slice") and props["PIDs"] == ("au", [os.getpid()])
    assert props["CollectMode"] == ("s", "inactive-or-failed")


def test_a_taken_scope_name_or_an_old_systemd_still_gets_a_scope_and_a_refusal_means_no_server():
    fake = FakeSystemd(refuse=[scope.UNIT_EXISTS, scope.PROPERTY_READ_ONLY])
    assert server.place_in_scope("ab" * 32, connect=fake)
    assert [c[0] for c in fake.calls] == ["fleet-warm-abababababab.scope"] + \
        ["fleet-warm-abababababab-{}.scope".format(os.getpid())] * 2
    assert "CollectMode" not in fake.calls[-1][1]
    assert not server.place_in_scope("ab" * 32, connect=FakeSystemd(refuse=["org.freedesktop.DBus.Error.AccessDenied"]))
    assert not server.place_in_scope("ab" * 32, connect=FakeSystemd(result="failed"))


@pytest.mark.parametrize("name", ["ab" * 32 + ".pyz"])
def test_a_state_root_too_deep_for_a_socket_name_gets_no_server(monkeypatch, tmp_path, name):
    import sys
    import types
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    pyz = deep / name
    pyz.write_bytes(b"")
    main = types.SimpleNamespace(_trusted=lambda *a: True, _trusted_tree=lambda *a: True)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr("sys.argv", [str(pyz)])
    assert len(warm.socket_path(str(pyz))) > warm.MAX_SOCKET_PATH
    assert warm.real_payload() is None
    short = "/tmp/" + name
    monkeypatch.setattr("sys.argv", [short])
    assert warm.real_payload().sha == "ab" * 32
