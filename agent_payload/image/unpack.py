"""Safe layer applier: a (gzip or plain) tar layer into one directory, via dirfds, never following host symlinks.

Every entry is resolved from the target's dirfd one component at a time with
``os.open(component, O_NOFOLLOW|O_DIRECTORY, dir_fd=parent)``, so a symlink written by the layer itself can
never redirect a later write (CVE-2014-6407/9356 class). tarfile.extractall and its filters are not used
(PITFALLS 3.1): the "data" filter is wrong for a rootfs and has had bypasses.
"""

import collections
import errno
import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import time
import zlib

from .. import errors

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

#: Zip-bomb bound on the number of entries in one layer.
MAX_ENTRIES = 2000000
_DIR_FD_CACHE = 64  # open directory fds kept per layer being applied

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class _Prefixed:
    """A reader that replays a few already-read bytes (the compression magic) before the rest."""

    def __init__(self, head, raw):
        self.head, self.raw = head, raw

    def read(self, n=-1):
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


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


class _Hashing:
    """Hashes the uncompressed tar stream: its sha256 is the layer's diff_id."""

    def __init__(self, raw):
        self.raw, self.h = raw, hashlib.sha256()

    def read(self, n=-1):
        data = self.raw.read(n)
        self.h.update(data)
        return data


class _Gunzip:
    """gzip decompression in large steps (gzip.GzipFile pulls 8 KiB at a time on Python <= 3.11).

    Big reads keep the layer threads inside zlib and hashlib, which release the GIL, instead of handing the
    GIL back and forth every few kilobytes (a pull of four layers on two cores spent most of its system
    time in futex calls).  Concatenated gzip members are decoded in turn, as gzip(1) and GzipFile do; a stream
    that ends early raises EOFError like GzipFile.
    """

    STEP = 1 << 20  # compressed bytes read per step, and the most uncompressed bytes produced per step

    def __init__(self, raw):
        self.raw = raw
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.buf = b""
        self.eof = False

    def _fill(self):
        if self.d.unconsumed_tail:
            self.buf += self.d.decompress(self.d.unconsumed_tail, self.STEP)
            return
        if self.d.eof:
            rest = self.d.unused_data or self.raw.read(self.STEP)
            if not rest:
                self.eof = True
                return
            self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member follows
            self.buf += self.d.decompress(rest, self.STEP)
            return
        chunk = self.raw.read(self.STEP)
        if not chunk:
            raise EOFError("compressed layer ended before the end-of-stream marker was reached")
        self.buf += self.d.decompress(chunk, self.STEP)

    def read(self, n=-1):
        if n is None or n < 0:
            while not self.eof:
                self._fill()
            data, self.buf = self.buf, b""
            return data
        while len(self.buf) < n and not self.eof:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _decompressed(fileobj, media_type):
    """Pick the decompressor from the magic bytes (media types lie in the wild); zstd is refused clearly."""
    head = b""
    while len(head) < 4:  # a network stream may hand out fewer bytes than asked
        more = fileobj.read(4 - len(head))
        if not more:
            break
        head += more
    if head.startswith(_ZSTD_MAGIC) or "zstd" in (media_type or ""):
        raise errors.FailedPrecondition(
            "zstd-compressed layers are not supported (media type {!r}): the payload is stdlib-only".format(
                media_type))
    raw = _Prefixed(head, fileobj)
    if head.startswith(_GZIP_MAGIC):
        return _Gunzip(raw)
    return raw


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
    """Applies tar members one by one under ``root`` (an existing directory, normally empty)."""

    def __init__(self, root):
        self.root_fd = os.open(root, _O_DIR)
        self.regular = set()  # cleaned names of regular files this layer wrote: the only hardlink sources
        self.dirs = []  # (name, atime_ns, mtime_ns): stamped at the end, after children changed the mtimes
        self.privileged = os.geteuid() == 0
        self._dir_fds = collections.OrderedDict()  # parts tuple -> open dirfd (see walk)

    def close(self):
        for fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()
        os.close(self.root_fd)

    def walk(self, parts, create, entry):
        """Return a new fd for directory ``parts`` under the root, creating missing ones (0755) if asked.

        Directories resolved once are kept open (a small LRU of dirfds): the entries of a layer mostly share
        their parents, and re-walking every component from the root cost ~7 openat per file.  Only this
        applier writes into the tree, and it drops cached fds for anything it removes (``forget``).
        """
        key = tuple(parts)
        start, base_fd = 0, self.root_fd
        for i in range(len(key), 0, -1):
            cached = self._dir_fds.get(key[:i])
            if cached is not None:
                self._dir_fds.move_to_end(key[:i])
                start, base_fd = i, cached
                break
        fd = os.dup(base_fd)
        try:
            for i in range(start, len(parts)):
                comp = parts[i]
                try:
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                    os.fchmod(nfd, 0o755)  # independent of the process umask, like Docker's MkdirAll(0755)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _unsafe(entry, "parent component {!r} is a symlink or not a directory".format(comp))
                    raise
                os.close(fd)
                fd = nfd
                self._remember(key[:i + 1], fd)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _remember(self, key, fd):
        self._dir_fds[key] = os.dup(fd)
        if len(self._dir_fds) > _DIR_FD_CACHE:
            _old, old_fd = self._dir_fds.popitem(last=False)
            os.close(old_fd)

    def forget(self, name):
        """Drop ``name`` and everything below it from the hardlink sources and the dirfd cache (it was replaced)."""
        prefix = name + "/"
        self.regular = {p for p in self.regular if p != name and not p.startswith(prefix)}
        parts = tuple(name.split("/"))
        for key in [k for k in self._dir_fds if k[:len(parts)] == parts]:
            os.close(self._dir_fds.pop(key))

    def apply(self, tar, member):
        """Apply one member: whiteout, directory, file, link or special file."""
        name = clean_name(member.name)
        if name == ".":
            if member.isdir():
                self._set_attrs_fd(self.root_fd, member)
                self.dirs.append((name, _ns(_atime(member)), _ns(member.mtime)))
            return
        parts = name.split("/")
        base = parts[-1]
        pfd = self.walk(parts[:-1], True, member.name)
        try:
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(pfd, base, member)
            else:
                self._entry(tar, member, pfd, base, name)
        finally:
            os.close(pfd)

    def _whiteout(self, pfd, base, member):
        if base == WHITEOUT_OPAQUE:
            # Opaque: hide every lower child of this directory; this layer's own children stay visible.
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, ...): ignored, as Docker does
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise _unsafe(member.name, "invalid whiteout name")
        try:
            os.stat(target, dir_fd=pfd, follow_symlinks=False)
            return  # an entry of this same layer is never hidden by the layer's own whiteout
        except FileNotFoundError:
            pass
        # overlayfs whiteout: a 0/0 character device with the deleted name.
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        self._chown_at(pfd, target, member)

    def _prepare_slot(self, pfd, base, name, member):
        """Docker's changeset rule: dir over dir merges; anything else removes the old entry first."""
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

    def _entry(self, tar, member, pfd, base, name):
        if member.islnk():
            self._hardlink(member, pfd, base, name)
            return
        if not (member.isreg() or member.isdir() or member.issym() or member.ischr()
                or member.isblk() or member.isfifo()):
            raise _unsafe(member.name, "unsupported tar entry type {!r}".format(member.type))
        exists = self._prepare_slot(pfd, base, name, member)
        if member.isreg():
            fd = os.open(base, _O_NEWFILE, 0o600, dir_fd=pfd)
            try:
                src = tar.extractfile(member)
                while True:
                    chunk = src.read(1024 * 1024)
                    if not chunk:
                        break
                    _write_all(fd, chunk)
                self._set_attrs_fd(fd, member)
                os.utime(fd, ns=(_ns(_atime(member)), _ns(member.mtime)))
            finally:
                os.close(fd)
            self.regular.add(name)
        elif member.isdir():
            if not exists:
                os.mkdir(base, 0o700, dir_fd=pfd)
            dfd = os.open(base, _O_DIR, dir_fd=pfd)
            try:
                self._set_attrs_fd(dfd, member)
            finally:
                os.close(dfd)
            self.dirs.append((name, _ns(_atime(member)), _ns(member.mtime)))
        elif member.issym():
            if not member.linkname:
                raise _unsafe(member.name, "symlink with an empty target")
            # Verbatim, absolute targets included: they are resolved inside the container, never here.
            os.symlink(member.linkname, base, dir_fd=pfd)
            self._chown_at(pfd, base, member)
            self._xattrs_at(pfd, base, member)
            os.utime(base, ns=(_ns(_atime(member)), _ns(member.mtime)), dir_fd=pfd, follow_symlinks=False)
        else:
            if member.isfifo():
                os.mkfifo(base, 0o600, dir_fd=pfd)
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
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
        sfd = self.walk(sparts[:-1], False, member.name)
        try:
            st = os.stat(sparts[-1], dir_fd=sfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise _unsafe(member.name, "hardlink target {!r} is not a regular file".format(member.linkname))
            self._prepare_slot(pfd, base, name, member)
            os.link(sparts[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(sfd)
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
        """Stamp directory times last (creating children changed them), deepest first."""
        for name, atime, mtime in reversed(self.dirs):
            try:
                fd = self.walk([] if name == "." else name.split("/"), False, name)
            except (FileNotFoundError, errors.InvalidArgument):
                continue  # replaced later in the layer
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)


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


def apply_layer(fileobj, root, media_type="", expected_diff_id=None, progress=None):
    """Extract the layer read from ``fileobj`` into directory ``root`` and return its diff_id.

    Raises InvalidArgument for unsafe or corrupt entries, FailedPrecondition for zstd layers and for a
    diff_id different from ``expected_diff_id``. The caller owns ``root`` and must discard it on error.
    ``progress(compressed_bytes_read)`` is called at most twice a second.
    """
    hashing = _Hashing(_decompressed(_Counting(fileobj, progress), media_type))
    applier = _Applier(root)
    count = 0
    try:
        try:
            tar = tarfile.open(fileobj=hashing, mode="r|", errors="surrogateescape", bufsize=_Gunzip.STEP)
            while True:
                member = tar.next()
                if member is None:
                    break
                count += 1
                if count > MAX_ENTRIES:
                    raise errors.InvalidArgument("layer has more than {} entries".format(MAX_ENTRIES))
                applier.apply(tar, member)
                tar.members.clear()  # streaming: keep memory flat on huge layers
            while hashing.read(1024 * 1024):
                pass  # the diff_id covers the whole stream, end-of-archive padding included
        except _CORRUPT as exc:
            raise errors.InvalidArgument("corrupt layer: {}".format(exc))
        applier.finish()
    finally:
        applier.close()
    diff_id = "sha256:" + hashing.h.hexdigest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise errors.FailedPrecondition("layer diff_id mismatch: config says {}, content is {}".format(
            expected_diff_id, diff_id))
    return diff_id
