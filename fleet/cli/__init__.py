"""The `fleet` command line (typer): parse arguments, call fleet.commands, map errors to exit status.

No logic lives here.  Command modules are imported inside each command so that `fleet ping` pays only for
what it uses (asyncssh alone takes ~0.3 s to import).  One module per area: base.py (the apps, shared options,
error mapping, run/create's flags from agent_payload/containeropts.py), containers.py, netvol.py (networks,
ports, volumes), images.py (images, registries, system), lab.py; importing them registers their commands, in
the order `fleet --help` lists them.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, Session, _finish, _session, app, system_app

__all__ = ["app", "main"]


@app.callback()
def main_options(
    ctx: typer.Context,
    inventory: Optional[List[str]] = typer.Option(
        None, "-i", "--inventory", help="Inventory file, YAML or INI (repeatable; default $FLEET_INVENTORY "
                                        "or inventories/lab.yml)."),
    forks: int = typer.Option(50, "--forks", "-f", min=1, help="Hosts contacted in parallel."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", min=0.1, help="SSH connect timeout (s)."),
    timeout: float = typer.Option(600.0, "--timeout", min=1, help="Per-host command timeout (s)."),
    accept_new_host_keys: bool = typer.Option(
        False, "--accept-new-host-keys", help="Trust unknown host keys on first use and record them in "
                                             "known_hosts (changed keys are still refused)."),
    identity: Optional[List[str]] = typer.Option(None, "--identity", help="Extra SSH identity file (repeatable)."),
):
    ctx.obj = Session(inventories=list(inventory or []), forks=forks, connect_timeout=connect_timeout,
                      command_timeout=timeout, accept_new_host_keys=accept_new_host_keys,
                      identity_files=list(identity or []))


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

from fleet.cli import containers, netvol, images, archive, build, deploy, check, events, lab  # noqa: E402,F401,I001  (registers the commands, in order)

# docker's aliases of the management commands' listings (container ls/list/ps and image ls/list are registered
# with their commands)
netvol.network_app.command("list")(netvol.network_ls)
netvol.volume_app.command("list")(netvol.volume_ls)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
