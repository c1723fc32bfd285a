"""Interactive commands: ``exec -i/-t`` (and the local terminal handling they share with run/start/attach).

-i forwards this process's stdin to the remote process (to every selected host alike: ``fleet exec -i -H
'web*' c sh < script.sh``); -t gives it a TTY (exactly one host) and puts the local terminal in raw mode,
restored on every way out. Output of -i without -t is prefixed per host as ``exec`` prints it (one host and
stdout not a terminal, or attached to a container: the bytes alone; --prefix/--no-prefix force either way);
with -t the bytes go to stdout untouched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

from agent_payload import protocol
from fleet.commands.common import exit_status, note, run_status
from fleet.errors import FleetError, UsageError
from fleet.render import streams

NOT_A_TTY = "the input device is not a TTY"
ESCAPE_READ = "read escape sequence"  # docker's term.EscapeError, printed when attach is detached by the keys


def terminal_size(fd: int = 1):
    """[rows, cols] of the terminal on ``fd`` (stdout, else stdin), or None if neither is one."""
    for candidate in (fd, 0):
        try:
            size = os.get_terminal_size(candidate)
            return [size.lines, size.columns]
        except OSError:
            continue
    return None


class RawTerminal:
    """Context manager: the terminal on ``fd`` in raw mode (docker's -t), restored on exit whatever happens."""

    def __init__(self, fd: int, enabled: bool = True):
        self.fd, self.enabled, self.saved = fd, enabled, None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)  # as docker: what was typed ahead is kept, not flushed
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        return False


class LinePrefixer(streams.Printer):
    """Output events of many hosts as ``host | line`` on stdout/stderr (exec's format), partial lines kept."""

    def __init__(self, width: int):
        super().__init__([], raw=False, prefixes={s: (lambda name: "{} | ".format(name.ljust(width)))
                                                  for s in ("stdout", "stderr")}, events=("output",))


def _read_stdin(loop, put, fd: int, filter_=None):
    """Thread body: this process's stdin -> stdin frames (then eof and the end of frames)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if filter_ is not None and chunk:
            chunk = filter_(chunk)
        if not chunk:
            break
        loop.call_soon_threadsafe(put, protocol.stdin_frame(chunk))
    loop.call_soon_threadsafe(put, protocol.stdin_eof())


async def stream_hosts(session, hosts, op: str, args: dict, on_event, interactive: bool, tty: bool,
                       stdin_fd: int = 0):
    """Run an interactive ``op`` on ``hosts`` with this process's stdin (if ``interactive``) and SIGWINCH
    (if ``tty``) forwarded to every one of them; returns the HostResults in ``hosts`` order."""
    from fleet.transport import stream
    from fleet.transport.pyzcache import current as build

    loop = asyncio.get_running_loop()
    queues = [asyncio.Queue() for _ in hosts]

    def put(frame):
        for q in queues:
            q.put_nowait(frame)

    if interactive:
        threading.Thread(target=_read_stdin, args=(loop, put, stdin_fd), name="stdin", daemon=True).start()
    winch = False
    if tty:
        def resized():
            size = terminal_size()
            if size:
                put(protocol.resize_frame(*size))
        try:
            loop.add_signal_handler(signal.SIGWINCH, resized)
            winch = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        resized()  # as docker on attach: the remote TTY takes this terminal's size now
    payload = build()
    ssh_opts = session.run_options(bounded=False).ssh
    try:
        return await asyncio.gather(*(stream.on_host(h, payload, ssh_opts, op, args, q, on_event)
                                      for h, q in zip(hosts, queues)))
    finally:
        if winch:
            loop.remove_signal_handler(signal.SIGWINCH)


def check_tty_input(interactive: bool, tty: bool, stdin=None) -> None:
    """docker's rule: -i with -t needs a terminal on stdin ("the input device is not a TTY", exit 1)."""
    stdin = stdin or sys.stdin
    if interactive and tty and not stdin.isatty():
        raise FleetError(NOT_A_TTY)


def one_host_for_tty(hosts, tty: bool) -> None:
    if tty and len(hosts) != 1:
        raise UsageError("-t/--tty needs exactly one host, but the -H patterns selected {} ({}); select one host or "
                         "drop -t".format(len(hosts), ", ".join(h.name for h in hosts[:5])
                                          + (", ..." if len(hosts) > 5 else "")))


def _session_run(session, hosts, op: str, args: dict, interactive: bool, tty: bool, on_other=None,
                 prefix: bool | None = None, sig_proxy: bool = False, targets=None) -> list:
    """Run an interactive op with the terminal in raw mode when both -i and -t; output printed as it comes.

    Raw bytes for a TTY and for one host attached to a container (docker's attach) or not writing to a
    terminal; ``host | line`` as exec prints them otherwise (``prefix``: --prefix/--no-prefix force either way,
    except with a TTY: its bytes are never split).  ``sig_proxy`` (never with a TTY, as docker): signals go to
    the containers (``targets``: {host name: container}, else learnt from the op's ``container`` event).
    """
    from fleet.commands.common import raise_if_rejected_input
    from fleet.commands.images import host_errors
    from fleet.commands.sigproxy import SignalProxy

    raw = tty or streams.raw_wanted(hosts, prefix, attached=op != "exec")
    printer = streams.Printer(hosts, raw, events=("output",))
    proxy = SignalProxy(session, hosts, targets, enabled=sig_proxy and not tty)

    def on_event(host, name, data):
        if name == "output":
            printer(host, name, data)
        elif name == "container":
            proxy.on_event(host, name, data)
        elif on_other is not None:
            on_other(host, name, data)

    try:
        with RawTerminal(0, enabled=tty and interactive), proxy:
            results = asyncio.run(stream_hosts(session, hosts, op, args, on_event, interactive, tty))
    finally:
        printer.flush()
    raise_if_rejected_input(results)
    host_errors(results)
    return results


def _exit_code(results) -> int:
    """The container's or command's code for one host (docker's); else 1 when any failed or was not 0."""
    status = exit_status(results)
    if status != 0:
        return status
    codes = [r.data.get("exit_code") or 0 for r in results]
    return codes[0] if len(codes) == 1 else (0 if not any(codes) else 1)


def exec_interactive(session, patterns: list[str], container: str, args: dict, interactive: bool,
                     tty: bool, prefix: bool | None = None) -> int:
    """``fleet exec -i/-t``: ``args`` are exec's checked op args; the exit status as ``exec``'s."""
    hosts = session.select(patterns)
    one_host_for_tty(hosts, tty)
    check_tty_input(interactive, tty)
    args = dict(args, interactive=interactive, tty=tty)
    if tty:
        args["console_size"] = terminal_size()
    return _exit_code(_session_run(session, hosts, "exec", args, interactive, tty, prefix=prefix))


def run_attached(session, hosts, args: dict, prefix: bool | None = None, sig_proxy: bool = True) -> int:
    """``fleet run -i/-t`` without -d: create, start and attach (stdin with -i) until the container exits.

    docker's detach keys (default ctrl-p,ctrl-q; --detach-keys) leave it running (exit status 0); else the
    exit status is the container's (one host), or 1 if any code was not 0; a failed run: 125 for one host
    (docker's), 1 for several.
    """
    interactive, tty = bool(args.get("open_stdin")), bool(args.get("tty"))
    one_host_for_tty(hosts, tty)
    check_tty_input(interactive, tty)
    args = dict(args, console_size=terminal_size() if tty else None)
    results = _session_run(session, hosts, "run", args, interactive, tty,
                           _pull_progress("\r\n" if tty and interactive else "\n"), prefix, sig_proxy)
    failed = run_status(results)
    return _exit_code(results) if failed is None else failed


def _pull_progress(newline: str):
    """A missing image's pull as ``host: layer: status`` lines on stderr (as run's), ``newline`` for raw mode."""
    seen: dict = {}

    def on_event(host, name, data):
        if name != "progress":
            return
        key = (host.name, data.get("layer"))
        if seen.get(key) != data.get("status"):
            seen[key] = data.get("status")
            sys.stderr.write("{}: {}: {}{}".format(host.name, data.get("layer"), data.get("status"), newline))
            sys.stderr.flush()
    return on_event


def _container_tty(session, hosts, container: str, running: bool = False) -> bool:
    """Whether ``container`` has a TTY (inspect's Config.Tty) on the one selected host; its errors as usual.

    ``running``: docker attach's checks first (stopped or paused: its messages, exit 1).
    """
    from fleet.commands.common import raise_if_rejected_input

    results = session.run_hosts(hosts, "inspect", {"containers": [container]})
    raise_if_rejected_input(results)
    if not results[0].ok:
        raise results[0].error
    obj = results[0].data["containers"][0]
    if running and not obj["State"].get("Running"):
        raise FleetError("You cannot attach to a stopped container, start it first")
    if running and obj["State"].get("Paused"):
        raise FleetError("You cannot attach to a paused container, unpause it first")
    return bool(obj["Config"].get("Tty"))


def _one_host(session, patterns, what: str):
    hosts = session.select(patterns)
    if len(hosts) != 1:
        raise UsageError("{} needs exactly one host, but the -H patterns selected {} ({})".format(
            what, len(hosts), ", ".join(h.name for h in hosts[:5]) + (", ..." if len(hosts) > 5 else "")))
    return hosts


def attach(session, patterns: list[str], container: str, no_stdin: bool, detach_keys: str | None,
           prefix: bool | None = None, sig_proxy: bool = True) -> int:
    """``fleet attach``: this terminal to a running container on one host until it exits or is detached from.

    Detached by the keys: docker's "read escape sequence" on stderr and exit status 1 (docker/cli's RunAttach
    returns the hijack's term.EscapeError, which its main prints and exits 1 for; run and start -a return nil
    for it: silent, 0). The container keeps running.
    """
    if not container:
        raise UsageError("attach needs a container")
    hosts = _one_host(session, patterns, "attach")
    tty = _container_tty(session, hosts, container, running=True)
    interactive = not no_stdin
    check_tty_input(interactive, tty)
    args = {"container": container, "stdin": interactive, "detach_keys": detach_keys}
    results = _session_run(session, hosts, "attach", args, interactive, tty, prefix=prefix, sig_proxy=sig_proxy,
                           targets={hosts[0].name: container})
    if results[0].ok and results[0].data.get("detached"):
        note(ESCAPE_READ)
        return 1
    return _exit_code(results)


def start_attached(session, patterns: list[str], container: str, detach_keys: str | None,
                   prefix: bool | None = None, sig_proxy: bool = True) -> int:
    """``fleet start -a -i``: start one container and attach this terminal (stdin included) to it."""
    hosts = _one_host(session, patterns, "start -i")
    tty = _container_tty(session, hosts, container)
    check_tty_input(True, tty)
    args = {"containers": [container], "attach": True, "attach_stdin": True, "detach_keys": detach_keys}
    return _exit_code(_session_run(session, hosts, "start", args, True, tty, prefix=prefix, sig_proxy=sig_proxy,
                                   targets={hosts[0].name: container}))
