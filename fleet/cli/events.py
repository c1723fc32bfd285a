"""``fleet events``: docker's events across hosts (fleet/commands/events.py)."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, _finish, _session, app, system_app


def events(ctx: typer.Context, patterns: List[str] = HostsOpt,
           since: Optional[str] = typer.Option(None, "--since", help="Show events since a time: RFC 3339, unix "
                                               "seconds, or relative (42m) to each host's clock."),
           until: Optional[str] = typer.Option(None, "--until", help="Show events until a time (same forms); "
                                               "without it, follow new events (all hosts merged by arrival)."),
           filters: Optional[List[str]] = typer.Option(None, "-f", "--filter", help="Filter KEY=VALUE "
                                                       "(repeatable): type, event, container, image, label, "
                                                       "network, volume."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Go-template-like format: {{json .}}, "
                                             "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}, {{.Host}}."),
           as_json: bool = typer.Option(False, "--json", help="One JSON object per event (docker's message with "
                                        "its host).")):
    """Show container, image, network and volume events of each host (docker events), prefixed with the host."""
    from fleet.commands import events as cmd
    _finish(cmd.events, _session(ctx), patterns, since, until, list(filters or []), fmt, as_json)


app.command("events")(events)
system_app.command("events")(events)
