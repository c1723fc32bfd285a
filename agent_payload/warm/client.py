"""The hand CLI's front process: hand the command to a live warm server, or return None to run it here.

Used when none of fds 0, 1, 2 is a terminal (a terminal's job control and size would belong to another
process).  One message carries cwd, argv and environment, with fds 0, 1 and 2 attached (SCM_RIGHTS); the
server's worker runs handcli on them.  SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the
worker; the front exits with the worker's status, or dies of the same signal (the shell's 128+n, as the direct
path does).

This is the whole cost of a warm hand command on top of the interpreter's start, so it imports only the built-in
_socket and _signal (socket.py and signal.py import enum: ~2 ms), no json (json.decoder imports re): the hello
line is matched as the server of this very payload writes it, the rest is plain text (child.py).  The front
exits with os._exit once the worker's status is in: it wrote nothing itself, and the interpreter's teardown is
~all that would be left (measured: ~3 ms).
"""

import os
import sys

from agent_payload import warm

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def hand_message(cwd, argv, environ):
    """The bytes of a hand message: NUL, the body's length, newline, then NUL-terminated fields:
    cwd, argc, argv..., then KEY=VALUE of each environment variable."""
    fields = [cwd, str(len(argv)).encode()] + list(argv) + [k + b"=" + v for k, v in environ.items()]
    body = b"".join(f + b"\0" for f in fields)
    return warm.HAND_PREFIX + str(len(body)).encode() + b"\n" + body


class _Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def next(self):
        """The next line (without its newline), or None at EOF or on a broken connection."""
        while b"\n" not in self.buf:
            try:
                more = self.sock.recv(4096)
            except OSError:
                return None
            if not more:
                return None
            self.buf += more
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def hand_off(pyz, argv):
    """This command's exit status from a warm server's worker, or None: no server (run here as before)."""
    import _socket
    try:
        if any(os.isatty(fd) for fd in (0, 1, 2)):
            return None
        cwd = os.getcwdb()
    except OSError:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(warm.socket_path(pyz))
    except OSError:
        sock.close()
        return None
    lines = _Lines(sock)
    hello = lines.next()
    if hello is None or not warm.is_hello(hello, os.path.basename(pyz)[:-4]):
        sock.close()
        return None  # the server died before its hello (or is not ours): nothing ran
    return _run(_socket, sock, lines, [os.fsencode(a) for a in argv], cwd)


def _run(_socket, sock, lines, argv, cwd):
    import _signal
    state = {"pid": None, "pending": []}

    def forward(sig, _frame):
        if state["pid"] is None:
            state["pending"].append(sig)
            return
        try:
            os.kill(state["pid"], sig)
        except OSError:
            pass

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), forward)
    msg = hand_message(cwd, argv, os.environb)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))  # struct int[3]; array is a .so to load
        sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    except OSError:
        sock.close()
        return _broken()
    while True:
        reply = lines.next()
        if reply is None:
            return _broken()
        kind, _, value = reply.partition(b" ")
        if not value.isdigit():
            return _broken()
        if kind == b"pid":
            state["pid"] = int(value)
            for sig in state["pending"]:
                forward(sig, None)
        elif kind == b"status":
            return int(value)
        elif kind == b"signal":
            sig = int(value)
            try:
                _signal.signal(sig, _signal.SIG_DFL)
                os.kill(os.getpid(), sig)
            except (OSError, ValueError):
                pass
            return 128 + sig


def _broken():
    os.write(2, b"Error: the warm payload server's worker ended without an exit status\n")
    return 125
