"""What every module of the `fleet` command line shares: the typer apps, the common options, error mapping,
and the decorator that turns run/create/update's flag table into typer options."""

from __future__ import annotations

import inspect
import sys
from typing import List, Optional

import typer

from agent_payload import containeropts
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
image_app = typer.Typer(help="Manage images on many hosts (docker image ...).", no_args_is_help=True)
app.add_typer(image_app, name="image")
container_app = typer.Typer(help="Manage containers on many hosts (docker container ...).", no_args_is_help=True)
app.add_typer(container_app, name="container")
system_app = typer.Typer(help="Disk usage and boot-time restarts across hosts (docker system ...).",
                         no_args_is_help=True)
app.add_typer(system_app, name="system")
network_app = typer.Typer(help="Manage networks on many hosts (docker network ...).", no_args_is_help=True)
app.add_typer(network_app, name="network")
volume_app = typer.Typer(help="Manage volumes on many hosts (docker volume ...).", no_args_is_help=True)
app.add_typer(volume_app, name="volume")

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


HostsOpt = typer.Option(..., "-H", "--hosts", help="Host pattern (repeatable): all, web, 'web*', 'web:!web2'.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output: one JSON object per host.")

ContainersArg = typer.Argument(..., metavar="CONTAINER...", help="Container names or (abbreviated) IDs.")
ContainerArg = typer.Argument(..., metavar="CONTAINER", help="Container name or (abbreviated) ID.")


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


# a flag's kind (containeropts.FLAGS) -> (annotation, default) of its typer parameter
_TYPER_KINDS = {"bool": (bool, False), "str": (Optional[str], None), "int": (Optional[int], None),
                "strs": (Optional[List[str]], None), "tristate": (Optional[bool], None)}


def _typer_parameter(flag) -> inspect.Parameter:
    annotation, default = _TYPER_KINDS[flag.kind]
    extra = {"show_default": False} if flag.kind == "tristate" else {}
    return inspect.Parameter(flag.dest, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                             default=typer.Option(default, *flag.names, help=flag.help, **extra))


def container_flags(command: str):
    """Decorator: ``command``'s rows of containeropts.FLAGS (run, create or update) as typer options.

    They are appended to the function's signature before its ``as_json`` parameter (or last) and replace its
    ``**flags``, which receives them by dest; typer reads the signature, so ``--help`` lists each flag with its
    help text, type and default as if it were written out.
    """
    def wrap(fn):
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        at = next((i for i, p in enumerate(params) if p.name == "as_json"), len(params))
        added = [_typer_parameter(f) for f in containeropts.flags_for(command)]
        fn.__signature__ = sig.replace(parameters=params[:at] + added + params[at:])
        fn.__annotations__ = dict(fn.__annotations__, **{p.name: p.annotation for p in added})
        return fn
    return wrap
