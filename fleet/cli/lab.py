"""`fleet lab`: the built-in local lab."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from fleet.cli.base import JsonOpt, _finish, lab_app


def _lab_config(name: str, subnet: str, hosts_n: int, inventory: str, vm: str | None = None):
    """The lab's config; `down` and `status` read the lab's recorded state, so their host count is moot."""
    from pathlib import Path

    from fleet.lab import LabConfig
    from fleet.lab.vm import parse_suites
    return LabConfig(name=name, subnet=subnet, hosts=hosts_n, state_dir=Path("/var/lib/fleet-lab") / name,
                     inventory=Path(inventory), vms=parse_suites(vm) if vm is not None else [])


LabName = typer.Option("fleetlab", "--name", help="Lab name (prefix of namespaces and links).")
LabSubnet = typer.Option("10.213.0.0/24", "--subnet", help="Lab bridge subnet.")
LabInventory = typer.Option("inventories/lab.yml", "--inventory-out", help="Where to write the lab inventory.")


@lab_app.command("up")
def lab_up(hosts_n: int = typer.Option(3, "--hosts", min=0, max=200,
                                       help="Number of lab hosts (network namespaces); 0 only with --vm."),
           vm: Optional[str] = typer.Option(None, "--vm", metavar="SUITE[,SUITE...]",
                                            help="Also boot a Debian VM host per suite (e.g. bookworm,trixie): "
                                                 "systemd, cgroup v2; named vm-<suite>, inventory group vm."),
           name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory):
    """Build (or repair) the lab: hosts with sshd, a registry, seed images, VM hosts, an inventory. Idempotent;
    VM hosts that were powered off boot again from their own disks."""
    from fleet import lab
    _finish(lambda: (lab.up(_lab_config(name, subnet, hosts_n, inventory, vm)) and 0) or 0)


@lab_app.command("down")
def lab_down(name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory):
    """Remove every namespace, link, mount, process and file the lab made."""
    from fleet import lab
    _finish(lambda: lab.down(_lab_config(name, subnet, 3, inventory)) or 0)


class LabService(str, Enum):
    """The lab's service hosts."""

    registry = "registry"
    mirror = "mirror"
    auth = "auth"


@lab_app.command("stop")
def lab_stop(service: LabService = typer.Argument(..., help="The service to stop."), name: str = LabName,
             subnet: str = LabSubnet, inventory: str = LabInventory):
    """Stop one lab service (e.g. the mirror, to watch pulls fall back to the registry)."""
    from fleet import lab
    _finish(lambda: lab.stop_service(_lab_config(name, subnet, 3, inventory), service.value) or 0)


@lab_app.command("start")
def lab_start(service: LabService = typer.Argument(..., help="The service to start."), name: str = LabName,
              subnet: str = LabSubnet, inventory: str = LabInventory):
    """Start a stopped lab service again."""
    from fleet import lab
    _finish(lambda: (lab.start_service(_lab_config(name, subnet, 3, inventory), service.value) and 0) or 0)


@lab_app.command("status")
def lab_status(name: str = LabName, subnet: str = LabSubnet, inventory: str = LabInventory, as_json: bool = JsonOpt):
    """Show the lab's hosts, addresses and processes."""
    from fleet.commands import lab as cmd
    _finish(cmd.status, _lab_config(name, subnet, 3, inventory), as_json)
