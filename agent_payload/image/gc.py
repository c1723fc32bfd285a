"""Image removal and garbage collection: Docker's rmi/prune rules on the index, then mark-and-sweep of content.

Removal is two steps, both under the ``images`` lock:

1. The index changes by Docker's rules (moby ``daemon/images/image_delete.go``): untag, and delete the
   image entry when nothing references it and no conflict forbids it.
2. Sweep: every blob and snapshot that no remaining image references, and no container has among its
   lowerdirs, is deleted.  Containers keep their own snapshot dirs alive, so ``rmi -f`` of an image a
   stopped container uses never breaks that container, and its snapshots go at a sweep after ``rm``.

Pulls and GC (the window between a pull's first snapshot and its ``index_add``)::

    pull:  lease(shared) ....... blobs, ensure(snapshots) ....... index_add(images lock) ... release
    GC:            images lock -> try lease(exclusive, no wait) -> sweep | busy: skip the sweep

A snapshot or blob written by an in-flight pull is unreferenced until ``index_add``, so the sweep runs
only when no lease is held; otherwise the index change stands and the garbage waits for the next sweep
(``rmi``/``image prune``).  Lock order is lease before images for pulls; GC never waits for the lease.
Two more guards cover pulls that hold no lease: unclaimed content younger than ``GRACE`` is kept (only
the content of images deleted by this very call goes at once), and ``index_add`` refuses, under the
images lock GC also holds, to record an image whose snapshots vanished.
"""

import os
import time

from .. import errors, events
from ..record import REQUIRED, Record
from ..state import locks
from . import reference
from .images import is_id_prefix, is_tag, parent_ids, refs_of, short_id

# imageDeleteConflict kinds (no dependent-child images exist without a builder).
RUNNING = 1
ACTIVE_REFERENCE = 2
STOPPED = 4
HARD = RUNNING
SOFT = ACTIVE_REFERENCE | STOPPED
#: Unclaimed blobs and snapshots younger than this (seconds) survive a sweep: a pull that holds no lease
#: may be about to reference them (index_add refuses if they went anyway). Temp trees and ingest files
#: need no grace: their writers hold flocks, so those of dead writers go at once, even while pulls run.
GRACE = 600


class ContainerUse(Record):
    """A container as GC sees it: which image it was created from, whether it runs, which dirs it mounts."""

    FIELDS = (("id", REQUIRED), ("image_id", REQUIRED), ("running", False), ("lowerdirs", list))


class DeleteConflict(errors.Conflict):
    """Docker's imageDeleteConflict: ``hard`` ones cannot be forced; ``used`` means a container uses it."""

    def __init__(self, image_id, hard, used, message):
        super().__init__("conflict: unable to delete {} ({}) - {}".format(
            short_id(image_id), "cannot be forced" if hard else "must be forced", message))
        self.used = used


def single_reference(keys):
    """moby ``isSingleReference``: all references in one repository and at most one tag (False if none)."""
    if len(keys) <= 1:
        return len(keys) == 1
    names, single = set(), None
    for k in keys:
        r = reference.parse(k)
        if not is_tag(k):
            names.add(r.name)
        elif single is None:
            names.add(r.name)
            single = r
        else:
            return False
    if single is None:
        single = reference.parse(keys[0])
    return len(names) == 1 and single.name in names


class Collector:
    """rmi and image prune over one ImageStore; ``containers()`` lists every container as ContainerUse."""

    def __init__(self, store, containers):
        self.store = store
        self.containers = containers
        self.doomed_blobs, self.doomed_chains = set(), set()

    # -- rmi ---------------------------------------------------------------------------------------------

    def remove(self, refs, force=False):
        """``docker rmi``: each image in turn -> {"untagged", "deleted"} (+ "errors" when some failed).

        A failure stops only that image; if every image failed, the first error is raised.
        """
        untagged, deleted, failures = [], [], []
        with locks.locked(self.store.lock_path):
            uses = self.containers()
            index = self.store._read_index()
            for ref in refs:
                try:
                    for kind, value in self._delete(index, ref, force, uses):
                        (untagged if kind == "untagged" else deleted).append(value)
                except errors.AgentError as exc:
                    failures.append((ref, exc))
                finally:
                    self.store.write_index(index)
            if deleted:
                self._sweep(index, uses)
        if failures and len(failures) == len(refs):
            raise failures[0][1]
        out = {"untagged": untagged, "deleted": deleted}
        if failures:
            out["errors"] = [{"image": ref, "kind": exc.kind, "message": exc.message} for ref, exc in failures]
        return out

    def _delete(self, index, ref, force, uses):
        """One image per moby's ImageDelete; mutates ``index`` and returns [("untagged"|"deleted", value)]."""
        image_id, key = self.store.find(index, ref)
        keys = refs_of(index, image_id)
        users = [u for u in uses if u.image_id == image_id]
        records = []
        if not is_id_prefix(image_id, ref.strip()):
            if not force and single_reference(keys) and users:
                # Untagging would leave a dangling image in use: Docker wants that forced explicitly.
                raise errors.Conflict(
                    'conflict: unable to remove repository reference "{}" (must force) - container {} is using '
                    'its referenced image {}'.format(ref, users[0].id[:12], short_id(image_id)))
            records.append(self._untag(index, key))
            keys.remove(key)
            if is_tag(key):
                name = reference.parse(key).name
                if not any(is_tag(k) and reference.parse(k).name == name for k in keys):
                    # The repository's last tag went: its digest references go with it.
                    for k in [k for k in keys if reference.parse(k).name == name]:
                        records.append(self._untag(index, k))
                        keys.remove(k)
            if keys:
                return records
            return records + self._delete_image(index, image_id, force, users, quiet=True)
        if single_reference(keys):
            mask = HARD if force else HARD | (SOFT & ~ACTIVE_REFERENCE)
            conflict = self._conflict(index, image_id, mask, users)
            if conflict is not None:
                raise conflict
            for k in keys:
                records.append(self._untag(index, k))
        return records + self._delete_image(index, image_id, force, users, quiet=False)

    def _delete_image(self, index, image_id, force, users, quiet):
        """moby imageDeleteHelper: conflicts, then drop every reference and the image entry."""
        conflict = self._conflict(index, image_id, HARD if force else HARD | SOFT, users)
        if conflict is not None:
            if quiet and (refs_of(index, image_id) or conflict.used):
                return []  # untagged only: the image stays (dangling) for the container using it
            raise conflict
        records = [self._untag(index, k) for k in refs_of(index, image_id)]
        entry = index["images"].pop(image_id)
        # Content of an image deleted now is swept at once; the grace protects only unclaimed content.
        self.doomed_blobs.update(_blobs(image_id, entry))
        self.doomed_chains.update(entry.get("chain_ids") or [])
        events.record(self.store.paths, "image", "delete", image_id, {"name": image_id})
        return records + [("deleted", image_id)]

    def _conflict(self, index, image_id, mask, users):
        if mask & RUNNING:
            running = [u for u in users if u.running]
            if running:
                return DeleteConflict(image_id, True, True,
                                      "image is being used by running container {}".format(running[0].id[:12]))
        if mask & ACTIVE_REFERENCE and refs_of(index, image_id):
            return DeleteConflict(image_id, False, False, "image is referenced in multiple repositories")
        if mask & STOPPED:
            stopped = [u for u in users if not u.running]
            if stopped:
                return DeleteConflict(image_id, False, True,
                                      "image is being used by stopped container {}".format(stopped[0].id[:12]))
        return None

    @staticmethod
    def _untag(index, key):
        del index["refs"][key]
        return "untagged", reference.parse(key).familiar()

    # -- prune -------------------------------------------------------------------------------------------

    def prune(self, all=False):
        """``docker image prune [-a]``: delete dangling (or all) images no container uses -> result dict.

        Images in use are skipped silently, as Docker does; ``reclaimed`` counts the blob and snapshot
        bytes the sweep actually freed (including garbage left by earlier removals).
        """
        untagged, deleted = [], []
        with locks.locked(self.store.lock_path):
            uses = self.containers()
            index = self.store._read_index()
            tried = set()
            while True:  # a pruned head's untagged parent is a dangling head in its turn (docker rmi's chain)
                parents = set() if all else parent_ids(index)
                todo = [i for i in sorted(index["images"]) if i not in tried and i not in parents]
                if not todo:
                    break
                for image_id in todo:
                    tried.add(image_id)
                    keys = refs_of(index, image_id)
                    if keys and not all and any(is_tag(k) for k in keys):
                        continue
                    for target in keys or [image_id.split(":", 1)[1]]:
                        try:
                            for kind, value in self._delete(index, target, False, uses):
                                (untagged if kind == "untagged" else deleted).append(value)
                        except (errors.Conflict, errors.NotFound):
                            continue
            self.store.write_index(index)
            reclaimed = self._sweep(index, uses)
        return {"deleted": deleted, "untagged": untagged, "reclaimed": reclaimed}

    # -- sweep -------------------------------------------------------------------------------------------

    def _sweep(self, index, uses):
        """Delete unreferenced blobs and snapshots if no lease is held; returns the bytes freed (see module doc)."""
        # Temp trees and ingest files of dead pulls go now whatever the lease: their owners' flocks tell.
        freed = self.store.snapshots.reclaim_temp() + self._clean_ingest()
        with self.store.exclusive_lease() as free:
            if not free:
                return freed
            keep_blobs, keep_chains = set(), set()
            for image_id, entry in index["images"].items():
                keep_blobs.update(_blobs(image_id, entry))
                keep_chains.update(entry.get("chain_ids") or [])
            keep_blobs.update(v.get("digest") for v in index["refs"].values() if v.get("digest"))
            lowerdirs = [d for u in uses for d in u.lowerdirs]
            _removed, swept = self.store.snapshots.sweep(keep_chains, lowerdirs, GRACE, self.doomed_chains)
            freed += swept
            paths = self.store.paths
            cutoff = time.time() - GRACE
            for name in _listdir(paths.blobs):
                digest = "sha256:" + name
                path = os.path.join(paths.blobs, name)
                if digest not in keep_blobs and (digest in self.doomed_blobs or _mtime(path) < cutoff):
                    freed += _unlink(path)
            return freed

    def _clean_ingest(self):
        """Remove every ingest file whose writer is gone (its flock free); the bytes freed."""
        sizes = {}
        for name in _listdir(self.store.paths.ingest):
            try:
                sizes[name] = os.lstat(os.path.join(self.store.paths.ingest, name)).st_size
            except FileNotFoundError:
                continue
        return sum(sizes.get(name, 0) for name in self.store.content.clean_ingest())


def system_df_images(store, uses):
    """``docker system df``'s Images row: shared layers counted once; reclaimable = layers no used image needs."""
    index = store._read_index()
    used_ids = {u.image_id for u in uses}
    all_chains, active_chains, active = set(), set(), 0
    for image_id, entry in index["images"].items():
        chains = set(entry.get("chain_ids") or [])
        all_chains |= chains
        if image_id in used_ids:
            active += 1
            active_chains |= chains
    size = sum(store.snapshots.usage(c) for c in all_chains)
    reclaimable = sum(store.snapshots.usage(c) for c in all_chains - active_chains)
    return df_row(len(index["images"]), active, size, reclaimable)


def df_row(total, active, size, reclaimable):
    """One ``system df`` row; ``reclaimable_percent`` is Docker's integer percentage (None when size is 0)."""
    return {"total": total, "active": active, "size": size, "reclaimable": reclaimable,
            "reclaimable_percent": (reclaimable * 100 // size) if size else None}


def _blobs(image_id, entry):
    """Every blob digest an image entry needs: config, top document, manifest and layers."""
    out = {image_id}
    out.update(d for d in (entry.get("digest"), entry.get("manifest")) if d)
    out.update(layer.get("digest") for layer in entry.get("layers") or [] if layer.get("digest"))
    return out


def _mtime(path):
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _unlink(path):
    try:
        size = os.lstat(path).st_size
        os.unlink(path)
        return size
    except FileNotFoundError:
        return 0
