"""The build context, as docker's CLI prepares it (cli/command/image/build.go), in one deterministic tar.

- ``PATH`` a directory: its files minus what ``PATH/.dockerignore`` excludes (moby/patternmatcher semantics, the
  walk of moby's archive.TarWithOptions: an excluded directory is skipped unless an ``!`` exception lies under it),
  the Dockerfile and .dockerignore always sent (docker's TrimBuildFilesFromExcludes).  ``-f`` is relative to the
  current directory (docker); default ``PATH/Dockerfile`` (or ``PATH/dockerfile``).  A Dockerfile outside the
  context, or ``-f -`` (read from stdin), travels as ``.fleet-dockerfile/Dockerfile``.
- ``PATH`` ``-``: stdin holds a tar (plain, gzip, bzip2 or xz: ``docker build - < ctx.tar``), or a Dockerfile and
  the context is empty (docker puts that Dockerfile alone in the context).  ``PATH`` a tar file: the same, a fleet
  extension (docker only takes a tar on stdin).  A tar context is sent as it is, as the classic builder receives
  it (no .dockerignore filtering of its members), its names checked.
- Either way, when the .dockerignore excludes the Dockerfile or .dockerignore itself, the builder does not see them
  (the daemon's removeDockerfile): they are left out, the Dockerfile moved to ``.fleet-dockerfile/Dockerfile``.

Entries are sorted per directory (Go's Walk order), owners 0:0 (docker's ChownOpts), modes kept, mtimes truncated
to the second (moby's archive), sockets skipped, hard links as links: the same tree gives the same sha256.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass

from agent_payload.build.dockerfile import CONTEXT_DOCKERFILE_DIR
from fleet.build import dockerignore
from fleet.errors import UsageError

SPECIAL_DIR = CONTEXT_DOCKERFILE_DIR  # agent_payload/build/dockerfile.py: the builder hides it by that name
SPECIAL_DOCKERFILE = SPECIAL_DIR + "/Dockerfile"
DEFAULT_DOCKERFILE = "Dockerfile"
#: A context bigger than this without a .dockerignore draws a warning (docker sends it all, silently).
WARN_SIZE = 100 * 1024 * 1024
STDIN = "-"


@dataclass
class BuildContext:
    tar_path: str          # the tar on this machine (a temp file: close() removes it)
    sha256: str            # of the tar's bytes
    size: int              # of the tar's bytes
    dockerfile: str        # the Dockerfile's path inside the tar
    text: str              # the Dockerfile's text
    filename: str          # how errors name the Dockerfile (the user's -f, or "Dockerfile")
    has_dockerignore: bool

    def close(self) -> None:
        try:
            os.unlink(self.tar_path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def human_size(n: int) -> str:
    """go-units HumanSize (4 significant digits), as docker's progress lines print sizes."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            break
        value /= 1000.0
    return "{:.4g}{}".format(value, unit)


def sending_line(size: int) -> str:
    """Docker's classic "Sending build context" progress line (its final update, then the newline)."""
    return "Sending build context to Docker daemon {:>8}\r\r\n".format(human_size(size))


def size_warning(ctx: BuildContext, path: str) -> str | None:
    """The warning for a big context without a .dockerignore (None when there is nothing to say)."""
    if ctx.size <= WARN_SIZE or ctx.has_dockerignore:
        return None
    return ("WARNING: the build context {} is {} and has no .dockerignore: all of it is sent to every build host "
            "(list what the build does not need in {}/.dockerignore)".format(path, human_size(ctx.size), path))


# --------------------------------------------------------------------------------------------- the tar

class _Writer:
    """A deterministic tar written to a temp file while hashing it."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="fleet-build-", suffix=".tar")
        self.raw = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.tar = tarfile.open(fileobj=self, mode="w", format=tarfile.PAX_FORMAT)

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.size

    def add(self, info: tarfile.TarInfo, fileobj=None) -> None:
        self.tar.addfile(info, fileobj)

    def finish(self) -> tuple[str, str, int]:
        # the end-of-archive marker (two zero blocks) without tarfile's padding to a 10 KiB record: Go's
        # archive/tar (docker's CLI) writes none, so the size docker prints for the same tree is the same
        self.write(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
        self.tar.closed = True
        self.raw.close()
        return self.path, self.digest.hexdigest(), self.size

    def abort(self) -> None:
        try:
            self.tar.close()
        except Exception:  # noqa: BLE001 - the temp file goes anyway
            pass
        self.raw.close()
        os.unlink(self.path)


def _file_info(name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    return info


def _info_from_stat(name: str, st: os.stat_result, full: str) -> tarfile.TarInfo | None:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None  # sockets: docker skips them
    return info


def _walk(root: str, pm: dockerignore.PatternMatcher, writer: _Writer) -> set[str]:
    """moby's TarWithOptions walk of ``root`` with the exclude patterns; the names written."""
    links: dict = {}
    written: set[str] = set()

    def visit(rel: str, parent_info):
        full = os.path.join(root, rel) if rel else root
        names = sorted(os.listdir(full), key=os.fsencode)
        for name in names:
            child = rel + "/" + name if rel else name
            path = os.path.join(root, child)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            skip, info = pm.matches_using_parent_results(child, parent_info)
            is_dir = stat.S_ISDIR(st.st_mode)
            if skip:
                if not is_dir or not pm.exclusions:
                    continue
                prefix = child + "/"
                if any(p.exclusion and (p.cleaned + "/").startswith(prefix) for p in pm.patterns):
                    visit(child, info)  # an exception lies below: walk it, without its own entry
                continue
            _add(child, path, st, writer, links)
            written.add(child)
            if is_dir:
                visit(child, info)

    visit("", None)
    return written


def _add(name: str, path: str, st: os.stat_result, writer: _Writer, links: dict) -> None:
    info = _info_from_stat(name, st, path)
    if info is None:
        return
    if info.type == tarfile.REGTYPE and st.st_nlink > 1:
        first = links.get((st.st_dev, st.st_ino))
        if first is not None:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
            writer.add(info)
            return
        links[(st.st_dev, st.st_ino)] = name
    if info.type != tarfile.REGTYPE:
        writer.add(info)
        return
    try:
        with open(path, "rb") as f:
            writer.add(info, f)
    except PermissionError:
        raise UsageError("error checking context: 'no permission to read from '{}''.".format(path)) from None


def _read_text(path: str, shown: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError("Cannot locate specified Dockerfile: {}".format(shown)) from None
    except IsADirectoryError:
        raise UsageError("Cannot locate specified Dockerfile: {} (a directory)".format(shown)) from None
    except PermissionError:
        raise UsageError("unable to read Dockerfile {}: permission denied".format(shown)) from None


def _read_ignore(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise UsageError("error checking context: can't read {}: {}".format(path, exc.strerror)) from None


def _patterns(text: str, where: str) -> dockerignore.PatternMatcher:
    try:
        return dockerignore.PatternMatcher(dockerignore.read_patterns(text))
    except dockerignore.PatternError as exc:
        raise UsageError("error checking context: '{}' ({})".format(exc, where)) from None


def from_directory(context_dir: str, dockerfile: str | None, stdin=None) -> BuildContext:
    """The context of a local directory (``dockerfile``: -f as given, None for the default, "-" for stdin)."""
    if not os.path.exists(context_dir):
        raise UsageError('unable to prepare context: path "{}" not found'.format(context_dir))
    if not os.path.isdir(context_dir):
        raise UsageError("unable to prepare context: context must be a directory: {}".format(context_dir))
    root = os.path.realpath(context_dir)
    ignore_path = os.path.join(root, ".dockerignore")
    has_ignore = os.path.isfile(ignore_path)
    pm = _patterns(_read_ignore(ignore_path) if has_ignore else "", ignore_path)
    if os.path.lexists(os.path.join(root, SPECIAL_DIR)):
        raise UsageError("unable to prepare context: {} holds {}, a name fleet build reserves for the Dockerfile"
                         .format(context_dir, SPECIAL_DIR))
    if dockerfile == STDIN:
        text = _read_stdin(stdin).decode("utf-8", errors="replace")  # a Dockerfile: small
        rel, shown = None, "-"
    else:
        if dockerfile:
            absolute = os.path.abspath(dockerfile)
            shown = dockerfile
        else:
            absolute = os.path.join(root, DEFAULT_DOCKERFILE)
            if not os.path.lexists(absolute) and os.path.lexists(os.path.join(root, "dockerfile")):
                absolute = os.path.join(root, "dockerfile")
            shown = DEFAULT_DOCKERFILE
        text = _read_text(absolute, shown)
        real = os.path.realpath(absolute)
        rel = os.path.relpath(real, root)
        if rel == ".." or rel.startswith("../"):
            rel = None
    writer = _Writer()
    try:
        written = _walk(root, pm, writer)
        # the builder sees the Dockerfile where it is unless .dockerignore excludes it (the daemon's
        # removeDockerfile); else, or from outside the context or stdin, it travels under SPECIAL_DIR
        if rel is None or rel not in written or pm.matches_or_parent_matches(rel):
            data = text.encode("utf-8")
            writer.add(_file_info(SPECIAL_DOCKERFILE, data, 0o600), io.BytesIO(data))
            inside = SPECIAL_DOCKERFILE
        else:
            inside = rel
        path, digest, size = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return BuildContext(path, digest, size, inside, text, shown if dockerfile else DEFAULT_DOCKERFILE, has_ignore)


def _read_stdin(stdin) -> bytes:
    import sys

    stream = stdin if stdin is not None else sys.stdin.buffer
    return stream.read()


_OPENERS = ((b"\x1f\x8b\x08", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
_CHUNK = 1 << 20


def _copy(src, dst) -> None:
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        dst.write(chunk)


def _spool(source: str, stdin) -> str:
    """The context tar (or Dockerfile) of ``source`` ("-": stdin) in a temp file, decompressed (docker's
    DecompressStream: gzip, bzip2, xz); the caller removes it."""
    import sys

    fd, path = tempfile.mkstemp(prefix="fleet-build-in-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as out:
            if source == STDIN:
                _copy(stdin if stdin is not None else sys.stdin.buffer, out)
            else:
                with open(source, "rb") as f:
                    _copy(f, out)
        with open(path, "rb") as f:
            head = f.read(8)
        opener = next((fn for magic, fn in _OPENERS if head.startswith(magic)), None)
        if opener is None:
            return path
        fd2, plain = tempfile.mkstemp(prefix="fleet-build-in-", suffix=".tar")
        try:
            with opener(path, "rb") as src, os.fdopen(fd2, "wb") as out:
                _copy(src, out)
        except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            os.unlink(plain)
            raise UsageError("unable to prepare context: the compressed context is corrupt: {}".format(exc)) from None
        os.unlink(path)
        return plain
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise


def _is_tar(path: str) -> bool:
    with open(path, "rb") as f:
        block = f.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def from_stdin_or_tar(source: str, dockerfile: str | None, stdin=None) -> BuildContext:
    """``PATH`` "-" (stdin) or a tar file: a tar context, or (stdin only) a lone Dockerfile."""
    if source == STDIN and dockerfile == STDIN:
        raise UsageError("invalid argument: can't use stdin for both build context and dockerfile")
    spooled = _spool(source, stdin)
    try:
        if _is_tar(spooled):
            return _from_tar(spooled, dockerfile or DEFAULT_DOCKERFILE, source)
        if source != STDIN:
            raise UsageError("unable to prepare context: context must be a directory or a tar: {}".format(source))
        with open(spooled, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    finally:
        os.unlink(spooled)
    writer = _Writer()
    try:
        raw = text.encode("utf-8")
        writer.add(_file_info(DEFAULT_DOCKERFILE, raw, 0o600), io.BytesIO(raw))
        path, digest, size = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return BuildContext(path, digest, size, DEFAULT_DOCKERFILE, text, "Dockerfile", False)


def _clean_member(name: str, source: str) -> str:
    """A tar entry's name as moby's extraction takes it (joined under the root, cleaned); one that climbs out of
    the context is refused (docker: a breakout error)."""
    cleaned = dockerignore.go_clean(name.lstrip("/"))
    if cleaned == ".." or cleaned.startswith("../") or "\x00" in name:
        raise UsageError("unable to prepare context: {}: the tar entry {!r} points outside the context".format(
            source, name))
    return cleaned


def _read_member(tar: tarfile.TarFile, member) -> str | None:
    if member is None or not member.isreg():
        return None
    return tar.extractfile(member).read().decode("utf-8", errors="replace")


def _from_tar(path: str, dockerfile: str, source: str) -> BuildContext:
    """A tar context, sent as it is (names checked), minus the Dockerfile and .dockerignore when .dockerignore
    excludes them (the daemon's removeDockerfile)."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = tar.getmembers()
            by_name = {}
            for m in members:
                m.name = _clean_member(m.name, source)
                if m.islnk():
                    m.linkname = _clean_member(m.linkname, source)
                by_name[m.name] = m
            if any(name.split("/")[0] == SPECIAL_DIR for name in by_name):
                raise UsageError("unable to prepare context: {} holds {}, a name fleet build reserves for the "
                                 "Dockerfile".format(source, SPECIAL_DIR))
            want = dockerignore.go_clean(dockerfile)
            text = _read_member(tar, by_name.get(want))
            if text is None:
                raise UsageError("Cannot locate specified Dockerfile: {}".format(dockerfile))
            ignore = by_name.get(".dockerignore")
            pm = _patterns(_read_member(tar, ignore) or "", source + ":.dockerignore")
            drop = {n for n in (".dockerignore", want) if n in by_name and pm.matches_or_parent_matches(n)}
            writer = _Writer()
            try:
                for m in members:
                    if m.name in drop or m.name == ".":
                        continue
                    writer.add(m, tar.extractfile(m) if m.isreg() else None)
                inside = want
                if want in drop:
                    raw = text.encode("utf-8")
                    writer.add(_file_info(SPECIAL_DOCKERFILE, raw, 0o600), io.BytesIO(raw))
                    inside = SPECIAL_DOCKERFILE
                out, digest, size = writer.finish()
            except BaseException:
                writer.abort()
                raise
    except tarfile.TarError as exc:
        raise UsageError("unable to prepare context: {}: {}".format(source, exc)) from None
    return BuildContext(out, digest, size, inside, text, dockerfile, ignore is not None)


def prepare(source: str, dockerfile: str | None, stdin=None) -> BuildContext:
    """The context for ``fleet build ... SOURCE`` (see the module docstring)."""
    if source == STDIN or (os.path.isfile(source) and not os.path.isdir(source)):
        return from_stdin_or_tar(source, dockerfile, stdin)
    return from_directory(source, dockerfile, stdin)
