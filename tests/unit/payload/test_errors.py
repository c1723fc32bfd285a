"""The payload's one exception <-> wire-error codec (errors.to_wire / errors.from_wire) and its users."""

import errno
import json
import os
import traceback

import pytest

from agent_payload import cli, errors, protocol
from agent_payload.runtime import process


def _raised(exc):
    """``exc`` as raised and caught, so traceback.format_exc sees it."""
    try:
        raise exc
    except BaseException as caught:
        return caught, traceback.format_exc()


def test_agent_error_keeps_kind_message_errno_and_details():
    exc = errors.Unavailable("registry down", errno=errno.ECONNREFUSED, details={"tried": ["a"]})
    assert errors.to_wire(exc, traceback.format_exc) == {
        "kind": "Unavailable", "message": "registry down", "errno": errno.ECONNREFUSED, "details": {"tried": ["a"]}}


def test_oserror_gets_the_kind_its_errno_implies():
    exc = FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")
    assert errors.to_wire(exc, traceback.format_exc) == {
        "kind": "NotFound", "message": "No such file or directory (/x)", "errno": errno.ENOENT, "details": None}
    assert errors.to_wire(OSError(errno.EIO, "I/O error"))["kind"] == "Internal"


def test_a_bug_is_internal_with_the_traceback_only_when_asked():
    try:
        raise KeyError("k")
    except KeyError as caught:
        exc, wire, tb = caught, errors.to_wire(caught, traceback.format_exc), traceback.format_exc()
    assert wire == {"kind": "Internal", "message": "KeyError: 'k'", "errno": None, "details": tb}
    assert errors.to_wire(exc)["details"] is None  # e.g. inside a container's root: no source files read


@pytest.mark.parametrize("cls", sorted(errors.KINDS.values(), key=lambda c: c.kind))
def test_round_trip_of_every_kind(cls):
    wire = json.loads(json.dumps(errors.to_wire(cls("m", errno=5, details={"d": 1}))))
    back = errors.from_wire(wire)
    assert type(back) is cls and (back.message, back.errno, back.details) == ("m", 5, {"d": 1})
    assert set(errors.KINDS) == set(protocol.ERROR_KINDS)


def test_from_wire_context_and_checked_request():
    back = errors.from_wire({"kind": "InvalidArgument", "message": "unable to find user x"}, "exec failed",
                            checked=True)
    assert type(back) is errors.FailedPrecondition and back.message == "exec failed: unable to find user x"
    assert type(errors.from_wire({"kind": "InvalidArgument", "message": "m"})) is errors.InvalidArgument
    assert type(errors.from_wire({"kind": "Nonsense", "message": "m"})) is errors.Internal


def test_rpc_result_and_sync_pipe_use_the_codec():
    exc, _ = _raised(errors.Conflict("busy", details={"x": 1}))
    assert cli._error_result(exc)["error"] == {"kind": "Conflict", "message": "busy", "errno": None,
                                               "details": {"x": 1}}
    bug, _ = _raised(ValueError("v"))
    try:
        raise bug
    except ValueError:
        result = cli._error_result(bug)
        msg = process.error_message(errors.NotFound("gone"))
    assert result["error"]["kind"] == "Internal" and "ValueError: v" in result["error"]["details"]
    # the sync pipe carries the traceback whatever the error, and comes back through from_wire
    assert msg["type"] == "error" and msg["kind"] == "NotFound" and "ValueError: v" in msg["details"]
    r, w = os.pipe()
    try:
        process.send(w, msg)
        back = errors.from_wire(process.recv(r), "failed to start container c", checked=True)
    finally:
        os.close(r)
        os.close(w)
    assert type(back) is errors.NotFound and back.message == "failed to start container c: gone"


@pytest.mark.parametrize("kind", protocol.ERROR_KINDS)
def test_the_controller_decodes_what_the_payload_encodes(kind):
    from fleet.errors import RemoteError, from_wire

    exc, _ = _raised(errors.KINDS[kind]("m", errno=2, details={"d": [1]}))
    line = json.loads(json.dumps(cli._error_result(exc)))
    back = from_wire(line["error"])
    assert isinstance(back, RemoteError)
    assert (back.kind, back.message, back.errno, back.details) == (kind, "m", 2, {"d": [1]})
