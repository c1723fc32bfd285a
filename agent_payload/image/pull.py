"""Pulling an image: resolve the manifest, stream each missing layer once (hash, store, unpack), commit all or none."""

import errno
import http.client
import json
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

from .. import errors, events
from . import content, reference, registry, snapshots, unpack
from .imagerecord import NONE, ImageRecord

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


_PLATFORM_RE = re.compile(r"^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$")
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_NETWORK_ERRORS = (http.client.HTTPException, OSError, socket.timeout, ssl.SSLError)


def parse_platform(value):
    """``"os/arch[/variant]"`` -> (os, arch, variant); None stays None (host platform). InvalidArgument otherwise."""
    if value is None:
        return None
    if not isinstance(value, str) or not _PLATFORM_RE.match(value.lower()):
        raise errors.InvalidArgument("invalid platform {!r}: expected os/arch[/variant]".format(value))
    parts = value.lower().split("/")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


class Cancelled(Exception):
    """Another layer of the same pull failed: stop this one quietly."""


class BlobStream:
    """The body of one blob as a file-like ``read``: replays a resumed partial file, then the network.

    Every byte read is hashed and written to the ingest file exactly once. When the connection breaks
    (or closes early) the stream continues on the same or the next endpoint with ``Range: bytes=<n>-``
    (a server ignoring Range sends 200: the first n bytes are skipped), so the reader above never notices.
    """

    def __init__(self, ingest, clients, desc, cancel=None, progress=None):
        self.ingest, self.clients, self.desc = ingest, list(clients), desc
        self.digest, self.size = desc["digest"], desc.get("size")
        self.cancel, self.progress = cancel, progress
        self.resp, self.guard, self.next_client, self.failures = None, None, 0, []
        self._last, self._last_t = 0, 0.0

    def read(self, n=-1):
        """Up to ``n`` bytes (``n`` < 0: a chunk); b"" at the end of the blob."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        n = content.CHUNK * 4 if n is None or n < 0 else n
        data = self.ingest.replay(n)
        if data:
            return data
        while True:
            if self.size is not None and self.ingest.offset >= self.size:
                return b""
            if self.resp is None:
                self._connect()
            try:
                data = self.guard.read(n)
            except registry.Stalled as exc:
                data = None
                self._failed("{} ({} of {} bytes)".format(exc.message, self.ingest.offset, self.size))
            except _NETWORK_ERRORS as exc:
                data = None
                self._failed("read failed after {} bytes: {}".format(self.ingest.offset, exc or type(exc).__name__))
            if data is None:
                continue
            if data == b"" and self.size is None:
                return b""
            if data == b"":
                self._failed("connection closed after {} of {} bytes".format(self.ingest.offset, self.size))
            if data:
                self.ingest.write(data)
                self._report()
                return data

    def _report(self):
        now = time.monotonic()
        cur = self.ingest.offset
        if self.progress and (cur - self._last >= content.PROGRESS_BYTES
                              or now - self._last_t >= content.PROGRESS_SECONDS):
            self._last, self._last_t = cur, now
            self.progress(cur)

    def _failed(self, why):
        self.failures.append({"endpoint": self.clients[self.next_client - 1].endpoint.url, "error": why})
        self.resp.close()
        self.resp = self.guard = None

    def _connect(self):
        """Open the blob at the current offset on the next endpoint that answers; Unavailable when none do."""
        while self.next_client < len(self.clients):
            client = self.clients[self.next_client]
            self.next_client += 1
            url = client.endpoint.url + "/v2/{}/blobs/{}".format(client.repository, self.digest)
            offset = self.ingest.offset
            try:
                resp = client.request("GET", url, {"Range": "bytes={}-".format(offset)} if offset else None)
            except errors.AgentError as exc:
                self.failures.append({"endpoint": client.endpoint.url, "error": exc.message})
                continue
            if resp.getcode() not in (200, 206):
                code = resp.getcode()
                resp.close()
                kind = "blob unknown" if code == 404 else "HTTP {}".format(code)
                self.failures.append({"endpoint": client.endpoint.url, "error": kind})
                continue
            guard = registry.StallGuard(resp, client.timeout, "blob " + self.digest, client.endpoint.url)
            try:
                if offset and not self._skip_to(resp, guard, offset):
                    continue
            except registry.Stalled as exc:
                resp.close()
                self.failures.append({"endpoint": client.endpoint.url, "error": exc.message})
                continue
            except _NETWORK_ERRORS as exc:
                resp.close()
                self.failures.append({"endpoint": client.endpoint.url, "error": str(exc)})
                continue
            self.resp, self.guard = resp, guard
            return
        first = self.failures[0]["error"] if self.failures else "no endpoint"
        raise errors.Unavailable("downloading blob {} failed: {}".format(self.digest, first),
                                 details={"tried": self.failures})

    def _skip_to(self, resp, guard, offset):
        """Position a fresh response at ``offset``: 206 with the right Content-Range, or skip bytes of a 200."""
        if resp.getcode() == 206:
            m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range") or "")
            if m and int(m.group(1)) == offset:
                return True
            resp.close()
            self.failures.append({"endpoint": resp.geturl(), "error": "bad Content-Range in a resumed download"})
            return False
        left = offset
        while left:
            chunk = guard.read(min(left, 1024 * 1024))
            if not chunk:
                resp.close()
                self.failures.append({"endpoint": resp.geturl(), "error": "body shorter than the resumed part"})
                return False
            left -= len(chunk)
        return True

    def drain(self):
        """Read to the end (the digest covers every byte, even past the tar end-of-archive)."""
        while self.read(1024 * 1024):
            pass

    def drain_quietly(self):
        """``drain`` that reports success instead of raising (used to diagnose a corrupt stream)."""
        try:
            self.drain()
            return True
        except (errors.AgentError, Cancelled):
            return False

    def close(self):
        """Close the current response, if any."""
        if self.resp is not None:
            self.resp.close()
            self.resp = self.guard = None


class _Prepared:
    """A layer that was downloaded and unpacked but not committed: verified ingest + the held chain lock
    whose temp tree holds the extracted layer."""

    def __init__(self, index, lock, ingest):
        self.index, self.lock, self.ingest = index, lock, ingest

    def discard(self):
        """Drop what was not committed and release the chain lock (idempotent)."""
        try:
            if self.ingest is not None:
                self.ingest.discard()
        finally:
            self.lock.release()


class Puller:
    """One pull into an ImageStore (its content store, snapshots, config and index)."""

    def __init__(self, store):
        self.store = store
        self.config = store.config
        self.content = store.content
        self.snapshots = store.snapshots

    def pull(self, ref, emit=None, platform=None):
        """Pull ``ref`` -> (ImageRecord, {"endpoint", "downloaded", "layers"}).

        Nothing enters the store unless every blob and snapshot verified: manifests, config and layer
        blobs are published, and snapshots committed, only after all layers streamed successfully.
        """
        r = reference.parse(ref)
        emit = _serialised(emit)
        try:
            pulled = self._pull(r, emit, platform)
            events.record(self.store.paths, "image", "pull", r.familiar(), {"name": r.familiar_name()})
            return pulled
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise errors.FailedPrecondition("pulling {}: no space left on device under {}".format(
                    r.familiar(), self.store.paths.root), errno=exc.errno)
            raise

    def _pull(self, r, emit, platform):
        client, top_digest, docs = self._resolve_remote(r, platform)
        manifest = json.loads(docs[-1][2].decode())
        cfg_desc = manifest.get("config") or {}
        layers = manifest.get("layers") or []
        for desc in [cfg_desc] + layers:
            content.digest_hex(desc.get("digest"))  # remote input: must be a well-formed sha256 digest
            if desc is not cfg_desc and desc.get("mediaType") not in LAYER_TYPES:
                raise errors.FailedPrecondition("{}: unsupported layer media type {!r}".format(
                    r.familiar(), desc.get("mediaType")))
        image_id = cfg_desc["digest"]
        clients = self._clients(r, client)
        # Leftovers of killed pulls: temp trees whose owner's lock is free, ingest files nobody resumes.
        self.snapshots.reclaim_temp()
        self.content.clean_ingest(keep=[content.digest_hex(d["digest"]) for d in [cfg_desc] + layers])
        cfg_ingest = None
        prepared = []
        try:
            cfg_ingest, cfg_bytes = self._fetch_config(clients, cfg_desc, lambda: [
                emit("progress", _progress(d, "Waiting")) for d in layers])
            config = json.loads(cfg_bytes.decode())
            diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
            if len(diff_ids) != len(layers):
                raise errors.FailedPrecondition("{}: manifest has {} layers but config lists {} diff_ids".format(
                    r.familiar(), len(layers), len(diff_ids)))
            chains = snapshots.chain_ids(diff_ids)
            todo = [i for i in range(len(layers)) if self.snapshots.lookup(chains[i]) is None]
            for i in range(len(layers)):
                if i not in todo:
                    emit("progress", _progress(layers[i], "Already exists"))
            prepared = self._prepare_layers(clients, layers, diff_ids, chains, todo, emit)
            downloaded = sum(1 for p in prepared if p.ingest is not None)
            # Commit: small documents first (they are verified already), then blobs and snapshots in order.
            for digest, _mt, body in docs:
                self.content.write_bytes(digest, body)
            if cfg_ingest is not None:
                cfg_ingest.publish()
            self._commit(prepared, layers, diff_ids, chains, emit)
        finally:
            for p in prepared:
                p.discard()  # releases the chain locks (a no-op for what was committed)
            if cfg_ingest is not None:
                cfg_ingest.discard()  # a no-op once published
        size = sum(int(d.get("size") or 0) for d in layers)
        entry = {"manifest": docs[-1][0], "digest": top_digest, "media_type": docs[-1][1], "layers": layers,
                 "chain_ids": chains, "size": size, "created": config.get("created", ""),
                 "endpoint": client.endpoint.url, "domain": r.domain, "repository": r.path}
        ref_info = {"id": image_id, "digest": top_digest}
        self.store.index_add([r.string(), r.with_digest(top_digest).string()], image_id, entry, ref_info)
        record = ImageRecord(id=image_id, reference=r.string(), repository=r.familiar_name(),
                             tag=r.tag or NONE, digest=top_digest, config=config,
                             layers=self.snapshots.mounts(chains), size=size, created=entry["created"])
        return record, {"endpoint": client.endpoint.url, "downloaded": downloaded,
                        "layers": len(layers)}

    def _resolve_remote(self, r, platform):
        """Try each endpoint in order; return (client, top digest, manifest docs) from the first that serves.

        Mirrors fall through on any error (down, 404, auth); an insecure registry's https attempt falls
        through to http only when the connection itself failed (TLS to a plain-HTTP server).
        """
        endpoints = registry.endpoints_for(r.domain, self.config, "resolve")
        failures = []
        for i, ep in enumerate(endpoints):
            client = registry.RegistryClient(ep, r.path, None, self._timeout())
            try:
                top, docs = registry.resolve_manifest(client, r.digest or r.tag, r.familiar(), platform)
                return client, top, docs
            except errors.AgentError as exc:
                last = i == len(endpoints) - 1
                if last or not (ep.mirror or isinstance(exc, errors.Unavailable)):
                    if failures:
                        exc.details = {"tried": failures}
                    raise
                failures.append({"endpoint": ep.url, "error": exc.message})
        raise errors.Internal("no endpoint for {}".format(r.string()))  # unreachable: the origin is always last

    def _timeout(self):
        """daemon.json's ``fleet-stall-timeout`` (registry.TIMEOUT when the store has no parsed config)."""
        return getattr(self.config, "stall_timeout", None) or registry.TIMEOUT

    def _clients(self, r, serving):
        """Blob sources in order: the serving endpoint's pull-only mirrors, that endpoint, then every other
        endpoint that may serve content (a blob is verified by digest, so any of them is safe)."""
        out = [registry.RegistryClient(m, r.path, None, self._timeout()) for m in serving.endpoint.content_mirrors]
        out.append(serving)
        seen = {c.endpoint.url for c in out}
        for ep in registry.endpoints_for(r.domain, self.config, "pull"):
            if ep.url not in seen:
                seen.add(ep.url)
                out.append(registry.RegistryClient(ep, r.path, None, self._timeout()))
        return out

    def _fetch_config(self, clients, desc, on_wait):
        """The config blob: (None, bytes) when it is in the store, else (verified unpublished ingest, bytes).

        A concurrent pull of the same image holds the config's ingest lock until it commits: waiting for it
        here (holding no other lock, so no deadlock; ``on_wait()`` first) means finding its whole image
        committed afterwards, or taking over if that pull failed or died.
        """
        digest = desc["digest"]
        ing = None
        if not self.content.has(digest):
            ing = self.content.begin_shared(digest, desc.get("size"), on_wait)
        if ing is None:
            return None, self.content.read_bytes(digest)
        try:
            stream = BlobStream(ing, clients, desc)
            chunks = []
            while True:
                data = stream.read(content.CHUNK)
                if not data:
                    break
                chunks.append(data)
            stream.close()
            ing.verify()
            return ing, b"".join(chunks)
        except BaseException:
            ing.discard()
            raise

    def _prepare_layers(self, clients, layers, diff_ids, chains, todo, emit):
        """Stream the ``todo`` layers in parallel; all prepared (in layer order) or an error and none.

        Two locks per layer, both held until this pull commits or gives up: its chain's extraction lock
        (``SnapshotStore.lock_chain``) and, unless the blob is in the store, the blob's ingest lock
        (``ContentStore.begin_shared``). A concurrent pull of the same layer or blob waits for them, then
        finds the snapshot committed or the blob stored (or, if this pull failed or died, takes over and
        resumes the partial download). All of a pull's waiting happens here, one lock at a time in one
        global order (by digest, chains before blobs on a tie): no two pulls can each hold a lock the
        other waits for, whatever layers their images share. The layers of one blob are prepared by one
        thread, started as soon as all their locks are held.
        """
        groups = {}  # blob digest -> [layer index] (a blob may appear twice in one image)
        for i in todo:
            groups.setdefault(layers[i]["digest"], []).append(i)
        missing = [digest for digest in groups if not self.content.has(digest)]
        keys = [(chains[i], 0, i) for i in todo] + [(digest, 1, digest) for digest in missing]
        remaining = {digest: len(g) + (digest in missing) for digest, g in groups.items()}  # locks to take
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=MAX_DOWNLOADS)
        futures, held, ingests, started, ok = [], {}, {}, set(), False
        try:
            for _key, kind, what in sorted(keys):
                if any(f.done() and f.exception() is not None for f in futures):
                    break
                if kind == 0:
                    i, digest = what, layers[what]["digest"]
                    lock = self.snapshots.lock_chain(chains[i], blocking=False)
                    if lock is None:
                        emit("progress", _progress(layers[i], "Waiting"))
                        lock = self.snapshots.lock_chain(chains[i])
                    if self.snapshots.lookup(chains[i]) is not None:
                        lock.release()  # the pull we waited for committed it
                        emit("progress", _progress(layers[i], "Already exists"))
                        groups[digest].remove(i)
                    else:
                        held[i] = lock
                else:
                    digest = what
                    if groups[digest]:
                        waiting = [layers[j] for j in groups[digest]]
                        ingests[digest] = self.content.begin_shared(digest, waiting[0].get("size"), lambda: [
                            emit("progress", _progress(d, "Waiting")) for d in waiting])
                remaining[digest] -= 1
                if remaining[digest] == 0 and groups[digest]:
                    started.add(digest)
                    futures.append(pool.submit(self._prepare_group, clients, layers, diff_ids, groups[digest],
                                               [held[j] for j in groups[digest]], ingests.get(digest), cancel, emit))
            wait(futures, return_when="FIRST_EXCEPTION")
            failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if failed:
                cancel.set()
                pool.shutdown(wait=True)
                failed = [f.exception() for f in futures if f.exception() is not None]
                real = [e for e in failed if not isinstance(e, Cancelled)]
                raise (real or failed)[0]
            ok = True
            return sorted((p for f in futures for p in f.result()), key=lambda p: p.index)
        finally:
            if not ok:
                cancel.set()
            pool.shutdown(wait=True)
            if not ok:
                for f in futures:
                    if f.exception() is None:
                        for p in f.result():
                            p.discard()
                for lock in held.values():
                    lock.release()  # idempotent: removes the temp tree, then unlocks
            for digest, ing in ingests.items():
                if ing is not None and (digest not in started or not ok):
                    # Never used (the layers were committed by the pull we waited for): keep its bytes for
                    # a later resume. A started one was published or discarded by its thread already.
                    ing.close()

    def _prepare_group(self, clients, layers, diff_ids, indexes, locks, ing, cancel, emit):
        """Prepare the layers ``indexes`` of one blob (``ing``: its held ingest, None when it is in the store);
        the first downloads it, the others (the same blob again in this image) read what it verified."""
        out = []
        try:
            for n, (i, lock) in enumerate(zip(indexes, locks)):
                if n == 0:
                    out.append(self._prepare_one(clients, i, layers[i], diff_ids[i], lock, ing, None, cancel, emit))
                else:
                    out.append(self._prepare_one(clients, i, layers[i], diff_ids[i], lock, None,
                                                 ing.path if ing is not None else None, cancel, emit))
            return out
        except BaseException:
            for p in out:
                p.discard()
            raise

    def _prepare_one(self, clients, i, desc, diff_id, lock, ing, local, cancel, emit):
        """Unpack layer ``i`` into its chain's temp dir: streamed while downloading into ``ing`` (then
        verified), else read from ``local`` (a verified ingest file) or the store; then check diff_id."""
        try:
            fs = lock.prepare()
            if ing is None:
                emit("progress", _progress(desc, "Extracting", 0))
                with open(local or self.content.path(desc["digest"]), "rb") as f:
                    actual = unpack.apply_layer(f, fs, desc.get("mediaType", ""), progress=lambda n: emit(
                        "progress", _progress(desc, "Extracting", n)))
            else:
                emit("progress", _progress(desc, "Downloading", ing.existing))
                stream = BlobStream(ing, clients, desc, cancel,
                                    lambda cur: emit("progress", _progress(desc, "Downloading", cur)))
                try:
                    # The applier reads the body through the tee: one pass hashes, stores and unpacks it.
                    actual = unpack.apply_layer(stream, fs, desc.get("mediaType", ""))
                    stream.drain()
                except errors.InvalidArgument:
                    # A corrupt stream is most often a corrupt download: report the digest if it is wrong.
                    if stream.drain_quietly():
                        ing.verify()
                    raise
                finally:
                    stream.close()
                emit("progress", _progress(desc, "Verifying", desc.get("size")))
                ing.verify()
                emit("progress", _progress(desc, "Download complete", desc.get("size")))
            if actual != diff_id:
                raise errors.FailedPrecondition("layer {} diff_id mismatch: config says {}, content is {}".format(
                    desc["digest"], diff_id, actual))
            return _Prepared(i, lock, ing)
        except BaseException:
            if ing is not None:
                ing.discard()
            raise

    def _commit(self, prepared, layers, diff_ids, chains, emit):
        """Publish blobs and commit snapshots in layer order; undo what this pull committed if one fails.

        The chain locks are still held here (released by the caller afterwards), so a waiting pull sees
        either the committed snapshot or, after an undo, nothing, never a snapshot about to vanish.
        """
        created, published = [], []
        try:
            for p in prepared:
                i = p.index
                if p.ingest is not None:
                    published.append(layers[i]["digest"])
                    p.ingest.publish()
                emit("progress", _progress(layers[i], "Extracting", layers[i].get("size")))
                _path, new = p.lock.commit(chains[i - 1] if i else None, diff_ids[i])
                if new:
                    created.append(chains[i])
                emit("progress", _progress(layers[i], "Pull complete", layers[i].get("size")))
        except BaseException:
            for chain in reversed(created):
                self.snapshots.remove(chain)
            for digest in published:
                self.content.delete(digest)
            raise


def pull_all_tags(store, ref, emit=None, platform=None):
    """Pull every tag of ``ref``'s repository (docker pull --all-tags); returns [(record, info)]."""
    r = reference.parse(ref)
    if r.digest or ":" in ref.rsplit("/", 1)[-1]:
        raise errors.InvalidArgument("tag can't be used with --all-tags/-a")
    puller = Puller(store)
    tags, failures = None, []
    for ep in registry.endpoints_for(r.domain, store.config, "resolve"):
        client = registry.RegistryClient(ep, r.path, None, puller._timeout())
        try:
            tags = client.list_tags()
            break
        except errors.Unavailable as exc:
            failures.append({"endpoint": ep.url, "error": exc.message})
    if tags is None:
        raise errors.Unavailable("cannot list tags of {}".format(r.familiar_name()), details={"tried": failures})
    if not tags:
        raise errors.NotFound("{}: repository has no tags".format(r.familiar_name()))
    return [puller.pull("{}:{}".format(r.name, tag), emit, platform) for tag in tags]


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
