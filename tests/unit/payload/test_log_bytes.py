"""Output bytes through the log store and log events (issue 13, item 5): a line that is not UTF-8 keeps docker's
json-file text ("log", U+FFFD per bad sequence, as dockerd's jsonlog writes it) and its exact bytes ("raw", base64);
a log written before that (no "raw") reads back as it always did."""

import base64
import io
import json

from agent_payload import protocol
from agent_payload.runtime import exec as execmod
from agent_payload.runtime import logs

BINARY = bytes(range(256)) + b"\xff\xfe tail \xc3(\n"


def test_log_line_carries_raw_bytes_only_when_not_utf8():
    ok = protocol.log_line("stdout", "héllo\n".encode())
    assert ok == {"stream": "stdout", "line": "héllo\n"} and protocol.log_bytes(ok) == "héllo\n".encode()
    bad = protocol.log_line("stderr", b"a\xffb\n", time="T")
    assert bad["line"] == "a\ufffdb\n" and base64.b64decode(bad["raw"]) == b"a\xffb\n" and bad["time"] == "T"
    assert protocol.log_bytes(bad) == b"a\xffb\n"
    assert protocol.log_bytes({"line": "x", "raw": "%%%"}) == b"x"  # a bad raw falls back to the text
    # through JSON as the RPC carries it
    assert protocol.log_bytes(json.loads(json.dumps(protocol.event("log", bad)))["data"]) == b"a\xffb\n"


def test_the_store_keeps_docker_s_entry_plus_the_raw_bytes(tmp_path):
    path = tmp_path / "c-json.log"
    f = open(str(path), "ab")
    out = logs.LineWriter(f, "stdout")
    out.feed(b"text line\n" + BINARY + b"no newline \xff")
    out.close()
    f.close()
    entries = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert [sorted(e) for e in entries][0] == ["log", "stream", "time"]  # valid UTF-8: docker's three keys only
    assert all(e["stream"] == "stdout" for e in entries)
    for e in entries:  # "raw" exactly on the lines that are not UTF-8
        raw = base64.b64decode(e["raw"]) if "raw" in e else e["log"].encode()
        try:
            raw.decode("utf-8")
            assert "raw" not in e
        except UnicodeDecodeError:
            assert "raw" in e and e["log"] == raw.decode("utf-8", "replace")
    assert sum("raw" in e for e in entries) == 2
    assert "\ufffd" in entries[-1]["log"]  # docker's json-file text for the same bytes
    got = b"".join(protocol.log_bytes(ev) for ev in logs.read(str(path)))
    assert got == b"text line\n" + BINARY + b"no newline \xff"


def test_a_log_written_before_raw_reads_as_before(tmp_path):
    path = tmp_path / "old-json.log"
    path.write_text(json.dumps({"log": "old \ufffd\n", "stream": "stderr", "time": "2024-01-01T00:00:00Z"}) + "\n")
    (ev,) = list(logs.read(str(path)))
    assert ev == {"stream": "stderr", "line": "old \ufffd\n", "time": None}
    assert protocol.log_bytes(ev) == "old \ufffd\n".encode()


def test_exec_lines_carry_the_bytes():
    events = []
    buffers = {"stdout": b""}
    execmod._lines(buffers, "stdout", b"\x00\xff\n\x80", lambda name, data: events.append(data))
    execmod._lines(buffers, "stdout", b"", lambda name, data: events.append(data), final=True)
    assert b"".join(protocol.log_bytes(d) for d in events) == b"\x00\xff\n\x80"
    assert [d["line"] for d in events] == ["\x00\ufffd\n", "\ufffd"]


def test_a_long_binary_line_is_split_as_docker_and_rejoins_exactly(tmp_path):
    data = (b"\xff" * (logs.MAX_LINE + 10)) + b"\n"
    buf = io.BytesIO()
    w = logs.LineWriter(buf, "stdout")
    w.feed(data)
    w.close()
    buf.seek(0)
    evs = list(logs.read(buf))
    assert len(evs) == 2 and b"".join(protocol.log_bytes(e) for e in evs) == data
