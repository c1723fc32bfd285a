"""The shim's attach server: output written before the first client's hello is replayed to it once, in order,
even when the client was already accepted (not yet past its hello) while the output was written."""

import base64
import json
import os
import socket
from types import SimpleNamespace

from agent_payload.runtime.attach import ShimIO


def _lines(sock):
    sock.settimeout(2)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.decode().splitlines()]


def test_backlog_replayed_before_live_output_to_an_accepted_client(tmp_path):
    io = ShimIO({"open_stdin": True}, SimpleNamespace(dir=str(tmp_path)))
    try:
        io.broadcast("stdout", b"before-accept\n")
        server, client = socket.socketpair()
        with io.lock:
            io.clients[server] = {"buf": b"", "hello": False, "stdin": False}  # as _accept leaves it
        io.broadcast("stdout", b"accepted-no-hello\n")  # the race: accepted, hello not read yet
        client.sendall(json.dumps({"replay": True, "stdin": False}).encode() + b"\n")
        io._client_data(server)
        io.broadcast("stdout", b"live\n")
        client.shutdown(socket.SHUT_WR)
        server.shutdown(socket.SHUT_WR)
        got = [event["data"] for event in _lines(client)]
        assert [base64.b64decode(d) for d in got] == [b"before-accept\n", b"accepted-no-hello\n", b"live\n"]
        server.close()
        client.close()
    finally:
        io.listener.close()
        for fd in (io.stdin_r, io.stdin_w):
            if fd is not None:
                os.close(fd)
