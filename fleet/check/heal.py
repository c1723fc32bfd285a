"""``fleet check --heal``: services found missing, exited or drifted are put right through the deploy's gated path
(fleet/deploy: the same plan, batches, health gates and rollback as ``fleet deploy`` of the compose file), and
what was done joins the report.  Without a compose file there is nothing to heal towards."""

from __future__ import annotations

from fleet.check.model import OK


def heal(session, report, hosts, project) -> None:
    import asyncio

    from fleet.commands.deploy import _options
    from fleet.deploy.rollout import Rollout
    from fleet.transport.link import HostLink
    from fleet.transport.pyzcache import current as build

    if project is None:
        return
    sick = {r.host for r in report.rows if r.check.startswith("service:") and r.status != OK}
    targets = [h for h in hosts if h.name in sick]
    if not targets:
        return
    payload = build()
    ssh_opts = session.run_options().ssh
    opts = _options(session, project.name)
    result = asyncio.run(Rollout(project, targets, opts, lambda h: HostLink(h, payload, ssh_opts)).run())
    for o in result.outcomes:
        if o.result != "unchanged":
            report.healed.append((o.host, "service:{}/{}".format(project.name, o.service),
                                  o.result + (": " + o.reason if o.reason else "")))
    for host, error in result.errors.items():
        report.healed.append((host, "deploy", "not healed: {}".format(error)))
