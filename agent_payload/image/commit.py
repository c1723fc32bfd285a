"""``docker commit`` on the image side: a new layer blob, its snapshot, config, manifest and index entry.

The layer tar comes from a ``write_tar(fileobj)`` callback (the runtime's upper-dir writer, glued in by the
ops layer: this module never imports the runtime).  One pass over the tar stream hashes it (diff_id) and
gzips it into a private, flocked temp file under ``ingest/``; that file then enters the content store
through ``ContentStore.ingest``, which checks size and digest again before the rename.  The new top
snapshot is made by the safe applier from the stored blob onto the parent's ChainID, so the image is
runnable at once.  The manifest kind (Docker v2s2 or OCI) follows the parent's manifest.
"""

import fcntl
import hashlib
import json
import os
import tempfile
import time
import zlib

from .. import errors
from . import reference, registry, snapshots, unpack

MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class _LayerSink:
    """Write-only file object: hashes the tar (diff_id) and writes it gzip-compressed to ``fd`` (hashed too).

    The gzip header carries no name and mtime 0, so the same tree always gives the same blob.
    """

    def __init__(self, fd):
        self.fd = fd
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        self.z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, data):
        self.diff.update(data)
        self._out(self.z.compress(bytes(data)))
        return len(data)

    def _out(self, data):
        if not data:
            return
        self.blob.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def finish(self):
        self._out(self.z.flush())
        return "sha256:" + self.diff.hexdigest(), "sha256:" + self.blob.hexdigest(), self.size


def _now():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10 ** 9)) + ".{:09d}Z".format(ns % 10 ** 9)


def _write_layer(store, write_tar):
    """Produce and store the layer blob -> (entries, diff_id, digest, size); nothing is stored when empty."""
    os.makedirs(store.paths.ingest, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="commit-", dir=store.paths.ingest)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # clean_ingest leaves a locked file alone
        sink = _LayerSink(fd)
        entries = write_tar(sink)
        diff_id, digest, size = sink.finish()
        if entries:
            os.lseek(fd, 0, os.SEEK_SET)
            with os.fdopen(os.dup(fd), "rb") as f:
                store.content.ingest(digest, size, f)  # verified again (size + digest) before it enters blobs/
        return entries, diff_id, digest, size
    finally:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _target_key(target):
    """Normalised tag key for REPOSITORY[:TAG]; a digest is refused as by ``docker commit``."""
    if target is None:
        return None
    r = reference.parse(target)
    if r.digest is not None:
        raise errors.InvalidArgument("refusing to create a tag with a digest reference")
    return r


def check_target(target):
    """Validate ``REPOSITORY[:TAG]`` before anything happens (InvalidArgument, docker's messages)."""
    _target_key(target)


def commit(store, parent_id, write_tar, config, created_by="", author="", comment="", container_id="",
           container_config=None, target=None, created=None):
    """Create an image from ``parent_id`` plus the layer ``write_tar`` produces; returns {"id", "repository", ...}.

    ``config`` is the new image's ``config`` object (the container's, --change applied).  A change set with
    no entries adds no layer; its history row is marked ``empty_layer`` (docker does the same).
    ``target`` (REPOSITORY[:TAG]) is tagged in the index; without it the image is listed as <none>.
    ``parent_id`` None is ``FROM scratch`` (the build's first step: no layers, Docker v2s2); ``created`` fixes
    the image's time (the build's SOURCE_DATE_EPOCH).
    """
    r = _target_key(target)
    with store.lease():  # GC must not sweep the new blob/snapshot before the index names them
        index = store._read_index()
        entry = index["images"].get(parent_id) if parent_id is not None else {
            "media_type": registry.MT_DOCKER_MANIFEST}
        if entry is None:
            raise errors.FailedPrecondition("the image of this container ({}) is no longer in the image store"
                                            .format(parent_id))
        parent_cfg = store.image_config(parent_id) if parent_id is not None else {}
        if parent_id is None:
            manifest = {}
        else:
            manifest = json.loads(store.content.read_bytes(entry["manifest"]).decode())
        oci = (entry.get("media_type") or manifest.get("mediaType") or registry.MT_OCI_MANIFEST) \
            == registry.MT_OCI_MANIFEST
        diff_ids = list((parent_cfg.get("rootfs") or {}).get("diff_ids") or [])
        chains = list(entry.get("chain_ids") or [])
        layers = [dict(d) for d in entry.get("layers") or []]
        entries, diff_id, digest, size = _write_layer(store, write_tar)
        if entries:
            layer_type = MT_OCI_LAYER if oci else MT_DOCKER_LAYER
            chain = snapshots.chain_ids(diff_ids + [diff_id])[-1]

            def apply(fs):
                with store.content.open(digest) as f:
                    unpack.apply_layer(f, fs, layer_type, expected_diff_id=diff_id)

            store.snapshots.ensure(chain, chains[-1] if chains else None, diff_id, apply)
            diff_ids.append(diff_id)
            chains.append(chain)
            layers.append({"mediaType": layer_type, "digest": digest, "size": size})
        created = created or _now()
        history = list(parent_cfg.get("history") or [])
        row = {"created": created, "created_by": created_by}
        if author:
            row["author"] = author
        if comment:
            row["comment"] = comment
        if not entries:
            row["empty_layer"] = True
        history.append(row)
        if parent_id is None:
            from .registry import host_platform
            plat = host_platform()
            parent_cfg = {"architecture": plat[1], "os": plat[0], "variant": plat[2]}
        image = {"architecture": parent_cfg.get("architecture", ""), "author": author, "config": config,
                 "container": container_id, "container_config": container_config or config, "created": created,
                 "docker_version": "", "history": history, "os": parent_cfg.get("os", "linux"),
                 "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if parent_cfg.get("variant"):
            image["variant"] = parent_cfg["variant"]
        if comment:
            image["comment"] = comment
        cfg_bytes = json.dumps(image, separators=(",", ":")).encode()
        image_id = "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
        store.content.write_bytes(image_id, cfg_bytes)
        man = {"schemaVersion": 2,
               "mediaType": registry.MT_OCI_MANIFEST if oci else registry.MT_DOCKER_MANIFEST,
               "config": {"mediaType": MT_OCI_CONFIG if oci else MT_DOCKER_CONFIG, "digest": image_id,
                          "size": len(cfg_bytes)},
               "layers": layers}
        man_bytes = json.dumps(man, indent=3).encode()
        man_digest = "sha256:" + hashlib.sha256(man_bytes).hexdigest()
        store.content.write_bytes(man_digest, man_bytes)
        new_entry = {"manifest": man_digest, "digest": man_digest, "media_type": man["mediaType"],
                     "layers": layers, "chain_ids": chains, "size": sum(int(d.get("size") or 0) for d in layers),
                     "created": created, "endpoint": "", "domain": entry.get("domain"),
                     "repository": entry.get("repository")}
        if parent_id is not None:
            new_entry["parent"] = parent_id  # docker's Parent: images hides untagged parents without -a
        if r is not None:
            new_entry["last_tag_time"] = created  # docker commit tags the image: inspect's Metadata.LastTagTime
        keys = [r.string()] if r is not None else []
        store.index_add(keys, image_id, new_entry, {"id": image_id, "digest": None})
    return {"id": image_id, "repository": r.familiar() if r is not None else None, "layer": digest if entries else None,
            "diff_id": diff_id if entries else None, "size": size if entries else 0}
