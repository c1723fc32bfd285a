"""One connection of the warm server, in its own forked child: the hello line, then an RPC or a hand-CLI run.

The child first makes itself look like a fresh payload process: the signal dispositions, environment, umask
(022) and cwd ("/") the server started with, no listener and no server lock.  Then:

- RPC: the socket becomes fds 0 and 1 (stderr stays /dev/null) and ``cli.serve_rpc`` runs on them exactly as
  in an exec'd ``--rpc`` process, the orphan watch included (POLLHUP: the connection is gone).  The deploy lock's
  holder is the peer (SO_PEERCRED: sshd carrying the controller's connection), not this child's parent.
- hand CLI: the message carries argv, environment and cwd, with the front process's fds 0, 1, 2 attached.  A
  worker is forked to run ``handcli`` with them (``{"pid": worker}`` tells the front where to forward signals);
  the child waits for it and sends ``{"status": n}`` or ``{"signal": n}`` so the front exits the same way.
"""

import io
import os
import signal
import socket
import struct
import sys

from agent_payload import warm

MAX_HAND = 1 << 20


def serve_connection(conn, listener, lock_fd, real, start_env, start_signals, runners):
    """Serve ``conn`` in this forked child and exit; ``runners``: (cli.serve_rpc, cli.hand_main)."""
    status = 0
    try:
        listener.close()
        os.close(lock_fd)
        for sig, handler in start_signals.items():
            try:
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            except (OSError, ValueError, TypeError):
                pass
        os.umask(0o022)
        os.chdir("/")
        os.environ.clear()
        os.environ.update(start_env)
        conn.sendall(warm.hello_line(real.sha, os.getpid()))
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            os._exit(0)
        if first == warm.HAND_PREFIX:
            status = _hand(conn, runners[1])
        else:
            _rpc(conn, runners[0])
    except BaseException:  # noqa: BLE001
        status = 1
    os._exit(status)


def _std_streams(encodings):
    """sys.stdin/stdout/stderr anew on fds 0, 1, 2 (same encodings as the process the server was forked from)."""
    (ie, ierr), (oe, oerr), (ee, eerr) = encodings
    sys.stdin = io.open(0, "r", encoding=ie, errors=ierr, newline="\n", closefd=False)
    sys.stdout = io.open(1, "w", encoding=oe, errors=oerr, newline="\n", closefd=False)
    sys.stderr = io.open(2, "w", encoding=ee, errors=eerr, newline="\n", closefd=False, buffering=1)


def _encodings():
    out = []
    for stream, default in ((sys.__stdin__, "surrogateescape"), (sys.__stdout__, "strict"),
                            (sys.__stderr__, "backslashreplace")):
        out.append((getattr(stream, "encoding", None) or "utf-8", getattr(stream, "errors", None) or default))
    return out


def _peer_pid(conn):
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0] or None
    except OSError:
        return None


def _rpc(conn, serve_rpc):
    peer = _peer_pid(conn)
    encodings = _encodings()
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    _std_streams(encodings)
    serve_rpc(sys.stdin, sys.stdout, peer=peer)
    sys.stdout.flush()


def _recv_hand(conn):
    """(cwd, argv, environ) of a hand message (client.hand_message) and the fds that came with it."""
    import array
    fds = array.array("i")
    data, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    while b"\n" not in data:
        data += _recv_some(conn)
    head, _, body = data[1:].partition(b"\n")
    size = int(head)
    if size > MAX_HAND:
        raise ValueError("hand message too large")
    while len(body) < size:
        body += _recv_some(conn)
    fields = body[:size].split(b"\0")[:-1]
    argc = int(fields[1])
    argv = fields[2:2 + argc]
    environ = dict(f.partition(b"=")[::2] for f in fields[2 + argc:])
    return (fields[0], argv, environ), list(fds)


def _recv_some(conn):
    more = conn.recv(65536)
    if not more:
        raise ValueError("truncated hand message")
    return more


def _send(conn, kind, value):
    conn.sendall("{} {}\n".format(kind, value).encode())


def _hand(conn, hand_main):
    msg, fds = _recv_hand(conn)
    if len(fds) != 3:
        raise ValueError("a hand message carries fds 0, 1 and 2")
    encodings = _encodings()
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_hand(msg, fds, encodings, hand_main)  # never returns
    for fd in fds:
        os.close(fd)
    _send(conn, "pid", pid)
    while True:
        try:
            _, st = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(st):
        _send(conn, "signal", os.WTERMSIG(st))
    else:
        _send(conn, "status", os.WEXITSTATUS(st))
    return 0


def _run_hand(msg, fds, encodings, hand_main):
    """The hand-CLI worker: the front's fds, environment and cwd, then handcli as the direct path runs it."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        cwd, argv, environ = msg
        os.environb.clear()
        os.environb.update(environ)
        os.chdir(cwd)
        _std_streams(encodings)
        code = hand_main([os.fsdecode(a) for a in argv])
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        import traceback
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, status 1
        import traceback
        traceback.print_exc()
        code = 1
    _flush()
    os._exit(code)


def _exit_code(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    sys.stderr.write("{}\n".format(value))
    return 1


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
