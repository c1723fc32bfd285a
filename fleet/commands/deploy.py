"""Compose rollouts across hosts: ``deploy`` (plan, batches, rollback), ``services``, ``rollback``, ``down`` and
``deploy history``.  The rollout itself is fleet/deploy/; the compose file is fleet/compose/."""

from __future__ import annotations

import asyncio
import json
import os

from fleet.commands.common import Session, exit_status, note, output
from fleet.errors import UsageError
from fleet.render import tables

PLAN_HEADERS = ["HOST", "SERVICE", "ACTION", "DETAIL"]
RESULT_HEADERS = ["HOST", "SERVICE", "FROM", "TO", "RESULT", "TIME"]
SERVICES_HEADERS = ["HOST", "SERVICE", "IMAGE", "STATE", "STATUS", "HEALTH", "RESTARTS", "UPTIME"]


def parse_extra_vars(entries: list[str]) -> dict:
    """``-e KEY=VALUE`` (repeatable), as ansible-playbook's -e: a string value overriding the inventory's."""
    out = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip() or not key.strip().isidentifier():
            raise UsageError("invalid -e {!r}: want KEY=VALUE with KEY a variable name".format(entry))
        out[key.strip()] = value
    return out


def controller_identity() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name for this uid: its number
        user = str(os.getuid())
    return "{}@{}".format(user, socket.gethostname())


def _compose_path(file: str | None, hosts) -> str:
    from fleet.compose import find_compose_file

    wanted = {str(h.vars["fleet_compose"]) for h in hosts if h.vars.get("fleet_compose")}
    if file is None and len(wanted) > 1:
        raise UsageError("the selected hosts name different compose files (fleet_compose: {}): deploy them "
                         "separately or pass -f FILE".format(", ".join(sorted(wanted))))
    return find_compose_file(file, os.getcwd(), {"fleet_compose": wanted.pop()} if wanted else {})


def load(session: Session, patterns: list[str], file: str | None, project_name: str | None, extra: list[str]):
    """(hosts, project): the selected hosts and the compose project rendered for them (UsageError on bad input,
    before any host is contacted)."""
    from fleet.compose import load_project

    extra_vars = parse_extra_vars(extra)
    hosts = session.select(patterns)
    project = load_project(_compose_path(file, hosts), project_name, hosts, extra_vars)
    return hosts, project


def _run(session: Session, hosts, project, opts, view=None, rollback_service=None):
    from fleet.deploy.rollout import Rollout
    from fleet.transport.link import HostLink
    from fleet.transport.pyzcache import current as build

    payload = build()
    ssh_opts = session.run_options().ssh
    rollout = Rollout(project, hosts, opts, lambda h: HostLink(h, payload, ssh_opts), view,
                      rollback_service=rollback_service)
    try:
        return asyncio.run(rollout.run())
    except KeyboardInterrupt:
        note("fleet: interrupted: each host finishes or reverts its current swap by itself; the deploy locks are "
             "released with the connections")
        raise


def _options(session, project_name, **kw):
    import secrets
    import time

    from fleet.deploy.rollout import Options

    deploy_id = "{}-{}".format(time.strftime("%Y%m%dT%H%M%S", time.gmtime()), secrets.token_hex(3))
    return Options(project=project_name, deploy_id=deploy_id, controller=controller_identity(),
                   forks=session.forks, **kw)


def _errors_table(report) -> str:
    if not report.errors:
        return ""
    return tables.render(["HOST", "ERROR"], [[h, " ".join(str(e).split())] for h, e in report.errors.items()])


def _outcome_output(report, as_json: bool, project: str, deploy_id: str) -> None:
    if as_json:
        output(json.dumps({"project": project, "deploy_id": deploy_id,
                           "results": [o.to_json() for o in report.outcomes], "errors": report.errors,
                           "paused": report.paused, "rolled_back": report.rolled_back}, indent=2, sort_keys=True))
        return
    if report.outcomes:
        reasons = any(o.reason for o in report.outcomes)
        rows = [[o.host, o.service, o.from_, o.to, o.result, "" if o.seconds is None else "{:.1f}s".format(o.seconds)]
                + ([o.reason] if reasons else []) for o in report.outcomes]
        output(tables.render(RESULT_HEADERS + (["REASON"] if reasons else []), rows))
        for o in report.outcomes:
            if o.logs:
                note("{} {}: last log lines of the failed container:".format(o.host, o.service))
                for line in o.logs:
                    note("    " + str(line).rstrip("\n"))
    if report.errors:
        output(_errors_table(report))
    if report.paused:
        note("fleet: deploy paused (failure_action pause): the remaining hosts were left untouched")
    if report.rolled_back:
        note("fleet: deploy rolled back (failure_action rollback): updated hosts are back on their previous version")


def deploy(session: Session, patterns: list[str], file: str | None, project_name: str | None, extra: list[str],
           dry_run: bool, parallelism: str | None, timeout: float, keep: int, remove_orphans: bool,
           as_json: bool) -> int:
    """Plan, then roll out the compose project on the selected hosts (``--dry-run``: the plan only)."""
    from fleet.deploy import batches
    from fleet.deploy.view import DeployView

    steps = batches.parse_parallelism(parallelism) if parallelism is not None else None
    if keep < 1:
        raise UsageError("invalid --keep {}: keep at least 1 previous version".format(keep))
    hosts, project = load(session, patterns, file, project_name, extra)
    opts = _options(session, project.name, parallelism=steps, timeout=timeout, keep=keep,
                    remove_orphans=remove_orphans, dry_run=dry_run)
    if dry_run:
        report = _run(session, hosts, project, opts)
        if as_json:
            output(json.dumps({"project": project.name, "plan": [a.to_json() for a in report.plan],
                               "errors": report.errors}, indent=2, sort_keys=True))
        else:
            rows = [[a.host, a.service, a.kind, a.detail()] for a in report.plan]
            output(tables.render(PLAN_HEADERS, rows))
            if report.errors:
                output(_errors_table(report))
        return 1 if report.errors else 0
    view = DeployView([h.name for h in hosts], quiet=as_json)
    view.start()
    report = _run(session, hosts, project, opts, view)
    _outcome_output(report, as_json, project.name, opts.deploy_id)
    return report.status


def rollback(session: Session, patterns: list[str], service: str, file: str | None, project_name: str | None,
             extra: list[str], parallelism: str | None, timeout: float, keep: int, as_json: bool) -> int:
    """Every selected host that runs SERVICE goes back one version, through the same gated batches."""
    from fleet.deploy import batches
    from fleet.deploy.view import DeployView

    steps = batches.parse_parallelism(parallelism) if parallelism is not None else None
    hosts, project = _project_or_name(session, patterns, file, project_name, extra)
    if project is not None and service not in project.services:
        raise UsageError("no service {!r} in {} (services: {})".format(service, project.file,
                                                                       ", ".join(project.services)))
    name = project.name if project is not None else project_name
    opts = _options(session, name, parallelism=steps, timeout=timeout, keep=keep)
    view = DeployView([h.name for h in hosts], quiet=as_json)
    view.start()
    report = _run(session, hosts, project, opts, view, rollback_service=service)
    _outcome_output(report, as_json, name, opts.deploy_id)
    return report.status


def _project_or_name(session, patterns, file, project_name, extra):
    """The compose project when a file is given or found, else (hosts, None) with ``-p`` required."""
    from fleet.compose import ComposeFileNotFound

    try:
        return load(session, patterns, file, project_name, extra)
    except ComposeFileNotFound:
        if file is not None or not project_name:
            raise
        return session.select(patterns), None


def services(session: Session, patterns: list[str], file: str | None, project_name: str | None,
             extra: list[str], show_all: bool, as_json: bool) -> int:
    """What runs where: each service's container per host, in sync with the compose file or drifted."""
    from fleet.compose import ComposeFileNotFound

    try:
        hosts, project = load(session, patterns, file, project_name, extra)
    except ComposeFileNotFound:
        if file is not None:
            raise
        hosts, project = session.select(patterns), None
    if project is None:
        results = session.run_hosts(hosts, "service_ls", {"project": project_name})
        rows = {r.host.name: (r.data or {}).get("services", []) for r in results if r.ok}
        states, errors = {}, {r.host.name: tables.error_text(r.error) for r in results if not r.ok}
    else:
        report = _run(session, hosts, project, _options(session, project.name, dry_run=True))
        rows, errors = report.rows, report.errors
        states = {(a.host, a.service): a for a in report.plan}
    out = []
    for host in [h.name for h in hosts]:
        shown = set()
        for row in rows.get(host, []):
            if row.get("retired") and not show_all:
                continue
            action = states.get((host, row.get("service")))
            out.append(_service_row(host, row, action))
            shown.add(row.get("service"))
        for (h, service), action in states.items():
            if h == host and service not in shown and action.kind == "create":
                out.append({"host": host, "service": service, "image": action.spec.image, "state": "missing",
                            "status": "", "health": "", "restarts": "", "uptime": ""})
    if as_json:
        output(json.dumps({"services": out, "errors": errors}, indent=2, sort_keys=True))
    else:
        output(tables.render(SERVICES_HEADERS, [[r["host"], r["service"], r["image"], r["state"], r["status"],
                                                 r["health"], r["restarts"], r["uptime"]] for r in out]))
        if errors:
            output(tables.render(["HOST", "ERROR"], [[h, e] for h, e in errors.items()]))
    return 1 if errors else 0


def _service_row(host: str, row: dict, action) -> dict:
    image = row.get("image") or ""
    if row.get("image_digest"):
        image = "{} ({})".format(image.split("@", 1)[0], tables.short_id(row["image_digest"]))
    if row.get("retired"):
        state = "previous version"
    elif action is None:
        state = ""
    elif action.kind == "unchanged":
        state = "in sync"
    elif action.kind in ("orphan", "remove"):
        state = "orphan"
    else:
        state = "drifted: " + ", ".join(c.field for c in action.changes)
    uptime = tables.ago(row.get("started_at")).replace(" ago", "") if row.get("state") == "running" else ""
    return {"host": host, "service": row.get("service", ""), "image": image, "state": state,
            "status": row.get("status", ""), "health": row.get("health") or "", "restarts": row.get("restart_count", 0),
            "uptime": uptime, "id": row.get("id"), "name": row.get("name")}


def down(session: Session, patterns: list[str], file: str | None, project_name: str | None, volumes: bool,
         as_json: bool) -> int:
    """Remove every container of the project (live and kept versions), its networks; ``-v`` anonymous volumes."""
    name = _project_name(session, patterns, file, project_name)
    results = session.run(patterns, "service_down", {"project": name, "volumes": volumes})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["REMOVED"], results, lambda d: [[n] for n in d.get("removed", [])] or [["-"]]))
    return exit_status(results)


def _project_name(session, patterns, file, project_name) -> str:
    if project_name:
        return project_name
    from fleet.compose import project_name_of

    hosts = session.select(patterns)
    return project_name_of(_compose_path(file, hosts))


def history(session: Session, patterns: list[str], service: str | None, file: str | None,
            project_name: str | None, last: int | None, as_json: bool) -> int:
    """Each host's deploy journal: time, controller, project, service, from -> to, result."""
    name = project_name
    if name is None:
        try:
            name = _project_name(session, patterns, file, None)
        except UsageError:
            name = None  # no compose file here: every project's entries
    results = session.run(patterns, "deploy_journal", {"project": name, "service": service, "last": last})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)

    def rows_of(data):
        out = []
        for e in data.get("entries", []):
            src, dst = e.get("from") or {}, e.get("to") or {}
            out.append([e.get("time", ""), e.get("controller", ""), e.get("project", ""), e.get("service", ""),
                        "{} {}".format(tables.short_id(src.get("config_hash"), 8), tables.short_id(
                            src.get("image_digest"))).strip() or "-",
                        "{} {}".format(tables.short_id(dst.get("config_hash"), 8), tables.short_id(
                            dst.get("image_digest"))).strip() or "-",
                        e.get("result", "")])
        return out
    output(tables.host_table(["TIME", "CONTROLLER", "PROJECT", "SERVICE", "FROM", "TO", "RESULT"], results, rows_of))
    return exit_status(results)
