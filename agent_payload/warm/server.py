"""Start and run the warm server (see the package doc): detached, single-instance, one forked child per connection.

``start`` is called by a payload run after its result is written and flushed, once it holds the server's lock (an
exclusive flock on the pyz itself, warm.take_lock: held means a server lives, nothing to do).  It forks; the
intermediate child points its stdio at /dev/null, calls setsid and forks the server, then exits; the caller exits
at once with its own status (no teardown, see start): no fd of the SSH session ever reaches the server, so sshd
ends the channel at once.  The server closes every inherited fd but the lock, moves itself to its own systemd
scope where systemd is PID 1 (``fleet-warm-<sha12>.scope`` in fleet.slice, so that it never keeps a login session
alive; it does not serve if systemd refuses), imports the op modules most commands use, binds a temp name and
renames it over ``<sha>.sock`` (a dead server's socket is simply replaced).
"""

import os
import select
import signal
import socket
import sys
import time

from agent_payload import warm

# Imported before serving, so that a request pays for no import: measured over the socket, `ps` 34 -> 7 ms and
# `images` 33 -> 10 ms per request (ping 10 -> 8 ms).  The ops most commands use, and the hand CLI's parser.
PRELOAD = ("agent_payload.ops.args", "agent_payload.ops.host", "agent_payload.ops.containers",
           "agent_payload.ops.lifecycle", "agent_payload.ops.images", "agent_payload.ops.registry",
           "agent_payload.ops.netvol", "agent_payload.ops.events", "agent_payload.ops.deploy",
           "agent_payload.runtime.containers", "agent_payload.image.images", "agent_payload.handcli",
           # what a container start adds in its shim and init (a bridge's veth over netlink, the seccomp profile)
           "agent_payload.net.links", "agent_payload.net.netns", "agent_payload.linux.netlink",
           "agent_payload.linux.seccomp_default", "agent_payload.linux.seccomp_tables")
POLL_MS = 1000  # how often an idle server looks at its socket path and its pyz
SCOPE_TIMEOUT = 10.0


def start(real, fd, status, rpc, hand):
    """Fork the detached server for ``real`` (a warm.Real; ``fd`` holds its lock), then exit with ``status``.

    ``rpc(stdin, stdout, peer=)`` and ``hand(argv)`` are what a connection's child runs (cli.serve_rpc and
    cli.hand_main: the same functions as the exec'd process).

    The command exits at once (os._exit after flushing stdout and stderr; the payload registers no atexit work):
    after a fork the interpreter's teardown would copy-on-write every page it touches (measured: +4 ms).  The
    intermediate child is not waited for: it is gone in a moment and init reaps it.  Returns only if fork fails.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        pid = os.fork()
    except OSError:
        os.close(fd)
        return
    if pid:
        os._exit(status)  # the lock stays held: the same open file lives on in the server
    try:  # the intermediate child: nothing of the session may reach the server
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        os.setsid()
        if os.fork() == 0:
            _close_inherited(keep=fd)
            serve(real, fd, rpc, hand)
    except BaseException:  # noqa: BLE001 - a failed start is no failure of the command
        pass
    os._exit(0)


def _close_inherited(keep):
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for n in fds:
        if n > 2 and n != keep:
            try:
                os.close(n)
            except OSError:
                pass


def serve(real, lock_fd, rpc, hand, idle=None, place=None):
    """The server's life: never returns (os._exit)."""
    status = 0
    try:
        _serve(real, lock_fd, (rpc, hand), warm.idle_timeout() if idle is None else idle, place or place_in_scope)
    except BaseException:  # noqa: BLE001
        status = 1
    os._exit(status)


def place_in_scope(sha, connect=None):
    """Where systemd is PID 1: this process into ``fleet-warm-<sha12>.scope`` (fleet.slice); True when placed (or
    no systemd), False when systemd refused (then the server does not serve: it would keep the session alive)."""
    from agent_payload.runtime.cgroups import base
    if not os.path.isdir(base.SYSTEMD_DIR) and connect is None:
        return True
    from agent_payload.linux import sdbus
    from agent_payload.runtime.cgroups import scope
    name = "fleet-warm-{}.scope".format(sha[:12])
    pid = os.getpid()
    props = [("Description", ("s", "fleet warm payload server {}".format(sha[:12]))),
             ("Slice", ("s", base.SYSTEMD_PARENT)), ("PIDs", ("au", [pid])),
             ("CollectMode", ("s", "inactive-or-failed"))]
    deadline = time.monotonic() + SCOPE_TIMEOUT
    try:
        with (connect or sdbus.Systemd)() as systemd:
            systemd.subscribe()
            for _attempt in range(3):
                try:
                    job = systemd.start_transient_unit(name, props)
                    break
                except sdbus.DBusError as exc:
                    if exc.name == scope.UNIT_EXISTS:  # a dead server's scope that its children keep alive
                        name = "fleet-warm-{}-{}.scope".format(sha[:12], pid)
                    elif exc.name == scope.PROPERTY_READ_ONLY and len(props) > 3:  # systemd < 236: no CollectMode
                        props = props[:3]
                    else:
                        raise
            else:
                return False
            result = systemd.wait_job(job, deadline, done=lambda: scope.in_scope(pid, name))
    except (OSError, sdbus.DBusError):
        return False
    return result == "done"


def _serve(real, lock_fd, runners, idle, place):
    os.chdir("/")  # pins no directory (the SSH login's home) for as long as it lives
    if not place(real.sha):
        return
    start_env = dict(os.environ)
    start_signals = {}
    for sig in signal.valid_signals():
        try:
            start_signals[sig] = signal.getsignal(sig)
        except (OSError, ValueError):
            pass
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module that fails to import fails its request as it would via exec
            pass
    title = Title()
    title.name_server(real.sha)
    os.environ.update(start_env)  # set_title cleared it (libc's copy pointed into the area it overwrote)
    identity = real.identity()
    if not real.still_trusted(identity):
        return
    path = warm.socket_path(real.pyz)
    tmp = os.path.join(os.path.dirname(path), ".warm-{}.sock".format(os.getpid()))  # never longer than path
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(tmp)
    finally:
        os.umask(old)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.rename(tmp, path)
    st = os.lstat(path)
    mine = (st.st_dev, st.st_ino)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    last = time.monotonic()
    from agent_payload.warm import child
    while True:
        left = last + idle - time.monotonic()
        if not _is_mine(path, mine):
            return  # removed or replaced: the path is someone else's now
        if left <= 0:
            _remove(path, mine)
            return
        if not poller.poll(max(1, min(POLL_MS, int(left * 1000)))):
            continue
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        if not real.still_trusted(identity) or not _is_mine(path, mine):
            conn.close()  # closed before the hello: the client runs the exec path, which refuses or starts anew
            _remove(path, mine)
            return
        last = time.monotonic()
        try:
            pid = os.fork()
        except OSError:
            conn.close()
            continue
        if pid == 0:
            title.restore()
            child.serve_connection(conn, listener, lock_fd, real, start_env, start_signals, runners)
        conn.close()


class Title:
    """The server shows as ``fleet-warm <sha12>`` in ps (comm "fleet-warm"), not as the ``pyz --rpc`` command it
    was forked from, so that nothing counting a host's payload commands counts it; each child shows as that
    command again (the saved argv area and comm written back): a warm request looks like an exec'd one."""

    def __init__(self):
        self.area = None
        try:
            with open("/proc/self/comm", "rb") as f:
                self.comm = f.read().rstrip(b"\n")
            with open("/proc/self/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            arg_start, arg_end, env_start, env_end = (int(v) for v in fields[45:49])
            if 0 < arg_start < arg_end:
                import ctypes
                size = env_end - arg_start if env_start == arg_end and env_end > env_start else arg_end - arg_start
                self.area = (arg_start, ctypes.string_at(arg_start, size))  # what runtime.init.set_title rewrites
        except (OSError, ValueError, IndexError):
            self.comm = None

    def name_server(self, sha):
        from agent_payload.runtime.init import set_title
        try:
            _write_comm(b"fleet-warm")
            if self.area:
                set_title(["fleet-warm", sha[:12]])
        except (OSError, ValueError, IndexError):
            pass  # cosmetic

    def restore(self):
        try:
            if self.comm:
                _write_comm(self.comm)
            if self.area:
                import ctypes
                ctypes.memmove(self.area[0], self.area[1], len(self.area[1]))
        except (OSError, ValueError):
            pass


def _write_comm(name):
    with open("/proc/self/comm", "wb") as f:
        f.write(name)


def _is_mine(path, mine):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == mine


def _remove(path, mine):
    if _is_mine(path, mine):
        try:
            os.unlink(path)
        except OSError:
            pass
