"""Health checks across hosts for cron and monitoring."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, _finish, _session, app
from fleet.cli.deploy import ExtraOpt, FileOpt, ProjectOpt


@app.command()
def check(ctx: typer.Context, patterns: List[str] = HostsOpt, file: Optional[str] = FileOpt,
          project_name: Optional[str] = ProjectOpt, extra: Optional[List[str]] = ExtraOpt,
          show_all: bool = typer.Option(False, "-a", "--all", help="Every row, the OK ones too."),
          fmt: str = typer.Option("table", "--format", help="table (the non-OK rows and a summary) or nagios (one "
                                                            "status line with perfdata, as a Nagios plugin)."),
          prometheus: Optional[str] = typer.Option(None, "--prometheus", metavar="FILE",
                                                   help="Also write the metrics for node_exporter's textfile "
                                                        "collector to FILE (atomically)."),
          quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing when everything is OK (cron mails "
                                                                  "only on trouble)."),
          deadline: float = typer.Option(60.0, "--deadline", help="Seconds for the whole run: slow hosts are "
                                                                  "reported (CRITICAL or UNKNOWN), never waited for."),
          heal: bool = typer.Option(False, "--heal", help="Put missing, exited or drifted services right through "
                                                          "the deploy's gated path, and report what was done."),
          as_json: bool = JsonOpt):
    """Check every selected host: reachable, payload, compose services in sync and healthy, restarts and OOM kills
    since the last run, disk and log sizes, the inventory's fleet_checks probes.  Exit status: 0 OK, 1 WARNING,
    2 CRITICAL, 3 UNKNOWN (the worst row), as a Nagios plugin."""
    from fleet.commands import check as cmd
    _finish(cmd.check, _session(ctx), patterns, file, project_name, list(extra or []), show_all, as_json, fmt,
            prometheus, quiet, deadline, heal)
