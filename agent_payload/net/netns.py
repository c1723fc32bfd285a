"""Persistent network namespaces: one file per container under ``<run>/netns`` (Docker keeps /var/run/docker/netns).

A namespace is made by the calling thread (unshare CLONE_NEWNET, then setns back; a short-lived holder child where
that is refused); its ``/proc/thread-self/ns/net`` is bound onto the file, so the namespace lives until ``destroy``
unmounts it, whatever happens to the processes in it. ``holder(path)`` forks a process inside an existing
namespace file, whose PID names it (iproute2 takes a PID or a name under /run/netns, not a path).

The bind mounts follow the host's propagation like any other mount (an unmount propagates as the mount did);
a container's own mount namespace drops its copies at pivot_root, so no container keeps another's namespace.
"""

import os
import socket

from ..linux import libc
from ..linux.consts import CLONE_NEWNET, MNT_DETACH, MS_BIND
from ..state import perms


def _is_mountpoint(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def ensure_dir(directory):
    """Create the directory of namespace files (idempotent)."""
    perms.makedirs(directory)  # the run dir (/run/fleet) too: 0700


class Holder:
    """A child process inside a network namespace; ``pid`` is valid until ``close``."""

    def __init__(self, pid, sock):
        self.pid = pid
        self._sock = sock

    def close(self):
        if self._sock is not None:
            self._sock.close()  # EOF: the holder exits
            self._sock = None
            os.waitpid(self.pid, 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _spawn(enter):
    """Fork a holder that runs ``enter()`` (unshare or setns), reports, then waits for EOF."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            parent.close()
            enter()
            child.sendall(b"k")
            child.recv(1)  # blocks until the parent closes its end
            code = 0
        except BaseException as exc:  # report the error to the parent instead of a traceback
            try:
                child.sendall(b"e" + str(exc).encode("utf-8", "replace")[:1000])
            except OSError:
                pass
        os._exit(code)
    child.close()
    answer = parent.recv(2048)
    if answer[:1] != b"k":
        parent.close()
        os.waitpid(pid, 0)
        raise OSError("network namespace setup failed: {}".format(answer[1:].decode("utf-8", "replace") or
                                                                 "the holder process died"))
    return Holder(pid, parent)


def create(path):
    """Make a new network namespace bound at ``path`` (which must not exist); returns a Holder (close it).

    Loopback is brought up inside, as every container needs it.  The calling thread itself unshares, binds its
    namespace onto ``path`` and goes back with setns() (no holder process to fork: ~2 ms); the Holder it
    returns has no process (``pid`` None).  Where that is refused, a forked holder makes it as before.
    """
    ensure_dir(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.unlink(path)
        return _create_by_holder(path)
    try:
        try:
            libc.unshare(CLONE_NEWNET)
        except OSError:
            os.unlink(path)
            return _create_by_holder(path)
        try:
            libc.interface_up("lo")
            libc.mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            libc.setns(own, CLONE_NEWNET)  # back home: a failure here is fatal for the caller, and raised
    finally:
        os.close(own)
    return Holder(None, None)


def _create_by_holder(path):
    def enter():
        libc.unshare(CLONE_NEWNET)
        libc.interface_up("lo")

    holder = _spawn(enter)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        try:
            libc.mount("/proc/{}/ns/net".format(holder.pid), path, None, MS_BIND)
        except BaseException:
            os.unlink(path)
            raise
    except BaseException:
        holder.close()
        raise
    return holder


def enter(path):
    """Move the calling thread into the namespace bound at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def holder(path):
    """A Holder inside the existing namespace bound at ``path`` (for ``ip link set ... netns PID``)."""
    return _spawn(lambda: enter(path))


def destroy(path):
    """Unmount and remove a namespace file; idempotent (a missing or unmounted file is fine)."""
    try:
        libc.umount2(path, MNT_DETACH)
    except OSError:
        pass  # not mounted (a half-made namespace or a second call)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def exists(path):
    """True if ``path`` is a live namespace binding."""
    try:
        return os.path.exists(path) and _is_mountpoint(path)
    except OSError:
        return False
