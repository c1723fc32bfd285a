"""Container commands across hosts: run, ps, logs, stop, rm."""

from __future__ import annotations

import os
import sys

from fleet.commands.common import Session, exit_status, note, output
from fleet.commands.images import progress_printer, validate_reference
from fleet.errors import UsageError
from fleet.render import tables

PS_HEADERS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]


def _env(entries: list[str]) -> list[str]:
    """docker's -e: KEY=VALUE as given; a bare KEY takes the value from this (the controller's) environment."""
    out = []
    for entry in entries:
        key = entry.split("=", 1)[0]
        if not key or any(c.isspace() for c in key):
            raise UsageError('invalid environment variable "{}": expected KEY=VALUE or KEY'.format(entry))
        if "=" in entry:
            out.append(entry)
        elif key in os.environ:
            out.append("{}={}".format(key, os.environ[key]))
    return out


def log_printer(prefix_width: int, timestamps: bool):
    """Print log events as ``host | line`` on stdout/stderr as the container wrote them."""
    def on_event(host, name, data):
        if name != "log":
            return
        stream = sys.stderr if data.get("stream") == "stderr" else sys.stdout
        stamp = data.get("time", "") + " " if timestamps else ""
        line = data.get("line", "")
        if not line.endswith("\n"):
            line += "\n"
        stream.write("{} | {}{}".format(host.name.ljust(prefix_width), stamp, line))
        stream.flush()
    return on_event


def run(session: Session, patterns: list[str], image: str, command: list[str], detach: bool, name: str | None,
        rm: bool, env: list[str], entrypoint: str | None, workdir: str | None, hostname: str | None,
        as_json: bool) -> int:
    """Create and start a container on every selected host (pulling the image where missing)."""
    validate_reference(image)
    if name is not None and not name:
        raise UsageError("invalid container name: empty")
    args = {"image": image, "command": command or None, "detach": detach, "name": name, "rm": rm,
            "env": _env(env), "entrypoint": None if entrypoint is None else [entrypoint],
            "workdir": workdir, "hostname": hostname}
    hosts = session.select(patterns)
    width = max(len(h.name) for h in hosts)
    progress = progress_printer(as_json)
    logs = log_printer(width, False)

    def on_event(host, event, data):
        (logs if event == "log" else progress)(host, event, data)

    results = session.run_hosts(hosts, "run", args, on_event, bounded=detach)
    if as_json:
        output(tables.to_json(results))
    elif detach:
        output(tables.host_table(["CONTAINER ID", "NAME", "IMAGE"], results,
                                 lambda d: [[tables.short_id(d["id"]), d["name"], d["image"]]]))
    else:
        output(tables.host_table(["CONTAINER ID", "NAME", "EXIT CODE"], results,
                                 lambda d: [[tables.short_id(d["id"]), d["name"], d["exit_code"]]]))
    status = exit_status(results)
    if status == 0 and not detach:
        codes = [r.data.get("exit_code") or 0 for r in results]
        if len(codes) == 1:
            return codes[0]  # docker run returns the container's status
        return 0 if not any(codes) else 1
    return status


def _ellipsis_quoted(command: str, width: int = 20) -> str:
    """docker's COMMAND column: the text inside the quotes is cut to ``width`` characters, ending in "…"."""
    inner = command[1:-1] if len(command) >= 2 and command[0] == command[-1] == '"' else command
    if len(inner) > width:
        inner = inner[:width - 1] + "…"
    return '"' + inner + '"'


def ps(session: Session, patterns: list[str], all_: bool, quiet: bool, no_trunc: bool, as_json: bool) -> int:
    """List containers on every selected host, docker's columns after HOST."""
    results = session.run(patterns, "ps", {"all": all_})
    if as_json:
        output(tables.to_json(results))
    elif quiet:
        text = "\n".join("{} {}".format(r.host.name, c["id"] if no_trunc else c["id"][:12])
                         for r in results if r.ok for c in r.data["containers"])
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
                    for c in d["containers"]]
        output(tables.host_table(PS_HEADERS, results, rows))
    return exit_status(results)


def logs(session: Session, patterns: list[str], container: str, tail: str, follow: bool, timestamps: bool) -> int:
    """Show one container's logs from every selected host, each line prefixed with its host."""
    if tail == "all":
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise UsageError('invalid value for --tail: "{}" (a number or "all")'.format(tail)) from None
        if tail_n < 0:
            tail_n = None  # docker treats a negative tail as "all"
    hosts = session.select(patterns)
    results = session.run_hosts(hosts, "logs", {"container": container, "tail": tail_n, "follow": follow,
                                                "timestamps": timestamps},
                                log_printer(max(len(h.name) for h in hosts), timestamps), bounded=not follow)
    for r in results:
        if not r.ok:
            note("{} | error: {}".format(r.host.name, tables.error_text(r.error)))
    return exit_status(results)


def _lifecycle(session, patterns, op, args, key, as_json):
    results = session.run(patterns, op, args)
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["CONTAINER", "RESULT"], results,
                                 lambda d: [[tables.short_id(cid), key] for cid in d[key]]))
    return exit_status(results)


def stop(session: Session, patterns: list[str], containers: list[str], time: int, as_json: bool) -> int:
    """Stop containers (stop signal, then SIGKILL after --time seconds)."""
    if time < 0:
        raise UsageError("--time must be >= 0")
    return _lifecycle(session, patterns, "stop", {"containers": containers, "time": time}, "stopped", as_json)


def rm(session: Session, patterns: list[str], containers: list[str], force: bool, as_json: bool) -> int:
    """Remove containers (-f kills running ones first)."""
    return _lifecycle(session, patterns, "rm", {"containers": containers, "force": force}, "removed", as_json)
