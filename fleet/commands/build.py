"""``fleet build``: docker build's CLI side (cli/command/image/build.go) for many hosts.

Everything that can be checked here is, before any host is contacted (exit 2, nothing sent): the tags, the
flags, the context (fleet/build/context.py) and the Dockerfile (agent_payload/build/dockerfile.py: syntax,
--target).  Then on each host, in parallel: the context is uploaded unless the host has it (fleet/build/
upload.py) and the payload's ``build`` op runs it, its output streamed as docker's classic builder prints it (one
host: as it is; several: ``host | `` before each line).  ``-q`` prints the image ID only (one line per host,
prefixed when several).  ``--iidfile`` is written on this machine: with several hosts only when they all built
the same image ID (SOURCE_DATE_EPOCH makes builds reproducible); different IDs leave no file and exit 1.
"""

from __future__ import annotations

import os
import sys

from fleet.commands.common import Session, exit_status, note, raise_if_rejected_input
from fleet.errors import UsageError

NETWORKS = ("default", "none", "host")


def parse_build_args(values: list[str], environ=None) -> dict:
    """--build-arg K=V, or K alone: its value from this environment, else null (the ARG's default), as docker."""
    environ = os.environ if environ is None else environ
    out: dict = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise UsageError('invalid argument "{}" for "--build-arg" flag: invalid environment variable: {}'.format(
                value, value))
        out[key] = val if sep else environ.get(key)
    return out


def parse_labels(values: list[str]) -> dict:
    """--label K=V (K alone: an empty value, as docker's ConvertKVStringsToMap)."""
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise UsageError('invalid argument "{}" for "--label" flag: invalid label: empty key'.format(value))
        out[key] = val
    return out


def _source_date_epoch(build_args: dict, environ) -> int | None:
    raw = build_args.get("SOURCE_DATE_EPOCH")
    if raw is None:
        raw = environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise UsageError("invalid SOURCE_DATE_EPOCH {!r}: a number of seconds since the epoch".format(raw)) from None
    if value < 0:
        raise UsageError("invalid SOURCE_DATE_EPOCH {!r}: a number of seconds since the epoch".format(raw))
    return value


class StreamPrinter:
    """The ``build`` events' text on stdout: raw for one host, ``host | `` before each line for several."""

    def __init__(self, names: list[str], out=None) -> None:
        from fleet.render import colours

        self.out = out or sys.stdout
        self.several = len(names) > 1
        self.prefix = colours.HostPrefix(names, colours.enabled(self.out))
        self.partial: dict = {}

    def write(self, host: str, text: str) -> None:
        if not self.several:
            self.out.write(text)
            self.out.flush()
            return
        buf = self.partial.get(host, "") + text
        *lines, rest = buf.split("\n")
        self.partial[host] = rest
        for line in lines:
            self.out.write(self.prefix(host) + line + "\n")
        self.out.flush()

    def flush_host(self, host: str) -> None:
        rest = self.partial.pop(host, "")
        if rest:
            self.out.write(self.prefix(host) + rest + "\n")
            self.out.flush()


def build(session: Session, patterns: list[str], source: str, tags: list[str], dockerfile: str | None,
          build_args: list[str], target: str | None, labels: list[str], no_cache: bool, pull: bool,
          network: str | None, quiet: bool, iidfile: str | None, platform: str | None, rm: bool,
          force_rm: bool, stdin=None, environ=None) -> int:
    """Build the image of SOURCE's Dockerfile on every selected host (see the module docstring)."""
    from agent_payload.build import dockerfile as parser
    from fleet.build import context
    from fleet.commands.images import validate_reference

    environ = os.environ if environ is None else environ
    for tag in tags:
        try:
            validate_reference(tag)
        except UsageError as exc:
            raise UsageError('invalid argument "{}" for "-t, --tag" flag: {}'.format(tag, exc)) from None
    if network is not None and network not in NETWORKS:
        raise UsageError('invalid --network "{}": fleet build takes {}'.format(network, ", ".join(NETWORKS)))
    args_map = parse_build_args(build_args, environ)
    label_map = parse_labels(labels)
    epoch = _source_date_epoch(args_map, environ)
    hosts = session.select(patterns)
    ctx = context.prepare(source, dockerfile, stdin)
    try:
        try:
            df = parser.parse(ctx.text, ctx.filename)
            if target:
                df.stage(target)
        except parser.DockerfileError as exc:
            raise UsageError(str(exc)) from None
        if iidfile:
            try:
                os.unlink(iidfile)  # docker removes it first: a failed build leaves none
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise UsageError("Removing image ID file: {}".format(exc)) from None
        warning = context.size_warning(ctx, source)
        if warning:
            note(warning)
        if not quiet:
            sys.stdout.write(context.sending_line(ctx.size))
            sys.stdout.flush()
        request = {"context": ctx.sha256, "dockerfile": ctx.dockerfile, "build_args": args_map,
                   "target": target or None, "tags": list(tags), "labels": label_map, "no_cache": no_cache,
                   "pull": pull, "network": network, "quiet": quiet, "platform": platform or None,
                   "source_date_epoch": epoch, "rm": rm, "force_rm": force_rm}
        results = _run(session, hosts, ctx, request, quiet)
    finally:
        ctx.close()
    raise_if_rejected_input(results)
    return _finish(results, quiet, iidfile)


def _run(session, hosts, ctx, request, quiet):
    from fleet.build.upload import ensure_context
    from fleet.transport import files, invoke

    printer = StreamPrinter([h.name for h in hosts])

    async def work(conn, host, payload):
        sent = await ensure_context(conn, host, payload, ctx)

        def on_event(name, data):
            if name == "build" and isinstance(data, dict) and not quiet and isinstance(data.get("stream"), str):
                printer.write(host.name, data["stream"])
        try:
            data = (await invoke.call(conn, host, payload, "build", request, on_event)).data
        finally:
            printer.flush_host(host.name)
        return dict(data, context_sent=sent)

    return files.run_on_hosts(hosts, work, session.run_options(bounded=False))


def _finish(results, quiet: bool, iidfile: str | None) -> int:
    from fleet.render import colours, tables

    several = len(results) > 1
    prefix = colours.HostPrefix([r.host.name for r in results], colours.enabled(sys.stdout))
    for r in results:
        if not r.ok:
            note("{}: {}".format(r.host.name, tables.error_text(r.error)))
        elif quiet:
            sys.stdout.write((prefix(r.host.name) if several else "") + str(r.data.get("id")) + "\n")
    sys.stdout.flush()
    status = exit_status(results)
    if iidfile and status == 0:
        ids = {r.data.get("id") for r in results}
        if len(ids) != 1:
            note("fleet: error: --iidfile: the hosts built different image IDs ({}); {} not written".format(
                ", ".join("{}={}".format(r.host.name, r.data.get("id")) for r in results), iidfile))
            return 1
        with open(iidfile, "w") as f:
            f.write(ids.pop())
    return status
