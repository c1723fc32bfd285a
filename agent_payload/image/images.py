"""Public image API of the payload: pull (registry -> content store -> snapshots), resolve and list local images.

The index ``images/index.json`` (written atomically under the ``images`` lock)::

    {"refs":   {"docker.io/library/nginx:latest": {"id": "sha256:<config>", "digest": "sha256:<manifest>"},
                "docker.io/library/nginx@sha256:<manifest>": {...}},
     "images": {"sha256:<config>": {"manifest", "digest", "layers": [descriptor], "chain_ids", "size",
                                    "created", "endpoint"}}}
"""

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import config as daemon_config
from .. import errors
from ..state import locks, store
from . import content, reference, registry, snapshots, unpack

#: Parallel layer downloads (Docker's default max-concurrent-downloads is 3; the brief bounds us at 4).
MAX_DOWNLOADS = 4
NONE = "<none>"

LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
_ID_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


@dataclass
class ImageRecord:
    """A local image as the rest of the payload sees it (layers are snapshot dirs, bottom -> top)."""

    id: str
    reference: str
    repository: str
    tag: str
    digest: str
    config: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    size: int = 0
    created: str = ""


class ImageStore:
    """Pulls images into the content store and snapshots, and answers local lookups."""

    def __init__(self, paths, config=None):
        self.paths = paths
        self.config = config if config is not None else daemon_config.load(paths)
        self.content = content.ContentStore(paths)
        self.snapshots = snapshots.SnapshotStore(paths)
        self.index_path = os.path.join(paths.images, "index.json")
        self.lock_path = paths.lock_file("images")

    def credentials_for(self, domain):
        """Basic-auth credentials (user, password) for ``domain``; none are configured yet."""
        return None

    # -- pull ---------------------------------------------------------------------------------------------

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
        keys = [r.string(), r.with_digest(top_digest).string()]
        with locks.locked(self.lock_path):
            index = self._read_index()
            index["images"][image_id] = entry
            for key in keys:
                index["refs"][key] = ref_info
            store.write_json_atomic(self.index_path, index)
        record = ImageRecord(id=image_id, reference=r.string(), repository=r.familiar_name(),
                             tag=r.tag or NONE, digest=top_digest, config=config,
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
            client = registry.RegistryClient(ep, r.path, self.credentials_for(r.domain))
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

    # -- local lookups ------------------------------------------------------------------------------------

    def _read_index(self):
        data = store.read_json(self.index_path, default=None) or {}
        data.setdefault("refs", {})
        data.setdefault("images", {})
        return data

    def resolve(self, ref):
        """Find a local image by reference or by image ID (full, ``sha256:`` or unique prefix)."""
        index = self._read_index()
        s = (ref or "").strip()
        if s.startswith("sha256:") and s in index["images"]:
            return self._record(index, s, None)
        parse_error = None
        if not _ID_RE.match(s) or len(s.split(":")[-1]) != 64:
            try:
                key = reference.parse(s).string()
            except errors.InvalidArgument as exc:
                key, parse_error = None, exc
            if key in index["refs"]:
                return self._record(index, index["refs"][key]["id"], key)
        m = _ID_RE.match(s)
        if m:
            found = [i for i in index["images"] if i[len("sha256:"):].startswith(m.group(1))]
            if len(found) == 1:
                return self._record(index, found[0], None)
            if len(found) > 1:
                raise errors.NotFound("No such image: {} (ambiguous image ID prefix)".format(ref))
        if parse_error is not None:
            raise parse_error
        raise errors.NotFound("No such image: {}".format(ref))

    def _record(self, index, image_id, key):
        entry = index["images"].get(image_id)
        if entry is None:
            raise errors.NotFound("No such image: {}".format(image_id))
        if key is None:
            # By ID: name it after a tag pointing at it if there is one, else a digest reference.
            keys = sorted(k for k, v in index["refs"].items() if v["id"] == image_id)
            tagged = [k for k in keys if "@" not in k]
            key = (tagged or keys or [None])[0]
        if key is not None:
            r = reference.parse(key)
            repository, tag, digest = r.familiar_name(), r.tag or NONE, index["refs"][key]["digest"]
        else:
            repository, tag, digest = NONE, NONE, entry["digest"]
        config = json.loads(self.content.read_bytes(image_id).decode())
        return ImageRecord(id=image_id, reference=key or "", repository=repository, tag=tag, digest=digest,
                           config=config, layers=self.snapshots.mounts(entry["chain_ids"]),
                           size=entry["size"], created=entry.get("created", ""))

    def list(self, all=False):
        """Rows like ``docker images``: one per tag; untagged images show ``<none>`` (dangling included).

        ``all`` is accepted for Docker parity; the payload has no intermediate build images to reveal.
        """
        index = self._read_index()
        rows = []
        for image_id, entry in index["images"].items():
            refs = [(k, v) for k, v in index["refs"].items() if v["id"] == image_id]
            tagged = [(k, v) for k, v in refs if "@" not in k]
            shown = tagged or refs
            for key, info in sorted(shown):
                r = reference.parse(key)
                rows.append(_row(r.familiar_name(), r.tag if "@" not in key else NONE, image_id,
                                 info["digest"], entry))
            if not shown:
                rows.append(_row(NONE, NONE, image_id, entry["digest"], entry))
        rows.sort(key=lambda row: (row["created"], row["repository"], row["tag"]), reverse=True)
        return rows


def _row(repository, tag, image_id, digest, entry):
    return {"repository": repository, "tag": tag, "id": image_id, "digest": digest,
            "created": entry.get("created", ""), "size": entry.get("size", 0)}


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
