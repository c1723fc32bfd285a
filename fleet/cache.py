"""The controller's own cache directory: derived data that is expensive to recompute on every command.

``$XDG_CACHE_HOME/fleet`` (default ``~/.cache/fleet``); ``FLEET_CACHE_DIR`` overrides it, and ``FLEET_CACHE_DIR=``
(empty) turns every cache off.  Entries are written atomically (a private temp file in the same directory, then a
rename) with private modes (directory 0700, files 0600), and read only when the directory and the file are owned
by this user and writable by nobody else: an entry is never half written, and nobody else can plant one (the
inventory cache holds pickles).  Every entry is keyed by everything its value is derived from, so it is never
stale; a cache that cannot be read or written is simply not used.  Two users: ``fleet/inventory/cache.py`` (the
validated inventory) and ``fleet/transport/pyzcache.py`` (the built payload).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path | None:
    """This user's fleet cache directory (not created here), or None when caching is turned off."""
    override = os.environ.get("FLEET_CACHE_DIR")
    if override is not None:
        return Path(override) if override else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fleet"


def _private(st, is_dir: bool) -> bool:
    kind = 0o040000 if is_dir else 0o100000
    return st.st_mode & 0o170000 == kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read(name: str) -> bytes | None:
    """The entry ``name``, or None when it is absent, unreadable or not private to this user."""
    base = cache_dir()
    if base is None:
        return None
    try:
        if not _private(os.lstat(base), True):
            return None
        fd = os.open(base / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _private(os.fstat(fd), False):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def write(name: str, data: bytes, prune: str | None = None, keep: int = 8) -> None:
    """Store ``data`` as the entry ``name``, atomically and privately; errors are ignored (the cache is optional).

    ``prune``: a glob of this entry's kind; all but the ``keep`` newest such entries are removed afterwards, so
    that the directory stays small however many inventories or payload versions come and go.
    """
    base = cache_dir()
    if base is None:
        return
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(os.lstat(base), True):
            if os.lstat(base).st_uid != os.geteuid():
                return
            os.chmod(base, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=base)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, base / name)
        except BaseException:
            os.unlink(tmp)
            raise
        if prune:
            entries = sorted(base.glob(prune), key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for old in entries[keep:]:
                old.unlink()
    except OSError:
        pass
