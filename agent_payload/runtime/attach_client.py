"""The client side of docker attach (the ``attach`` op, attached ``run -i/-t``, ``start -a -i``).

It connects to the shim's attach socket (runtime/attach.py), sends a hello line and the RPC's stdin frames,
and re-emits the shim's output as ``output`` events.  docker's detach keys (default ctrl-p,ctrl-q) are
filtered out of stdin here: once complete, the client leaves and the container keeps running.
"""

import fcntl
import json
import os
import select
import socket

from .. import errors, protocol
from . import tty
from .attach import SOCKET, _loads, _short_path, attachable

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text):
    """docker's --detach-keys ("ctrl-p,ctrl-q", "ctrl-a,x", "ctrl-@"): the byte sequence; InvalidArgument."""
    if text is None:
        text = DEFAULT_DETACH_KEYS
    keys = []
    for part in text.split(","):
        part = part.strip()
        if len(part) == 1:
            keys.append(ord(part))
        elif part.lower().startswith("ctrl-") and len(part) == 6:
            ch = part[5].lower()
            if "a" <= ch <= "z":
                keys.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                keys.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise errors.InvalidArgument("Unknown character: '{}'".format(part))
        else:
            raise errors.InvalidArgument("Unknown character: '{}'".format(part))
    if not keys:
        raise errors.InvalidArgument("invalid detach keys: empty")
    return bytes(keys)


class DetachFilter:
    """Passes stdin bytes through, holding back a partial detach sequence; None once the sequence is complete."""

    def __init__(self, keys):
        self.keys, self.held = keys, b""

    def __call__(self, data):
        out = b""
        for b in data:
            ch = bytes([b])
            if self.keys.startswith(self.held + ch):
                self.held += ch
                if self.held == self.keys:
                    return None
            else:
                out += self.held + ch if not self.keys.startswith(ch) else self.held
                self.held = ch if self.keys.startswith(ch) else b""
        return out


def connect(paths, cid):
    """A socket connected to the container's attach socket, or None if there is none (not attachable/exited)."""
    from . import records

    layout = records.Layout(paths, cid)
    try:
        dir_fd = os.open(layout.dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(_short_path(dir_fd, SOCKET))
    except OSError:
        sock.close()
        return None
    finally:
        os.close(dir_fd)
    return sock


def relay(sock, frames, emit, stdin=True, replay=False, detach_keys=None):
    """Client loop: frames -> the shim, its output -> ``output`` events; True if detached by the keys."""
    keys = DetachFilter(parse_detach_keys(detach_keys)) if stdin else None
    sock.sendall((json.dumps({"replay": bool(replay), "stdin": bool(stdin)}) + "\n").encode())
    buf = b""
    fl = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    try:
        while True:
            rlist = [sock] + ([frames.wake_r] if frames is not None and stdin else [])
            ready = select.select(rlist, [], [], 1.0)[0]
            if frames is not None and stdin and frames.wake_r in ready:
                for kind, value in frames.drain():
                    if kind == "stdin":
                        value = keys(value)
                        if value is None:
                            return True
                        if not value:
                            continue
                        frame = protocol.stdin_frame(value)
                    elif kind == "eof":
                        frame = protocol.stdin_eof()
                    elif kind == "resize":
                        frame = protocol.resize_frame(*value)
                    else:
                        continue
                    try:
                        sock.sendall((json.dumps(frame) + "\n").encode())
                    except OSError:
                        pass  # the container is going away; its output (then EOF) is still read below
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return False
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    obj = _loads(line)
                    if obj.get("stream") in ("stdout", "stderr"):
                        emit("output", obj)
    finally:
        sock.close()


def attach_container(runtime, rpc_stdin, cid, emit, stdin=True, detach_keys=None, replay=False, log_offset=None):
    """Attach to a running container until it exits or the detach keys arrive: {"detached", "exit_code"}.

    A container without an attach socket (neither -i nor -t), or one that exited before we could connect,
    has its json-file log streamed from ``log_offset`` (default: now) as ``output`` events instead.
    """
    parse_detach_keys(detach_keys)  # bad keys: InvalidArgument before anything happens
    if log_offset is None:
        log_offset = runtime.log_offset(cid)
    try:
        record = runtime.lookup(cid)
    except errors.NotFound:
        record = None  # exited and auto-removed (--rm) already: its log and exit code are in the tombstone
    sock = connect(runtime.paths, cid) if record is not None and attachable(record) else None
    if sock is None:
        for line in runtime.logs(cid, follow=True, offset=log_offset):
            emit("output", protocol.output_event(line["stream"], protocol.log_bytes(line))["data"])
        return {"detached": False, "exit_code": runtime.wait(cid)}
    frames = tty.FrameReader(rpc_stdin) if stdin and rpc_stdin is not None else None
    if relay(sock, frames, emit, stdin=frames is not None, replay=replay, detach_keys=detach_keys or None):
        return {"detached": True, "exit_code": None}
    return {"detached": False, "exit_code": runtime.wait(cid)}
