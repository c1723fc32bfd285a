"""Networks, published ports and volumes."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import (ContainerArg, HostsOpt, JsonOpt, _finish, _session, app, container_app, network_app,
                            volume_app)


@network_app.command("create")
def network_create(ctx: typer.Context, name: str = typer.Argument(..., help="Network name (the same on every host)."),
                   patterns: List[str] = HostsOpt,
                   driver: str = typer.Option("bridge", "-d", "--driver", help="Driver (bridge)."),
                   subnet: Optional[str] = typer.Option(None, "--subnet", help="IPv4 subnet in CIDR form (default: a "
                                                        "free /16 of the address pools, per host)."),
                   gateway: Optional[str] = typer.Option(None, "--gateway", help="Gateway address in the subnet."),
                   internal: bool = typer.Option(False, "--internal", help="No traffic in or out of the network."),
                   label: Optional[List[str]] = typer.Option(None, "--label", help="KEY=VALUE (repeatable)."),
                   as_json: bool = JsonOpt):
    """Create a bridge network on each host."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_create, _session(ctx), patterns, name, driver, subnet, gateway, internal, list(label or []),
            as_json)


@network_app.command("ls")
def network_ls(ctx: typer.Context, patterns: List[str] = HostsOpt,
               filters: Optional[List[str]] = typer.Option(None, "-f", "--filter", help="name=, id=, driver=, "
                                                           "label=, type=custom|builtin."),
               quiet: bool = typer.Option(False, "-q", "--quiet", help="Only IDs."),
               no_trunc: bool = typer.Option(False, "--no-trunc", help="Full IDs."), as_json: bool = JsonOpt):
    """List networks on each host."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_ls, _session(ctx), patterns, list(filters or []), quiet, no_trunc, as_json)


@network_app.command("inspect")
def network_inspect(ctx: typer.Context, networks: List[str] = typer.Argument(..., metavar="NETWORK..."),
                    patterns: List[str] = HostsOpt,
                    fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go template per network "
                                                      "(docker's: {{.Driver}}, {{range .IPAM.Config}}...).")):
    """docker's network objects from every host, as one JSON list."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_inspect, _session(ctx), patterns, list(networks), fmt)


@network_app.command("rm")
def network_rm(ctx: typer.Context, networks: List[str] = typer.Argument(..., metavar="NETWORK..."),
               patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Remove networks (refused while a container is attached)."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_rm, _session(ctx), patterns, list(networks), as_json)


@network_app.command("prune")
def network_prune(ctx: typer.Context, patterns: List[str] = HostsOpt,
                  force: bool = typer.Option(False, "-f", "--force", help="Do not ask."), as_json: bool = JsonOpt):
    """Remove every user-defined network no container uses."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_prune, _session(ctx), patterns, force, as_json)


@network_app.command("connect")
def network_connect(ctx: typer.Context, network: str = typer.Argument(..., metavar="NETWORK"),
                    container: str = ContainerArg, patterns: List[str] = HostsOpt,
                    alias: Optional[List[str]] = typer.Option(None, "--alias", help="Network-scoped alias."),
                    ip: Optional[str] = typer.Option(None, "--ip", help="IPv4 address."), as_json: bool = JsonOpt):
    """Connect a container to a network (a running one at once)."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_connect, _session(ctx), patterns, network, container, list(alias or []), ip, as_json)


@network_app.command("disconnect")
def network_disconnect(ctx: typer.Context, network: str = typer.Argument(..., metavar="NETWORK"),
                       container: str = ContainerArg, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Disconnect a container from a network."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_disconnect, _session(ctx), patterns, network, container, as_json)


def port(ctx: typer.Context, container: str = ContainerArg,
         private_port: Optional[str] = typer.Argument(None, metavar="[PRIVATE_PORT[/PROTO]]"),
         patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """The published ports of a container on each host."""
    from fleet.commands import netvol as cmd
    _finish(cmd.port, _session(ctx), patterns, container, private_port, as_json)


app.command("port")(port)
container_app.command("port")(port)


# ---- volumes ----

@volume_app.command("create")
def volume_create(ctx: typer.Context, name: Optional[str] = typer.Argument(None, metavar="[VOLUME]",
                                                                          help="Name (default: a random ID)."),
                  patterns: List[str] = HostsOpt,
                  driver: str = typer.Option("local", "-d", "--driver", help="Volume driver (only local)."),
                  label: Optional[List[str]] = typer.Option(None, "--label", help="KEY=VALUE (repeatable)."),
                  opt: Optional[List[str]] = typer.Option(None, "-o", "--opt", help="Driver option k=v (the local "
                                                          "driver of fleet takes none)."),
                  as_json: bool = JsonOpt):
    """Create a volume on each host (an existing one is kept, as docker)."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_create, _session(ctx), patterns, name, driver, list(label or []), list(opt or []), as_json)


@volume_app.command("ls")
def volume_ls(ctx: typer.Context, patterns: List[str] = HostsOpt,
              filters: Optional[List[str]] = typer.Option(None, "-f", "--filter", help="name=, driver=, label=, "
                                                          "dangling=true|false (repeatable)."),
              quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show host and volume names."),
              as_json: bool = JsonOpt):
    """List volumes on each host."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_ls, _session(ctx), patterns, list(filters or []), quiet, as_json)


@volume_app.command("inspect")
def volume_inspect(ctx: typer.Context, volumes: List[str] = typer.Argument(..., metavar="VOLUME..."),
                   patterns: List[str] = HostsOpt,
                   fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go template per volume "
                                                     "(docker's: {{.Mountpoint}}, {{json .Labels}}...).")):
    """Print docker's inspect object of volumes as one JSON list; each object carries its "host"."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_inspect, _session(ctx), patterns, volumes, fmt)


@volume_app.command("rm")
def volume_rm(ctx: typer.Context, volumes: List[str] = typer.Argument(..., metavar="VOLUME..."),
              patterns: List[str] = HostsOpt,
              force: bool = typer.Option(False, "-f", "--force", help="Ignore volumes that do not exist."),
              as_json: bool = JsonOpt):
    """Remove volumes on each host (one used by any container, running or not, is refused)."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_rm, _session(ctx), patterns, volumes, force, as_json)


@volume_app.command("prune")
def volume_prune(ctx: typer.Context, patterns: List[str] = HostsOpt,
                 all_: bool = typer.Option(False, "-a", "--all", help="Remove all unused volumes, not just "
                                           "anonymous ones."),
                 force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation."),
                 as_json: bool = JsonOpt):
    """Remove unused volumes on each host (asks first unless -f)."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_prune, _session(ctx), patterns, all_, force, as_json)

# docker's aliases of the management commands' listings (container ls/list/ps and image ls/list are registered
# with their commands)
network_app.command("list")(network_ls)
volume_app.command("list")(volume_ls)
