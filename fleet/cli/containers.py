"""The container commands: docker's top-level aliases and `fleet container ...` share one function each."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import (ContainerArg, ContainersArg, HostsOpt, JsonOpt, _finish, _session, app, container_app,
                            container_flags)


EnvOpt = typer.Option(None, "-e", "--env", help="KEY=VALUE, or KEY to pass this shell's.")
DetachKeysOpt = typer.Option(None, "--detach-keys", help="Key sequence to detach, leaving the container running "
                             "(default ctrl-p,ctrl-q).")
PrefixOpt = typer.Option(False, "--prefix", help="Prefix each line of output with its host ('host | '), even for "
                         "one host (default: raw bytes for one host when stdout is not a terminal).")
NoPrefixOpt = typer.Option(False, "--no-prefix", help="Never prefix output lines with their host.")
SigProxyOpt = typer.Option(None, "--sig-proxy", metavar="BOOL", help="true|false: proxy received signals (INT, "
                           "TERM, HUP, QUIT, USR1, USR2) to the container's process (default true; never with a TTY).")


def _attached_flags(prefix: bool, no_prefix: bool, sig_proxy: Optional[str] = None):
    """(--prefix/--no-prefix as True/False/None, --sig-proxy as a bool), docker's checks (UsageError)."""
    from fleet.commands.sigproxy import parse_bool
    from fleet.errors import UsageError

    if prefix and no_prefix:
        raise UsageError("--prefix and --no-prefix cannot be combined")
    return (True if prefix else False if no_prefix else None), parse_bool("--sig-proxy", sig_proxy, True)


@container_flags("run")
def run(
    ctx: typer.Context,
    image: str = typer.Argument(..., help="Image reference."),
    command: Optional[List[str]] = typer.Argument(None, help="Command and arguments (override the image's CMD)."),
    patterns: List[str] = HostsOpt,
    as_json: bool = JsonOpt,
    **flags,
):
    """Create and start a container on each host (options go before IMAGE, as with docker).

    With one host, stdout is docker's: -d prints the full container ID; attached, the container's output alone
    (the summary goes to stderr), as raw bytes when stdout is not a terminal. With several hosts, a table per
    host follows on stdout.
    """
    from fleet.commands import containers as cmd
    from fleet.commands import runflags
    # the controller's own, not op args
    attached = [flags.pop(k, None) for k in ("prefix", "no_prefix", "sig_proxy")]
    _finish(lambda: cmd.run(_session(ctx), patterns, runflags.parse("run", image, command, flags), as_json,
                            *_attached_flags(bool(attached[0]), bool(attached[1]), attached[2])))


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
       quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show container IDs, one per line, every host's, "
                            "without a host (--format '{{.Host}} {{.ID}}' to add it)."),
       size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes."),
       no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
       fmt: Optional[str] = typer.Option(None, "--format", help="Go template (docker's): {{.Host}} {{.ID}} {{.Image}} "
                                         "{{.Command}} {{.CreatedAt}} {{.RunningFor}} {{.Status}} {{.Ports}} "
                                         "{{.Names}} {{.State}} {{.Labels}} {{.Label \"K\"}} {{.Mounts}} "
                                         "{{.LocalVolumes}} {{.Networks}} {{.Size}}, {{json .}}, 'table' prefix."),
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
                                      "logs have none)."),
         retry: bool = typer.Option(False, "--retry", help="With -f: re-attach a host whose stream breaks (SSH "
                                    "drop), from its last line, while the others keep flowing."),
         prefix: bool = PrefixOpt, no_prefix: bool = NoPrefixOpt):
    """Show a container's logs from each host, each line prefixed with its host (a colour per host on a
    terminal); with -f, all hosts' lines merged as they arrive. One host and stdout not a terminal: the bytes
    as logged, no prefix."""
    from fleet.commands import containers as cmd
    _finish(lambda: cmd.logs(_session(ctx), patterns, container, tail, follow, timestamps, since, until, details,
                             retry, _attached_flags(prefix, no_prefix)[0]))


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
          prefix: bool = PrefixOpt, no_prefix: bool = NoPrefixOpt,
          sig_proxy: Optional[str] = SigProxyOpt,
          as_json: bool = JsonOpt):
    """Start created or stopped containers on each host."""
    if interactive:
        from fleet.commands import interactive as icmd
        from fleet.errors import UsageError

        def start_i():
            if len(containers) != 1:
                raise UsageError("you cannot start and attach multiple containers at once")
            return icmd.start_attached(_session(ctx), patterns, containers[0], detach_keys,
                                       *_attached_flags(prefix, no_prefix, sig_proxy))
        _finish(start_i)
    from fleet.commands import lifecycle as cmd
    _finish(lambda: cmd.start(_session(ctx), patterns, containers, attach, as_json,
                              *_attached_flags(prefix, no_prefix, sig_proxy)))


def attach(ctx: typer.Context, container: str = ContainerArg, patterns: List[str] = HostsOpt,
           no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not attach STDIN."),
           detach_keys: Optional[str] = DetachKeysOpt,
           prefix: bool = PrefixOpt, no_prefix: bool = NoPrefixOpt,
           sig_proxy: Optional[str] = SigProxyOpt):
    """Attach this terminal to a running container on one host (detach: ctrl-p ctrl-q)."""
    from fleet.commands import interactive as cmd
    _finish(lambda: cmd.attach(_session(ctx), patterns, container, no_stdin, detach_keys,
                               *_attached_flags(prefix, no_prefix, sig_proxy)))


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


def inspect(ctx: typer.Context, containers: List[str] = ContainersArg, patterns: List[str] = HostsOpt,
            type_: Optional[str] = typer.Option(None, "--type", help="container or image (default: a container, "
                                                "else an image, as docker)"),
            fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go template per object (docker's: "
                                             "{{.State.Status}}, {{json .Config}}, range, index, printf...); "
                                             "several hosts: each line starts with 'host | '.")):
    """Print docker's inspect objects of containers (or images) as one JSON list; each object carries its "host"."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.inspect, _session(ctx), patterns, containers, type_, fmt)


def top(ctx: typer.Context, container: str = ContainerArg,
        ps_args: Optional[List[str]] = typer.Argument(None, metavar="[ps OPTIONS]",
                                                      help="ps options, after CONTAINER (default -ef): -o "
                                                      "pid,comm, aux, ..."),
        patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Show the running processes of a container on each host (ps's columns; fleet's options go before
    CONTAINER)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.top, _session(ctx), patterns, container, as_json, list(ps_args or []))


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
    """Export a container's filesystem as a tar archive: to stdout (one host, not a terminal), or on each host
    at -o PATH."""
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
          fmt: Optional[str] = typer.Option(None, "--format", help="Go template (docker's): {{.Host}} "
                                            "{{.Container}} {{.Name}} {{.ID}} {{.CPUPerc}} {{.MemUsage}} "
                                            "{{.MemPerc}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}, 'table' prefix."),
          as_json: bool = JsonOpt):
    """Show containers' resource usage on each host: CPU %, memory, net and block I/O, PIDs."""
    from fleet.commands import lifecycle as cmd
    _finish(lambda: cmd.stats(_session(ctx), patterns, list(containers or []), all_, no_stream, as_json,
                              fmt=fmt))


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
          prefix: bool = PrefixOpt, no_prefix: bool = NoPrefixOpt,
          as_json: bool = JsonOpt):
    """Run a command in a running container on each host (options go before CONTAINER).

    Output lines are prefixed with the host (one host and stdout not a terminal: the bytes alone, so
    `fleet exec -H db1 pg pg_dump > dump.sql` works); the exit status is the command's for one host. Without -i
    the command's stdin is /dev/null; -t gives it a terminal and passes this one's bytes through unprefixed.
    """
    from fleet.commands import lifecycle as cmd
    _finish(lambda: cmd.exec_(_session(ctx), patterns, container, list(command), detach, list(env or []), workdir,
                              user, privileged, as_json, interactive, tty, _attached_flags(prefix, no_prefix)[0]))


_CONTAINER_COMMANDS = (("create", create), ("start", start), ("stop", stop), ("restart", restart), ("kill", kill),
                       ("wait", wait), ("rename", rename), ("inspect", inspect), ("top", top), ("diff", diff),
                       ("export", export), ("rm", rm), ("logs", logs), ("update", update), ("stats", stats),
                       ("pause", pause), ("unpause", unpause), ("attach", attach))
_NO_INTERSPERSE = {"context_settings": {"allow_interspersed_args": False}}
# top: ps's options (-ef, -o pid,comm) are its arguments, fleet's own (-H, --json) still work anywhere
_SETTINGS = {"create": _NO_INTERSPERSE, "top": {"context_settings": {"ignore_unknown_options": True}}}
app.command("run", **_NO_INTERSPERSE)(run)
app.command("exec", **_NO_INTERSPERSE)(exec_)
container_app.command("exec", **_NO_INTERSPERSE)(exec_)
for _name, _fn in (("ps", ps),) + _CONTAINER_COMMANDS:
    app.command(_name, **_SETTINGS.get(_name, {}))(_fn)
for _name, _fn in _CONTAINER_COMMANDS + (("ls", ps), ("ps", ps), ("list", ps), ("prune", container_prune)):
    container_app.command(_name, **_SETTINGS.get(_name, {}))(_fn)
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
