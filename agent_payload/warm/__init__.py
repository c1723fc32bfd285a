"""The per-host warm payload server: a forking unix-socket server that spares later commands an interpreter start.

One server per (state root, payload sha256), only for a real payload (a trusted ``<root>/payload/<sha>.pyz`` run
through its own ``__main__`` or the controller's ``_FROM_CACHE``, both of which define the trust checks
``_trusted``/``_trusted_tree``; never from a source checkout, never in-process tests).  It listens at the pyz's
path with ``.pyz`` replaced by ``.sock`` (0600), is started detached by a payload run that found none (server.py),
and exits after ``FLEET_WARM_IDLE`` seconds (default 30) without a connection, or as soon as its socket path is
gone or replaced or its pyz is gone, changed or no longer trusted.  It is never required for correctness: a command
that finds none (or a dead one) runs as before and starts one for next time.  ``FLEET_WARM=0`` disables it.

Each connection is served by a forked child (child.py) that first writes the hello line
``{"type":"warm","pid":<child>,"payload":"<sha256>","protocol":<n>}``; the client's first message says what it is:
an RPC request line (exactly what ``--rpc`` reads on stdin; the answer is exactly what it writes), or, from the
hand CLI's front process (client.py), one NUL-prefixed JSON message carrying argv, environment and cwd with its fds
0, 1 and 2 attached (SCM_RIGHTS).

This module is imported by the hand CLI's front process: os and sys only.
"""

import os
import sys

PROTOCOL = 1  # agent_payload.protocol.PROTOCOL_VERSION, checked equal by a unit test (the front imports no more)
HAND_PREFIX = b"\0"  # first byte of a hand-CLI message; an RPC request is JSON text and never starts with NUL
DEFAULT_IDLE = 30.0
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with its NUL (/var/lib/fleet/payload/<sha>.sock: 92)


HELLO_HEAD = b'{"type":"warm","pid":'


def _hello_tail(sha):
    return ',"payload":"{}","protocol":{}}}'.format(sha, PROTOCOL).encode()


def hello_line(sha, pid):
    """The line a warm child writes first (JSON; the hand front matches it as bytes, without json)."""
    return HELLO_HEAD + str(pid).encode() + _hello_tail(sha) + b"\n"


def is_hello(line, sha):
    """``line`` (without its newline) is the hello of a child of this payload's server."""
    tail = _hello_tail(sha)
    return (line.startswith(HELLO_HEAD) and line.endswith(tail)
            and line[len(HELLO_HEAD):len(line) - len(tail)].isdigit())


def enabled(environ=None):
    return (environ if environ is not None else os.environ).get("FLEET_WARM", "1") != "0"


def idle_timeout(environ=None):
    try:
        value = float((environ if environ is not None else os.environ).get("FLEET_WARM_IDLE", DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE
    return value if value > 0 else DEFAULT_IDLE


def socket_path(pyz):
    return pyz[:-4] + ".sock"


class Real:
    """This process as a real payload: its pyz, sha and the entry's own trust checks (from ``__main__``)."""

    def __init__(self, pyz, trusted, trusted_tree):
        self.pyz = pyz
        self.sha = os.path.basename(pyz)[:-4]
        self.trusted = trusted
        self.trusted_tree = trusted_tree
        code = pyz[:-4] + ".d"
        self.code_dir = code if code in sys.path else None  # imported from the unpacked cache (else from the zip)

    def still_trusted(self, identity):
        """The pyz is the same file as at start and passes the checks the entry applied; so does its code cache."""
        try:
            st = os.lstat(self.pyz)
        except OSError:
            return False
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != identity:
            return False
        if not (self.trusted(os.path.dirname(self.pyz), True) and self.trusted(self.pyz, False, st)):
            return False
        return self.code_dir is None or self.trusted_tree(self.code_dir)

    def identity(self):
        st = os.lstat(self.pyz)
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def take_lock(real):
    """The server lock: an fd of ``real``'s pyz itself with an exclusive flock held, or None when a server holds it.

    The pyz is the lock file, so the payload dir gets no other file than the socket, and a re-uploaded pyz (a
    new file) may get its own server while the old one notices the change and exits.  One open and one flock:
    a command that finds a live server pays no more.
    """
    import fcntl
    try:
        fd = os.open(real.pyz, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # a server holds it
        return None
    return fd


def real_payload():
    """A Real for this process when it is a real payload's entry (not a source checkout, not a test), else None."""
    main = sys.modules.get("__main__")
    trusted, tree = getattr(main, "_trusted", None), getattr(main, "_trusted_tree", None)
    if not (callable(trusted) and callable(tree)) or not sys.argv or not sys.argv[0]:
        return None
    pyz = os.path.abspath(sys.argv[0])
    if not pyz.endswith(".pyz") or len(os.path.basename(pyz)) != 68:
        return None
    if len(os.fsencode(socket_path(pyz))) > MAX_SOCKET_PATH:
        return None  # a state root too deep for a unix socket's name: no server (commands run as before)
    if not (trusted(os.path.dirname(pyz), True) and trusted(pyz, False)):
        return None  # a copy in /tmp run by hand: no server beside a file others may change
    return Real(pyz, trusted, tree)

