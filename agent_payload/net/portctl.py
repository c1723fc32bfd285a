"""The shim's port control socket: hands published host sockets from one container's shim to another's.

Every shim of a container with published ports (live or staged) serves ``<container dir>/ports.sock`` (a
SOCK_SEQPACKET unix socket, mode 0600, root only; peers are checked with SO_PEERCRED). One request per
connection, one JSON message each way; file descriptors ride along as SCM_RIGHTS::

    {"op": "list"}                          -> {"ok", "ports": [served bindings], "staged": [staged bindings]}
    {"op": "export", "keys": [key]}         -> {"ok", "keys": [key]} + a dup of each listening socket we serve
                                               (still served here; the sender closes its copies)
    {"op": "adopt", "bindings": [binding],  -> {"ok", "ports": [bindings now served, real host ports]}
     "keys": [key of each fd]} + fds           a binding already served stays as is; one with an fd is served
                                               on that socket; one without is bound here (ports.bind: "port is
                                               already allocated"). All or nothing. The bindings stop being
                                               staged: the run's settings now publish them (teardown unpublishes)
    {"op": "release", "keys": [key]}        -> {"ok", "released": [key]}: stop serving them, close our copies
    error                                   -> {"ok": false, "kind", "message"} (errors.to_wire)

``key`` = [proto, host_ip, host_port] (proxy.binding_key). ``runtime/handover.py`` is the client.
"""

import array
import json
import os
import select
import socket
import struct
import threading

from .. import errors
from .proxy import binding_key

SOCKET = "ports.sock"
MAX_MESSAGE = 65536
MAX_FDS = 128
TIMEOUT = 10.0


def _short_path(dir_fd, name):
    """A sun_path under 108 bytes for a file in a directory of any length: through /proc/self/fd."""
    return "/proc/self/fd/{}/{}".format(dir_fd, name)


def send(sock, msg, fds=()):
    data = json.dumps(msg).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", list(fds)))] if fds else []
    sock.sendmsg([data], anc)


def recv(sock):
    """(message, [fds]) of one request/answer; fds are close-on-exec. (None, []) on EOF."""
    fds = array.array("i")
    data, anc, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * fds.itemsize),
                                            getattr(socket, "MSG_CMSG_CLOEXEC", 0))
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[:len(raw) - (len(raw) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data.decode()), list(fds)


def call(directory, msg, fds=(), timeout=TIMEOUT):
    """Send ``msg`` (and ``fds``) to the shim serving ``directory``/ports.sock; returns (answer, fds).

    No socket (no shim, one that has no published ports, or an older payload's): Unavailable. An error answer
    is raised as the error it carries.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            sock.connect(_short_path(dir_fd, SOCKET))
        finally:
            os.close(dir_fd)
        send(sock, msg, fds)
        answer, got = recv(sock)
    except (OSError, ValueError) as exc:
        raise errors.Unavailable("no port control of the container's shim ({}): {}".format(
            os.path.join(directory, SOCKET), exc))
    finally:
        sock.close()
    if answer is None:
        raise errors.Unavailable("the container's shim closed its port control socket without an answer")
    if not answer.get("ok"):
        for fd in got:
            os.close(fd)
        raise errors.from_wire(answer)
    return answer, got


class PortControl:
    """The shim's server for one run: its ``sandbox`` (whose settings it updates: they are what the end of the
    run tears down) and its ``proxy``."""

    def __init__(self, directory, sandbox, proxy):
        self.directory = directory
        self.sandbox = sandbox
        self.proxy = proxy
        self.listener = None
        self.thread = None
        self.wake_r = self.wake_w = None

    def start(self):
        path = os.path.join(self.directory, SOCKET)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        old = os.umask(0o177)
        try:
            listener.bind(_short_path(dir_fd, SOCKET))
        except BaseException:
            listener.close()
            raise
        finally:
            os.umask(old)
            os.close(dir_fd)
        os.chmod(path, 0o600)
        listener.listen(8)
        self.listener = listener
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="portctl")
        self.thread.start()
        return self

    @property
    def settings(self):
        return self.sandbox.settings

    def close(self):
        if self.wake_w is None:
            return
        os.write(self.wake_w, b"x")
        if self.thread is not threading.current_thread():
            self.thread.join(TIMEOUT)
        os.close(self.wake_w)
        self.wake_w = None
        try:
            os.unlink(os.path.join(self.directory, SOCKET))
        except OSError:
            pass

    def _serve(self):
        poller = select.poll()
        poller.register(self.listener.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if self.wake_r in events:
                    return
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                with conn:
                    conn.settimeout(TIMEOUT)
                    self._one(conn)
        finally:
            self.listener.close()
            os.close(self.wake_r)

    def _one(self, conn):
        fds = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid not in (0, os.geteuid()):
                return
            msg, fds = recv(conn)
            if msg is None:
                return
            answer, out = self.handle(msg, fds)
            fds = []  # handle owns them now
            try:
                send(conn, dict(answer, ok=True), out)
            finally:
                for fd in out:
                    os.close(fd)
        except Exception as exc:  # one bad request never ends the shim's service
            for fd in fds:
                os.close(fd)
            try:
                send(conn, dict(errors.to_wire(exc), ok=False))
            except OSError:
                pass

    def handle(self, msg, fds):
        """Answer one request: (answer, fds to send). Takes ownership of ``fds``."""
        op = msg.get("op")
        if op != "adopt":
            for fd in fds:
                os.close(fd)
        if op == "list":
            return {"ports": self.proxy.bindings(), "staged": list(self.settings.get("staged_ports") or [])}, []
        if op == "export":
            exported = self.proxy.export([tuple(k) for k in msg.get("keys") or []])
            return {"keys": [list(k) for k, _ in exported]}, [fd for _, fd in exported]
        if op == "release":
            released = self.proxy.release([tuple(k) for k in msg.get("keys") or []])
            gone = set(released)
            self.settings["ports"] = [b for b in self.settings.get("ports") or [] if binding_key(b) not in gone]
            return {"released": [list(k) for k in released]}, []
        if op == "adopt":
            return {"ports": self.adopt(msg.get("bindings") or [], msg.get("keys") or [], fds)}, []
        raise errors.InvalidArgument("unknown port control request {!r}".format(op))

    def adopt(self, bindings, keys, fds):
        """Serve ``bindings`` (see the module doc); returns every binding served now."""
        from . import ports

        given = {tuple(k): fd for k, fd in zip(keys, fds)}
        for fd in fds[len(keys):]:
            os.close(fd)
        added = []
        try:
            for b in bindings:
                key = binding_key(b) if b.get("host_port") else None
                fd = given.pop(key, None) if key else None
                if key and self.proxy.serves(key):
                    if fd is not None:
                        os.close(fd)
                    continue
                if fd is not None:
                    sock = socket.socket(fileno=fd)
                    b = dict(b, host_port_end=b["host_port"])
                else:
                    (b, sock), = ports.bind([b])
                self.proxy.add({k: v for k, v in b.items() if k != "container_ip"}, sock)
                added.append(binding_key(b))
        except BaseException:
            self.proxy.release(added)
            raise
        finally:
            for fd in given.values():
                os.close(fd)
        self.settings["ports"] = self.proxy.bindings()
        self.settings.pop("staged_ports", None)
        return self.settings["ports"]
