"""`fleet save`, `load` and `import` (also `fleet image save/load/import`): image archives and tarballs."""

from __future__ import annotations

from typing import List, Optional

import typer

from fleet.cli.base import HostsOpt, JsonOpt, _finish, _session, app, image_app


def save(ctx: typer.Context, images: List[str] = typer.Argument(..., metavar="IMAGE...", help="References or IDs."),
         patterns: List[str] = HostsOpt,
         output_path: Optional[str] = typer.Option(None, "-o", "--output", help="Write to a file on THIS machine, "
                                                   "instead of STDOUT."),
         fmt: str = typer.Option("docker-archive", "--format", help="docker-archive (docker save's tar, default) "
                                 "or oci-archive (a tar of an OCI image layout)."),
         ):
    """Save one or more images of one host to a tar archive on this machine (streamed to STDOUT by default)."""
    from fleet.commands import archive as cmd
    _finish(cmd.save, _session(ctx), patterns, list(images), output_path, fmt)


def load(ctx: typer.Context, patterns: List[str] = HostsOpt,
         input_path: Optional[str] = typer.Option(None, "-i", "--input", help="Read from tar archive file (on this "
                                                  "machine), instead of STDIN."),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the load output (as docker: there is "
                                    "no progress to drop; the 'Loaded image' lines stay)."),
         as_json: bool = JsonOpt):
    """Load images from a docker-archive or OCI archive on every selected host; each host is sent only the
    layers it does not hold yet."""
    from fleet.commands import archive as cmd
    _finish(cmd.load, _session(ctx), patterns, input_path, quiet, as_json)


def import_(ctx: typer.Context,
            source: str = typer.Argument(..., metavar="file|URL|-", help="A tarball on this machine, a URL the "
                                         "hosts fetch, or - for STDIN."),
            repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
            patterns: List[str] = HostsOpt,
            change: Optional[List[str]] = typer.Option(None, "-c", "--change", help="Apply Dockerfile instruction "
                                                       "to the created image (repeatable)."),
            message: Optional[str] = typer.Option(None, "-m", "--message", help="Set commit message for imported "
                                                  "image."),
            as_json: bool = JsonOpt):
    """Import the contents from a tarball to create a filesystem image on every selected host."""
    from fleet.commands import archive as cmd
    _finish(cmd.import_, _session(ctx), patterns, source, repository, list(change or []), message, as_json)


for _name, _fn in (("save", save), ("load", load), ("import", import_)):
    app.command(_name)(_fn)
    image_app.command(_name)(_fn)
