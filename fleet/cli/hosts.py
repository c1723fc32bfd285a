"""The host-level commands: hosts, ping, facts, version, info (also `system info`)."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, _finish, _session, app, system_app

@app.command()
def hosts(ctx: typer.Context, patterns: List[str] = typer.Option(["all"], "-H", "--hosts"), as_json: bool = JsonOpt):
    """List the hosts a pattern selects (no connection is made)."""
    from fleet.commands import hosts as cmd
    _finish(cmd.hosts, _session(ctx), patterns, as_json)


@app.command()
def ping(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Connect to each host and run the payload (uploading it where missing)."""
    from fleet.commands import hosts as cmd
    _finish(cmd.ping, _session(ctx), patterns, as_json)


@app.command()
def facts(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Show kernel, distro, python, cgroup, overlay, namespaces and free disk of each host."""
    from fleet.commands import hosts as cmd
    _finish(cmd.facts, _session(ctx), patterns, as_json)


@app.command()
def version(ctx: typer.Context, patterns: List[str] = HostsOpt,
            fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go-template subset over {{.Host}}, "
                                              "{{.Client.Version}}, {{.Server.Version}}, {{.Server.Payload}}, ..."),
            as_json: bool = JsonOpt):
    """Show fleet's version (Client) and each host's payload version and hash, protocol, python, kernel (Server)."""
    from fleet.commands import hosts as cmd
    _finish(cmd.version, _session(ctx), patterns, fmt, as_json)


def info(ctx: typer.Context, patterns: List[str] = HostsOpt,
         fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go-template subset over docker info's "
                                           "keys ({{.Host}}, {{.Containers}}, {{.CgroupVersion}}, ...)."),
         as_json: bool = JsonOpt):
    """Show each host's engine-wide information: containers by state, images, storage, cgroups, firewall,
    registries, kernel, OS, CPUs, memory, payload."""
    from fleet.commands import hosts as cmd
    _finish(cmd.info, _session(ctx), patterns, fmt, as_json)


app.command("info")(info)
system_app.command("info")(info)
