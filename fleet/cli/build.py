"""`fleet build` (and `fleet image build`): docker build's flags."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, _finish, _session, app, image_app


def build(ctx: typer.Context,
          path: str = typer.Argument(..., metavar="PATH|-",
                                     help="The build context: a directory, a tar file, or - (a tar or a Dockerfile "
                                          "on stdin)."),
          patterns: List[str] = HostsOpt,
          tags: Optional[List[str]] = typer.Option(None, "-t", "--tag", help="Name and optionally a tag in the "
                                                   "name:tag format (repeatable)."),
          file: Optional[str] = typer.Option(None, "-f", "--file", help="Name of the Dockerfile (default "
                                             "PATH/Dockerfile; relative to the current directory; may be outside "
                                             "the context; - reads it from stdin)."),
          build_args: Optional[List[str]] = typer.Option(None, "--build-arg", help="Set a build-time variable: "
                                                         "K=V, or K to take its value from this environment "
                                                         "(repeatable)."),
          target: Optional[str] = typer.Option(None, "--target", help="Set the target build stage to build."),
          labels: Optional[List[str]] = typer.Option(None, "--label", help="Set metadata for an image: K=V "
                                                     "(repeatable)."),
          no_cache: bool = typer.Option(False, "--no-cache", help="Do not use cache when building the image."),
          pull: bool = typer.Option(False, "--pull", help="Always attempt to pull a newer version of the image."),
          network: Optional[str] = typer.Option(None, "--network", help="Networking mode for the RUN instructions "
                                                "during build: default, none or host."),
          quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the build output and print image ID on "
                                     "success."),
          iidfile: Optional[str] = typer.Option(None, "--iidfile", help="Write the image ID to the file (on this "
                                                "machine; several hosts: only when they all built the same ID)."),
          platform: Optional[str] = typer.Option(None, "--platform", help="Set platform if server is "
                                                 "multi-platform capable (the host's own only)."),
          rm: bool = typer.Option(True, "--rm/--no-rm", help="Remove intermediate containers after a successful "
                                  "build."),
          force_rm: bool = typer.Option(False, "--force-rm", help="Always remove intermediate containers.")):
    """Build an image from a Dockerfile on each host (docker build): the context is sent to a host only when it
    lacks it, the output is docker's classic builder's."""
    from fleet.commands import build as cmd
    _finish(cmd.build, _session(ctx), patterns, path, list(tags or []), file, list(build_args or []), target,
            list(labels or []), no_cache, pull, network, quiet, iidfile, platform, rm, force_rm)


app.command("build")(build)
image_app.command("build")(build)
