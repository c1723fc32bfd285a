"""``build_context``: fleet build's context store on the host, ``<root>/build/contexts/<sha256>.tar``.

The controller asks whether a context is present (its tar's sha256) and uploads it over SFTP to a staging file
only when it is not; the op then checks the staged bytes against the digest and renames them into place, so a
context is never seen half-written and never under a wrong name.  Old contexts go: only the newest
``CONTEXTS_KEPT`` (by last use) stay.
"""

import hashlib
import os
import re

from agent_payload import errors

CONTEXTS_KEPT = 10
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _ensure_dir(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _gc(directory, keep):
    """Remove all but the ``keep`` most recently used contexts (and stray temp files of dead uploads)."""
    entries = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if name.endswith(".tar") and _SHA.match(name[:-4]):
            entries.append((st.st_mtime, name))
    for _mtime, name in sorted(entries, reverse=True)[keep:]:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass


def op_build_context(ctx, req, emit):
    """{"sha256", "staging"?} -> {"present", "size", "kept"} (see protocol.py)."""
    from agent_payload.ops.transfer import _remove_staging
    from agent_payload.runtime import copy

    staging = req.staging
    try:
        sha = req.sha256
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise errors.InvalidArgument("invalid build context digest: {!r}".format(sha))
        directory = ctx.paths.build_contexts
        _ensure_dir(os.path.dirname(directory))
        _ensure_dir(directory)
        target = ctx.paths.build_context(sha)
        if staging is None:
            try:
                os.utime(target)
            except FileNotFoundError:
                return {"present": False, "size": None, "kept": False}
            return {"present": True, "size": os.stat(target).st_size, "kept": False}
        fd = copy.open_staging(ctx.paths, staging)
        digest = hashlib.sha256()
        size = 0
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if digest.hexdigest() != sha:
            raise errors.InvalidArgument("build context upload corrupt: sha256 {} instead of {}".format(
                digest.hexdigest(), sha))
        os.chmod(staging, 0o600)
        os.rename(staging, target)
        _gc(directory, CONTEXTS_KEPT)
        return {"present": True, "size": size, "kept": True}
    finally:
        if staging is not None:
            _remove_staging(ctx, staging)
