"""Container lifecycle commands across hosts: create, start, restart, kill, wait, rename, inspect, top, diff,
export, container prune, update, stats, pause, unpause, exec (run/create's flags: runflags.py).

Flags are checked here first, so bad input exits 2 before any host is contacted.
"""

from __future__ import annotations

import sys
import time as _time

from agent_payload import containeropts
from fleet.commands.common import Session, exit_status, inspect_output, note, output
from fleet.commands.images import confirm, host_errors, progress_printer
from fleet.commands.runflags import RunSpec
from fleet.errors import UsageError
from fleet.render import tables

PRUNE_WARNING = "WARNING! This will remove all stopped containers."


def create(session: Session, patterns: list[str], spec: RunSpec, as_json: bool) -> int:
    """Create (but do not start) a container on every selected host, pulling the image where missing.

    One host: stdout is docker's, the full ID alone (the table of a failure goes to stderr), as ``run -d``."""
    from fleet.commands.runflags import CidFile

    hosts = session.select(patterns)
    cidfile = CidFile.claim(spec.cidfile, hosts)  # --cidfile: one host; an existing file refused, nothing done
    results = []
    try:
        results = session.run_hosts(hosts, "create", spec.op_args(), progress_printer(as_json))
    finally:
        cidfile.finish(results)
    one = len(results) == 1
    if as_json:
        output(tables.to_json(results))
    elif one and results[0].ok:
        output(results[0].data["id"])
    else:
        (note if one else output)(tables.host_table(["CONTAINER ID", "NAME", "IMAGE"], results,
                                                    lambda d: [[tables.short_id(d["id"]), d["name"], d["image"]]]))
    return exit_status(results)


def _result_table(results, key: str, label: str, as_json: bool) -> int:
    """One row per host and container name (docker acts on each name); 1 if a host or any name failed."""
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.name_table(["CONTAINER", "RESULT"], results, key, label))
    return 1 if tables.names_failed(results) else exit_status(results)


def start(session: Session, patterns: list[str], containers: list[str], attach: bool, as_json: bool,
          prefix: bool | None = None, sig_proxy: bool = True) -> int:
    """Start containers; -a (one container) streams its output and returns its exit code as docker does
    (signals forwarded to it unless ``sig_proxy`` is off: commands/sigproxy)."""
    from fleet.commands.containers import log_printer
    from fleet.commands.sigproxy import SignalProxy

    if not containers:
        raise UsageError("start needs at least one container")
    if attach and len(containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    args = {"containers": list(containers), "attach": attach}
    if not attach:
        results = session.run(patterns, "start", args)
        status = _result_table(results, "started", "started", as_json)
        failed = [] if as_json else tables.failed_names(results, containers)
        if failed:  # docker start's last line, after each name's own error
            note("Error: failed to start containers: " + ", ".join(failed))
        return status
    hosts = session.select(patterns)
    printer = log_printer(hosts, prefix=prefix)
    try:
        with SignalProxy(session, hosts, {h.name: containers[0] for h in hosts}, enabled=sig_proxy):
            results = session.run_hosts(hosts, "start", args, printer, bounded=False)
    finally:
        printer.flush()
    if as_json:
        output(tables.to_json(results))
    else:
        host_errors(results)
    status = exit_status(results)
    if status == 0:
        codes = [r.data.get("exit_code") or 0 for r in results]
        return codes[0] if len(codes) == 1 else (0 if not any(codes) else 1)
    return status


def restart(session: Session, patterns: list[str], containers: list[str], time: int | None, as_json: bool) -> int:
    """Restart containers: stop (SIGKILL after --time seconds; None: each one's --stop-timeout or 10), then start."""
    if time is not None and time < 0:
        raise UsageError("--time must be >= 0")
    results = session.run(patterns, "restart", {"containers": list(containers), "time": time})
    return _result_table(results, "restarted", "restarted", as_json)


def kill(session: Session, patterns: list[str], containers: list[str], signal: str, as_json: bool) -> int:
    """Send a signal (default KILL) to running containers."""
    if not containeropts.valid_signal(signal):
        raise UsageError("Invalid signal: {}".format(signal))
    results = session.run(patterns, "kill", {"containers": list(containers), "signal": signal})
    return _result_table(results, "killed", "killed", as_json)


def wait(session: Session, patterns: list[str], containers: list[str], as_json: bool) -> int:
    """Block until the containers exit on every host; print their exit codes (no time limit)."""
    results = session.run(patterns, "wait", {"containers": list(containers)}, bounded=False)
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["CONTAINER", "EXIT CODE"], results,
                                 lambda d: [[tables.short_id(e["id"]), e["exit_code"]] for e in d["exited"]]))
    return exit_status(results)


def rename(session: Session, patterns: list[str], old: str, new: str, as_json: bool) -> int:
    """Rename a container on every selected host."""
    if not old or not new:
        raise UsageError("Neither old nor new names may be empty")
    results = session.run(patterns, "rename", {"container": old, "name": new})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["CONTAINER", "OLD NAME", "NAME"], results,
                                 lambda d: [[tables.short_id(d["id"]), d["old_name"], d["name"]]]))
    return exit_status(results)


INSPECT_TYPES = ("container", "image")


def inspect(session: Session, patterns: list[str], containers: list[str], type_: str | None = None,
            fmt: str | None = None) -> int:
    """docker's inspect objects (containers, then images; --type keeps to one) as one JSON list, each with the
    host it came from; a name not found on a host is on stderr (docker's "Error: No such object: x"), exit 1.
    ``fmt`` (-f): a Go template rendered per object (render/formatting.compile_inspect)."""
    from fleet.render import formatting

    template = formatting.compile_inspect(fmt)
    if not containers:
        raise UsageError("inspect needs at least one container")
    if type_ is not None and type_ not in INSPECT_TYPES:
        raise UsageError('"{}" is not a valid value for --type'.format(type_))
    args = {"containers": list(containers)}
    if type_ is not None:
        args["type"] = type_
    return inspect_output(session.run(patterns, "inspect", args), "containers", template)


def top(session: Session, patterns: list[str], container: str, as_json: bool, ps_args: list[str] | None = None) -> int:
    """The processes of a running container on every host (ps's columns for ``ps_args``, default -ef, after
    HOST)."""
    results = session.run(patterns, "top", {"container": container, "ps_args": list(ps_args or [])})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    titles = next((r.data["titles"] for r in results if r.ok), ["UID", "PID", "PPID", "C", "STIME", "TTY",
                                                                   "TIME", "CMD"])
    output(tables.host_table(list(titles), results, lambda d: d["processes"]))
    return exit_status(results)


def diff(session: Session, patterns: list[str], container: str, as_json: bool) -> int:
    """Files added (A), changed (C) and deleted (D) in a container's filesystem on every host."""
    results = session.run(patterns, "diff", {"container": container})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["KIND", "PATH"], results,
                                 lambda d: [[c["kind"], c["path"]] for c in d["changes"]]))
    return exit_status(results)


def export(session: Session, patterns: list[str], container: str, output_path: str | None, force: bool,
           as_json: bool) -> int:
    """Write the container's filesystem as a tar to OUTPUT on each host; without -o, to stdout (one host)."""
    if not output_path:
        from fleet.commands import transfer
        return transfer.export_stdout(session, patterns, container)
    if not output_path.startswith("/") or output_path.endswith("/"):
        raise UsageError('--output must be an absolute file path on the hosts: "{}"'.format(output_path))
    results = session.run(patterns, "export", {"container": container, "output": output_path, "force": force})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["OUTPUT", "SIZE", "SHA256"], results,
                                 lambda d: [[d["output"], tables.human_size(d["size"]), d["sha256"]]]))
    return exit_status(results)


def container_prune(session: Session, patterns: list[str], force: bool, as_json: bool, stdin=None) -> int:
    """Remove all stopped containers on every selected host (asks first unless -f, as docker)."""
    stdin = stdin or sys.stdin
    hosts = session.select(patterns)
    if not force:
        if not stdin.isatty():
            raise UsageError("container prune asks for confirmation and stdin is not a terminal: pass -f/--force")
        if not confirm(PRUNE_WARNING, stdin):
            return 0
    results = session.run_hosts(hosts, "container_prune", {})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    if any(not r.ok or r.data.get("deleted") for r in results):
        output("Deleted Containers:")
        output(tables.host_table(["CONTAINER"], results, lambda d: [[cid] for cid in d.get("deleted", [])]))
    total = sum(r.data.get("reclaimed") or 0 for r in results if r.ok)
    output("Total reclaimed space: {}".format(tables.human_size(total)))
    return exit_status(results)


# ---- resources: --memory/--cpus/... on run, create and update; stats; pause/unpause

STATS_HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
STATS_REFRESH = 2.0


def update(session: Session, patterns: list[str], containers: list[str], resources: dict, as_json: bool) -> int:
    """Change resource limits of containers on every selected host (live on running ones, as docker)."""
    if all(v is None for v in resources.values()):
        raise UsageError("you must provide one or more flags when using this command")
    if resources.get("restart") is not None and not resources["restart"].strip():
        raise UsageError('invalid argument "" for "--restart" flag: empty')
    results = session.run(patterns, "update", dict(resources, containers=list(containers)))
    for r in results:
        for warning in (r.data or {}).get("warnings", []) if r.ok else []:
            sys.stderr.write("{} | WARNING: {}\n".format(r.host.name, warning))
    return _result_table(results, "updated", "updated", as_json)


def bytes_size(n: float) -> str:
    """go-units BytesSize, docker stats' memory column: binary units, %.4g (1.5MiB, 32MiB, 0B)."""
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024.0
    return "{:.4g}{}".format(n, unit)


def stats_row(d: dict) -> list:
    """docker stats' columns (after HOST) for one sample."""
    return [tables.short_id(d["id"]), d["name"], "{:.2f}%".format(d["cpu_percent"]),
            "{} / {}".format(bytes_size(d["memory_usage"]), bytes_size(d["memory_limit"])),
            "{:.2f}%".format(d["memory_percent"]),
            "{} / {}".format(tables.human_size(d["net_rx"]), tables.human_size(d["net_tx"])),
            "{} / {}".format(tables.human_size(d["block_read"]), tables.human_size(d["block_write"])),
            str(d["pids"])]


def stats_fields(host: str, d: dict, containers: list[str]) -> dict:
    """``stats --format``'s fields of one sample (docker's statsContext; Container is the name given, or the
    short ID when none was)."""
    given = next((c for c in containers if c in (d["name"], d["id"]) or d["id"].startswith(c)), None)
    row = dict(zip(["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"], stats_row(d)))
    row.update(Host=host, Container=given or tables.short_id(d["id"]), Name=d["name"] or "--")
    return row


def stats(session: Session, patterns: list[str], containers: list[str], all_: bool, no_stream: bool,
          as_json: bool, stdout=None, sleep=_time.sleep, fmt: str | None = None) -> int:
    """Resource usage per container on every host; without --no-stream refresh every ~2 s until Ctrl-C.
    ``fmt``: docker's --format (a Go template over stats_fields; ``table`` for a header)."""
    from fleet.render import formatting

    formatter = formatting.compile_format(fmt, formatting.STATS_FIELDS) if fmt is not None and not as_json else None
    stdout = stdout or sys.stdout
    hosts = session.select(patterns)
    args = {"containers": list(containers), "all": all_}
    while True:
        results = session.run_hosts(hosts, "stats", args)
        if as_json:
            text = tables.to_json(results)
        elif formatter is not None:
            text = formatter.render([stats_fields(r.host.name, x, containers) for r in results if r.ok
                                     for x in r.data["stats"]])
            host_errors(results)
        else:
            text = tables.host_table(STATS_HEADERS, results, lambda d: [stats_row(x) for x in d["stats"]])
        if not no_stream and stdout.isatty():
            stdout.write("\033[2J\033[H")  # docker clears the screen between refreshes on a terminal
        if text or formatter is None or formatter.table:
            output(text)
        if no_stream:
            return exit_status(results)
        sleep(STATS_REFRESH)


def pause(session: Session, patterns: list[str], containers: list[str], as_json: bool) -> int:
    """Freeze every process of containers on every selected host."""
    results = session.run(patterns, "pause", {"containers": list(containers)})
    return _result_table(results, "paused", "paused", as_json)


def unpause(session: Session, patterns: list[str], containers: list[str], as_json: bool) -> int:
    """Thaw paused containers on every selected host."""
    results = session.run(patterns, "unpause", {"containers": list(containers)})
    return _result_table(results, "unpaused", "unpaused", as_json)


def exec_(session: Session, patterns: list[str], container: str, command: list[str], detach: bool, env: list[str],
          workdir: str | None, user: str | None, privileged: bool, as_json: bool, interactive: bool = False,
          tty: bool = False, prefix: bool | None = None) -> int:
    """docker exec on every selected host: output lines prefixed with the host (one host and stdout not a
    terminal: the bytes alone; ``prefix``: --prefix/--no-prefix), no time limit.

    -i/-t go to fleet.commands.interactive (stdin forwarded; -t: a TTY on exactly one host).

    Exit status: the command's for one host (docker's), else 1 if any host failed or any code was not 0.
    With -d the host PID of each started process is printed (it is reaped by the host's init, not fleet).
    """
    from fleet.commands.containers import _env, log_printer

    if not container:
        raise UsageError("exec needs a container")
    if not command or not command[0]:
        raise UsageError("exec needs a command: fleet exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError('the working directory "{}" is invalid, it needs to be an absolute path'.format(workdir))
    if user is not None and not user:
        raise UsageError("invalid --user: empty")
    args = {"container": container, "command": list(command), "env": _env(env), "workdir": workdir, "user": user,
            "detach": detach, "privileged": privileged}
    if interactive or tty:
        from fleet.commands import interactive as interactive_cmd
        if detach:
            raise UsageError("-d/--detach cannot be combined with -i/--interactive or -t/--tty")
        if as_json:
            raise UsageError("--json cannot be combined with -i/--interactive or -t/--tty")
        return interactive_cmd.exec_interactive(session, patterns, container, args, interactive, tty, prefix)
    hosts = session.select(patterns)
    on_event = None if as_json else log_printer(hosts, prefix=prefix)
    try:
        results = session.run_hosts(hosts, "exec", args, on_event, bounded=detach)
    finally:
        if on_event is not None:
            on_event.flush()
    if as_json:
        output(tables.to_json(results))
    elif detach:
        output(tables.host_table(["CONTAINER", "PID"], results, lambda d: [[container, d["pid"]]]))
    else:
        host_errors(results)
    status = exit_status(results)
    if status != 0 or detach:
        return status
    codes = [r.data.get("exit_code") or 0 for r in results]
    return codes[0] if len(codes) == 1 else (0 if not any(codes) else 1)


def boot(session: Session, patterns: list[str], as_json: bool) -> int:
    """``fleet system boot``: start what the restart policies want up after a reboot (the hook's job) per host."""
    results = session.run(patterns, "boot", {})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["CONTAINER", "RESULT"], results, lambda d: (
            [[tables.short_id(cid), "started"] for cid in d["started"]]
            + [[tables.short_id(f["id"]), "failed: " + f["error"]] for f in d["failed"]])))
    return exit_status(results)
