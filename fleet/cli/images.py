"""Images, registries (login, logout, configure) and `fleet system`."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, _finish, _session, app, image_app, system_app


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


def images(ctx: typer.Context,
           repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]",
                                                      help="Only images of this repository (and tag), as docker: "
                                                      "a reference filter (globs allowed)."),
           patterns: List[str] = HostsOpt,
           all_: bool = typer.Option(False, "-a", "--all", help="Show all images (default hides intermediate ones)."),
           digests: bool = typer.Option(False, "--digests", help="Show digests."),
           filters: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                       help="dangling=true|false or reference=PATTERN (repeatable)."),
           fmt: Optional[str] = typer.Option(None, "--format", help="Go-template subset: {{.Host}} {{.Repository}} "
                                             "{{.Tag}} {{.ID}} {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} "
                                             "{{.Size}}, {{json .}}, 'table' prefix, \\t."),
           no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate image IDs."),
           quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs, one per line, every "
                                      "host's, without a host (--format '{{.Host}} {{.ID}}' to add it)."),
           as_json: bool = JsonOpt):
    """List images on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.images, _session(ctx), patterns, all_, digests, quiet, list(filters or []), fmt, no_trunc, as_json,
            repository)


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
for _name, _fn in (("pull", pull), ("push", push), ("ls", images), ("list", images), ("rm", rmi), ("tag", tag),
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
                  patterns: List[str] = HostsOpt,
                  fmt: Optional[str] = typer.Option(None, "-f", "--format", help="Go template per image (docker's: "
                                                    "{{.Id}}, {{json .Config}}...).")):
    """Print docker's inspect object of images as one JSON list; each object carries its "host"."""
    from fleet.commands import images as cmd
    _finish(cmd.image_inspect, _session(ctx), patterns, images_, fmt)


@system_app.command("boot")
def system_boot(ctx: typer.Context, patterns: List[str] = HostsOpt, as_json: bool = JsonOpt):
    """Start the containers whose restart policy wants them up after a reboot (what the boot hook runs)."""
    from fleet.commands import lifecycle as cmd
    _finish(cmd.boot, _session(ctx), patterns, as_json)


@system_app.command("df")
def system_df(ctx: typer.Context, patterns: List[str] = HostsOpt,
              verbose: bool = typer.Option(False, "-v", "--verbose", help="Show detailed information on space "
                                           "usage (per image, container and volume)."),
              as_json: bool = JsonOpt):
    """Show disk usage of images, containers, local volumes and build cache on each host."""
    from fleet.commands import images as cmd
    _finish(cmd.system_df, _session(ctx), patterns, as_json, verbose)


@system_app.command("prune")
def system_prune(ctx: typer.Context, patterns: List[str] = HostsOpt,
                 all_: bool = typer.Option(False, "-a", "--all", help="Remove all unused images, not just "
                                           "dangling ones."),
                 volumes: bool = typer.Option(False, "--volumes", help="Prune anonymous volumes."),
                 force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation."),
                 as_json: bool = JsonOpt):
    """Remove stopped containers, unused networks, dangling (-a: unused) images and, with --volumes, unused
    anonymous volumes on each host; asks once here first unless -f (stdin is read even when no terminal)."""
    from fleet.commands import hosts as cmd
    _finish(cmd.system_prune, _session(ctx), patterns, all_, volumes, force, as_json)


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
