"""Build the payload zipapp deterministically: same sources, same bytes, same sha256 (the hash is the version)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

# A fixed timestamp and file mode make the archive independent of checkout time and umask.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MODE = 0o100644 << 16
_SHEBANG = b"#!/usr/bin/env python3\n"
# The zipapp's __main__: on a host's first run it unpacks its own modules next to itself into <sha256>.d/ (temp
# dir, then an atomic rename) and imports from there, so that Python can use cached bytecode; zipimport compiles
# every module from source on every run (~40 ms per command here).  The .pyz stays the identity: the directory
# is derived from it, named by the same hash, and never changes after the rename (the shiv approach).  The zip
# is checked against its own name before anything is unpacked.
#
# Root runs this code, so no other user may be able to change any of it.  What an attacker could edit if modes
# were left to the umask (at umask 000 everything extractall made was 0666/0777): any module in the tree, a new
# module dropped into a directory (sys.path[0] is the cache: an `os.py` there would shadow the stdlib's), and the
# __pycache__ directories and .pyc files Python writes on import (the dirs at 0777 & ~umask; a .pyc whose header
# matches the source is run without a look at the source).  Hence:
# - every dir is made 0755 and every file 0644 with explicit modes (os.open(..., 0o644) + fchmod, mkdir +
#   chmod), owned by whoever unpacks (root), inside a 0700 temp dir that becomes 0755 only just before the rename;
# - the bytecode is compiled at unpack time, with the same explicit modes (unchecked-hash .pyc: never rewritten,
#   no source stat), and sys.dont_write_bytecode is set before any import, so Python never writes into the tree
#   afterwards (a host whose python is upgraded compiles in memory until the next payload version);
# - before the cache is used (here, and on the warm path in fleet/transport/invoke.py), _CHECK: the payload/
#   dir and the .pyz must be owned by this user and writable by nobody else, and so must every dir and file of
#   the <sha>.d tree, with no symlink anywhere.  The whole tree, not just its top: a module made writable, a dir
#   that takes new files or a __pycache__ that takes new .pyc are each enough.  It is ~200 entries, one lstat
#   each: 0.25 ms measured, under 1% of a warm command (~40 ms).
# - a <sha>.d that fails the check is renamed aside, removed (shutil.rmtree works through dir fds and never
#   follows a symlink) and unpacked again from the .pyz: the .pyz is verified against its name first, so the
#   cache can always be rebuilt and nothing is lost; an error would strand the host until someone cleans up.
#   A .pyz or payload/ dir that fails the check is an error on the warm path (invoke.py, exit 3): the code that
#   would repair it is the suspect itself; removing them has the controller upload a fresh copy.  Run by hand
#   from such a place (a .pyz in /tmp), the zipapp makes no cache and runs from the zip.
_CHECK = """import os, sys

sys.dont_write_bytecode = True  # never write .pyc into the code cache at the umask (see the unpacker)


def _trusted(path, is_dir, st=None):
    try:
        st = st or os.lstat(path)
    except OSError:
        return False
    kind = 0o040000 if is_dir else 0o100000
    return st.st_mode & 0o170000 == kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _trusted_tree(path, st=None):
    if not _trusted(path, True, st):
        return False
    try:
        with os.scandir(path) as entries:
            for e in entries:
                st = e.stat(follow_symlinks=False)
                if not (_trusted_tree(e.path, st) if e.is_dir(follow_symlinks=False) else _trusted(e.path, False, st)):
                    return False
    except OSError:
        return False
    return True
"""
_MAIN = (_CHECK + """

def _unpack(pyz, tmp, target):
    import py_compile, zipfile
    os.mkdir(tmp, 0o700)
    os.chmod(tmp, 0o700)
    sources = []
    with zipfile.ZipFile(pyz) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if parts[0] != "agent_payload" or not name.endswith(".py") or "" in parts or ".." in parts:
                continue
            for i in range(1, len(parts)):
                d = os.path.join(tmp, *parts[:i])
                if not os.path.isdir(d):
                    os.mkdir(d, 0o700)
                    os.chmod(d, 0o755)
                    os.mkdir(os.path.join(d, "__pycache__"), 0o700)
                    os.chmod(os.path.join(d, "__pycache__"), 0o755)
            path = os.path.join(tmp, *parts)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o644)
                _write_all(fd, zf.read(name))
            finally:
                os.close(fd)
            sources.append(parts)
    import importlib.util
    for parts in sources:
        src = os.path.join(tmp, *parts)
        cfile = importlib.util.cache_from_source(src)
        py_compile.compile(src, cfile=cfile, dfile=os.path.join(target, *parts), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        os.chmod(cfile, 0o644)
    os.chmod(tmp, 0o755)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _code_dir(pyz):
    if not (pyz.endswith(".pyz") and os.path.isfile(pyz)):
        return None
    if not (_trusted(os.path.dirname(pyz), True) and _trusted(pyz, False)):
        return None  # beside a file others may change (a by-hand run from /tmp): no cache, run from the zip
    target = pyz[:-4] + ".d"
    if _trusted_tree(target):
        return target
    import hashlib, shutil
    if os.path.lexists(target):  # not ours, or writable by others: never import from it; unpack afresh
        aside = "{}.bad-{}".format(target, os.getpid())
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            pass
        else:
            if os.path.isdir(aside) and not os.path.islink(aside):
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.unlink(aside)
    with open(pyz, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != os.path.basename(pyz)[:-4]:
        sys.stderr.write("fleet payload {} is corrupt (sha256 {}); remove it to have it uploaded again\\n".format(
            pyz, digest))
        sys.exit(3)
    tmp = "{}.tmp-{}".format(target, os.getpid())
    try:
        _unpack(pyz, tmp, target)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _trusted_tree(target):
            return None  # read-only or full disk: run from the zip itself
    return target


_dir = _code_dir(os.path.abspath(sys.argv[0]))
if _dir:
    sys.path.insert(0, _dir)
from agent_payload.cli import main
sys.exit(main())
""").encode()


@dataclass(frozen=True)
class Payload:
    """The built zipapp: its bytes and their sha256 (hex)."""

    data: bytes
    sha256: str

    @property
    def filename(self) -> str:
        return self.sha256 + ".pyz"


def source_dir() -> Path:
    """The directory of the agent_payload package that ships with this controller."""
    spec = importlib.util.find_spec("agent_payload")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("agent_payload package not found next to fleet")
    return Path(list(spec.submodule_search_locations)[0])


def source_files(root: Path) -> list[Path]:
    """Every .py file of the payload, in a stable order (caches and other files are never shipped)."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def build(root: Path | None = None) -> Payload:
    """Zip the payload sources into a zipapp with a root __main__.py."""
    root = root or source_dir()
    buf = io.BytesIO()
    buf.write(_SHEBANG)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        entries = [("__main__.py", _MAIN)]
        entries += [("agent_payload/" + p.relative_to(root).as_posix(), p.read_bytes()) for p in source_files(root)]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = _MODE
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    data = buf.getvalue()
    return Payload(data=data, sha256=hashlib.sha256(data).hexdigest())
