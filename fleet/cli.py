"""The `fleet` command line (typer): parse arguments, call fleet.commands, map errors to exit status.

No logic lives here.  Command modules are imported inside each command so that `fleet ping` pays only for
what it uses (asyncssh alone takes ~0.3 s to import).
"""

from __future__ import annotations

import inspect as _inspect
import sys
from enum import Enum
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


# a flag's kind (containeropts.FLAGS) -> (annotation, default) of its typer parameter
_TYPER_KINDS = {"bool": (bool, False), "str": (Optional[str], None), "int": (Optional[int], None),
                "strs": (Optional[List[str]], None), "tristate": (Optional[bool], None)}


def _typer_parameter(flag) -> _inspect.Parameter:
    annotation, default = _TYPER_KINDS[flag.kind]
    extra = {"show_default": False} if flag.kind == "tristate" else {}
    return _inspect.Parameter(flag.dest, _inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                             default=typer.Option(default, *flag.names, help=flag.help, **extra))


def container_flags(command: str):
    """Decorator: ``command``'s rows of containeropts.FLAGS (run, create or update) as typer options.

    They are appended to the function's signature before its ``as_json`` parameter (or last) and replace its
    ``**flags``, which receives them by dest; typer reads the signature, so ``--help`` lists each flag with its
    help text, type and default as if it were written out.
    """
    def wrap(fn):
        sig = _inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not _inspect.Parameter.VAR_KEYWORD]
        at = next((i for i, p in enumerate(params) if p.name == "as_json"), len(params))
        added = [_typer_parameter(f) for f in containeropts.flags_for(command)]
        fn.__signature__ = sig.replace(parameters=params[:at] + added + params[at:])
        fn.__annotations__ = dict(fn.__annotations__, **{p.name: p.annotation for p in added})
        return fn
    return wrap


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


# ---- containers: top-level docker aliases and the `container` sub-app share one function per command ----

ContainersArg = typer.Argument(..., metavar="CONTAINER...", help="Container names or (abbreviated) IDs.")
ContainerArg = typer.Argument(..., metavar="CONTAINER", help="Container name or (abbreviated) ID.")


EnvOpt = typer.Option(None, "-e", "--env", help="KEY=VALUE, or KEY to pass this shell's.")
DetachKeysOpt = typer.Option(None, "--detach-keys", help="Key sequence to detach, leaving the container running "
                             "(default ctrl-p,ctrl-q).")


@container_flags("run")
def run(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="Image reference."),
    command: Optional[List[str]] = typer.Argument(None, help="Command and arguments (override the image's CMD)."),
    patterns: List[str] = HostsOpt,
    as_json: bool = JsonOpt,
    **flags,
):
    """Create and start a container on each host (options go before IMAGE, as with docker)."""
    from fleet.commands import containers as cmd
    from fleet.commands import runflags
    _finish(lambda: cmd.run(_session(ctx), patterns, runflags.parse("run", image, command, flags), as_json))


@container_flags("create")
def create(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="Image reference."),
    command: Optional[List[str]] = typer.Argument(None, help="Command and arguments (override the image's CMD)."),
    patterns: List[str] = HostsOpt,
    as_json: bool = JsonOpt,
    **flags,
):
    """Create a container on each host without starting it (options go before IMAGE, as with docker)."""
    from fleet.commands import lifecycle as cmd
    from fleet.commands import runflags
    _finish(lambda: cmd.create(_session(ctx), patterns, runflags.parse("create", image, command, flags), as_json))


def ps(ctx: typer.Context, patterns: List[str] = HostsOpt,
       all_: bool = typer.Option(False, "-a", "--all", help="Show all containers (default: running)."),
       filters: Optional[List[str]] = typer.Option(None, "-f", "--filter", help="status=, name=, label=, ancestor=, "
                                                   "exited=, id=, before=, since= (repeatable; same key ORed, "
                                                   "different keys ANDed)."),
       last: int = typer.Option(-1, "-n", "--last", help="Show the N last created containers (all states)."),
       latest: bool = typer.Option(False, "-l", "--latest", help="Show the latest created container (all states)."),
       quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show host and container IDs."),
       size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes."),
       no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
       fmt: Optional[str] = typer.Option(None, "--format", help="Go-template subset: {{.Host}} {{.ID}} {{.Image}} "
                                         "{{.Command}} {{.CreatedAt}} {{.RunningFor}} {{.Status}} {{.Ports}} "
                                         "{{.Names}} {{.State}}, {{json .}}, 'table' prefix."),
       as_json: bool = JsonOpt):
    """List containers on each host."""
    from fleet.commands import containers as cmd
    _finish(lambda: cmd.ps(_session(ctx), patterns, all_, quiet, no_trunc, as_json, list(filters or []),
                           None if last < 0 else last, latest, size, fmt))


def logs(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
         tail: str = typer.Option("all", "-n", "--tail", help="Lines from the end (a number or all)."),
         follow: bool = typer.Option(False, "-f", "--follow", help="Follow log output."),
         timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Show timestamps."),
         since: Optional[str] = typer.Option(None, "--since", help="Logs since a time: RFC 3339, unix seconds, or "
                                             "relative (42m, 1h30m) to each host's clock."),
         until: Optional[str] = typer.Option(None, "--until", help="Logs before a time (same forms as --since)."),
         details: bool = typer.Option(False, "--details", help="Show extra details provided to logs (json-file "
                                      "logs have none).")):
    """Show a container's logs from each host, each line prefixed with its host."""
    from fleet.commands import containers as cmd
    _finish(lambda: cmd.logs(_session(ctx), patterns, container, tail, follow, timestamps, since, until, details))


def stop(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
         time: Optional[int] = typer.Option(None, "-t", "--time", help="Seconds to wait before killing "
                                                                      "(default: the container's --stop-timeout, "
                                                                      "else 10)."),
         as_json: bool = JsonOpt):
    """Stop running containers on each host."""
    from fleet.commands import containers as cmd
    _finish(cmd.stop, _session(ctx), patterns, containers, time, as_json)


def rm(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
       force: bool = typer.Option(False, "-f", "--force", help="Kill and remove running containers."),
       volumes: bool = typer.Option(False, "-v", "--volumes", help="Remove anonymous volumes associated with the "
                                    "container."),
       as_json: bool = JsonOpt):
    """Remove containers on each host."""
    from fleet.commands import containers as cmd
    _finish(cmd.rm, _session(ctx), patterns, containers, force, as_json, volumes)


def start(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
          attach: bool = typer.Option(False, "-a", "--attach", help="Stream the container's output until it exits "
                                      "and return its exit code (one container)."),
          interactive: bool = typer.Option(False, "-i", "--interactive", help="Attach this terminal's input too "
                                           "(one container on one host; implies -a)."),
          detach_keys: Optional[str] = DetachKeysOpt,
          as_json: bool = JsonOpt):
    """Start created or stopped containers on each host."""
    if interactive:
        from fleet.commands import interactive as icmd
        from fleet.errors import UsageError

        def start_i():
            if len(containers) != 1:
                raise UsageError("you cannot start and attach multiple containers at once")
            return icmd.start_attached(_session(ctx), patterns, containers[0], detach_keys)
        _finish(start_i)
    from fleet.commands import lifecycle as cmd
    _finish(cmd.start, _session(ctx), patterns, containers, attach, as_json)


def attach(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
           no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not attach STDIN."),
           detach_keys: Optional[str] = DetachKeysOpt):
    """Attach this terminal to a running container on one host (detach: ctrl-p ctrl-q)."""
    from fleet.commands import interactive as cmd
    _finish(cmd.attach, _session(ctx), patterns, container, no_stdin, detach_keys)


def restart(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
            time: Optional[int] = typer.Option(None, "-t", "--time", help="Seconds to wait before killing "
                                                                         "(default: the container's "
                                                                         "--stop-timeout, else 10)."),
            as_json: bool = JsonOpt):
    """Restart containers on each host (stop, then start)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.restart, _session(ctx), patterns, containers, time, as_json)


def kill(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
         signal: str = typer.Option("KILL", "-s", "--signal", help="Signal name or number (KILL, TERM, 15, ...)."),
         as_json: bool = JsonOpt):
    """Send a signal to running containers on each host."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.kill, _session(ctx), patterns, containers, signal, as_json)


def wait(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
         as_json: bool = JsonOpt):
    """Block until containers stop on each host, then print their exit codes (no --timeout applies)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.wait, _session(ctx), patterns, containers, as_json)


def rename(ctx: typer.Context, old: str = typer.Argument(..., metavar="CONTAINER"),
           new: str = typer.Argument(..., metavar="NEW_NAME"), patterns: List[str] = HostsOpt,
           as_json: bool = JsonOpt):
    """Rename a container on each host."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.rename, _session(ctx), patterns, old, new, as_json)


def inspect(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt):
    """Print docker's inspect object of containers as one JSON list; each object carries its "host"."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.inspect, _session(ctx), patterns, containers)


def top(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
        as_json: bool = JsonOpt):
    """Show the running processes of a container on each host (ps -ef columns)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.top, _session(ctx), patterns, container, as_json)


def diff(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
         as_json: bool = JsonOpt):
    """Show files added (A), changed (C) and deleted (D) in a container's filesystem on each host."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.diff, _session(ctx), patterns, container, as_json)


def export(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
           output_path: Optional[str] = typer.Option(None, "-o", "--output", help="Absolute path ON EACH HOST to "
                                                     "write the tar to (nothing is copied to this machine)."),
           force: bool = typer.Option(False, "--force", help="Replace an existing file at --output."),
           as_json: bool = JsonOpt):
    """Export a container's filesystem as a tar archive, written on each host at -o PATH (not locally)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.export, _session(ctx), patterns, container, output_path, force, as_json)


def container_prune(ctx: typer.Context, patterns: List[str] = HostsOpt,
                    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation."),
                    as_json: bool = JsonOpt):
    """Remove all stopped containers on each host (asks first unless -f; refuses without -f when stdin is no
    terminal)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.container_prune, _session(ctx), patterns, force, as_json)


@container_flags("update")
def update(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
           as_json: bool = JsonOpt, **flags):
    """Change resource limits (live on running ones) or the restart policy of containers on each host."""
    from fleet.commands import lifecycle as cmd
    from fleet.commands import runflags
    _finish(lambda: cmd.update(_session(ctx), patterns, containers, runflags.parse_flags("update", flags), as_json))


def stats(ctx: typer.Context, containers: Optional[List[str]] = typer.Argument(None, metavar="[CONTAINER...]"),
          patterns: List[str] = HostsOpt,
          all_: bool = typer.Option(False, "-a", "--all", help="Show all containers (default: running)."),
          no_stream: bool = typer.Option(False, "--no-stream", help="One sample, then exit (default: refresh "
                                         "every ~2 s until Ctrl-C)."),
          as_json: bool = JsonOpt):
    """Show containers' resource usage on each host: CPU %, memory, net and block I/O, PIDs."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.stats, _session(ctx), patterns, list(containers or []), all_, no_stream, as_json)


def pause(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
          as_json: bool = JsonOpt):
    """Pause (freeze) every process of containers on each host."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.pause, _session(ctx), patterns, containers, as_json)


def unpause(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
            as_json: bool = JsonOpt):
    """Unpause containers on each host."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.unpause, _session(ctx), patterns, containers, as_json)


def exec_(ctx: typer.Context, container: str = ContainerArg,
          command: List[str] = typer.Argument(..., metavar="COMMAND [ARG...]", help="Command to run inside."),
          patterns: List[str] = HostsOpt,
          detach: bool = typer.Option(False, "-d", "--detach", help="Run in the background; print the host PID."),
          env: Optional[List[str]] = EnvOpt,
          workdir: Optional[str] = typer.Option(None, "-w", "--workdir", help="Working directory inside the "
                                                "container (default: its WorkingDir)."),
          user: Optional[str] = typer.Option(None, "-u", "--user", help="name|uid[:group|gid] (default: the "
                                             "container's user)."),
          privileged: bool = typer.Option(False, "--privileged", help="Give the process all capabilities."),
          interactive: bool = typer.Option(False, "-i", "--interactive", help="Keep STDIN open: this terminal's "
                                           "or pipe's input goes to the command (on every selected host)."),
          tty: bool = typer.Option(False, "-t", "--tty", help="Allocate a pseudo-TTY (exactly one host)."),
          as_json: bool = JsonOpt):
    """Run a command in a running container on each host (options go before CONTAINER).

    Output lines are prefixed with the host; the exit status is the command's for one host. Without -i the
    command's stdin is /dev/null; -t gives it a terminal and passes this one's bytes through unprefixed.
    """
    from fleet.commands import lifecycle as cmd
    _finish(lambda: cmd.exec_(_session(ctx), patterns, container, list(command), detach, list(env or []), workdir,
                              user, privileged, as_json, interactive, tty))


_CONTAINER_COMMANDS = (("create", create), ("start", start), ("stop", stop), ("restart", restart), ("kill", kill),
                       ("wait", wait), ("rename", rename), ("inspect", inspect), ("top", top), ("diff", diff),
                       ("export", export), ("rm", rm), ("logs", logs), ("update", update), ("stats", stats),
                       ("pause", pause), ("unpause", unpause), ("attach", attach))
_NO_INTERSPERSE = {"context_settings": {"allow_interspersed_args": False}}
app.command("run", **_NO_INTERSPERSE)(run)
app.command("exec", **_NO_INTERSPERSE)(exec_)
container_app.command("exec", **_NO_INTERSPERSE)(exec_)
for _name, _fn in (("ps", ps),) + _CONTAINER_COMMANDS:
    app.command(_name, **(_NO_INTERSPERSE if _name == "create" else {}))(_fn)
for _name, _fn in _CONTAINER_COMMANDS + (("ls", ps), ("ps", ps), ("list", ps), ("prune", container_prune)):
    container_app.command(_name, **(_NO_INTERSPERSE if _name == "create" else {}))(_fn)
container_app.command("run", **_NO_INTERSPERSE)(run)


def commit(ctx: typer.Context, container: str = ContainerArg,
           repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]",
                                                      help="Name for the new image (untagged if omitted)."),
           patterns: List[str] = HostsOpt,
           author: Optional[str] = typer.Option(None, "-a", "--author",
                                                help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").'),
           message: Optional[str] = typer.Option(None, "-m", "--message", help="Commit message."),
           change: Optional[List[str]] = typer.Option(None, "-c", "--change", help="Apply Dockerfile instruction "
                                                      "to the created image (repeatable): CMD, ENTRYPOINT, ENV, "
                                                      "EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, "
                                                      "VOLUME, WORKDIR."),
           pause: bool = typer.Option(True, "--pause/--no-pause", "-p/-P",
                                      help="Pause the container during commit (default: pause)."),
           as_json: bool = JsonOpt):
    """Create a new image from a container's changes on each host (the image stays on that host)."""
    from fleet.commands import transfer as cmd
    _finish(cmd.commit, _session(ctx), patterns, container, repository, author, message, list(change or []), pause,
            as_json)


def cp(ctx: typer.Context, src: str = typer.Argument(..., metavar="SRC", help="CONTAINER:SRC_PATH, a local path, "
                                                       "or - (a tar on stdin)."),
       dest: str = typer.Argument(..., metavar="DEST", help="CONTAINER:DEST_PATH, a local path, or - (a tar on "
                                  "stdout, one host only)."),
       patterns: List[str] = HostsOpt,
       archive: bool = typer.Option(False, "-a", "--archive", help="Archive mode (copy all uid/gid information)."),
       follow_link: bool = typer.Option(False, "-L", "--follow-link", help="Always follow symbol link in SRC_PATH."),
       as_json: bool = JsonOpt):
    """Copy files between a container on each host and this machine (docker cp's path rules).

    Into containers: the local SRC is copied to the container on every selected host. Out of containers:
    with one host DEST is used as docker does; with several, each host's copy goes to DEST/<hostname>/
    (DEST is a directory, created if missing). Without -a, files copied in are owned by root:root and files
    copied out by you; with -a they keep their uid/gid.
    """
    from fleet.commands import transfer as cmd
    _finish(cmd.cp, _session(ctx), patterns, src, dest, archive, follow_link, as_json)


for _name, _fn in (("commit", commit), ("cp", cp)):
    app.command(_name)(_fn)
    container_app.command(_name)(_fn)


# ---- networks and ports ----

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
                    patterns: List[str] = HostsOpt):
    """docker's network objects from every host, as one JSON list."""
    from fleet.commands import netvol as cmd
    _finish(cmd.network_inspect, _session(ctx), patterns, list(networks))


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


# ---- images: top-level docker aliases and the `image` sub-app share one function per command ----

ImageArg = typer.Argument(..., help="Image reference (nginx, user/app:1, reg:5000/app@sha256:...).")


def pull(ctx: typer.Context, image: str = ImageArg, patterns: List[str] = HostsOpt,
         all_tags: bool = typer.Option(False, "-a", "--all-tags", help="Download all tagged images in the repository."),
         platform: Optional[str] = typer.Option(None, "--platform", help="Pull for this platform: os/arch[/variant]."),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress; print host and image per line."),
         as_json: bool = JsonOpt):
    """Pull an image on each host, with a live per-host progress view on stderr."""
    from fleet.commands import images as cmd
    _finish(cmd.pull, _session(ctx), patterns, image, all_tags, platform, quiet, as_json)


def push(ctx: typer.Context, image: str = ImageArg, patterns: List[str] = HostsOpt,
         quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress view."), as_json: bool = JsonOpt):
    """Push an image from each host to its registry, with a live per-host progress view on stderr."""
    from fleet.commands import registry as cmd
    _finish(cmd.push, _session(ctx), patterns, image, quiet, as_json)


def images(ctx: typer.Context, patterns: List[str] = HostsOpt,
           all_: bool = typer.Option(False, "-a", "--all", help="Show all images (default hides intermediate ones)."),
           digests: bool = typer.Option(False, "--digests", help="Show digests."),
           filters: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                       help="dangling=true|false or reference=PATTERN (repeatable)."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Go-template subset: {{.Host}} {{.Repository}} "
                                             "{{.Tag}} {{.ID}} {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} "
                                             "{{.Size}}, {{json .}}, 'table' prefix, \\t."),
           no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate image IDs."),
           quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show host and image IDs."),
           as_json: bool = JsonOpt):
    """List images on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.images, _session(ctx), patterns, all_, digests, quiet, list(filters or []), fmt, no_trunc, as_json)


def rmi(ctx: typer.Context, images_: List[str] = typer.Argument(..., metavar="IMAGE...", help="References or IDs."),
        patterns: List[str] = HostsOpt,
        force: bool = typer.Option(False, "-f", "--force", help="Remove even if a container uses the image."),
        as_json: bool = JsonOpt):
    """Remove images on each host (untag, then delete what is left untagged)."""
    from fleet.commands import images as cmd
    _finish(cmd.rmi, _session(ctx), patterns, images_, force, as_json)


def tag(ctx: typer.Context, source: str = typer.Argument(..., help="Existing image: reference or ID."),
        target: str = typer.Argument(..., help="New reference, e.g. reg:5000/app:1."),
        patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Create a tag TARGET that refers to SOURCE on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.tag, _session(ctx), patterns, source, target, as_json)


def history(ctx: typer.Context, image: str = typer.Argument(..., help="Image reference or ID."),
            patterns: List[str] = HostsOpt,
            no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
            quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show host and layer IDs."),
            as_json: bool = JsonOpt):
    """Show the history (build steps and layer sizes) of an image on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.history, _session(ctx), patterns, image, no_trunc, quiet, as_json)


for _name, _fn in (("pull", pull), ("push", push), ("images", images), ("rmi", rmi), ("tag", tag),
                   ("history", history)):
    app.command(_name)(_fn)
for _name, _fn in (("pull", pull), ("push", push), ("ls", images), ("rm", rmi), ("tag", tag),
                   ("history", history)):
    image_app.command(_name)(_fn)


@image_app.command("prune")
def image_prune(ctx: typer.Context, patterns: List[str] = HostsOpt,
                all_: bool = typer.Option(False, "-a", "--all", help="Remove all unused images, not just dangling."),
                force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation."),
                as_json: bool = JsonOpt):
    """Remove unused images on each host (asks first unless -f; refuses without -f when stdin is no terminal)."""
    from fleet.commands import images as cmd
    _finish(cmd.image_prune, _session(ctx), patterns, all_, force, as_json)


@image_app.command("inspect")
def image_inspect(ctx: typer.Context, images_: List[str] = typer.Argument(..., metavar="IMAGE..."),
                  patterns: List[str] = HostsOpt):
    """Print docker's inspect object of images as one JSON list; each object carries its "host"."""
    from fleet.commands import images as cmd
    _finish(cmd.image_inspect, _session(ctx), patterns, images_)


@system_app.command("boot")
def system_boot(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Start the containers whose restart policy wants them up after a reboot (what the boot hook runs)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.boot, _session(ctx), patterns, as_json)


@system_app.command("df")
def system_df(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Show disk usage of images, containers and build cache on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.system_df, _session(ctx), patterns, as_json)


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
                   patterns: List[str] = HostsOpt):
    """Print docker's inspect object of volumes as one JSON list; each object carries its "host"."""
    from fleet.commands import netvol as cmd
    _finish(cmd.volume_inspect, _session(ctx), patterns, volumes)


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


# ---- registries ----

@app.command()
def login(ctx: typer.Context, registry: Optional[str] = typer.Argument(None, help="Registry host[:port] "
                                                                                   "(default: Docker Hub)."),
          patterns: List[str] = HostsOpt,
          username: Optional[str] = typer.Option(None, "-u", "--username", help="Username."),
          password: Optional[str] = typer.Option(None, "-p", "--password", help="Password (insecure: it shows in "
                                                                                 "your shell history; prefer "
                                                                                 "--password-stdin)."),
          password_stdin: bool = typer.Option(False, "--password-stdin", help="Take the password from stdin."),
          as_json: bool = JsonOpt):
    """Log each host in to a registry; the password reaches the hosts only inside the request on SSH stdin."""
    from fleet.commands import registry as cmd
    _finish(cmd.login, _session(ctx), patterns, registry, username, password, password_stdin, as_json)


@app.command()
def logout(ctx: typer.Context, registry: Optional[str] = typer.Argument(None, help="Registry host[:port] "
                                                                                    "(default: Docker Hub)."),
           patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Remove each host's stored credentials for a registry."""
    from fleet.commands import registry as cmd
    _finish(cmd.logout, _session(ctx), patterns, registry, as_json)


@app.command()
def configure(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Write each host's /etc/fleet/daemon.json from its inventory vars.

    fleet_registry_mirrors (list), fleet_insecure_registries (list), fleet_registries (mapping) and
    fleet_daemon (mapping of any other daemon.json keys); only the vars that are set are sent.
    """
    from fleet.commands import registry as cmd
    _finish(cmd.configure, _session(ctx), patterns, as_json)


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
