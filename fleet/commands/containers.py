"""Container commands across hosts: run, ps, logs, stop, rm (the lifecycle ones are in lifecycle.py)."""

from __future__ import annotations

import os
import re
import sys

from fleet.commands.common import Session, exit_status, note, output, run_status
from fleet.commands.images import progress_printer
from fleet.commands.runflags import CidFile, RunSpec
from fleet.errors import UsageError
from fleet.render import tables

PS_HEADERS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
# docker's ps filter keys the payload implements, and its container states (runtime/status.py has the matching)
PS_FILTER_KEYS = ("status", "name", "label", "ancestor", "exited", "id", "before", "since", "health", "volume")
PS_HEALTH = ("starting", "healthy", "unhealthy", "none")
PS_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_INT = re.compile(r"^-?\d+$")
# --since/--until: a Go duration, unix seconds[.frac], or an RFC 3339-like date[Thh[:mm[:ss[.frac]]]][zone]
_TIME_SHAPE = re.compile(r"^(?:[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+|\d+(?:\.\d{1,9})?|"
                         r"\d{4}-\d\d-\d\d(?:T\d\d(?::\d\d(?::\d\d(?:\.\d{1,9})?)?)?)?(?:[Zz]|[+-]\d\d:\d\d)?)$")


def _env(entries: list[str]) -> list[str]:
    """docker's -e: KEY=VALUE as given; a bare KEY takes the value from this (the controller's) environment."""
    from agent_payload import containeropts, errors

    try:
        return containeropts.resolve_env(entries, os.environ.get)
    except errors.InvalidArgument as exc:
        raise UsageError(exc.message) from None


def check_time(flag: str, value: str | None) -> None:
    """A --since/--until value's shape (UsageError naming the flag); the exact parse happens on each host (its
    clock)."""
    if value and not _TIME_SHAPE.match(value.strip()):
        raise UsageError('invalid value for {}: failed to parse value as time or duration: "{}"'.format(flag, value))


def log_printer(hosts, timestamps: bool = False, prefix: bool | None = None, colour: bool = False):
    """Print the containers' output (``log`` events) byte for byte: raw for one host when stdout is not a
    terminal, else ``host | line`` (``prefix`` True/False: --prefix/--no-prefix; ``colour``: a colour per host
    on a terminal).  Returns the render/streams.Printer (call its ``flush`` at the end)."""
    from fleet.render import colours, streams

    prefixes = None
    if colour:
        names = [h.name for h in hosts]
        prefixes = {name: colours.HostPrefix(names, colours.enabled(s))
                    for name, s in (("stdout", sys.stdout), ("stderr", sys.stderr))}
    return streams.Printer(hosts, streams.raw_wanted(hosts, prefix), timestamps, prefixes, events=("log",))


def run(session: Session, patterns: list[str], spec: RunSpec, as_json: bool, prefix: bool | None = None,
        sig_proxy: bool = True) -> int:
    """Create and start a container on every selected host (pulling the image where missing).

    Attached: the containers' output as ``log_printer`` prints it, signals forwarded to them (commands/sigproxy).
    """
    from fleet.commands.sigproxy import SignalProxy

    detach = bool(spec.detach)
    args = spec.op_args()
    hosts = session.select(patterns)
    attached_stdio = not detach and (spec.stdio.tty or spec.stdio.open_stdin)
    if attached_stdio and spec.cidfile is not None:
        raise UsageError("--cidfile with an attached -i/-t run is not supported by fleet: use -d, or create "
                         "--cidfile then start -a")
    cidfile = CidFile.claim(spec.cidfile, hosts)  # --cidfile: one host; an existing file refused, nothing done
    if attached_stdio:  # run -i/-t: attached (commands/interactive)
        from fleet.commands import interactive
        if as_json:
            raise UsageError("--json cannot be combined with -i/--interactive or -t/--tty without -d")
        return interactive.run_attached(session, hosts, args, prefix, sig_proxy)
    progress = progress_printer(as_json)
    logs = log_printer(hosts, prefix=prefix)
    proxy = SignalProxy(session, hosts, enabled=sig_proxy and not detach)

    def on_event(host, event, data):
        cidfile.on_event(host, event, data)
        if event == "container":
            proxy.on_event(host, event, data)
        else:
            (logs if event == "log" else progress)(host, event, data)

    results = []
    try:
        with proxy:
            results = session.run_hosts(hosts, "run", args, on_event, bounded=detach)
    finally:
        cidfile.finish(results)
        logs.flush()
    # one host: stdout is docker's (the full ID after -d; the container's output alone when attached) and the
    # summary, if any, goes to stderr; several hosts: the table on stdout
    one = len(hosts) == 1
    if as_json:
        output(tables.to_json(results))
    elif detach and one and results[0].ok:
        output(results[0].data["id"])
    elif detach:
        (note if one else output)(tables.host_table(
            ["CONTAINER ID", "NAME", "IMAGE", "PORTS"], results,
            lambda d: [[tables.short_id(d["id"]), d["name"], d["image"], d.get("ports") or ""]]))
    else:
        (note if one else output)(tables.host_table(["CONTAINER ID", "NAME", "EXIT CODE"], results,
                                                    lambda d: [[tables.short_id(d["id"]), d["name"], d["exit_code"]]]))
    failed = run_status(results)
    if failed is not None:
        return failed
    if not detach:
        codes = [r.data.get("exit_code") or 0 for r in results]
        if len(codes) == 1:
            return codes[0]  # docker run returns the container's status
        return 0 if not any(codes) else 1
    return 0


def _ellipsis_quoted(command: str, width: int = 20) -> str:
    """docker's COMMAND column: the text inside the quotes is cut to ``width`` characters, ending in "…"."""
    inner = command[1:-1] if len(command) >= 2 and command[0] == command[-1] == '"' else command
    if len(inner) > width:
        inner = inner[:width - 1] + "…"
    return '"' + inner + '"'


def ps_args(all_: bool, filters: list[str], last: int | None, latest: bool, size: bool) -> dict:
    """The ``ps`` op args, checked here (filter keys and values, -n) so bad input exits 2 before any host."""
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError('bad format of filter (expected name=value): "{}"'.format(item))
        if key not in PS_FILTER_KEYS:
            raise UsageError("invalid filter '{}'".format(key))
        if (key == "status" and value not in PS_STATUSES) or (key == "exited" and not _INT.match(value)):
            raise UsageError("invalid filter '{}={}'".format(key, value))
        if key == "health" and value not in PS_HEALTH:
            raise UsageError("Unrecognised filter value for health: {}".format(value))
    if latest:
        last = 1  # docker: -l is -n 1
    args = {"all": all_}  # only the flags given travel: the payload's defaults are docker's
    if filters:
        args["filters"] = list(filters)
    if last is not None and last > 0:
        args["last"] = last
    if size:
        args["size"] = True
    return args


def ps_formatted(session: Session, patterns: list[str], args: dict, no_trunc: bool, fmt: str) -> int:
    """``ps --format``: docker's container fields through the shared formatter; a format that reads ``.Size``
    (``{{json .}}`` does) has the hosts compute sizes, as ``-s`` (docker sets --size the same way)."""
    from fleet.commands.images import print_formatted
    from fleet.render import formatting

    formatter = formatting.compile_format(fmt, formatting.CONTAINER_FIELDS)
    if formatter.uses("Size"):
        args = dict(args, size=True)
    results = session.run(patterns, "ps", args)
    print_formatted(results, formatter,
                    lambda host, d: [formatting.container_row(host, c, no_trunc) for c in d["containers"]])
    return exit_status(results)


def ps(session: Session, patterns: list[str], all_: bool, quiet: bool, no_trunc: bool, as_json: bool,
       filters: list[str] | None = None, last: int | None = None, latest: bool = False, size: bool = False,
       fmt: str | None = None) -> int:
    """List containers on every selected host, docker's columns after HOST (-s adds SIZE)."""
    args = ps_args(all_, list(filters or []), last, latest, size)
    if fmt is not None and not as_json and quiet:  # docker: -q wins over a custom format (still checked)
        from fleet.render import formatting
        formatting.compile_format(fmt, formatting.CONTAINER_FIELDS)
        note("WARNING: Ignoring custom format, because both --format and --quiet are set.")
    elif fmt is not None and not as_json:
        return ps_formatted(session, patterns, args, no_trunc, fmt)
    results = session.run(patterns, "ps", args)
    if as_json:
        output(tables.to_json(results))
    elif quiet:
        text = tables.bare_ids(results, lambda d: [c["id"] if no_trunc else c["id"][:12] for c in d["containers"]])
        if text:
            output(text)
        for r in results:
            if not r.ok:
                note("{}: {}".format(r.host.name, tables.error_text(r.error)))
    else:
        def rows(d):
            return [[c["id"] if no_trunc else c["id"][:12], c["image"],
                     c["command"] if no_trunc else _ellipsis_quoted(c["command"]),
                     tables.ago(c.get("created")), c["status"], c.get("ports") or "", c["name"]]
                    + ([c.get("size", "")] if size else [])
                    for c in d["containers"]]
        output(tables.host_table(PS_HEADERS + (["SIZE"] if size else []), results, rows))
    return exit_status(results)


def logs(session: Session, patterns: list[str], container: str, tail: str, follow: bool, timestamps: bool,
         since: str | None = None, until: str | None = None, details: bool = False, retry: bool = False,
         prefix: bool | None = None) -> int:
    """Show one container's logs from every selected host, each line prefixed with its host (coloured per host
    on a terminal); following, the hosts' lines are merged by arrival.  One host and stdout not a terminal: the
    bytes as logged, no prefix (``prefix``: --prefix/--no-prefix force either way).

    ``since``/``until``: RFC 3339, unix seconds or a duration relative to each host's clock ("10m").
    ``details``: docker's extra log attributes; json-file logs without log-opts have none, so nothing is added.
    ``retry`` (with ``follow``): a host whose stream breaks is reported and re-attached (``_follow_retrying``).
    """
    check_time("--since", since)
    check_time("--until", until)
    if tail == "all":
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise UsageError('invalid value for --tail: "{}" (a number or "all")'.format(tail)) from None
        if tail_n < 0:
            tail_n = None  # docker treats a negative tail as "all"
    if retry and not follow:
        raise UsageError("--retry re-attaches a followed stream: it needs -f/--follow")
    hosts = session.select(patterns)
    printer = log_printer(hosts, timestamps, prefix, colour=True)
    args = {"container": container, "tail": tail_n, "follow": follow, "timestamps": timestamps,
            "since": since or None, "until": until or None, "details": details}
    try:
        if retry:
            results = _follow_retrying(session, hosts, args, printer)
        else:
            results = session.run_hosts(hosts, "logs", args, printer, bounded=not follow)
    finally:
        printer.flush()
    for r in results:
        if not r.ok:
            note("{} | error: {}".format(r.host.name, tables.error_text(r.error)))
    return exit_status(results)


RETRY_DELAY = 1.0  #: seconds between re-attach attempts of a host whose stream broke


def since_after(stamp: str) -> str:
    """The ``--since`` (unix seconds with nanoseconds) just after a log line's RFC 3339 UTC time: a re-attached
    stream starts after the last line shown (docker's since is inclusive; its granularity is the nanosecond)."""
    import calendar

    day, _, rest = stamp.rstrip("Z").partition("T")
    clock, _, frac = rest.partition(".")
    secs = calendar.timegm(tuple(int(x) for x in day.split("-") + clock.split(":")) + (0, 0, 0))
    ns = secs * 10 ** 9 + int(frac.ljust(9, "0")[:9] or 0) + 1
    return "{}.{:09d}".format(ns // 10 ** 9, ns % 10 ** 9)


def _follow_retrying(session: Session, hosts, args: dict, printer):
    """``logs -f --retry``: every host streams at once; a host whose stream breaks (its SSH connection or the
    payload gone) is reported on stderr and re-attached after RETRY_DELAY, from just after the last line it
    showed, while the others keep flowing.  A host ends when its container's log ends or the payload refuses the
    request (no such container); Ctrl-C ends all."""
    import asyncio

    from fleet.commands.common import raise_if_rejected_input
    from fleet.errors import PayloadCrash, TransportError
    from fleet.transport import fanout, invoke
    from fleet.transport.pyzcache import current as build

    opts, payload, wanted = session.run_options(bounded=False), build(), args["timestamps"]

    async def one(host):
        host_args, last = dict(args, timestamps=True), None  # the payload stamps each line: where to resume

        def on_event(name, data):
            nonlocal last
            if name == "log" and data.get("time"):
                last = data["time"]
            printer(host, name, data if wanted else dict(data, time=None))
        while True:
            res = await fanout.on_host(host, lambda conn: invoke.call(conn, host, payload, "logs", host_args,
                                                                      on_event), opts.ssh, None)
            if res.ok or not isinstance(res.error, (TransportError, PayloadCrash)):
                return res
            note("{} | stream broke ({}); re-attaching".format(host.name, tables.error_text(res.error)))
            if last is not None:
                host_args = dict(host_args, since=since_after(last), tail=None)
            await asyncio.sleep(RETRY_DELAY)

    async def all_hosts():
        return await asyncio.gather(*(one(h) for h in hosts))
    results = asyncio.run(all_hosts())
    raise_if_rejected_input(results)
    return results


def _lifecycle(session, patterns, op, args, key, as_json, ignore_missing=False):
    """stop/rm: one row per host and name (docker acts on each name); 1 if a host or any name failed (a
    missing name does not count with ``ignore_missing``: ``rm -f``)."""
    results = session.run(patterns, op, args)
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.name_table(["CONTAINER", "RESULT"], results, key, key))
    return 1 if tables.names_failed(results, ignore_missing) else 0


def stop(session: Session, patterns: list[str], containers: list[str], time: int | None, as_json: bool) -> int:
    """Stop containers (stop signal, then SIGKILL after --time seconds; None: each one's --stop-timeout or 10)."""
    if time is not None and time < 0:
        raise UsageError("--time must be >= 0")
    return _lifecycle(session, patterns, "stop", {"containers": containers, "time": time}, "stopped", as_json)


def rm(session: Session, patterns: list[str], containers: list[str], force: bool, as_json: bool,
       volumes: bool = False) -> int:
    """Remove containers (-f kills running ones first; -v their anonymous volumes too)."""
    args = {"containers": containers, "force": force}
    if volumes:
        args["volumes"] = True  # only when asked: an older payload ignores unknown args anyway
    # docker rm -f: a name that does not exist is reported and does not fail the command (docker/cli rm.go)
    return _lifecycle(session, patterns, "rm", args, "removed", as_json, ignore_missing=force)
