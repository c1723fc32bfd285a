"""`fleet check`: the fleet's health for cron and monitoring, as a Nagios plugin would report it.

Exit status is the run's worst state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (an unreachable host is CRITICAL, a
check that could not run UNKNOWN; bad check configuration and an overlapping run are UNKNOWN too, as the plugin
guidelines want for bad arguments).  Never a prompt, never a colour or progress view, one global deadline.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import sys
import time

from fleet.commands.common import Session, output
from fleet.errors import UsageError

EXIT_UNKNOWN = 3


def _lock_path(session: Session, patterns: list[str]) -> str:
    """One lock per inventory set and host selection: two crons checking different fleets do not collide."""
    key = hashlib.sha256("\0".join([os.path.abspath(p) for p in session.inventory_paths()] + ["--"] +
                                   list(patterns)).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, "fleet-check-{}-{}.lock".format(os.getuid(), key))


class Overlap(Exception):
    pass


def take_lock(path: str) -> int:
    """flock ``path`` without waiting; the holder's pid and start time are written in it.  Overlap (naming the
    holder) when another check holds it.  The lock dies with this process, whatever kills it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise Overlap("another fleet check of these hosts is still running ({}); this one exits".format(holder))
    os.ftruncate(fd, 0)
    os.pwrite(fd, "pid {} since {}".format(os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
              .encode(), 0)
    return fd


def _unknown(message: str, fmt: str, as_json: bool) -> int:
    """Bad configuration or an overlapping run, reported the way the chosen format reads it; exit 3."""
    import json

    if as_json:
        output(json.dumps({"status": "UNKNOWN", "exit_code": EXIT_UNKNOWN, "error": message}, indent=2))
    elif fmt == "nagios":
        output("FLEET UNKNOWN - {}".format(message.replace("|", "/")))
    else:
        sys.stderr.write("fleet check: UNKNOWN: {}\n".format(message))
    return EXIT_UNKNOWN


def _plan(session: Session, patterns, file, project_name, extra):
    """(hosts, args_for): the selected hosts and each one's check request (services, probes, thresholds)."""
    from fleet.check.config import probes_of, thresholds_of
    from fleet.commands.deploy import _compose_path, parse_extra_vars
    from fleet.compose import ComposeFileNotFound, load_project

    hosts = session.select(patterns)
    project = None
    try:
        path = _compose_path(file, hosts)
    except ComposeFileNotFound:
        if file is not None:
            raise
        path = None  # no compose file here or in the inventory: the host checks and probes alone
    if path is not None:
        project = load_project(path, project_name, hosts, parse_extra_vars(extra))
    args = {}
    for h in hosts:
        services = []
        if project is not None:
            for name, spec in project.for_host(h.name).items():
                services.append({"project": project.name, "service": name, "config_hash": spec.config_hash,
                                 "image": spec.image})
        args[h.name] = {"services": services, "probes": probes_of(h), "thresholds": thresholds_of(h),
                        "counters": True}
    return hosts, (lambda h: args[h.name]), project


def check(session: Session, patterns: list[str], file: str | None, project_name: str | None, extra: list[str],
          show_all: bool, as_json: bool, fmt: str, prometheus: str | None, quiet: bool, deadline: float,
          heal: bool) -> int:
    from fleet.check import formats, run

    if fmt not in ("table", "nagios"):
        return _unknown("--format must be table or nagios, not {!r}".format(fmt), "table", as_json)
    if not deadline > 0:
        return _unknown("--deadline must be a positive number of seconds", fmt, as_json)
    try:
        lock_fd = take_lock(_lock_path(session, patterns))
    except Overlap as exc:
        return _unknown(str(exc), fmt, as_json)
    except UsageError as exc:  # no inventory at all
        return _unknown(str(exc), fmt, as_json)
    try:
        try:
            hosts, args_for, project = _plan(session, patterns, file, project_name, extra)
        except UsageError as exc:
            return _unknown(str(exc), fmt, as_json)
        from fleet.transport.link import HostLink
        from fleet.transport.pyzcache import current as build

        payload = build()
        ssh_opts = session.run_options().ssh
        ssh_opts.connect_timeout = min(ssh_opts.connect_timeout, deadline)
        report = asyncio.run(run.run(hosts, args_for, lambda h: HostLink(h, payload, ssh_opts), deadline))
        if heal:
            from fleet.check.heal import heal as do_heal
            do_heal(session, report, hosts, project)
        if prometheus:
            formats.write_atomic(prometheus, formats.prometheus(report))
        if as_json:
            output(formats.to_json(report))
        elif fmt == "nagios":
            output(formats.nagios(report))
        elif not (quiet and report.status == "OK"):
            output(formats.table(report, all_rows=show_all))
        return report.exit_code
    finally:
        os.close(lock_fd)
