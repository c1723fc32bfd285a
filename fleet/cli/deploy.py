"""Compose rollouts: deploy (and deploy history), services, rollback, down."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, _finish, _session, app

deploy_app = typer.Typer(
    help="Roll out a compose project to the selected hosts: the plan, then batches gated on health, failed hosts "
         "rolled back.\n\nfleet deploy -H 'web*' -f compose.yaml [--dry-run]    |    fleet deploy history -H PATTERN",
    invoke_without_command=True)
app.add_typer(deploy_app, name="deploy")

FileOpt = typer.Option(None, "-f", "--file", help="Compose file (default: compose.yaml, compose.yml, "
                                                  "docker-compose.yml here, or the inventory var fleet_compose).")
ProjectOpt = typer.Option(None, "-p", "--project-name", help="Project name (default: the file's name: key, else "
                                                             "its directory's name).")
ExtraOpt = typer.Option(None, "-e", "--extra-vars", help="KEY=VALUE overriding an inventory var for this run "
                                                         "(repeatable), as ansible-playbook -e.")
ParallelismOpt = typer.Option(None, "--parallelism", help="Hosts per batch: N, N% or a list like 1,5,25% (a canary "
                                                          "batch, then wider ones; the last size repeats). "
                                                          "Default: the services' update_config.parallelism.")
TimeoutOpt = typer.Option(300.0, "--timeout", min=1, help="Seconds a host has to pull, start and pass the health "
                                                          "gate of one service before it is rolled back.")
KeepOpt = typer.Option(2, "--keep", help="Previous versions kept per service and host (stopped) for rollback.")


@deploy_app.callback()
def deploy(ctx: typer.Context,
           patterns: Optional[List[str]] = typer.Option(None, "-H", "--hosts", help="Host pattern (repeatable)."),
           file: Optional[str] = FileOpt, project_name: Optional[str] = ProjectOpt,
           extra: Optional[List[str]] = ExtraOpt,
           dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan per host and service; change "
                                                                 "nothing."),
           parallelism: Optional[str] = ParallelismOpt, timeout: float = TimeoutOpt, keep: int = KeepOpt,
           remove_orphans: bool = typer.Option(False, "--remove-orphans", help="Remove containers of services "
                                                                               "the file no longer gives a host."),
           as_json: bool = JsonOpt):
    """Roll out a compose project: plan, health-gated batches, zero-downtime swap (order: start-first),
    automatic rollback."""
    if ctx.invoked_subcommand is not None:
        return
    from fleet.commands import deploy as cmd
    _finish(cmd.deploy, _session(ctx), list(patterns or []), file, project_name, list(extra or []), dry_run,
            parallelism, timeout, keep, remove_orphans, as_json)


@deploy_app.command("history")
def deploy_history(ctx: typer.Context, service: Optional[str] = typer.Argument(None, help="Only this service."),
                   patterns: List[str] = HostsOpt, file: Optional[str] = FileOpt,
                   project_name: Optional[str] = ProjectOpt,
                   last: Optional[int] = typer.Option(None, "-n", "--last", min=1, help="Only the last N entries."),
                   as_json: bool = JsonOpt):
    """Each host's deploy journal: time, controller, project, service, from -> to, result."""
    from fleet.commands import deploy as cmd
    _finish(cmd.history, _session(ctx.parent), patterns, service, file, project_name, last, as_json)


@app.command()
def services(ctx: typer.Context, patterns: List[str] = HostsOpt, file: Optional[str] = FileOpt,
             project_name: Optional[str] = ProjectOpt, extra: Optional[List[str]] = ExtraOpt,
             show_all: bool = typer.Option(False, "-a", "--all", help="Also the previous versions kept for "
                                                                      "rollback."),
             as_json: bool = JsonOpt):
    """What runs where: each service's container per host, in sync with the compose file, drifted or missing."""
    from fleet.commands import deploy as cmd
    _finish(cmd.services, _session(ctx), patterns, file, project_name, list(extra or []), show_all, as_json)


@app.command()
def rollback(ctx: typer.Context, service: str = typer.Argument(..., help="The service to take back one version."),
             patterns: List[str] = HostsOpt, file: Optional[str] = FileOpt,
             project_name: Optional[str] = ProjectOpt, extra: Optional[List[str]] = ExtraOpt,
             parallelism: Optional[str] = ParallelismOpt, timeout: float = TimeoutOpt, keep: int = KeepOpt,
             as_json: bool = JsonOpt):
    """Put the previous version of a service back on each host, through the same health-gated batches."""
    from fleet.commands import deploy as cmd
    _finish(cmd.rollback, _session(ctx), patterns, service, file, project_name, list(extra or []), parallelism,
            timeout, keep, as_json)


@app.command()
def down(ctx: typer.Context, patterns: List[str] = HostsOpt, file: Optional[str] = FileOpt,
         project_name: Optional[str] = ProjectOpt,
         volumes: bool = typer.Option(False, "-v", "--volumes", help="Also the containers' anonymous volumes."),
         as_json: bool = JsonOpt):
    """Remove a project's containers (and kept versions) and networks from each host."""
    from fleet.commands import deploy as cmd
    _finish(cmd.down, _session(ctx), patterns, file, project_name, volumes, as_json)
