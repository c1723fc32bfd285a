"""The `fleet` command line (typer): parse arguments, call fleet.commands, map errors to exit status.

No logic lives here.  Command modules are imported inside each command so that `fleet ping` pays only for
what it uses (asyncssh alone takes ~0.3 s to import).
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from fleet.commands.common import Session

app = typer.Typer(
    name="fleet",
    help="Agentless container fleet manager: docker's commands on many hosts over SSH.\n\n"
         "Select hosts with -H PATTERN (Ansible patterns: all, groups, 'web*', '~regex', 'a:b', 'a:&b', 'a:!b').",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
lab_app = typer.Typer(help="The built-in local lab: hosts in network namespaces with sshd and a registry.",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")

HostsOpt = typer.Option(..., "-H", "--hosts", help="Host pattern (repeatable): all, web, 'web*', 'web:!web2'.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output: one JSON object per host.")


def _session(ctx: typer.Context) -> Session:
    return ctx.obj


def _finish(fn, *args) -> None:
    """Run a command function and exit with its status; FleetErrors become one clear line."""
    from fleet.errors import FleetError

    try:
        status = fn(*args)
    except FleetError as exc:
        sys.stderr.write("fleet: error: {}\n".format(exc))
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("fleet: interrupted\n")
        raise typer.Exit(130)
    raise typer.Exit(status)


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
def pull(ctx: typer.Context, image: str = typer.Argument(..., help="Image reference, e.g. nginx or reg:5000/app:1"),
         patterns: List[str] = HostsOpt, quiet: bool = typer.Option(False, "-q", "--quiet"), as_json: bool = JsonOpt):
    """Pull an image on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.pull, _session(ctx), patterns, image, quiet, as_json)


@app.command()
def images(ctx: typer.Context, patterns: List[str] = HostsOpt, all_: bool = typer.Option(False, "-a", "--all"),
           quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs."), as_json: bool = JsonOpt):
    """List images on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.images, _session(ctx), patterns, all_, quiet, as_json)


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="Image reference."),
    command: Optional[List[str]] = typer.Argument(None, help="Command and arguments (override the image's CMD)."),
    patterns: List[str] = HostsOpt,
    detach: bool = typer.Option(False, "-d", "--detach", help="Run in the background and print the ID."),
    name: Optional[str] = typer.Option(None, "--name", help="Container name (unique per host)."),
    rm: bool = typer.Option(False, "--rm", help="Remove the container when it exits."),
    env: Optional[List[str]] = typer.Option(None, "-e", "--env", help="KEY=VALUE, or KEY to pass this shell's."),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", help="Override the image's ENTRYPOINT."),
    workdir: Optional[str] = typer.Option(None, "-w", "--workdir", help="Working directory inside the container."),
    hostname: Optional[str] = typer.Option(None, "--hostname", help="Container host name."),
    as_json: bool = JsonOpt,
):
    """Create and start a container on each host (options go before IMAGE, as with docker)."""
    from fleet.commands import containers as cmd
    _finish(cmd.run, _session(ctx), patterns, image, list(command or []), detach, name, rm, list(env or []),
            entrypoint, workdir, hostname, as_json)


@app.command()
def ps(ctx: typer.Context, patterns: List[str] = HostsOpt,
       all_: bool = typer.Option(False, "-a", "--all", help="Show all containers (default: running)."),
       quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show host and container IDs."),
       no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
       as_json: bool = JsonOpt):
    """List containers on each host."""
    from fleet.commands import containers as cmd
    _finish(cmd.ps, _session(ctx), patterns, all_, quiet, no_trunc, as_json)


@app.command()
def logs(ctx: typer.Context, container: str = typer.Argument(...), patterns: List[str] = HostsOpt,
         tail: str = typer.Option("all", "-n", "--tail", help="Lines from the end (a number or all)."),
         follow: bool = typer.Option(False, "-f", "--follow", help="Follow log output."),
         timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Show timestamps.")):
    """Show a container's logs from each host, each line prefixed with its host."""
    from fleet.commands import containers as cmd
    _finish(cmd.logs, _session(ctx), patterns, container, tail, follow, timestamps)


@app.command()
def stop(ctx: typer.Context, containers: List[str] = typer.Argument(...), patterns: List[str] = HostsOpt,
         time: int = typer.Option(10, "-t", "--time", help="Seconds to wait before killing."),
         as_json: bool = JsonOpt):
    """Stop running containers on each host."""
    from fleet.commands import containers as cmd
    _finish(cmd.stop, _session(ctx), patterns, containers, time, as_json)


@app.command()
def rm(ctx: typer.Context, containers: List[str] = typer.Argument(...), patterns: List[str] = HostsOpt,
       force: bool = typer.Option(False, "-f", "--force", help="Kill and remove running containers."),
       as_json: bool = JsonOpt):
    """Remove containers on each host."""
    from fleet.commands import containers as cmd
    _finish(cmd.rm, _session(ctx), patterns, containers, force, as_json)


def _lab_config(name: str, subnet: str, hosts_n: int, inventory: str):
    """The lab's config; `down` and `status` read the lab's recorded state, so their host count is moot."""
    from pathlib import Path

    from fleet.lab import LabConfig
    return LabConfig(name=name, subnet=subnet, hosts=hosts_n, state_dir=Path("/var/lib/fleet-lab") / name,
                     inventory=Path(inventory))


LabName = typer.Option("fleetlab", "--name", help="Lab name (prefix of namespaces and links).")
LabSubnet = typer.Option("10.213.0.0/24", "--subnet", help="Lab bridge subnet.")
LabInventory = typer.Option("inventories/lab.yml", "--inventory-out", help="Where to write the lab inventory.")


@lab_app.command("up")
def lab_up(hosts_n: int = typer.Option(3, "--hosts", min=1, max=200, help="Number of lab hosts."),
           name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory):
    """Build (or repair) the lab: hosts with sshd, a registry, seed images, an inventory. Idempotent."""
    from fleet import lab
    _finish(lambda: (lab.up(_lab_config(name, subnet, hosts_n, inventory)) and 0) or 0)


@lab_app.command("down")
def lab_down(name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory):
    """Remove every namespace, link, mount, process and file the lab made."""
    from fleet import lab
    _finish(lambda: lab.down(_lab_config(name, subnet, 3, inventory)) or 0)


@lab_app.command("status")
def lab_status(name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory, as_json: bool = JsonOpt):
    """Show the lab's hosts, addresses and processes."""
    from fleet.commands import lab as cmd
    _finish(cmd.status, _lab_config(name, subnet, 3, inventory), as_json)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
