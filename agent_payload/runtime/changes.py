"""A container's filesystem changes: ``diff`` (A/C/D from the overlay upper dir), ``export`` (merged tar), sizes.

Layers are given top first: the upper dir, then the image's lower dirs from the top layer down.  Every path
is opened component by component with O_NOFOLLOW from its layer's root, so an image's symlink can never
lead a walk or a read out of the layer (PITFALLS 3.1); symlinks are reported and archived, never followed.
"""

import errno
import hashlib
import os
import secrets
import stat
import tarfile

from .. import errors, fs
from ..archive import ExactReader, tar_header
from ..fs import tree_size  # noqa: F401 - containers' SizeRw and volumes' sizes take it from here

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
KIND_CHANGE, KIND_ADD, KIND_DELETE = "C", "A", "D"


def _split(rel):
    return [p for p in rel.split("/") if p]


def open_in(base, rel, flags=os.O_RDONLY):
    """Open ``base/rel`` without following any symlink on the way (the last component included)."""
    parts = _split(rel)
    if not parts:
        return os.open(base, flags | os.O_CLOEXEC)
    base_fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = fs.open_beneath(base_fd, parts[:-1])
    finally:
        os.close(base_fd)
    try:
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def lstat_in(base, rel):
    """lstat of ``base/rel`` resolved inside ``base`` (None if it or a parent is missing or not a directory)."""
    parts = _split(rel)
    if not parts:
        return os.lstat(base)
    try:
        fd = open_in(base, "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in _MISSING:
            return None
        raise
    try:
        return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _MISSING:
            return None
        raise
    finally:
        os.close(fd)


def is_whiteout(st):
    """overlayfs whiteout: a character device 0/0."""
    return st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def is_opaque(base, rel):
    """True if the directory ``base/rel`` carries overlayfs's opaque xattr (its lower contents are hidden)."""
    try:
        fd = open_in(base, rel, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        for name in OPAQUE_XATTRS:
            try:
                if os.getxattr(fd, name) == b"y":
                    return True
            except OSError:
                continue
        return False
    finally:
        os.close(fd)


def lower_lookup(lowers, rel):
    """lstat of ``rel`` as the merged lower layers show it (None if absent, whited out or under an opaque dir)."""
    parts = _split(rel)
    for layer in lowers:
        st = lstat_in(layer, rel)
        if st is not None:
            return None if is_whiteout(st) else st
        # absent here: a whiteout, a non-directory or an opaque directory above it in this layer hides the lower ones
        for depth in range(len(parts) - 1, 0, -1):
            anc = "/".join(parts[:depth])
            ast = lstat_in(layer, anc)
            if ast is None:
                continue
            if not stat.S_ISDIR(ast.st_mode) or is_opaque(layer, anc):
                return None
    return None


def _names(base, rel):
    """Directory entries of ``base/rel`` sorted by bytes, as Go's filepath.Walk visits them."""
    fd = open_in(base, rel, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd), key=os.fsencode)
    finally:
        os.close(fd)


def _same_time(a, b):
    """moby's sameFsTime: equal, or equal seconds where one side has no sub-second part."""
    return a == b or (a // 10 ** 9 == b // 10 ** 9 and (a % 10 ** 9 == 0 or b % 10 ** 9 == 0))


def diff(upper, lowers, ignore=()):
    """Docker's ``container diff`` from an overlay upper dir: [{"kind": "A"|"C"|"D", "path": "/..."}].

    moby's OverlayChanges: a 0/0 char device is D; an opaque directory that the lower layers have is D
    (deleted and recreated; its children follow as A or C); anything else is A, or C if the lowers have it,
    except a directory identical to the lower one (size, mode, mtime).  The parent of an A or D is recorded
    as C if it was not already.  Order: depth first, names sorted by bytes.  Paths in ``ignore`` that the
    lowers lack are skipped: mountpoints the runtime created (docker keeps those in its init layer), with the
    directories made only to hold them; an image directory the runtime put such a mountpoint in (``/etc`` for
    /etc/hostname) is a change only when something else under it is.
    """
    changes, changed_dirs = [], set()
    made, touched = _runtime_made(upper, lowers, ignore)

    def walk(rel):
        for name in _names(upper, rel):
            child = rel + "/" + name
            st = lstat_in(upper, child)
            if st is None:
                continue  # gone while we looked
            is_dir = stat.S_ISDIR(st.st_mode)
            if child in made or (child in ignore and lower_lookup(lowers, child) is None):
                continue
            deferred, kind = False, None
            if is_whiteout(st) or (is_dir and is_opaque(upper, child) and lower_lookup(lowers, child) is not None):
                kind = KIND_DELETE
            else:
                kind = KIND_ADD
                low = lower_lookup(lowers, child)
                if low is not None:
                    if (is_dir and stat.S_ISDIR(low.st_mode) and st.st_size == low.st_size
                            and st.st_mode == low.st_mode and _same_time(st.st_mtime_ns, low.st_mtime_ns)):
                        kind = None  # only a parent of a change: recorded below if a child needs it
                    elif (child in touched and is_dir and stat.S_ISDIR(low.st_mode)
                          and st.st_mode == low.st_mode):
                        deferred, kind = True, None  # the runtime's mountpoints alone changed its times
                    else:
                        kind = KIND_CHANGE
            if kind is not None:
                changes.append({"kind": kind, "path": child})
                if is_dir:
                    changed_dirs.add(child)
                if kind in (KIND_ADD, KIND_DELETE) and rel and rel not in changed_dirs:
                    changes.insert(len(changes) - 1, {"kind": KIND_CHANGE, "path": rel})
                    changed_dirs.add(rel)
            if is_dir:
                pos = len(changes)
                walk(child)
                if deferred and len(changes) > pos and child not in changed_dirs:
                    changes.insert(pos, {"kind": KIND_CHANGE, "path": child})
                    changed_dirs.add(child)

    walk("")
    return changes


def _runtime_made(upper, lowers, ignore):
    """(made, touched) for ``diff``: directories the upper dir holds only because the runtime made mountpoints
    (``ignore`` paths the image lacks) in them, and the image directories it made such ones in."""
    made, touched = set(), set()
    for path in sorted(ignore, key=lambda p: -len(_split(p))):  # deepest first: a parent sees its made children
        if lstat_in(upper, path) is None or lower_lookup(lowers, path) is not None:
            continue
        parent = os.path.dirname(path)
        while parent != "/":
            if lower_lookup(lowers, parent) is not None:
                touched.add(parent)
                break
            st = lstat_in(upper, parent)
            if st is None or not stat.S_ISDIR(st.st_mode) or is_opaque(upper, parent) or not all(
                    parent + "/" + n in ignore or parent + "/" + n in made for n in _names(upper, parent)):
                break
            made.add(parent)
            parent = os.path.dirname(parent)
    return made, touched


# ---------------------------------------------------------------- export

class _HashingWriter:
    """A write-only file object that counts and hashes what passes through to ``fd``."""

    def __init__(self, fd):
        self.fd = fd
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _readlink_in(base, rel):
    parts = _split(rel)
    fd = open_in(base, "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
    try:
        return os.readlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def _link_fields(info, base, rel, st, links, key):
    """A symlink's target (read inside ``base``), or a regular file made a hard link to the first entry of the
    same inode (``links``: ``key`` -> that entry's name)."""
    if info.type == tarfile.SYMTYPE:
        info.linkname = _readlink_in(base, rel)
    elif info.type == tarfile.REGTYPE and st.st_nlink > 1:
        if key in links:
            info.type, info.size, info.linkname = tarfile.LNKTYPE, 0, links[key]
        else:
            links[key] = info.name


def write_merged_tar(layers, fileobj):
    """Write the union of ``layers`` (top first, whiteouts and opaque dirs applied) as a tar stream."""
    tar = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
    links = {}

    def emit(rel, idx, st):
        info = tar_header(rel.lstrip("/"), st)
        if info is None:
            return
        info.mtime = int(st.st_mtime)  # docker's export: whole seconds
        base = layers[idx]
        _link_fields(info, base, rel, st, links, (idx, st.st_dev, st.st_ino))
        if info.type == tarfile.REGTYPE:
            fd = open_in(base, rel, os.O_RDONLY)
            with os.fdopen(fd, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)

    def walk(rel, sources):
        entries, hidden = {}, set()
        for idx in sources:
            for name in _names(layers[idx], rel):
                if name in entries or name in hidden:
                    continue
                st = lstat_in(layers[idx], rel + "/" + name)
                if st is None:
                    continue
                if is_whiteout(st):
                    hidden.add(name)
                else:
                    entries[name] = (idx, st)
            if is_opaque(layers[idx], rel):
                break  # nothing below this layer shows through this directory
        for name in sorted(entries, key=os.fsencode):
            idx, st = entries[name]
            child = rel + "/" + name
            emit(child, idx, st)
            if stat.S_ISDIR(st.st_mode):
                walk(child, _dir_sources(layers, sources, idx, child))

    walk("", list(range(len(layers))))
    tar.close()


def _dir_sources(layers, sources, top, rel):
    """Layers (top first, from ``top``) whose ``rel`` directory contributes entries to the merged one."""
    out = [top]
    for idx in sources[sources.index(top) + 1:]:
        if is_opaque(layers[out[-1]], rel):
            break
        st = lstat_in(layers[idx], rel)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            break  # a file or a whiteout hides everything below it
        out.append(idx)
    return out


def export(layers, output, force=False):
    """Write the merged filesystem of ``layers`` to ``output`` (absolute path) as a tar; returns size and sha256.

    The tar is written to a temporary file beside ``output`` and renamed into place, so an existing file is
    replaced whole (only with ``force``) and a failed export leaves nothing behind.
    """
    check_output(output, force)
    parent, base = os.path.split(output)
    tmp = os.path.join(parent, ".{}.export-{}".format(base, secrets.token_hex(4)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        writer = _HashingWriter(fd)
        write_merged_tar(layers, writer)
        os.fsync(fd)
        os.close(fd)
        fd = None
        if not force and os.path.lexists(output):
            raise errors.AlreadyExists("output file {} already exists (use force to replace it)".format(output))
        os.rename(tmp, output)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return {"output": output, "size": writer.size, "sha256": "sha256:" + writer.sha.hexdigest()}


def check_output(output, force):
    """Validate an export target: absolute, in an existing directory, not existing unless ``force``."""
    if not isinstance(output, str) or not output.startswith("/") or "\x00" in output or output.endswith("/"):
        raise errors.InvalidArgument("output must be an absolute file path on the host: {!r}".format(output))
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise errors.NotFound("output directory {} does not exist".format(parent))
    if os.path.lexists(output):
        if not force:
            raise errors.AlreadyExists("output file {} already exists (use force to replace it)".format(output))
        if os.path.isdir(output) and not os.path.islink(output):
            raise errors.InvalidArgument("output {} is a directory".format(output))


# ---------------------------------------------------------------- layer (commit)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"


def _xattr_headers(base, rel, st):
    """PAX ``SCHILY.xattr.*`` records of ``base/rel``; overlay's own ``*.overlay.*`` attributes are never exported."""
    if stat.S_ISLNK(st.st_mode):
        return {}  # Linux allows only trusted.* on symlinks; the applier restores none there either
    try:
        fd = open_in(base, rel, os.O_PATH)
    except OSError:
        return {}
    try:
        path = "/proc/self/fd/{}".format(fd)
        out = {}
        try:
            names = os.listxattr(path)
        except OSError:
            return {}
        for name in sorted(names):
            if name.startswith(("trusted.overlay.", "user.overlay.")):
                continue
            try:
                value = os.getxattr(path, name)
            except OSError:
                continue
            out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        return out
    finally:
        os.close(fd)


def write_layer_tar(upper, fileobj, lowers=(), skip=(), clamp_mtime=None):
    """Write the overlay upper dir ``upper`` as an image layer tar (docker's overlay2 diff) to ``fileobj``.

    Every entry of the upper dir is archived with its mode, owner, times and xattrs; hard links inside it
    become tar links to the first name seen, symlinks keep their targets, devices and fifos their type.
    Overlay's own metadata becomes the image-spec form: a whiteout (0/0 char device) is written as an empty
    ``.wh.<name>`` file, and an opaque directory (``trusted.overlay.opaque=y``) gets a ``.wh..wh..opq`` entry
    right after its own header.  Paths in ``skip`` (and everything below them) are left out: the runtime's
    mountpoints, which docker keeps in the container's init layer.  A directory that is only a copied-up
    parent (same type, mode and owner in ``lowers``, top first) is written only before a child that is.
    ``clamp_mtime`` (a build's SOURCE_DATE_EPOCH) caps every entry's mtime: the same tree, the same layer.
    Returns the number of entries written.
    """
    tar = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
    links, count, pending = {}, [0], []

    def add(info, f=None):
        if clamp_mtime is not None:
            for i in pending + [info]:
                if i.mtime > clamp_mtime:
                    i.mtime = clamp_mtime
        while pending:  # the copied-up parents of this entry, outermost first
            tar.addfile(pending.pop(0))
            count[0] += 1
        tar.addfile(info, f)
        count[0] += 1

    def marker(rel, name, st, mode):
        info = tarfile.TarInfo((rel + "/" + name).lstrip("/"))
        info.type, info.size, info.mode = tarfile.REGTYPE, 0, mode
        info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
        return info

    def only_copied_up(rel, st):
        low = lower_lookup(lowers, rel)
        return (low is not None and stat.S_ISDIR(low.st_mode) and low.st_mode == st.st_mode
                and (low.st_uid, low.st_gid) == (st.st_uid, st.st_gid) and not is_opaque(upper, rel))

    def walk(rel):
        for name in _names(upper, rel):
            child = rel + "/" + name
            if child in skip:
                continue
            st = lstat_in(upper, child)
            if st is None:
                continue  # gone while we looked
            if is_whiteout(st):
                add(marker(rel, WHITEOUT_PREFIX + name, st, 0o600))
                continue
            info = tar_header(child.lstrip("/"), st)  # PAX keeps sub-second times
            if info is None:
                continue  # sockets are not archived (as docker)
            info.pax_headers = _xattr_headers(upper, child, st)
            _link_fields(info, upper, child, st, links, (st.st_dev, st.st_ino))
            if info.type == tarfile.REGTYPE:
                fd = open_in(upper, child, os.O_RDONLY)
                with os.fdopen(fd, "rb") as f:
                    add(info, ExactReader(f, info.size))
            elif info.type != tarfile.DIRTYPE:
                add(info)
            else:
                depth = len(pending)
                if only_copied_up(child, st):
                    pending.append(info)
                else:
                    add(info)
                    if is_opaque(upper, child):
                        add(marker(child, WHITEOUT_OPAQUE, st, stat.S_IMODE(st.st_mode) & 0o777))
                walk(child)
                del pending[depth:]  # nothing below it was written: neither is it

    walk("")
    tar.close()
    return count[0]
