"""Safe layer applier: a (gzip or plain) tar layer into one directory, via dirfds, never following host symlinks.

Every entry is resolved from the target's dirfd one component at a time with
``os.open(component, O_NOFOLLOW|O_DIRECTORY, dir_fd=parent)``, so a symlink written by the layer itself can
never redirect a later write (CVE-2014-6407/9356 class). tarfile.extractall and its filters are not used
(PITFALLS 3.1): the "data" filter is wrong for a rootfs and has had bypasses.
"""

import collections
import errno
import os
import posixpath
import stat
import tarfile
import time
import zlib

from .. import errors
from .tarstream import TarSource

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

#: Zip-bomb bound on the number of entries in one layer.
MAX_ENTRIES = 2000000
_DIR_FD_CACHE = 64  # open directory fds kept per layer being applied

_CORRUPT = (tarfile.TarError, EOFError, zlib.error)


class _Counting:
    """Counts (and reports, throttled) the compressed bytes consumed, for "Extracting" progress."""

    def __init__(self, raw, progress):
        self.raw, self.progress, self.n, self._last = raw, progress, 0, 0.0

    def read(self, n=-1):
        data = self.raw.read(n)
        self.n += len(data)
        now = time.monotonic()
        if self.progress and now - self._last >= 0.5:
            self._last = now
            self.progress(self.n)
        return data


def clean_name(name):
    """Normalise a tar member name as Docker does and refuse escapes; return "." for the root itself."""
    if "\x00" in name:
        raise _unsafe(name, "NUL byte in name")
    n = name
    while n.startswith("/") or n.startswith("./"):
        n = n[1:] if n.startswith("/") else n[2:]
    n = posixpath.normpath(n) if n else "."
    if n == ".." or n.startswith("../"):
        raise _unsafe(name, "path escapes the layer root")
    return n


def _unsafe(name, why):
    return errors.InvalidArgument("refusing layer entry {!r}: {}".format(name, why))


def _ns(seconds):
    return int(round(float(seconds) * 1e9))


def _rmtree_at(dir_fd, name):
    """Remove ``name`` (a directory under ``dir_fd``) recursively without following any symlink."""
    fd = os.open(name, _O_DIR, dir_fd=dir_fd)
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in entries:
            if is_dir:
                _rmtree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


class _Applier:
    """Applies tar members one by one under ``root`` (an existing directory, normally empty).

    Syscalls only where a new inode differs from what its creation gives: a file or directory is created with
    its final mode when the umask and the special bits allow it (else chmod after), chown only when the owner
    is not the creator's (or the parent is setgid), no lookup before a create (an existing name shows up as
    EEXIST and is handled then), parent directories resolved once and kept open.
    """

    def __init__(self, root, source=None):
        self.root_fd = os.open(root, _O_DIR)
        self.source = source  # the TarSource the members come from (regular files are copied straight from it)
        self.regular = set()  # cleaned names of regular files this layer wrote: the only hardlink sources
        self.dirs = []  # (name, atime_ns, mtime_ns): stamped at the end, after children changed the mtimes
        self.live_dirs = set()  # names in ``dirs`` still holding the directory this layer made (see forget)
        self.privileged = os.geteuid() == 0
        self.ids = (os.geteuid(), os.getegid())  # the owner a new inode gets outside a setgid directory
        self.umask = _umask()  # None when unknown: then every mode is set explicitly
        self.sgid = set()  # parts tuples of directories with the setgid bit (new children inherit their gid)
        self.known = set()  # parts tuples of directories this layer made (their setgid bit is in ``sgid``)
        if os.fstat(self.root_fd).st_mode & stat.S_ISGID:
            self.sgid.add(())
        self._dir_fds = collections.OrderedDict()  # parts tuple -> open dirfd (see walk)

    def close(self):
        for fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()
        os.close(self.root_fd)

    def _exact(self, mode, parent):
        """True when creating with ``mode`` (masked 0o777) under ``parent`` gives exactly ``mode``."""
        return (self.umask is not None and not mode & 0o7000 and not mode & self.umask
                and parent not in self.sgid)

    def _default_owner(self, member, parent):
        return (member.uid, member.gid) == self.ids and parent not in self.sgid

    def walk(self, parts, create, entry):
        """The fd of directory ``parts`` under the root, creating missing ones (0755) if asked; borrowed: valid
        until the next ``walk`` or ``forget`` (never close it).

        Directories resolved once are kept open (a small LRU of dirfds): the entries of a layer mostly share
        their parents.  Only this applier writes into the tree, and it drops cached fds for anything it
        removes (``forget``).
        """
        key = tuple(parts)
        if not key:
            return self.root_fd
        cache = self._dir_fds
        start, fd = 0, self.root_fd
        for i in range(len(key), 0, -1):
            cached = cache.get(key[:i])
            if cached is not None:
                cache.move_to_end(key[:i])
                start, fd = i, cached
                break
        for i in range(start, len(key)):
            comp = key[i]
            sub = key[:i + 1]
            try:
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
                if sub not in self.known:  # there before this layer (a non-empty root): look at its mode once
                    self.known.add(sub)
                    if os.fstat(nfd).st_mode & stat.S_ISGID:
                        self.sgid.add(sub)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
                if not self._exact(0o755, key[:i]):
                    os.fchmod(nfd, 0o755)  # independent of the process umask, like Docker's MkdirAll(0755)
                self.known.add(sub)
                self.sgid.discard(sub)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _unsafe(entry, "parent component {!r} is a symlink or not a directory".format(comp))
                raise
            cache[sub] = fd = nfd
        while len(cache) > _DIR_FD_CACHE:
            old, old_fd = cache.popitem(last=False)
            if old == key:  # never the one being returned (a path deeper than the cache)
                cache[old] = old_fd
                break
            os.close(old_fd)
        return fd

    def forget(self, name):
        """Drop ``name`` and everything below it from the hardlink sources, the directories to stamp and the
        dirfd cache (it was replaced)."""
        prefix = name + "/"
        self.regular = {p for p in self.regular if p != name and not p.startswith(prefix)}
        self.live_dirs = {p for p in self.live_dirs if p != name and not p.startswith(prefix)}
        parts = tuple(name.split("/"))
        for key in [k for k in self._dir_fds if k[:len(parts)] == parts]:
            os.close(self._dir_fds.pop(key))
        self.sgid = {k for k in self.sgid if k[:len(parts)] != parts}
        self.known = {k for k in self.known if k[:len(parts)] != parts}

    def apply(self, tar, member):
        """Apply one member: whiteout, directory, file, link or special file."""
        name = clean_name(member.name)
        if name == ".":
            if member.isdir():
                self._set_attrs_fd(self.root_fd, member)
                if member.mode & stat.S_ISGID:
                    self.sgid.add(())
                else:
                    self.sgid.discard(())
                self.dirs.append((name, _ns(_atime(member)), _ns(member.mtime)))
                self.live_dirs.add(name)
            return
        parts = name.split("/")
        base = parts[-1]
        pfd = self.walk(parts[:-1], True, member.name)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(pfd, base, member, tuple(parts[:-1]))
        else:
            self._entry(tar, member, pfd, base, name, parts)

    def _whiteout(self, pfd, base, member, parent):
        if base == WHITEOUT_OPAQUE:
            # Opaque: hide every lower child of this directory; this layer's own children stay visible.
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, ...): ignored, as Docker does
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise _unsafe(member.name, "invalid whiteout name")
        # overlayfs whiteout: a 0/0 character device with the deleted name.
        try:
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        except FileExistsError:
            return  # an entry of this same layer is never hidden by the layer's own whiteout
        if not self._default_owner(member, parent):
            self._chown_at(pfd, target, member)

    def _prepare_slot(self, pfd, base, name, member):
        """Docker's changeset rule for a name that exists already: dir over dir merges (True); anything else
        removes the old entry first (False)."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if member.isdir():
                return True
            _rmtree_at(pfd, base)
        else:
            os.unlink(base, dir_fd=pfd)
        self.forget(name)
        return False

    def _create(self, make, pfd, base, name, member):
        """Run ``make()`` (a create failing with EEXIST when the name is taken); on EEXIST apply the changeset
        rule and try again. Returns True when an existing directory is merged instead (nothing made)."""
        try:
            make()
            return False
        except FileExistsError:
            if self._prepare_slot(pfd, base, name, member):
                return True
        make()
        return False

    def _entry(self, tar, member, pfd, base, name, parts):
        if member.islnk():
            self._hardlink(member, pfd, base, name)
            return
        if not (member.isreg() or member.isdir() or member.issym() or member.ischr()
                or member.isblk() or member.isfifo()):
            raise _unsafe(member.name, "unsupported tar entry type {!r}".format(member.type))
        parent = tuple(parts[:-1])
        if member.isreg():
            mode = member.mode & 0o7777
            exact = self._exact(mode, parent)
            out = []
            self._create(lambda: out.append(os.open(base, _O_NEWFILE, mode if exact else 0o600, dir_fd=pfd)),
                         pfd, base, name, member)
            fd = out[-1]
            try:
                if self.source is not None and not member.issparse():
                    self.source.seek(member.offset_data)
                    self.source.copy_to(fd, member.size)
                else:
                    src = tar.extractfile(member)
                    while True:
                        chunk = src.read(1024 * 1024)
                        if not chunk:
                            break
                        _write_all(fd, chunk)
                if exact and self._default_owner(member, parent):
                    for key, value in _xattrs(member):
                        _setxattr(lambda k, v: os.setxattr(fd, k, v), key, value, member)
                else:
                    self._set_attrs_fd(fd, member)
                os.utime(fd, ns=(_ns(_atime(member)), _ns(member.mtime)))
            finally:
                os.close(fd)
            self.regular.add(name)
        elif member.isdir():
            mode = member.mode & 0o7777
            exact = self._exact(mode, parent)
            exists = self._create(lambda: os.mkdir(base, mode if exact else 0o700, dir_fd=pfd),
                                  pfd, base, name, member)
            xattrs = _xattrs(member)
            if exists or not exact or not self._default_owner(member, parent) or xattrs:
                dfd = os.open(base, _O_DIR, dir_fd=pfd)
                try:
                    self._set_attrs_fd(dfd, member)
                finally:
                    os.close(dfd)
            key = tuple(parts)
            self.known.add(key)
            if mode & stat.S_ISGID:
                self.sgid.add(key)
            else:
                self.sgid.discard(key)
            self.dirs.append((name, _ns(_atime(member)), _ns(member.mtime)))
            self.live_dirs.add(name)
        elif member.issym():
            if not member.linkname:
                raise _unsafe(member.name, "symlink with an empty target")
            # Verbatim, absolute targets included: they are resolved inside the container, never here.
            self._create(lambda: os.symlink(member.linkname, base, dir_fd=pfd), pfd, base, name, member)
            if not self._default_owner(member, parent):
                self._chown_at(pfd, base, member)
            self._xattrs_at(pfd, base, member)
            os.utime(base, ns=(_ns(_atime(member)), _ns(member.mtime)), dir_fd=pfd, follow_symlinks=False)
        else:
            if member.isfifo():
                make = lambda: os.mkfifo(base, 0o600, dir_fd=pfd)  # noqa: E731
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                make = lambda: os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor),  # noqa: E731
                                        dir_fd=pfd)
            self._create(make, pfd, base, name, member)
            self._chown_at(pfd, base, member)
            # chmod follows symlinks, but the node was just created by us (O_EXCL semantics of mknod) in a
            # private temp tree nobody else writes to, so there is no symlink to follow.
            os.chmod(base, member.mode & 0o7777, dir_fd=pfd)
            self._xattrs_at(pfd, base, member)
            os.utime(base, ns=(_ns(_atime(member)), _ns(member.mtime)), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, member, pfd, base, name):
        src = clean_name(member.linkname)
        if src == name or src not in self.regular:
            raise _unsafe(member.name, "hardlink target {!r} is not a regular file extracted earlier in this "
                                       "layer".format(member.linkname))
        sparts = src.split("/")
        pfd = os.dup(pfd)  # resolving the source may evict the parent's cached fd
        try:
            sfd = self.walk(sparts[:-1], False, member.name)
            st = os.stat(sparts[-1], dir_fd=sfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise _unsafe(member.name, "hardlink target {!r} is not a regular file".format(member.linkname))
            sfd = os.dup(sfd)  # forgetting a replaced name below may close the cached one
            try:
                self._create(lambda: os.link(sparts[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd,
                                             follow_symlinks=False), pfd, base, name, member)
            finally:
                os.close(sfd)
        finally:
            os.close(pfd)
        self.regular.add(name)

    def _chown_at(self, pfd, base, member):
        try:
            os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        except PermissionError:
            if self.privileged:
                raise  # unprivileged test runs keep their own uid; a root run must not lose ownership

    def _set_attrs_fd(self, fd, member):
        """Owner first, then mode: chown clears setuid/setgid, so the order preserves them."""
        try:
            os.fchown(fd, member.uid, member.gid)
        except PermissionError:
            if self.privileged:
                raise
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in _xattrs(member):
            _setxattr(lambda k, v: os.setxattr(fd, k, v), key, value, member)

    def _xattrs_at(self, pfd, base, member):
        # setxattr has no dir_fd form; /proc/self/fd/<parent> pins the directory we resolved safely.
        path = "/proc/self/fd/{}/{}".format(pfd, base)
        for key, value in _xattrs(member):
            _setxattr(lambda k, v: os.setxattr(path, k, v, follow_symlinks=False), key, value, member)

    def finish(self):
        """Stamp directory times last (creating children changed them), deepest first; a directory replaced
        later in the layer (``forget``) is skipped."""
        for name, atime, mtime in reversed(self.dirs):
            if name not in self.live_dirs:
                continue
            if name == ".":
                os.utime(self.root_fd, ns=(atime, mtime))
                continue
            parts = name.split("/")
            fd = self._dir_fds.get(tuple(parts))
            if fd is not None:
                os.utime(fd, ns=(atime, mtime))
                continue
            try:
                pfd = self.walk(parts[:-1], False, name)
            except (FileNotFoundError, errors.InvalidArgument):
                continue
            # The name holds the directory this layer made (it is in live_dirs): no symlink to follow.
            os.utime(parts[-1], ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _atime(member):
    try:
        return float(member.pax_headers.get("atime", member.mtime))
    except ValueError:
        return member.mtime


def _xattrs(member):
    """(key, bytes) pairs from PAX ``SCHILY.xattr.*`` headers; overlay's own trusted.overlay.* are dropped
    because an image must not be able to forge whiteout/opaque/redirect metadata."""
    out = []
    for key, value in (member.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith("trusted.overlay."):
                continue
            out.append((attr, value.encode("utf-8", "surrogateescape")))
    return out


def _setxattr(fn, key, value, member):
    try:
        fn(key, value)
    except OSError as exc:
        # user.* is unsupported on some filesystems (tmpfs before 6.6): best effort there only.
        if key.startswith("user.") and exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return
        raise errors.FailedPrecondition("cannot set xattr {} on {!r}: {}".format(key, member.name, exc.strerror),
                                        errno=exc.errno)


def _umask():
    """The process umask, read without changing it (os.umask would race with other threads); None if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def apply_layer(fileobj, root, media_type="", expected_diff_id=None, progress=None):
    """Extract the layer read from ``fileobj`` into directory ``root`` and return its diff_id.

    Raises InvalidArgument for unsafe or corrupt entries, FailedPrecondition for zstd layers and for a
    diff_id different from ``expected_diff_id``. The caller owns ``root`` and must discard it on error.
    ``progress(compressed_bytes_read)`` is called at most twice a second. Memory stays bounded whatever the
    layer's size (the stream is read once, forward, in ``tarstream.STEP`` pieces).
    """
    source = TarSource(_Counting(fileobj, progress), media_type)
    applier = _Applier(root, source)
    count = 0
    try:
        try:
            tar = tarfile.open(fileobj=source, mode="r:", errors="surrogateescape")
            while True:
                member = tar.next()
                if member is None:
                    break
                count += 1
                if count > MAX_ENTRIES:
                    raise errors.InvalidArgument("layer has more than {} entries".format(MAX_ENTRIES))
                applier.apply(tar, member)
                tar.members.clear()  # streaming: keep memory flat on huge layers
            source.drain()  # the diff_id covers the whole stream, end-of-archive padding included
        except _CORRUPT as exc:
            raise errors.InvalidArgument("corrupt layer: {}".format(exc))
        applier.finish()
    finally:
        applier.close()
    diff_id = source.digest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise errors.FailedPrecondition("layer diff_id mismatch: config says {}, content is {}".format(
            expected_diff_id, diff_id))
    return diff_id
