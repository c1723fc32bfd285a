"""``docker cp``'s path rules and its tar transfer format, shared by the payload and the controller (stdlib only).

A copy moves one tar whose top entry is the source's base name (``base``, ``base/...``).  The receiving
side decides where it lands from what it finds at the destination (``plan``), as docker's CopyInfo rules:

    source file:  dest missing -> file named dest (dest ending in "/": "no such directory");
                  dest a file -> replaced; dest a directory -> dest/<base>
    source dir:   dest missing -> created as dest with the source's contents; dest a file -> "cannot copy
                  directory"; dest a directory -> dest/<base>, or the contents themselves with SRC "/."

Extraction (``extract``) walks every entry from the destination's dirfd one component at a time with
O_NOFOLLOW: a symlink the archive itself made can never redirect a later entry, names with ".." or an
absolute path are refused, and hard links may only point at files this same extraction wrote.
"""

import errno
import os
import posixpath
import stat
import tarfile

from . import errors, fs

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
ERR_NOT_DIR = "not a directory"
ERR_NO_DIR = "no such directory"
ERR_COPY_DIR = "cannot copy directory"


def contents_only(path):
    """True for docker's "copy the contents" form: SRC ends with ``/.``."""
    return path == "." or path.endswith("/.")


def base_name(path):
    """The name the source gets in the archive: its last component ("." for the root or "/.")."""
    clean = posixpath.normpath(path) if path else "."
    base = posixpath.basename(clean)
    return base if base not in ("", "/", "..") else "."


def plan(src_is_dir, src_base, contents, dst_path, dst_kind):
    """Where a copy lands -> (directory to extract into, new top name; "" = the source's contents go into it).

    ``dst_kind`` is "dir", "file" (anything not a directory) or None (missing); errors are docker's.
    """
    trailing = dst_path.endswith("/") or dst_path.endswith("/.")
    if dst_kind == "dir":
        if src_is_dir and (contents or src_base == "."):
            return dst_path, ""
        return dst_path, src_base
    if dst_kind is not None:
        if src_is_dir:
            raise errors.InvalidArgument(ERR_COPY_DIR)
        if trailing:
            raise errors.InvalidArgument('"{}": {}'.format(dst_path, ERR_NOT_DIR))
        return _parent(dst_path), posixpath.basename(dst_path)
    if trailing and not src_is_dir:
        raise errors.NotFound('"{}": {}'.format(dst_path, ERR_NO_DIR))
    stripped = dst_path.rstrip("/")
    while stripped.endswith("/."):
        stripped = stripped[:-2].rstrip("/")
    if not stripped or stripped == ".":
        raise errors.InvalidArgument('"{}": {}'.format(dst_path, ERR_NO_DIR))
    return _parent(stripped), posixpath.basename(stripped)


def _parent(path):
    """The directory holding ``path`` ("/" for a top-level absolute name, "." for a bare relative one)."""
    parent = posixpath.dirname(path)
    return parent or ("/" if path.startswith("/") else ".")


def kind_of(st):
    """"dir" or "file" for an lstat/stat result (None stays None)."""
    if st is None:
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


# ---------------------------------------------------------------- writing

def write_tree(fileobj, path, base, follow_link=False):
    """Tar ``path`` (an absolute or relative path in the caller's view of the filesystem) as ``base``.

    Symlinks are archived as links; with ``follow_link`` only ``path`` itself is followed (``-L``).
    A trailing "/" or "/." on a non-directory is docker's "not a directory".  Returns {"type", "size"}.
    """
    trailing = path.endswith("/") or contents_only(path)
    try:
        st = os.stat(path) if follow_link or trailing else os.lstat(path)
    except NotADirectoryError:
        raise errors.InvalidArgument('"{}": {}'.format(path, ERR_NOT_DIR))
    if trailing and not stat.S_ISDIR(st.st_mode):
        raise errors.InvalidArgument('"{}": {}'.format(path, ERR_NOT_DIR))
    tar = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
    links, total = {}, [0]

    def add(full, name, st):
        info = tar_header(name, st)
        if info is None:
            return  # sockets are not archived (as docker)
        if info.isreg():
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                info.type, info.size, info.linkname = tarfile.LNKTYPE, 0, links[key]
                tar.addfile(info)
                return
            links[key] = name
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                tar.addfile(info, ExactReader(f, info.size))
            total[0] += info.size
            return
        if info.issym():
            info.linkname = os.readlink(full)
        tar.addfile(info)

    def walk(full, name):
        for entry in sorted(os.listdir(full)):
            child, child_name = os.path.join(full, entry), name + "/" + entry
            try:
                cst = os.lstat(child)
            except FileNotFoundError:
                continue  # removed while we copied
            add(child, child_name, cst)
            if stat.S_ISDIR(cst.st_mode):
                walk(child, child_name)

    top = path if not contents_only(path) else path[:-1]
    add(top if not follow_link or stat.S_ISDIR(st.st_mode) else os.path.realpath(top), base, st)
    if stat.S_ISDIR(st.st_mode):
        walk(top, base)
    tar.close()
    return {"type": kind_of(st), "size": total[0]}


def tar_header(name, st):
    """The tar header of a file whose lstat is ``st``, named ``name``: type, mode, owner, mtime (sub-second in
    PAX), the size of a regular file, device numbers; None for a socket (not archived, as docker). A symlink's
    target and hard links are the caller's to fill in."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, st.st_mtime
    mode = st.st_mode
    if stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    return info


class ExactReader:
    """Exactly ``size`` bytes of ``f`` (zeros if it shrank meanwhile), so a file changing under us cannot break
    the tar stream."""

    def __init__(self, f, size):
        self.f, self.left = f, size

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n) or b"\0" * n
        self.left -= len(data)
        return data


# ---------------------------------------------------------------- extracting

def _clean(name):
    if "\x00" in name or name.startswith("/"):
        raise errors.InvalidArgument("refusing archive entry {!r}: absolute or invalid name".format(name))
    n = posixpath.normpath(name)
    if n == ".." or n.startswith("../"):
        raise errors.InvalidArgument("refusing archive entry {!r}: path escapes the destination".format(name))
    return n


class _Extractor:
    def __init__(self, dir_fd, owner, keep_owner):
        self.dir_fd, self.owner, self.keep_owner = dir_fd, owner, keep_owner
        self.written = set()
        self.dirs = []

    def parent(self, parts, name):
        """A new fd of directory ``parts`` under the destination (created 0755 if missing), never via a symlink."""
        try:
            return fs.open_beneath(self.dir_fd, parts, os.O_RDONLY, mode=0o755)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise errors.InvalidArgument("refusing archive entry {!r}: {!r} is a symlink or not a "
                                             "directory".format(name, exc.filename))
            raise

    def ids(self, member):
        if self.keep_owner:
            return member.uid, member.gid
        return self.owner  # None: leave the files to whoever extracts them

    def entry(self, tar, member, rel):
        parts = rel.split("/")
        pfd = self.parent(parts[:-1], member.name)
        base = parts[-1]
        try:
            try:
                old = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None:
                if stat.S_ISDIR(old.st_mode) and not member.isdir():
                    raise errors.FailedPrecondition('cannot overwrite directory "{}" with non-directory'.format(rel))
                if not stat.S_ISDIR(old.st_mode) and member.isdir():
                    raise errors.FailedPrecondition('cannot overwrite non-directory "{}" with directory'.format(rel))
                if not member.isdir():
                    os.unlink(base, dir_fd=pfd)
            ids = self.ids(member)
            if member.isdir():
                if old is None:
                    os.mkdir(base, 0o700, dir_fd=pfd)
                fd = os.open(base, _O_DIR, dir_fd=pfd)
                try:
                    if ids is not None:
                        os.fchown(fd, *ids)
                    os.fchmod(fd, member.mode & 0o7777)
                finally:
                    os.close(fd)
                self.dirs.append((rel, member.mtime))
            elif member.isreg():
                fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd)
                try:
                    src = tar.extractfile(member)
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                    if ids is not None:
                        os.fchown(fd, *ids)
                    os.fchmod(fd, member.mode & 0o7777)
                    os.utime(fd, (member.mtime, member.mtime))
                finally:
                    os.close(fd)
                self.written.add(rel)
            elif member.islnk():
                src = self.mapped(member.linkname)
                if src not in self.written:
                    raise errors.InvalidArgument("refusing hard link {!r}: its target was not extracted here".format(
                        member.name))
                sparts = src.split("/")
                sfd = self.parent(sparts[:-1], member.name)
                try:
                    os.link(sparts[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
                finally:
                    os.close(sfd)
                self.written.add(rel)
            elif member.issym():
                os.symlink(member.linkname, base, dir_fd=pfd)  # verbatim; never followed by the extraction
                if ids is not None:
                    os.chown(base, *ids, dir_fd=pfd, follow_symlinks=False)
                os.utime(base, (member.mtime, member.mtime), dir_fd=pfd, follow_symlinks=False)
            elif member.ischr() or member.isblk() or member.isfifo():
                if member.isfifo():
                    os.mkfifo(base, 0o600, dir_fd=pfd)
                else:
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
                fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                try:
                    path = "/proc/self/fd/{}".format(fd)  # the node we just made, not whatever the name is now
                    if ids is not None:
                        os.chown(path, *ids)
                    os.chmod(path, member.mode & 0o7777)
                finally:
                    os.close(fd)
            else:
                raise errors.InvalidArgument("refusing archive entry {!r}: unsupported type".format(member.name))
        finally:
            os.close(pfd)

    def finish(self):
        for rel, mtime in reversed(self.dirs):
            fd = self.parent(rel.split("/"), rel)
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def extract(fileobj, dir_fd, src_base, new_base, owner=(0, 0), keep_owner=False):
    """Extract the copy tar read from ``fileobj`` into the directory ``dir_fd``; returns the entry count.

    Entries are ``src_base`` and ``src_base/...``; the top one is renamed ``new_base`` ("" = its contents go
    straight into the directory and the top entry itself is skipped).  Owners: the archive's with
    ``keep_owner`` (``-a``), else ``owner`` (None leaves them to the extracting user).
    """
    def mapped(name):
        n = _clean(name)
        if src_base == ".":
            rest = "" if n == "." else "/" + n
        elif n == src_base or n.startswith(src_base + "/"):
            rest = n[len(src_base):]
        else:
            raise errors.InvalidArgument("refusing archive entry {!r}: not under {!r}".format(name, src_base))
        if not new_base:
            return rest.lstrip("/")
        return new_base + rest
    return extract_mapped(fileobj, dir_fd, mapped, owner, keep_owner)


def extract_mapped(fileobj, dir_fd, mapped, owner=(0, 0), keep_owner=False):
    """``extract`` with the caller's ``mapped(name)`` -> the entry's path under ``dir_fd`` ("" skips it); the
    builder's COPY/ADD use it to place each source by docker's rules."""
    ex = _Extractor(dir_fd, owner, keep_owner)
    ex.mapped = mapped
    count = 0
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|", errors="surrogateescape")
        for member in tar:
            rel = mapped(member.name)
            tar.members.clear()
            if not rel:
                continue  # the source directory itself, when only its contents are copied
            ex.entry(tar, member, rel)
            count += 1
    except (tarfile.TarError, EOFError) as exc:
        raise errors.InvalidArgument("corrupt archive: {}".format(exc))
    ex.finish()
    return count
