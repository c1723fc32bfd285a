"""Committed layer snapshots keyed by ChainID, unpacked once into short-named dirs (never mounted here).

Layout (short names keep overlay's one-page ``lowerdir=`` option small, PITFALLS 3.8)::

    snapshots/index.json        {"next": 8, "chains": {"sha256:<chain>": {"id": "7", "parent", "diff_id",
                                                                          "size" (unpacked bytes, cached), ...}}}
    snapshots/7/fs/             the unpacked layer (whiteouts as overlay char devices / opaque xattrs)
    snapshots/.tmp-<chain hex>/fs/   an extraction in progress; renamed to snapshots/<id> only once verified
    snapshots/.tmp-<chain hex>.lock  its owner's flock, held from before the dir exists until after it is gone

The ``.lock`` file is the extraction lock of one ChainID (``ChainLock``): one process at a time extracts a
given chain, a second pull of the same layer waits for the first one's result, and a temp dir whose lock is
free belongs to a dead process, so the next pull or prune reclaims it at once (``reclaim_temp``).
"""

import contextlib
import os
import re
import shutil
import time

from .. import errors
from ..fs import tree_size
from ..state import locks, store

INDEX = "index.json"
TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
_TMP_RE = re.compile(r"^\.tmp-([0-9a-f]{64})(\.lock)?$")


def chain_ids(diff_ids):
    """ChainIDs per the OCI image spec: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    out = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            import hashlib  # lazily, as the two below: not needed to start a container from a present image
            out.append("sha256:" + hashlib.sha256((out[-1] + " " + diff_id).encode()).hexdigest())
    return out


class SnapshotStore:
    """Committed, read-only layer directories; returns paths for the runtime to mount."""

    def __init__(self, paths):
        self.paths = paths
        self.root = paths.snapshots
        self.index_path = os.path.join(self.root, INDEX)
        self.lock_path = paths.lock_file("snapshots")

    def _write_index(self, index):
        """Persist ``index`` under ``self.lock_path`` (held by the caller), reaping a killed writer's temp files."""
        locks.reap_temp_files(self.root)
        store.write_json_atomic(self.index_path, index)

    def _read_index(self):
        data = store.read_json(self.index_path, default=None) or {}
        data.setdefault("next", 1)
        data.setdefault("chains", {})
        return data

    def fs_dir(self, short_id):
        """The unpacked tree of snapshot ``short_id``."""
        return os.path.join(self.root, short_id, "fs")

    def lookup(self, chain_id):
        """Return the fs dir of a committed snapshot for ``chain_id``, or None."""
        entry = self._read_index()["chains"].get(chain_id)
        if not entry:
            return None
        path = self.fs_dir(entry["id"])
        return path if os.path.isdir(path) else None

    def stat(self, chain_id):
        """Index entry for ``chain_id`` (id, parent, diff_id, created) or NotFound."""
        entry = self._read_index()["chains"].get(chain_id)
        if not entry:
            raise errors.NotFound("snapshot {} not found".format(chain_id))
        return dict(entry)

    def walk(self):
        """All committed snapshots as {chain_id: entry}."""
        return dict(self._read_index()["chains"])

    def ensure(self, chain_id, parent, diff_id, apply_fn):
        """Return the fs dir for ``chain_id``, creating it with ``apply_fn(tmp_fs_dir)`` if needed.

        ``apply_fn`` extracts and verifies the layer (raising on a diff_id mismatch or unsafe entry); the
        temp tree is removed on any failure, so a partial snapshot never becomes visible. Returns
        ``(fs_dir, created)``.
        """
        existing = self.lookup(chain_id)
        if existing:
            return existing, False
        with self.lock_chain(chain_id) as lock:
            existing = self.lookup(chain_id)  # another process extracted it while we waited
            if existing:
                return existing, False
            apply_fn(lock.prepare())
            return lock.commit(parent, diff_id)

    def lock_chain(self, chain_id, blocking=True):
        """Take the extraction lock of ``chain_id`` (waiting for its holder unless ``blocking`` is False: then
        None when busy); returns a ``ChainLock`` (a context manager releasing it). A temp tree a dead holder
        left is removed by ``ChainLock.prepare``."""
        hexd = _chain_hex(chain_id)
        os.makedirs(self.root, exist_ok=True)
        lock_path = os.path.join(self.root, TMP_PREFIX + hexd + LOCK_SUFFIX)
        fd = locks.acquire(lock_path, blocking=blocking)  # the file it locked is the one at the path
        if fd is None:
            return None
        stack = contextlib.ExitStack()
        stack.callback(os.close, fd)
        return ChainLock(self, chain_id, os.path.join(self.root, TMP_PREFIX + hexd), lock_path, stack)

    def reclaim_temp(self):
        """Remove the temp dirs (and lock files) of extractions whose owner is gone; return the bytes freed.

        A live owner holds the ``.lock`` flock, so this never waits and never touches its work. Temp dirs
        with other names (left by older versions, which held no lock) are left to ``sweep``'s grace period.
        """
        freed = 0
        for name in _listdir(self.root):
            m = _TMP_RE.match(name)
            if not m:
                continue
            lock = self.lock_chain("sha256:" + m.group(1), blocking=False)
            if lock is not None:
                with lock:
                    if os.path.isdir(lock.tmp) and not os.path.islink(lock.tmp):
                        freed += tree_size(lock.tmp)
        return freed

    def _allocate(self, index):
        """Next free counter value as the directory name (caller holds the lock)."""
        n = int(index["next"])
        while os.path.lexists(os.path.join(self.root, str(n))):
            n += 1
        index["next"] = n + 1
        return str(n)

    def remove(self, chain_id):
        """Delete a committed snapshot (no reference counting yet: callers must know it is unused)."""
        with locks.locked(self.lock_path):
            index = self._read_index()
            entry = index["chains"].pop(chain_id, None)
            if not entry:
                raise errors.NotFound("snapshot {} not found".format(chain_id))
            self._write_index(index)
        _remove_tree(os.path.join(self.root, entry["id"]))

    def usage(self, chain_id):
        """Unpacked size in bytes of a committed snapshot (Docker's layer DiffSize), cached in the index.

        Committed snapshots never change, so the first ``du`` is recorded and reused; 0 if it is gone.
        """
        entry = self._read_index()["chains"].get(chain_id)
        if not entry:
            return 0
        if isinstance(entry.get("size"), int):
            return entry["size"]
        size = tree_size(self.fs_dir(entry["id"]))
        with locks.locked(self.lock_path):
            index = self._read_index()
            current = index["chains"].get(chain_id)
            if current and current["id"] == entry["id"]:
                current["size"] = size
                self._write_index(index)
        return size

    def sweep(self, keep_chains, keep_dirs, grace=0, doomed=()):
        """Delete every snapshot whose chain is not in ``keep_chains`` and whose fs dir is not in ``keep_dirs``.

        Also removes leftovers of interrupted extractions (``.tmp-*``) and numbered dirs the index lost.
        Unclaimed snapshots younger than ``grace`` seconds are kept (a pull without a lease may be about to
        reference them) unless listed in ``doomed`` (content of images deleted just now).
        Returns ``(removed chain IDs, bytes freed)``.
        """
        keep_dirs = {os.path.realpath(d) for d in keep_dirs}
        cutoff = time.time() - grace
        removed, freed = [], self.reclaim_temp()
        with locks.locked(self.lock_path):
            index = self._read_index()
            known = set()
            for chain_id, entry in sorted(index["chains"].items()):
                fs = self.fs_dir(entry["id"])
                if (chain_id in keep_chains or os.path.realpath(fs) in keep_dirs
                        or chain_id not in doomed and _committed(entry, os.path.join(self.root, entry["id"])) > cutoff):
                    known.add(entry["id"])
                    continue
                size = entry["size"] if isinstance(entry.get("size"), int) else tree_size(fs)
                del index["chains"][chain_id]
                # The index forgets it first: a crash mid-delete leaves an orphan dir, swept next time.
                self._write_index(index)
                if os.path.isdir(os.path.join(self.root, entry["id"])):
                    _remove_tree(os.path.join(self.root, entry["id"]))
                    freed += size
                removed.append(chain_id)
            for name in _listdir(self.root):
                path = os.path.join(self.root, name)
                orphan = name.isdigit() and name not in known and os.path.realpath(
                    os.path.join(path, "fs")) not in keep_dirs
                legacy_tmp = name.startswith(TMP_PREFIX) and not _TMP_RE.match(name)
                if ((orphan or legacy_tmp) and os.path.isdir(path) and not os.path.islink(path)
                        and _mtime(path) <= cutoff):
                    freed += tree_size(path)
                    _remove_tree(path)
        return removed, freed

    def mounts(self, chain_ids_bottom_up):
        """Fs dirs for a chain, bottom -> top (what overlay's lowerdir lists, reversed)."""
        out = []
        for chain_id in chain_ids_bottom_up:
            path = self.lookup(chain_id)
            if path is None:
                raise errors.NotFound("snapshot {} is missing; pull the image again".format(chain_id))
            out.append(path)
        return out


class ChainLock:
    """The held extraction lock of one chain: ``prepare`` a fresh temp tree, fill it, ``commit`` it; leaving
    the ``with`` block removes whatever was not committed, then the lock file, then releases the lock."""

    def __init__(self, snaps, chain_id, tmp, lock_path, stack):
        self.snaps, self.chain_id, self.tmp, self.lock_path = snaps, chain_id, tmp, lock_path
        self._stack = stack
        self.released = False

    @property
    def fs(self):
        return os.path.join(self.tmp, "fs")

    def prepare(self):
        """An empty ``<tmp>/fs`` (a dead holder's leftovers removed first); returns its path."""
        if os.path.isdir(self.tmp) and not os.path.islink(self.tmp):
            _remove_tree(self.tmp)
        elif os.path.lexists(self.tmp):
            os.unlink(self.tmp)
        os.mkdir(self.tmp, 0o700)
        os.mkdir(self.fs, 0o755)
        return self.fs

    def commit(self, parent, diff_id):
        """Rename the prepared tree to a new snapshot of the chain; ``(fs_dir, created)`` (created False when
        the chain is committed already: then the prepared tree is dropped)."""
        snaps = self.snaps
        with locks.locked(snaps.lock_path):
            index = snaps._read_index()
            entry = index["chains"].get(self.chain_id)
            if entry and os.path.isdir(snaps.fs_dir(entry["id"])):
                return snaps.fs_dir(entry["id"]), False
            short_id = snaps._allocate(index)
            os.rename(self.tmp, os.path.join(snaps.root, short_id))
            index["chains"][self.chain_id] = {"id": short_id, "parent": parent, "diff_id": diff_id,
                                              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            snaps._write_index(index)
            return snaps.fs_dir(short_id), True

    def release(self):
        """Remove the uncommitted tree and the lock file (still holding the lock), then release it; once."""
        if self.released:
            return
        self.released = True
        try:
            if os.path.isdir(self.tmp) and not os.path.islink(self.tmp):
                _remove_tree(self.tmp)
            try:
                os.unlink(self.lock_path)  # waiters notice (inode check) and lock a fresh file
            except FileNotFoundError:
                pass
        finally:
            self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _chain_hex(chain_id):
    m = re.match(r"^sha256:([0-9a-f]{64})$", chain_id or "")
    if not m:
        raise errors.InvalidArgument("malformed chain ID {!r}".format(chain_id))
    return m.group(1)


def _committed(entry, path):
    """When a snapshot was committed: its index time, or its dir's mtime if later or unreadable."""
    try:
        import calendar
        when = calendar.timegm(time.strptime(entry.get("created", ""), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        when = 0
    return max(when, _mtime(path))


def _mtime(path):
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _remove_tree(path):
    # shutil.rmtree never follows symlinks and on Linux walks by fd; device nodes are plain unlinks.
    shutil.rmtree(path, ignore_errors=False)
