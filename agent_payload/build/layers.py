"""Filesystem steps done on the host, without a container: COPY/ADD placement and WORKDIR creation.

The step writes into a fresh, private upper directory; the image's layers (``lowers``, top first) are only
read, component by component with O_NOFOLLOW (runtime/changes.py), and a symlink in the destination path is
followed inside the image (docker's FollowSymlinkInScope), never on the host.  A parent directory the image
already has is first copied up with its mode, owner and times (as overlayfs would), so the layer that
``changes.write_layer_tar`` writes from the upper dir holds exactly what a classic build's container diff holds.
"""

import os
import posixpath
import stat

from .. import archive, errors
from ..runtime import changes

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _lookup(lowers, rel):
    """(lstat, layer dir) of ``rel`` in the merged lowers, (None, None) when absent."""
    st = changes.lower_lookup(lowers, rel)
    if st is None:
        return None, None
    for layer in lowers:
        if changes.lstat_in(layer, rel) is not None:
            return st, layer
    return None, None


def resolve(lowers, path, depth=0):
    """``path`` (absolute) with every symlink among its components followed inside the image -> absolute."""
    if depth > 40:
        raise errors.InvalidArgument("too many levels of symbolic links: {}".format(path))
    parts = [p for p in path.split("/") if p and p != "."]
    cur = ""
    for i, part in enumerate(parts):
        if part == "..":
            cur = posixpath.dirname(cur) if cur else ""
            continue
        nxt = cur + "/" + part
        st, layer = _lookup(lowers, nxt)
        if st is not None and stat.S_ISLNK(st.st_mode):
            target = changes._readlink_in(layer, nxt)
            base = "/" if target.startswith("/") else (cur or "/")
            joined = posixpath.normpath(posixpath.join(base, target, *parts[i + 1:]))
            return resolve(lowers, joined, depth + 1)
        cur = nxt
    return cur or "/"


def kind(lowers, path):
    """"dir", "file" (anything else) or None for an absolute, resolved path in the image."""
    if path == "/":
        return "dir"
    st, _ = _lookup(lowers, path)
    if st is None:
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def read_file(lowers, path, limit=16 << 20):
    """The bytes of a regular file of the image (symlinks followed inside it), or None."""
    real = resolve(lowers, path)
    st, layer = _lookup(lowers, real)
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    fd = changes.open_in(layer, real, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def make_dirs(upper, lowers, path, uid=0, gid=0, mode=0o755):
    """Directory ``path`` (absolute, resolved) in ``upper``: components the image has are copied up with their
    attributes, missing ones made ``mode`` and owned by uid:gid (docker's MkdirAllAndChownNew); returns
    whether the leaf was missing in the image."""
    parts = [p for p in path.split("/") if p]
    fd = os.open(upper, _O_DIR)
    created = False
    try:
        cur = ""
        for part in parts:
            cur += "/" + part
            st, _ = _lookup(lowers, cur)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise errors.FailedPrecondition("mkdir {}: not a directory".format(cur))
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
                new = True
            except FileExistsError:
                new = False
            nfd = os.open(part, _O_DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if new:
                if st is not None and stat.S_ISDIR(st.st_mode):
                    os.fchown(fd, st.st_uid, st.st_gid)
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))
                    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                    created = False
                else:
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, mode)
                    created = True
    finally:
        os.close(fd)
    return created


def place(upper, lowers, staging_path, plan, dest, dest_dir):
    """Extract the staging tar (``<n>/...`` entries, see sources.py) into ``upper`` by docker's COPY rules.

    ``plan[n]`` is ("dir" | "file" | "extract", base name); ``dest`` the absolute destination, ``dest_dir``
    whether it names a directory (a trailing "/", several sources, or an existing directory).
    """
    real = resolve(lowers, dest)
    targets = {}
    for n, (what, base) in enumerate(plan):
        if what == "file" and not dest_dir:
            targets[n] = real.lstrip("/")
        elif what == "file":
            targets[n] = (real.rstrip("/") + "/" + base).lstrip("/")
        else:
            targets[n] = real.strip("/")  # a directory's contents, an archive's entries: into dest

    def mapped(name):
        head, _, rest = name.partition("/")
        top = targets[int(head)]
        if not rest:
            return "" if plan[int(head)][0] != "file" else top
        return (top + "/" + rest) if top else rest

    dfd = os.open(upper, _O_DIR)
    try:
        with open(staging_path, "rb") as f:
            return archive.extract_mapped(f, dfd, mapped, owner=None, keep_owner=True)
    finally:
        os.close(dfd)


def new_upper(base):
    """A fresh private directory under ``base`` (the build's scratch space)."""
    import tempfile
    os.makedirs(base, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix="step-", dir=base)


def remove_upper(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
