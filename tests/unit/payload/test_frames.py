"""Interactive frames (protocol.py) and the --rpc reader: request = first line, frames after it."""

import base64
import io
import json
import os
import time

import pytest

from agent_payload import cli, protocol
from agent_payload.runtime import tty


def test_frames_roundtrip_bytes_eof_and_resize():
    data = bytes(range(256))
    frame = protocol.stdin_frame(data)
    assert frame == {"type": "stdin", "data": base64.b64encode(data).decode()}
    assert protocol.decode_frame(json.dumps(frame)) == ("stdin", data)
    assert protocol.decode_frame(json.dumps(protocol.stdin_eof())) == ("eof", None)
    assert protocol.decode_frame(json.dumps(protocol.resize_frame(24, 80))) == ("resize", (24, 80))


@pytest.mark.parametrize("line", [
    "", "not json", "[]", '{"type": "stdin"}', '{"type": "stdin", "data": "@@@"}', '{"type": "stdin", "data": 5}',
    '{"type": "resize", "rows": -1, "cols": 80}', '{"type": "resize", "rows": true, "cols": 80}',
    '{"type": "resize", "rows": 24}', '{"type": "other"}', '{"type": "stdin", "eof": "yes"}',
])
def test_bad_frames_are_ignored(line):
    assert protocol.decode_frame(line) is None


def test_output_event_carries_raw_bytes():
    ev = protocol.output_event("stderr", b"\x00\xffno newline")
    assert ev["type"] == "event" and ev["event"] == "output"
    assert protocol.decode_output(ev["data"]) == ("stderr", b"\x00\xffno newline")
    with pytest.raises(ValueError):
        protocol.decode_output({"stream": "stdin", "data": ""})


def _rpc(text, monkeypatch, tmp_path):
    monkeypatch.setenv("FLEET_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("FLEET_CONFIG_DIR", str(tmp_path / "etc"))
    out = io.StringIO()
    stdin = io.StringIO(text)
    assert cli.serve_rpc(stdin, out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()], stdin


def test_rpc_reads_only_the_first_line_when_frames_follow(monkeypatch, tmp_path):
    req = json.dumps(protocol.request("ping", {}, "dev"))
    frames = json.dumps(protocol.stdin_frame(b"x")) + "\n"
    lines, stdin = _rpc(req + "\n" + frames, monkeypatch, tmp_path)
    assert lines[-1]["ok"] is True
    assert stdin.read() == frames  # left for the op (ping does not read them)


def test_rpc_still_takes_a_multi_line_request(monkeypatch, tmp_path):
    lines, _ = _rpc(json.dumps(protocol.request("ping", {}, "dev"), indent=2), monkeypatch, tmp_path)
    assert lines[-1]["ok"] is True


def test_rpc_request_without_newline_and_bad_json(monkeypatch, tmp_path):
    lines, _ = _rpc(json.dumps(protocol.request("ping", {}, "dev")), monkeypatch, tmp_path)
    assert lines[-1]["ok"] is True
    lines, _ = _rpc("{\n  nope", monkeypatch, tmp_path)
    assert lines[-1]["ok"] is False and "not valid JSON" in lines[-1]["error"]["message"]


def test_long_ops_include_interactive_exec_and_attach_only():
    assert cli._is_long({"op": "exec", "args": {"tty": True}})
    assert cli._is_long({"op": "exec", "args": {"interactive": True}})
    assert cli._is_long({"op": "attach", "args": {}})
    assert cli._is_long({"op": "logs", "args": {}})
    assert cli._is_long({"op": "service_swap", "args": {}}) and cli._is_long({"op": "service_rollback", "args": {}})
    assert cli._is_long({"op": "check", "args": {}})  # a check cut off at the deadline goes with its session
    assert not cli._is_long({"op": "exec", "args": {"command": ["true"]}})
    assert not cli._is_long({"op": "stop", "args": None})


def test_frame_reader_and_relay_feed_a_pipe_and_close_it_on_eof():
    r, w = os.pipe()
    stream = open(r, "r")
    reader = tty.FrameReader(stream)
    proc_in_r, proc_in_w = os.pipe()
    out_r, out_w = os.pipe()
    events = []
    relay = tty.Relay(reader, lambda name, data: events.append((name, data)), stdin_fd=proc_in_w,
                      outputs={out_r: "stdout"})
    os.write(w, (json.dumps(protocol.stdin_frame(b"abc")) + "\n" + json.dumps(protocol.stdin_eof()) + "\n").encode())
    os.write(out_w, b"out")
    deadline = time.monotonic() + 5
    relay.run(lambda: relay.stdin_fd is None or time.monotonic() > deadline, poll=0.05)
    assert relay.stdin_fd is None  # closed on the eof frame, after the pending bytes went in
    assert os.read(proc_in_r, 100) == b"abc" and os.read(proc_in_r, 100) == b""
    assert [protocol.decode_output(d) for _n, d in events] == [("stdout", b"out")]
    for fd in (w, proc_in_r, out_r, out_w):
        os.close(fd)


def test_console_size_is_checked():
    assert tty.check_console_size(None) is None
    assert tty.check_console_size([24, 80]) == (24, 80)
    for bad in ([24], "24x80", [24, -1], [True, 80], [70000, 1]):
        with pytest.raises(Exception) as info:
            tty.check_console_size(bad)
        assert "console_size" in str(info.value)
