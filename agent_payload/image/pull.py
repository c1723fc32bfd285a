"""Pulling an image: resolve the manifest through mirrors, fetch verified blobs in parallel, unpack snapshots."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import errors
from . import content, images, reference, registry, snapshots, unpack

#: Parallel layer downloads (Docker's default max-concurrent-downloads is 3; the brief bounds us at 4).
MAX_DOWNLOADS = 4

LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)


class Puller:
    """One pull into an ImageStore (its content store, snapshots, config and index)."""

    def __init__(self, store):
        self.store = store
        self.config = store.config
        self.content = store.content
        self.snapshots = store.snapshots

    def pull(self, ref, emit=None):
        """Pull ``ref`` -> (ImageRecord, {"endpoint", "downloaded", "layers"}); see module docstring."""
        r = reference.parse(ref)
        emit = _serialised(emit)
        client, top_digest, docs = self._resolve_remote(r)
        for digest, _mt, body in docs:
            self.content.write_bytes(digest, body)
        manifest = json.loads(docs[-1][2].decode())
        cfg_desc = manifest.get("config") or {}
        layers = manifest.get("layers") or []
        for desc in [cfg_desc] + layers:
            content.digest_hex(desc.get("digest"))  # remote input: must be a well-formed sha256 digest
            if desc is not cfg_desc and desc.get("mediaType") not in LAYER_TYPES:
                raise errors.FailedPrecondition("{}: unsupported layer media type {!r}".format(
                    r.familiar(), desc.get("mediaType")))
        image_id = cfg_desc["digest"]
        if not self.content.has(image_id):
            self._download(client, cfg_desc, None)
        config = json.loads(self.content.read_bytes(image_id).decode())
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
        if len(diff_ids) != len(layers):
            raise errors.FailedPrecondition("{}: manifest has {} layers but config lists {} diff_ids".format(
                r.familiar(), len(layers), len(diff_ids)))
        chains = snapshots.chain_ids(diff_ids)
        downloaded = self._fetch_layers(client, layers, diff_ids, chains, emit)
        size = sum(int(d.get("size") or 0) for d in layers)
        entry = {"manifest": docs[-1][0], "digest": top_digest, "layers": layers, "chain_ids": chains,
                 "size": size, "created": config.get("created", ""), "endpoint": client.endpoint.url}
        ref_info = {"id": image_id, "digest": top_digest}
        self.store.index_add([r.string(), r.with_digest(top_digest).string()], image_id, entry, ref_info)
        record = images.ImageRecord(id=image_id, reference=r.string(), repository=r.familiar_name(),
                             tag=r.tag or images.NONE, digest=top_digest, config=config,
                             layers=self.snapshots.mounts(chains), size=size, created=entry["created"])
        return record, {"endpoint": client.endpoint.url, "downloaded": downloaded, "layers": len(layers)}

    def _resolve_remote(self, r):
        """Try each endpoint in order; return (client, top digest, manifest docs) from the first that serves.

        Mirrors fall through on any error (down, 404, auth); an insecure registry's https attempt falls
        through to http only when the connection itself failed (TLS to a plain-HTTP server).
        """
        endpoints = registry.endpoints_for(r.domain, self.config)
        failures = []
        for i, ep in enumerate(endpoints):
            client = registry.RegistryClient(ep, r.path, self.store.credentials_for(r.domain))
            try:
                top, docs = registry.resolve_manifest(client, r.digest or r.tag, r.familiar())
                return client, top, docs
            except errors.AgentError as exc:
                last = i == len(endpoints) - 1
                if last or not (ep.mirror or isinstance(exc, errors.Unavailable)):
                    if failures:
                        exc.details = {"tried": failures}
                    raise
                failures.append({"endpoint": ep.url, "error": exc.message})
        raise errors.Internal("no endpoint for {}".format(r.string()))  # unreachable: the origin is always last

    def _download(self, client, desc, progress):
        digest = desc["digest"]
        with client.open_blob(digest) as resp:
            self.content.ingest(digest, desc.get("size"), resp, progress)

    def _fetch_layers(self, client, layers, diff_ids, chains, emit):
        """Download missing blobs in parallel, then unpack in order; return the number of blobs fetched."""
        todo = [i for i in range(len(layers)) if self.snapshots.lookup(chains[i]) is None]
        for i in range(len(layers)):
            if i not in todo:
                emit("progress", _progress(layers[i], "Already exists"))
        need = [i for i in todo if not self.content.has(layers[i]["digest"])]
        pool = ThreadPoolExecutor(max_workers=MAX_DOWNLOADS)
        futures = {}
        try:
            for i in need:
                futures[i] = pool.submit(self._download_layer, client, layers[i], emit)
            for i in todo:
                if i in futures:
                    futures[i].result()
                desc = layers[i]
                emit("progress", _progress(desc, "Extracting", 0))
                self.snapshots.ensure(chains[i], chains[i - 1] if i else None, diff_ids[i],
                                      lambda fs, d=desc, diff=diff_ids[i]: self._apply(fs, d, diff, emit))
                emit("progress", _progress(desc, "Pull complete", desc.get("size")))
        finally:
            for f in futures.values():
                f.cancel()  # Python 3.8 has no shutdown(cancel_futures=True)
            pool.shutdown(wait=True)
        return len(need)

    def _download_layer(self, client, desc, emit):
        emit("progress", _progress(desc, "Downloading", 0))
        self._download(client, desc, lambda cur, tot: emit("progress", _progress(desc, "Downloading", cur)))
        emit("progress", _progress(desc, "Verifying", desc.get("size")))

    def _apply(self, fs, desc, diff_id, emit):
        with self.content.open(desc["digest"]) as f:
            unpack.apply_layer(f, fs, desc.get("mediaType", ""), diff_id,
                               progress=lambda n: emit("progress", _progress(desc, "Extracting", n)))


def _progress(desc, status, current=None):
    """A progress event body for layer ``desc``."""
    total = desc.get("size")
    return {"layer": content.digest_hex(desc["digest"])[:12], "status": status,
            "current": current if current is not None else total, "total": total}


def _serialised(emit):
    """Wrap ``emit`` so download threads never interleave calls (the CLI writes one JSON line per call)."""
    if emit is None:
        return lambda name, data: None
    lock = threading.Lock()

    def call(name, data):
        with lock:
            emit(name, data)
    return call
