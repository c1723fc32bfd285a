"""The payload's --rpc mode: one request in, JSON lines out, errors as data, version and hash checks."""

import io
import json
import sys

import pytest

from agent_payload import cli, protocol


def _rpc(request, monkeypatch, tmp_path):
    monkeypatch.setenv("FLEET_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("FLEET_CONFIG_DIR", str(tmp_path / "etc"))
    out = io.StringIO()
    status = cli.serve_rpc(io.StringIO(request if isinstance(request, str) else json.dumps(request)), out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert status == 0
    assert lines and lines[-1]["type"] == "result"
    return lines


def test_ping_roundtrip(monkeypatch, tmp_path):
    lines = _rpc(protocol.request("ping", {}, "dev"), monkeypatch, tmp_path)
    assert lines[-1]["ok"] is True
    assert lines[-1]["data"]["python"].startswith("{}.".format(sys.version_info[0]))


@pytest.mark.parametrize("request_obj,kind,text", [
    ("not json", "InvalidArgument", "not valid JSON"),
    ({"protocol": 999, "op": "ping", "args": {}}, "FailedPrecondition", "protocol version"),
    (protocol.request("explode", {}, "dev"), "InvalidArgument", "unknown op"),
    (protocol.request("stop", {"containers": []}, "dev"), "InvalidArgument", "at least one"),
    (protocol.request("logs", {"container": 7}, "dev"), "InvalidArgument", "must be a string"),
    (protocol.request("pull", {"image": "ns/App"}, "dev"), "InvalidArgument", "ns/App"),
])
def test_errors_travel_as_data(monkeypatch, tmp_path, request_obj, kind, text):
    result = _rpc(request_obj, monkeypatch, tmp_path)[-1]
    assert result["ok"] is False
    assert result["error"]["kind"] == kind
    assert text in result["error"]["message"]


def test_payload_hash_mismatch_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / ("a" * 64 + ".pyz")
    fake.write_bytes(b"")
    monkeypatch.setattr(sys, "argv", [str(fake), "--rpc"])
    result = _rpc(protocol.request("ping", {}, "b" * 64), monkeypatch, tmp_path)[-1]
    assert result["error"]["kind"] == "FailedPrecondition"
    assert "payload mismatch" in result["error"]["message"]


def test_error_kinds_are_closed():
    assert protocol.result_error("Whatever", "x")["error"]["kind"] == "Internal"
    for kind in protocol.ERROR_KINDS:
        assert protocol.result_error(kind, "x")["error"]["kind"] == kind
