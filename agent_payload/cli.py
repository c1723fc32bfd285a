"""The payload's entry: ``--rpc`` (one JSON request on stdin, JSON lines out), or by hand.

This module and handcli.py are the only ones that write to stdout.  The --rpc path imports as little as
possible: it is paid on every fleet command on every host.
"""

import os
import sys

# The rest (json, errors, protocol, ops, state) is imported where used: the hand CLI's front process hands its command
# to a warm server (agent_payload/warm/) without them.


def launcher():
    """The argv prefix that re-runs this payload (for the detached shim)."""
    from agent_payload.ops import payload_identity
    sha, path = payload_identity(sys.argv[0])
    if path:
        flags = (["-S"] if sys.flags.no_site else []) + (["-E"] if sys.flags.ignore_environment else [])
        return [sys.executable] + flags + [path]
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-c",
            "import sys; sys.path.insert(0, {!r}); from agent_payload.cli import main; sys.exit(main())".format(parent)]


def state_root_of(path):
    """The state root a payload at ``<root>/payload/<sha>.pyz`` belongs to (an inventory's ``fleet_root``).

    ``FLEET_ROOT`` still wins (tests, a hand run with a private tree); a payload elsewhere (a copy in /tmp
    run by hand) uses the default root.
    """
    if path and not os.environ.get("FLEET_ROOT"):
        directory = os.path.dirname(path)
        if os.path.basename(directory) == "payload":
            return os.path.dirname(directory)
    return None


def _context():
    from agent_payload import errors
    from agent_payload.ops import Context, payload_identity
    from agent_payload.state import perms
    from agent_payload.state.paths import Paths
    sha, path = payload_identity(sys.argv[0])
    paths = Paths(root=state_root_of(path))
    try:
        perms.ensure_root(paths)  # one stat when all is well; a private root first (state/perms.py)
    except perms.StateRootError as exc:
        raise errors.FailedPrecondition(str(exc))
    return Context(paths, sha, launcher())


def _error_result(exc):
    import traceback  # the failure path only: a successful --rpc run never pays for it
    from agent_payload import errors, protocol
    return protocol.result_error(**errors.to_wire(exc, traceback.format_exc))


def _verify_self(path, expected):
    import hashlib
    from agent_payload import errors
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise errors.FailedPrecondition("payload file {} is corrupt (sha256 {})".format(path, h.hexdigest()))


# Ops that can wait indefinitely (logs -f, events -f, run in the foreground, a slow pull) or long (a deploy's swap,
# which follows its detached worker: the follower must go with the SSH session, so that the sshd process a deploy
# lock names ends with the controller and the next deploy may take the lock over at once; a check cut off at the
# controller's deadline stops its probes).
_LONG_OPS = ("logs", "run", "pull", "attach", "service_swap", "service_rollback", "events", "check")
# Ops that do when their args ask for interactive I/O (then stdin frames follow the request line).
_INTERACTIVE_ARGS = {"exec": ("interactive", "tty"), "start": ("attach",)}


def _is_long(req):
    op, args = req.get("op"), req.get("args")
    if op in _LONG_OPS:
        return True
    return isinstance(args, dict) and any(args.get(key) is True for key in _INTERACTIVE_ARGS.get(op, ()))


def _read_request(stdin):
    """The request: the first line of stdin, so that interactive frames may follow it on the same stream.

    A request spread over several lines (a hand-written, pretty-printed one) still works: when the first
    line alone is not valid JSON, the rest of stdin is read too (such a request cannot carry frames).
    """
    import json
    first = stdin.readline()
    try:
        return json.loads(first)
    except ValueError:
        pass
    try:
        return json.loads(first + stdin.read())
    except ValueError as exc:
        from agent_payload import errors
        raise errors.InvalidArgument("request is not valid JSON: {}".format(exc))


def _exit_when_orphaned(stdout):
    """Exit as soon as the controller is gone, even while the op is idle.

    When the SSH session ends, sshd closes its end of our stdout pipe; a quiet `logs -f` would otherwise never
    write again, never see EPIPE, and poll on the host forever.  A daemon thread polls the pipe for POLLERR.
    On a warm server's socket (agent_payload/warm/) POLLHUP says the same: the peer closed the connection (its
    half-close after the request is only POLLRDHUP, not watched).
    """
    import select
    import threading

    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests): nothing to watch

    def watch():
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
        while True:
            for _fd, ev in poller.poll(1000):
                if ev & (select.POLLERR | select.POLLHUP):
                    os._exit(0)  # nobody is listening; containers and shims are separate processes and live on

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def serve_rpc(stdin, stdout, peer=None):
    """Read one request, run it, write events and one result line. Always returns 0 once a result is out.

    The one RPC path of an exec'd ``--rpc`` process and of a warm server's child (``peer``: the pid on the other
    end of its socket, which stands for the exec'd process's parent: sshd).
    """
    import json

    from agent_payload import errors, protocol
    from agent_payload.ops import dispatch, payload_identity

    def write(obj):
        stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        stdout.flush()

    try:
        ctx = _context()
        if peer is not None:
            ctx.peer = peer
        req = _read_request(stdin)
        ctx.stdin = stdin  # interactive ops read their frames from here (runtime/tty.FrameReader)
        if not isinstance(req, dict):
            raise errors.InvalidArgument("request must be a JSON object")
        if req.get("protocol") != protocol.PROTOCOL_VERSION:
            raise errors.FailedPrecondition("protocol version {!r} not supported (payload speaks {})".format(
                req.get("protocol"), protocol.PROTOCOL_VERSION))
        if ctx.payload_sha != "dev" and req.get("payload") != ctx.payload_sha:
            raise errors.FailedPrecondition("payload mismatch: request for {}, this is {}".format(
                req.get("payload"), ctx.payload_sha))
        if req.get("verify_payload") and ctx.payload_sha != "dev":
            _verify_self(payload_identity(sys.argv[0])[1], ctx.payload_sha)
        if _is_long(req):
            _exit_when_orphaned(stdout)
        data = dispatch(ctx, req.get("op"), req.get("args") or {}, lambda name, d: write(protocol.event(name, d)))
        write(protocol.result_ok(data))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result line
        write(_error_result(exc))
    return 0


def hand_main(argv):
    """The payload by hand (handcli): in this process, or in a warm server's worker (warm/child.py)."""
    from agent_payload.handcli import run_by_hand
    return run_by_hand(argv, _context)


def main(argv=None):
    """Entry point: ``--rpc`` or a docker-style command.

    Only the real entry of a real payload (argv from the command line, a trusted pyz run through its own
    ``__main__`` or the controller's, see warm.real_payload) uses or starts a warm server; a call with ``argv``
    (tests) never does.
    """
    from agent_payload import warm
    real = None
    if argv is None:
        real = warm.real_payload() if warm.enabled() else None
    argv = sys.argv[1:] if argv is None else argv
    # Docker's daemon sets umask 0022 whatever it inherited; so do we: files the runtime makes without an explicit
    # mode (and the processes of containers, which inherit it) never depend on the SSH session's umask.
    os.umask(0o022)
    if argv[:1] == ["--rpc"]:
        status = serve_rpc(sys.stdin, sys.stdout)
    else:
        if real is not None:
            from agent_payload.warm import client
            handed = client.hand_off(real.pyz, argv)
            if handed is not None:
                os._exit(handed)  # the worker wrote the output; nothing of this process needs tearing down
        status = hand_main(argv)
    if real is not None:
        _start_warm(warm, real, status)
    return status


def _start_warm(warm, real, status):
    """After the command's own work: start a warm server unless one lives; when one is started, this process
    exits here with ``status`` (server.start)."""
    fd = warm.take_lock(real)
    if fd is not None:
        from agent_payload.warm import server
        server.start(real, fd, status, serve_rpc, hand_main)
