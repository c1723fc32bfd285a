"""sdbus: the D-Bus wire format against the specification's rules (known bytes), round trips, and a connection
to a fake peer on a UNIX socket (AUTH EXTERNAL, a method call with its reply, an error, a signal kept)."""

import os
import socket
import struct
import threading
import time

import pytest

from agent_payload.linux import sdbus


# ---------------------------------------------------------------------------------------------- known bytes

@pytest.mark.parametrize("sig, values, want", [
    ("s", ["foo"], b"\x03\0\0\0foo\0"),  # UINT32 length, the bytes, a NUL not counted
    ("g", ["a{sv}"], b"\x05a{sv}\0"),  # one length byte
    ("yu", [1, 2], b"\x01\0\0\0\x02\0\0\0"),  # UINT32 aligned to 4
    ("yt", [1, 2], b"\x01" + b"\0" * 7 + b"\x02" + b"\0" * 7),  # UINT64 aligned to 8
    ("b", [True], b"\x01\0\0\0"),  # BOOLEAN is a UINT32
    ("at", [[5]], b"\x08\0\0\0" + b"\0" * 4 + b"\x05" + b"\0" * 7),  # length excludes the padding to the element
    ("a(sv)", [[]], b"\0\0\0\0" + b"\0" * 4),  # an empty array still pads to its element's alignment
    ("aax", [[]], b"\0\0\0\0"),  # ... which for an array of arrays is 4 (gdbus once got this wrong)
    ("v", [("u", 7)], b"\x01u\0\0\x07\0\0\0"),  # a variant: its signature, then the value aligned
    ("a{sv}", [{"A": ("b", False)}], b"\x10\0\0\0" + b"\0" * 4 + b"\x01\0\0\0A\0\x01b\0" + b"\0" * 3 + b"\0" * 4),
])
def test_marshal_known_bytes_and_back(sig, values, want):
    assert sdbus.marshal(sig, values) == want
    assert sdbus.unmarshal(sig, want) == values


def test_big_endian_and_alignment_from_the_message_start():
    assert sdbus.marshal("u", [1], order=">") == b"\0\0\0\x01"
    assert sdbus.unmarshal("u", b"\0\0\0\x01", order=">") == [1]
    # a UINT32 written at message offset 2 is padded to offset 4
    assert sdbus.marshal("u", [1], offset=2) == b"\0\0\x01\0\0\0"


def test_signatures_split_and_refused():
    assert sdbus.split_signature("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert sdbus.split_signature("a{sv}au") == ["a{sv}", "au"]
    for bad in ("a", "(", "()", "(s", "z"):
        with pytest.raises(sdbus.DBusError):
            sdbus.split_signature(bad)
    with pytest.raises(sdbus.DBusError, match="wants 2 values"):
        sdbus.marshal("ss", ["x"])


def test_method_call_message_bytes_and_round_trip():
    msg = sdbus.Message(sdbus.METHOD_CALL, 1, {sdbus.PATH: "/org/freedesktop/DBus",
                                               sdbus.DESTINATION: "org.freedesktop.DBus",
                                               sdbus.INTERFACE: "org.freedesktop.DBus", sdbus.MEMBER: "Hello"})
    data = msg.to_bytes()
    # fixed header: 'l', METHOD_CALL, no flags, version 1, empty body, serial 1, then the a(yv) fields' length
    assert data[:12] == b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00"
    assert data[16:20] == b"\x01\x01o\0" and data[20:24] == struct.pack("<I", 21)
    assert data[24:46] == b"/org/freedesktop/DBus\0" and data[46:48] == b"\0\0"  # next field aligned to 8
    assert struct.unpack("<I", data[12:16])[0] == 110 and len(data) == 128  # header padded to 8
    assert sdbus.Message.header_length(data[:16]) == len(data)
    back = sdbus.Message.from_bytes(data)
    assert (back.type, back.serial, back.path, back.member, back.body) == (1, 1, "/org/freedesktop/DBus", "Hello", [])

    props = [("PIDs", ("au", [42])), ("Delegate", ("b", True)), ("TimeoutStopUSec", ("t", 10 ** 7))]
    for order in ("<", ">"):
        call = sdbus.Message(sdbus.METHOD_CALL, 9, {sdbus.PATH: sdbus.SYSTEMD_PATH, sdbus.MEMBER: "StartTransientUnit",
                                                    sdbus.SIGNATURE: "ssa(sv)a(sa(sv))"},
                             ["fleet-x.scope", "fail", props, []])
        data = call.to_bytes(order)
        assert data[:1] == (b"l" if order == "<" else b"B") and len(data) == sdbus.Message.header_length(data[:16])
        back = sdbus.Message.from_bytes(data)
        assert back.body == ["fleet-x.scope", "fail", props, []] and back.signature == "ssa(sv)a(sa(sv))"


def test_truncated_and_foreign_messages_are_errors():
    data = sdbus.Message(sdbus.SIGNAL, 3, {sdbus.PATH: "/a", sdbus.SIGNATURE: "s"}, ["x"]).to_bytes()
    with pytest.raises(sdbus.DBusError, match="truncated"):
        sdbus.Message.from_bytes(data[:-3])
    with pytest.raises(sdbus.DBusError, match="byte order"):
        sdbus.Message.from_bytes(b"X" + data[1:])


# ---------------------------------------------------------------------------------------------- a connection

class FakePeer:
    """A D-Bus peer on a UNIX socket: checks AUTH EXTERNAL, answers each call through ``handle(msg)``, which
    returns the messages to send back."""

    def __init__(self, path, handle):
        self.handle = handle
        self.auth = None
        self.calls = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.srv.accept()
        with conn:
            f = conn.makefile("rb")
            self.auth = f.readline()
            conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
            if f.readline() != b"BEGIN\r\n":
                return
            while True:
                head = f.read(16)
                if len(head) < 16:
                    return
                msg = sdbus.Message.from_bytes(head + f.read(sdbus.Message.header_length(head) - 16))
                self.calls.append(msg)
                for out in self.handle(msg):
                    conn.sendall(out.to_bytes())

    def close(self):
        self.srv.close()
        self.thread.join(5)


def test_connection_auth_call_reply_error_and_signals(tmp_path):
    def handle(msg):
        if msg.member == "StartTransientUnit":
            job = "/org/freedesktop/systemd1/job/7"
            yield sdbus.Message(sdbus.SIGNAL, 1, {sdbus.PATH: sdbus.SYSTEMD_PATH, sdbus.MEMBER: "JobNew",
                                                  sdbus.SIGNATURE: "uos"}, [7, job, msg.body[0]])
            yield sdbus.Message(sdbus.METHOD_RETURN, 2, {sdbus.REPLY_SERIAL: msg.serial, sdbus.SIGNATURE: "o"}, [job])
            yield sdbus.Message(sdbus.SIGNAL, 3, {sdbus.PATH: sdbus.SYSTEMD_PATH, sdbus.MEMBER: "JobRemoved",
                                                  sdbus.SIGNATURE: "uoss"}, [7, job, msg.body[0], "done"])
        elif msg.member == "Subscribe":
            yield sdbus.Message(sdbus.METHOD_RETURN, 4, {sdbus.REPLY_SERIAL: msg.serial})
        else:
            yield sdbus.Message(sdbus.ERROR, 5, {sdbus.REPLY_SERIAL: msg.serial, sdbus.SIGNATURE: "s",
                                                 sdbus.ERROR_NAME: "org.freedesktop.systemd1.NoSuchUnit"},
                                ["Unit x.scope not loaded."])

    path = str(tmp_path / "private")
    peer = FakePeer(path, handle)
    try:
        with sdbus.Systemd(path, timeout=10) as systemd:
            systemd.subscribe()
            job = systemd.start_transient_unit("fleet-x.scope", [("PIDs", ("au", [os.getpid()]))])
            assert job == "/org/freedesktop/systemd1/job/7"
            assert [s.member for s in systemd.conn.signals] == ["JobNew"]  # kept while waiting for the reply
            assert systemd.wait_job(job, deadline=time.monotonic() + 10) == "done"  # JobNew skipped, JobRemoved read
            with pytest.raises(sdbus.DBusError) as info:
                systemd.get_unit("x.scope")
            assert info.value.name == "org.freedesktop.systemd1.NoSuchUnit"
            assert info.value.message == "Unit x.scope not loaded."
    finally:
        peer.close()
    assert peer.auth == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n"
    assert peer.calls[0].interface == "org.freedesktop.DBus.Peer" and peer.calls[0].member == "Ping"
    start = [c for c in peer.calls if c.member == "StartTransientUnit"][0]
    assert (start.path, start.interface, start.destination) == (
        sdbus.SYSTEMD_PATH, sdbus.SYSTEMD_MANAGER, sdbus.SYSTEMD_DEST)
    assert start.body == ["fleet-x.scope", "fail", [("PIDs", ("au", [os.getpid()]))], []]


def test_connection_refused_auth_and_silence_are_errors(tmp_path):
    path = str(tmp_path / "sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(2)

    def refuse():
        conn, _ = srv.accept()
        with conn:
            conn.recv(256)
            conn.sendall(b"REJECTED EXTERNAL\r\n")
    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    held = []
    try:
        with pytest.raises(sdbus.DBusError, match="authentication refused: REJECTED"):
            sdbus.Connection(path, timeout=5)
        t.join(5)
        # the peer's end stays open and silent

        def silent():
            held.append(srv.accept()[0])
            held[0].sendall(b"OK 00\r\n")
        t = threading.Thread(target=silent, daemon=True)
        t.start()
        with pytest.raises(sdbus.DBusError, match=r"does not answer \(Ping\) within"):
            sdbus.Connection(path, timeout=0.3)
    finally:
        srv.close()
        t.join(5)
        for c in held:
            c.close()


def test_a_peer_that_reads_late_is_pinged_until_it_answers(tmp_path):
    # systemd 252's sd-bus leaves a message that came in the same read as BEGIN unparsed until more bytes come
    answered = []

    def handle(msg):
        if msg.member == "Ping" and not answered:
            answered.append(msg.serial)
            return  # the first one stays unanswered; the next one unblocks it
        yield sdbus.Message(sdbus.METHOD_RETURN, 1, {sdbus.REPLY_SERIAL: msg.serial})

    path = str(tmp_path / "private")
    peer = FakePeer(path, handle)
    try:
        with sdbus.Systemd(path, timeout=10) as systemd:
            systemd.subscribe()
    finally:
        peer.close()
    assert [c.member for c in peer.calls] == ["Ping", "Ping", "Subscribe"]
