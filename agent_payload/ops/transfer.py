"""``cp`` and ``export`` to stdout: files between a container and a staging tar under the fleet root (the
controller moves it by SFTP).

``cp_in`` extracts an uploaded staging tar into the container and always deletes the staging file;
``cp_out`` writes a tar of a container path to a new staging file and returns its path (the controller
fetches and deletes it), as ``export_out`` does with a container's whole filesystem.  Arguments are checked
and the container resolved before anything is written.
"""

import os

from agent_payload import errors
from agent_payload.ops.args import check_value


def op_cp_in(ctx, req, emit):
    """{"container", "path", "staging", "base", "is_dir", "contents", "archive"} -> {"entries", "path"}."""
    from agent_payload.runtime import copy

    staging = req.staging
    try:
        container, path, base, is_dir, contents, keep = (
            check_value("cp_in", key, getattr(req, key))
            for key in ("container", "path", "base", "is_dir", "contents", "archive"))
        if base != "." and (not base or "/" in base or base == ".." or "\x00" in base):
            raise errors.InvalidArgument("invalid source name: {!r}".format(base))
        runtime = ctx.runtime()
        runtime.lookup(container)
        fd = copy.open_staging(ctx.paths, staging)
        try:
            return copy.copy_in(runtime, container, path, fd, base, is_dir, contents=contents, keep_owner=keep)
        finally:
            os.close(fd)
    finally:
        _remove_staging(ctx, staging)


def op_cp_out(ctx, req, emit):
    """{"container", "path", "follow_link"} -> {"staging", "base", "type", "size"} (the caller deletes staging)."""
    from agent_payload.runtime import copy

    runtime = ctx.runtime()
    runtime.lookup(req.container)
    fd, staging = copy.new_staging(ctx.paths)
    try:
        info = copy.copy_out(runtime, req.container, req.path, fd, follow_link=req.follow_link)
        os.fsync(fd)
    except BaseException:
        os.unlink(staging)
        raise
    finally:
        os.close(fd)
    return dict(info, staging=staging, bytes=os.stat(staging).st_size)


def op_export_out(ctx, req, emit):
    """{"container"} -> {"staging", "size", "sha256"}: export's tar in a staging file (the caller deletes it)."""
    from agent_payload.runtime import copy

    runtime = ctx.runtime()
    runtime.lookup(req.container)
    fd, staging = copy.new_staging(ctx.paths)
    os.close(fd)
    try:
        out = runtime.export(req.container, staging, force=True)
    except BaseException:
        _unlink_quietly(staging)
        raise
    return {"staging": staging, "size": out["size"], "sha256": out["sha256"]}


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_staging(ctx, staging):
    """Delete an uploaded staging file, but only one that really is in the fleet tmp dir."""
    from agent_payload.runtime.copy import STAGING_PREFIX

    if (isinstance(staging, str) and os.path.dirname(staging) == ctx.paths.tmp.rstrip("/")
            and os.path.basename(staging).startswith(STAGING_PREFIX)):
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
