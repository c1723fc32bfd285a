"""Interactive I/O helpers: PTYs from a container's devpts, fd passing, and the stdin/output relay.

A container's TTY is allocated INSIDE the container's mount namespace (from its own devpts instance, opened
through its /dev/ptmx), as runc does with its console socket: the slave then has a name the container can
see (/dev/pts/N) and belongs to the container's devpts, never to the host's.  The master is passed back over
a unix socketpair (SCM_RIGHTS) to the process outside that relays it; nothing of the host reaches inside.

The relay (:class:`Relay`) is a single-threaded select loop that owns every fd: a reader thread only turns
the RPC's stdin frames (protocol.decode_frame) into queue items and wakes the loop through a pipe.
"""

import array
import errno
import fcntl
import os
import queue
import select
import socket
import stat
import struct
import termios
import threading

from .. import errors, protocol

PTMX_RDEV = os.makedev(5, 2)
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR .. + UNIX98_PTY_MAJOR_COUNT
TIOCGPTN = getattr(termios, "TIOCGPTN", 0x80045430)
TIOCSPTLCK = getattr(termios, "TIOCSPTLCK", 0x40045431)
TIOCGPTPEER = 0x5441
TIOCSCTTY = getattr(termios, "TIOCSCTTY", 0x540E)
TIOCSWINSZ = getattr(termios, "TIOCSWINSZ", 0x5414)
CHUNK = 65536


# ---- PTYs

def open_pty():
    """(master, slave) fds of a new PTY from /dev/ptmx of the mount namespace we are in (the container's).

    The master must be the devpts multiplexer (a FIFO or device node planted at /dev/ptmx is refused); the
    slave comes from TIOCGPTPEER where the kernel has it (no path lookup), else /dev/pts/<n>, checked.
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(master)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != PTMX_RDEV:
            raise errors.FailedPrecondition("/dev/ptmx in the container is not the pty multiplexer")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        try:
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTTY):
                raise
            slave = os.open("/dev/pts/{}".format(number), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW)
        sst = os.fstat(slave)
        if not stat.S_ISCHR(sst.st_mode) or os.major(sst.st_rdev) not in PTS_MAJORS:
            os.close(slave)
            raise errors.FailedPrecondition("/dev/pts/{} in the container is not a pty".format(number))
        fl = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def check_master(fd):
    """Raise unless ``fd`` is a PTY master (what a child passed us must be nothing else)."""
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != PTMX_RDEV:
        raise errors.Internal("the fd passed for the TTY is not a pty master")


def make_controlling(slave):
    """Make ``slave`` the controlling terminal of this process (a session leader without one)."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)


def set_size(fd, rows, cols):
    """TIOCSWINSZ on a PTY (master or slave); the foreground process group gets SIGWINCH."""
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def check_console_size(value):
    """None or [rows, cols] with 0 <= each <= 65535; the (rows, cols) tuple or None."""
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF for v in value)):
        raise errors.InvalidArgument("console_size must be [rows, cols] with values 0..65535")
    return int(value[0]), int(value[1])


def socketpair_fds():
    """A connected pair of unix stream socket fds (close-on-exec), for passing a PTY master."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a.detach(), b.detach()


def send_fd(sock_fd, fd):
    """Send ``fd`` over the unix socket ``sock_fd`` (SCM_RIGHTS) with a one-byte message."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    finally:
        sock.close()


def recv_fd(sock_fd, timeout=None):
    """Receive one fd sent by :func:`send_fd`; None on EOF (the sender died) or timeout."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        sock.settimeout(timeout)
        try:
            msg, anc, _flags, _addr = sock.recvmsg(1, socket.CMSG_SPACE(array.array("i").itemsize))
        except socket.timeout:
            return None
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
        for extra in fds[1:]:
            os.close(extra)
        if not msg or not fds:
            return None
        os.set_inheritable(fds[0], False)
        return fds[0]
    finally:
        sock.close()


# ---- the relay

class FrameReader:
    """A daemon thread reading frame lines from the RPC stdin into a queue, waking the relay through a pipe.

    EOF of the RPC stdin is delivered as an ``eof`` frame followed by ``("closed", None)``.
    """

    def __init__(self, stream):
        self.queue = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._stream = stream
        threading.Thread(target=self._run, name="stdin-frames", daemon=True).start()

    def _put(self, item):
        self.queue.put(item)
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass  # the pipe is full (the loop is woken anyway) or closed (the relay is done)

    def _run(self):
        try:
            for line in iter(self._stream.readline, ""):
                frame = protocol.decode_frame(line)
                if frame is not None:
                    self._put(frame)
        except (OSError, ValueError):
            pass
        self._put(("eof", None))
        self._put(("closed", None))

    def drain(self):
        """The frames queued so far (and empties the wake pipe)."""
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return items


class Relay:
    """Frames -> the process's stdin (pipe or PTY master); its output fds -> ``output`` events.

    ``stdin_fd``: where stdin bytes go (None: discarded); ``tty_fd``: the PTY master (resize frames; EOF frames
    do not close it); ``outputs``: {fd: "stdout"|"stderr"}; ``on_input(data) -> data|None``: a filter that may
    return None to stop the relay (detach keys).  The relay closes no fd it was given except ``stdin_fd`` on
    an EOF frame (when it is not the TTY).
    """

    def __init__(self, frames, emit, stdin_fd=None, tty_fd=None, outputs=None, on_input=None):
        self.frames, self.emit = frames, emit
        self.stdin_fd, self.tty_fd = stdin_fd, tty_fd
        self.outputs = dict(outputs or {})
        self.on_input = on_input
        self.pending = b""
        self.eof_wanted = frames is None  # no frames will ever come: stdin is at EOF from the start
        self.detached = False
        for fd in set(self.outputs) | ({stdin_fd} if stdin_fd is not None else set()):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def _frame(self, kind, value):
        if kind == "stdin":
            if self.on_input is not None:
                value = self.on_input(value)
                if value is None:
                    self.detached = True
                    return
            if self.stdin_fd is not None:
                self.pending += value
        elif kind == "eof":
            self.eof_wanted = True
        elif kind == "resize" and self.tty_fd is not None:
            try:
                set_size(self.tty_fd, *value)
            except OSError:
                pass

    def _close_stdin(self):
        if self.stdin_fd is not None and self.stdin_fd != self.tty_fd:
            os.close(self.stdin_fd)
        self.stdin_fd, self.pending = None, b""

    def _write(self):
        try:
            n = os.write(self.stdin_fd, self.pending[:CHUNK])
            self.pending = self.pending[n:]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE/EIO: the process closed its stdin or exited
            self._close_stdin()

    def _read(self, fd):
        """Emit what ``fd`` has; False at EOF (a PTY master reports EIO once every slave fd is closed)."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        self.emit("output", protocol.output_event(self.outputs[fd], data)["data"])
        return True

    def run(self, finished, poll=0.1):
        """Relay until ``finished()`` is true (then drain what is readable now) or every output is at EOF
        and ``finished`` follows, or detach keys arrived; returns True when detached."""
        open_fds = set(self.outputs)
        done = False
        while not self.detached:
            if self.frames is not None:
                for kind, value in self.frames.drain():
                    self._frame(kind, value)
            if self.stdin_fd is not None and self.eof_wanted and not self.pending:
                if self.stdin_fd != self.tty_fd:
                    self._close_stdin()
                self.eof_wanted = False
            if done:
                break
            rlist = list(open_fds) + ([self.frames.wake_r] if self.frames is not None else [])
            wlist = [self.stdin_fd] if self.stdin_fd is not None and self.pending else []
            ready_r, ready_w, _ = select.select(rlist, wlist, [], poll)
            if ready_w:
                self._write()
            for fd in ready_r:
                if fd in open_fds and not self._read(fd):
                    open_fds.discard(fd)
            if finished():
                for fd in list(open_fds):  # what is buffered now; a background child keeps nothing open
                    while self._read(fd):
                        try:
                            if not select.select([fd], [], [], 0)[0]:
                                break
                        except (OSError, ValueError):
                            break
                done = True
        return self.detached
