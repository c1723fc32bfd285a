"""Committed layer snapshots keyed by ChainID, unpacked once into short-named dirs (never mounted here).

Layout (short names keep overlay's one-page ``lowerdir=`` option small, PITFALLS 3.8)::

    snapshots/index.json        {"next": 8, "chains": {"sha256:<chain>": {"id": "7", "parent", "diff_id",
                                                                          "size" (unpacked bytes, cached), ...}}}
    snapshots/7/fs/             the unpacked layer (whiteouts as overlay char devices / opaque xattrs)
    snapshots/.tmp-XXXXXX/fs/   an extraction in progress; renamed to snapshots/<id> only once verified
"""

import os
import shutil
import time

from .. import errors
from ..state import locks, store

INDEX = "index.json"


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
        os.makedirs(self.root, exist_ok=True)
        import tempfile
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.root)
        try:
            fs = os.path.join(tmp, "fs")
            os.mkdir(fs, 0o755)
            apply_fn(fs)
            with locks.locked(self.lock_path):
                index = self._read_index()
                entry = index["chains"].get(chain_id)
                if entry and os.path.isdir(self.fs_dir(entry["id"])):
                    # Another pull committed the same chain while we extracted: keep theirs.
                    return self.fs_dir(entry["id"]), False
                short_id = self._allocate(index)
                os.rename(tmp, os.path.join(self.root, short_id))
                index["chains"][chain_id] = {"id": short_id, "parent": parent, "diff_id": diff_id,
                                             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                store.write_json_atomic(self.index_path, index)
                return self.fs_dir(short_id), True
        finally:
            if os.path.isdir(tmp):
                _remove_tree(tmp)

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
            store.write_json_atomic(self.index_path, index)
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
        size = disk_usage(self.fs_dir(entry["id"]))
        with locks.locked(self.lock_path):
            index = self._read_index()
            current = index["chains"].get(chain_id)
            if current and current["id"] == entry["id"]:
                current["size"] = size
                store.write_json_atomic(self.index_path, index)
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
        removed, freed = [], 0
        with locks.locked(self.lock_path):
            index = self._read_index()
            known = set()
            for chain_id, entry in sorted(index["chains"].items()):
                fs = self.fs_dir(entry["id"])
                if (chain_id in keep_chains or os.path.realpath(fs) in keep_dirs
                        or chain_id not in doomed and _committed(entry, os.path.join(self.root, entry["id"])) > cutoff):
                    known.add(entry["id"])
                    continue
                size = entry["size"] if isinstance(entry.get("size"), int) else disk_usage(fs)
                del index["chains"][chain_id]
                # The index forgets it first: a crash mid-delete leaves an orphan dir, swept next time.
                store.write_json_atomic(self.index_path, index)
                if os.path.isdir(os.path.join(self.root, entry["id"])):
                    _remove_tree(os.path.join(self.root, entry["id"]))
                    freed += size
                removed.append(chain_id)
            for name in _listdir(self.root):
                path = os.path.join(self.root, name)
                orphan = name.isdigit() and name not in known and os.path.realpath(
                    os.path.join(path, "fs")) not in keep_dirs
                if ((orphan or name.startswith(".tmp-")) and os.path.isdir(path) and not os.path.islink(path)
                        and _mtime(path) <= cutoff):
                    freed += disk_usage(path)
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


def disk_usage(path):
    """Bytes in the files under ``path`` like Docker's ``directory.Size``: st_size of every non-directory,
    hard links counted once; entries vanishing meanwhile (a running container's upper dir) are skipped."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path, onerror=lambda exc: None):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


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
