"""docker attach: the shim's attach socket for containers created with -t/--tty or -i/--interactive.

The container's stdio belongs to its shim.  For such a container the shim, besides writing the json-file log
as always, serves a unix socket ``<container dir>/attach.sock`` (mode 0600, root only)::

    shim (ShimIO)                                          client (attach op, run -i/-t, start -a -i)
      before forking the init: bind + listen, stdin pipe (-i) or a socketpair for the TTY master (-t)
      init (process.init_main hook): -t: PTY from the container's devpts (tty.open_pty, after its rootfs
           is set up), master -> shim over the socketpair, slave = controlling terminal + stdio
      after "ready": a server thread; with -t it reads the master and writes it into a pipe that the
           shim's usual log pump reads (so the log is written exactly as for other containers)
                                     <------------------  {"replay": bool} (one hello line)
                                     <------------------  stdin / eof / resize frames (protocol.py)
      output {"stream", "data": b64} ------------------>  (re-emitted as ``output`` events)
      container exited: sockets shut down ------------->  EOF: the client reads the exit code from state

Output written before the first client connects is kept (up to BACKLOG bytes) and replayed to that first
client if it asks (``run -it`` starts the container, then attaches).  An EOF frame closes the container's
stdin when the container has StdinOnce (``run -i``), as does the end of that client's connection; with a
TTY stdin is never closed (a TTY has no EOF; ^D is a byte).  Clients and detach keys: attach_client.py.
"""

import errno
import json
import os
import select
import socket
import threading

from .. import errors, protocol
from . import tty

SOCKET = "attach.sock"
BACKLOG = 1 << 20


def _short_path(dir_fd, name):
    """A sun_path under 108 bytes for a file in a directory of any length: through /proc/self/fd."""
    return "/proc/self/fd/{}/{}".format(dir_fd, name)


def attachable(config):
    """True when the container was created with a TTY or an open stdin (it then has an attach socket)."""
    return bool(config.get("tty") or config.get("open_stdin"))


# ---- shim side

class ShimIO:
    """The interactive plumbing of one container's shim (None for containers without -i/-t)."""

    @classmethod
    def prepare(cls, config, layout):
        """Before the init is forked: the listening socket and the channels to the init."""
        if not attachable(config):
            return None
        return cls(config, layout)

    def __init__(self, config, layout):
        self.tty = bool(config.get("tty"))
        self.stdin_once = bool(config.get("stdin_once"))
        self.size = config.get("console_size")
        self.lock = threading.Lock()
        self.clients = {}  # socket -> {"buf": bytes, "stdin": bool}
        self.backlog, self.served = [], False
        self.stdin_w = self.stdin_r = self.sock_child = self.sock_shim = self.master = None
        self.log_r = self.log_w = None
        path = os.path.join(layout.dir, SOCKET)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dir_fd = os.open(layout.dir, os.O_RDONLY | os.O_DIRECTORY)
        old = os.umask(0o177)
        try:
            self.listener.bind(_short_path(dir_fd, SOCKET))
        finally:
            os.umask(old)
            os.close(dir_fd)
        os.chmod(path, 0o600)
        self.listener.listen(16)
        self.path = path
        if self.tty:
            self.sock_shim, self.sock_child = tty.socketpair_fds()
        elif config.get("open_stdin"):
            self.stdin_r, self.stdin_w = os.pipe()

    def child_stdio(self):
        """What process.init_main needs: {"stdin": fd|None, "tty_sock": fd|None} (called in the child)."""
        for fd in (self.stdin_w, self.sock_shim):
            if fd is not None:
                os.close(fd)
        return {"stdin": self.stdin_r, "tty_sock": self.sock_child, "size": self.size}

    def after_fork(self):
        """In the shim: drop the init's ends of the channels."""
        for name in ("stdin_r", "sock_child"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def serve(self, writers):
        """After the init is ready: take the TTY master, start the server; returns the pump's writers.

        ``writers`` is shim's {fd: LineWriter}; output is copied to clients by wrapping them (without a TTY)
        or by the server relaying the master into a pipe the pump reads as stdout (with one).
        """
        if self.tty:
            self.master = tty.recv_fd(self.sock_shim, timeout=10)
            os.close(self.sock_shim)
            self.sock_shim = None
            if self.master is None:
                raise errors.Internal("the container init did not pass its TTY")
            tty.check_master(self.master)
            self.log_r, self.log_w = os.pipe()
            stdout = [w for w in writers.values() if w.stream == "stdout"][0]
            writers = dict(writers)
            writers[self.log_r] = type(stdout)(stdout.f, "stdout")
        else:
            writers = {fd: _Tee(w, self) for fd, w in writers.items()}
        _children_in_own_pid_ns()
        threading.Thread(target=self._run, name="attach", daemon=True).start()
        return writers

    def broadcast(self, stream, data):
        """Send output to every client (or keep it for the first one); a stuck client is dropped."""
        line = (json.dumps(protocol.output_event(stream, data)["data"]) + "\n").encode()
        with self.lock:
            if not self.served:
                if sum(len(x) for x in self.backlog) < BACKLOG:
                    self.backlog.append(line)
            # only to clients past their hello: the first one's replay of the backlog must come before live output
            for sock in [s for s, info in self.clients.items() if info["hello"]]:
                try:
                    sock.sendall(line)
                except OSError:
                    try:  # the server thread sees EOF and drops it (stdin is only ever touched there)
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def _drop(self, sock):
        info = self.clients.pop(sock, None)
        try:
            sock.close()
        except OSError:
            pass
        if info and info["stdin"] and self.stdin_once:
            self._close_stdin()

    def _close_stdin(self):
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def _accept(self):
        sock, _ = self.listener.accept()
        sock.settimeout(5)  # a client that stops reading for this long is dropped (never stalls the container)
        with self.lock:
            self.clients[sock] = {"buf": b"", "hello": False, "stdin": False}

    def _client_data(self, sock):
        info = self.clients.get(sock)
        if info is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            with self.lock:
                self._drop(sock)
            return
        info["buf"] += data
        *lines, info["buf"] = info["buf"].split(b"\n")
        for line in lines:
            if not info["hello"]:
                hello = _loads(line)
                info["stdin"] = bool(hello.get("stdin"))
                with self.lock:  # replay, then live output (broadcast sends only to clients past their hello)
                    if hello.get("replay") and not self.served:
                        for chunk in self.backlog:
                            sock.sendall(chunk)
                    self.served, self.backlog = True, []
                    info["hello"] = True
                continue
            frame = protocol.decode_frame(line.decode("utf-8", "replace"))
            if frame is None or not info["stdin"]:
                continue
            self._frame(*frame)

    def _frame(self, kind, value):
        if kind == "stdin":
            fd = self.master if self.tty else self.stdin_w
            if fd is not None:
                try:
                    _write_all(fd, value)
                except OSError:
                    if not self.tty:
                        self._close_stdin()
        elif kind == "eof" and self.stdin_once and not self.tty:
            self._close_stdin()
        elif kind == "resize" and self.master is not None:
            try:
                tty.set_size(self.master, *value)
            except OSError:
                pass

    def _run(self):
        while True:
            rlist = [self.listener] + list(self.clients)
            if self.master is not None and self.log_w is not None:
                rlist.append(self.master)
            try:
                ready = select.select(rlist, [], [], 1.0)[0]
            except (OSError, ValueError):
                return  # closed under us by close()
            for obj in ready:
                if obj is self.listener:
                    try:
                        self._accept()
                    except OSError:
                        return
                elif obj == self.master:
                    self._master_data()
                else:
                    self._client_data(obj)

    def _master_data(self):
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:  # every slave fd is closed: the container's processes are gone
            os.close(self.log_w)
            self.log_w = None
            return
        _write_all(self.log_w, data)
        self.broadcast("stdout", data)

    def close(self):
        """The container exited and its output is drained: end every client, remove the socket."""
        try:
            os.unlink(self.path)
        except OSError:
            pass
        with self.lock:
            for sock in list(self.clients):
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # the clients see EOF; the shim exits right after this
                except OSError:
                    pass
            self.listener.close()


def _children_in_own_pid_ns():
    """Undo the shim's unshare(CLONE_NEWPID) for what it creates next: the kernel refuses new threads
    (EINVAL) while pid_ns_for_children differs from the active PID namespace; the init is already forked."""
    from ..linux import libc
    from ..linux.consts import CLONE_NEWPID

    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(fd, CLONE_NEWPID)
    finally:
        os.close(fd)


class _Tee:
    """A LineWriter stand-in that also sends what it is fed to the attach clients."""

    def __init__(self, writer, io):
        self.writer, self.io, self.stream = writer, io, writer.stream

    def feed(self, data):
        self.writer.feed(data)
        self.io.broadcast(self.stream, data)

    def close(self):
        self.writer.close()


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _loads(line):
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def init_tty(sock, size=None):
    """In the container's init, after its rootfs is set up: a PTY from its devpts becomes its stdio."""
    master, slave = tty.open_pty()
    if size:
        tty.set_size(slave, *size)
    tty.send_fd(sock, master)
    os.close(master)
    os.close(sock)
    tty.make_controlling(slave)
    for i in (0, 1, 2):
        os.dup2(slave, i)
    os.close(slave)
