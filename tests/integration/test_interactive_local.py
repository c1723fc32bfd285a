"""Interactive exec on this machine without SSH: stdin frames into a pipe or a PTY from the container's devpts."""

import json
import os
import threading
import time

import pytest

from agent_payload import protocol
from agent_payload.runtime import exec as execmod
from agent_payload.runtime import tty
from tests.helpers import runtime as local
from tests.helpers.runtime import _spec, needs_root

env, layers = local.env, local.layers  # fixtures

pytestmark = [pytest.mark.integration, needs_root]


class Frames:
    """A text stream of frame lines, fed from the test through a pipe (what the RPC's stdin is)."""

    def __init__(self):
        r, self.w = os.pipe()
        self.stream = open(r, "r")

    def send(self, frame):
        os.write(self.w, (json.dumps(frame) + "\n").encode())

    def close(self):
        os.close(self.w)


def _running(rt, layers):
    rec = rt.create(_spec(layers, ["sleep", "300"]))
    rt.start(rec["id"])
    return rec["id"]


def _execute(rt, cid, command, frames, **kw):
    """Run execute in a thread; returns (result box, output events list, thread)."""
    events, box = [], {}

    def emit(name, data):
        events.append((name, data))

    def target():
        try:
            box["result"] = execmod.execute(rt.lookup(cid), command, emit=emit, frames=tty.FrameReader(frames.stream),
                                            **kw)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return box, events, thread


def _text(events, stream=None):
    out = b""
    for name, data in events:
        assert name == "output"
        s, chunk = protocol.decode_output(data)
        if stream in (None, s):
            out += chunk
    return out.decode("utf-8", "replace")


def _wait_text(events, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in _text(events):
            return True
        time.sleep(0.05)
    return False


def test_exec_i_pipes_stdin_through_cat_and_eof_ends_it(env, layers):
    cid = _running(env, layers)
    frames = Frames()
    box, events, thread = _execute(env, cid, ["sh", "-c", "cat; echo done >&2; exit 4"], frames, interactive=True)
    frames.send(protocol.stdin_frame(b"hello\nworld"))
    assert _wait_text(events, "hello\nworld"), box
    frames.send(protocol.stdin_eof())
    thread.join(20)
    assert box.get("result") == {"exit_code": 4}, box
    assert _text(events, "stdout") == "hello\nworld"
    assert _text(events, "stderr") == "done\n"
    frames.close()


def test_exec_t_gets_a_pts_of_the_container_and_resizes(env, layers):
    cid = _running(env, layers)
    frames = Frames()
    box, events, thread = _execute(env, cid, ["sh"], frames, tty_=True, console_size=[30, 100])
    frames.send(protocol.stdin_frame(b"tty; stty size; echo TERM=$TERM\n"))
    assert _wait_text(events, "TERM=xterm"), _text(events)
    text = _text(events)
    assert "/dev/pts/0" in text, text  # the container's own devpts: its first pty
    assert "30 100" in text, text
    frames.send(protocol.resize_frame(40, 132))
    time.sleep(0.2)
    frames.send(protocol.stdin_frame(b"stty size; exit 3\n"))
    thread.join(20)
    assert box.get("result") == {"exit_code": 3}, box
    assert "40 132" in _text(events)
    assert all(protocol.decode_output(d)[0] == "stdout" for _n, d in events)
    frames.close()


def _attach(rt, cid, frames, **kw):
    from agent_payload.runtime import attach_client as attach

    events, box = [], {}

    def target():
        try:
            box["result"] = attach.attach_container(rt, frames.stream, cid, lambda n, d: events.append((n, d)), **kw)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return box, events, thread


def _log_text(rt, cid):
    return "".join(ev["line"] for ev in rt.logs(cid))


def test_run_it_init_gets_a_pty_output_reaches_client_and_log(env, layers):
    rec = env.create(_spec(layers, ["sh"], tty=True, open_stdin=True, stdin_once=True, env=["TERM=xterm"]))
    cfg_path = os.path.join(env.paths.container_dir(rec["id"]), "config.json")
    cfg = json.load(open(cfg_path))
    cfg["console_size"] = [21, 77]
    json.dump(cfg, open(cfg_path, "w"))
    env.start(rec["id"])
    sock = os.path.join(env.paths.container_dir(rec["id"]), "attach.sock")
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    frames = Frames()
    box, events, thread = _attach(env, rec["id"], frames, stdin=True, replay=True, log_offset=0)
    frames.send(protocol.stdin_frame(b"tty; stty size; echo hi $((6 * 7))\n"))
    assert _wait_text(events, "hi 42"), (_text(events), box)
    frames.send(protocol.stdin_frame(b"exit 3\n"))
    thread.join(20)
    assert box.get("result") == {"detached": False, "exit_code": 3}, box
    text = _text(events)
    assert "/dev/pts/0" in text and "21 77" in text, text
    assert "hi 42" in _log_text(env, rec["id"])
    assert not os.path.exists(sock)


def test_run_i_stdin_pipe_closed_by_eof(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "cat; echo bye >&2"], open_stdin=True, stdin_once=True))
    env.start(rec["id"])
    frames = Frames()
    box, events, thread = _attach(env, rec["id"], frames, stdin=True, replay=True, log_offset=0)
    frames.send(protocol.stdin_frame(b"one\ntwo\n"))
    frames.send(protocol.stdin_eof())
    thread.join(20)
    assert box.get("result") == {"detached": False, "exit_code": 0}, box
    assert _text(events, "stdout") == "one\ntwo\n" and _text(events, "stderr") == "bye\n"
    assert _log_text(env, rec["id"]) == "one\ntwo\nbye\n"


def test_detach_keys_leave_it_running_and_attach_again(env, layers):
    rec = env.create(_spec(layers, ["sh"], tty=True, open_stdin=True))
    env.start(rec["id"])
    frames = Frames()
    box, events, thread = _attach(env, rec["id"], frames, stdin=True, replay=True, log_offset=0)
    frames.send(protocol.stdin_frame(b"echo first\n"))
    assert _wait_text(events, "first\r\n")
    frames.send(protocol.stdin_frame(b"\x10"))
    frames.send(protocol.stdin_frame(b"\x11"))
    thread.join(20)
    assert box.get("result") == {"detached": True, "exit_code": None}, box
    assert env.lookup(rec["id"])["status"] == "running"
    frames2 = Frames()
    box, events, thread = _attach(env, rec["id"], frames2, stdin=True, detach_keys="ctrl-a,x")
    frames2.send(protocol.stdin_frame(b"echo again; exit 7\n"))
    thread.join(20)
    assert box.get("result") == {"detached": False, "exit_code": 7}, box
    assert "again" in _text(events)


def test_exec_t_missing_command_127_and_own_term(env, layers):
    cid = _running(env, layers)
    frames = Frames()
    box, events, thread = _execute(env, cid, ["no-such-command"], frames, tty_=True)
    thread.join(20)
    assert box.get("result") == {"exit_code": 127}, box
    assert 'exec: "no-such-command": executable file not found in $PATH' in _text(events)
    frames.close()
    frames = Frames()
    box, events, thread = _execute(env, cid, ["sh", "-c", "echo $TERM"], frames, tty_=True, env=["TERM=vt100"])
    thread.join(20)
    assert box.get("result") == {"exit_code": 0}, box
    assert _text(events) == "vt100\r\n"
    frames.close()
