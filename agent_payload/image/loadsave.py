"""``docker save`` / ``load`` / ``import`` on the host's image store.

Everything that enters the store goes the way pulled content does: a layer is decompressed and hashed (its
sha256 is the diff_id the config names), gzip-compressed deterministically into a private, flocked temp file
under ``ingest/``, unpacked by the safe applier (``unpack.apply_layer``, which checks the diff_id again) into a
snapshot, and only then published as a blob through ``ContentStore.ingest`` (size and digest checked before the
rename). Every staged layer of a ``load`` is hashed before the first one is applied, so a layer that does not
match its diff_id leaves nothing behind; a layer the applier refuses (an entry escaping the root) makes the load
of that image remove the snapshots and blobs it had made (``_undo``). The archive formats themselves are
``archive_formats``.
"""

import collections
import fcntl
import hashlib
import json
import os
import tempfile
import time
import zlib

from .. import errors
from . import archive_formats, reference, registry, snapshots, unpack
from .images import is_tag

MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
CHUNK = 1 << 20
#: docker's empty container.Config as json.Marshal writes it (import's config before --change)
EMPTY_CONFIG = collections.OrderedDict([
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None),
    ("Cmd", None), ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None),
    ("Labels", None)])


def _now():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10 ** 9)) + ".{:09d}Z".format(ns % 10 ** 9)


# ---- save ----------------------------------------------------------------------------------------------

def _name_only(ref):
    last = ref.rsplit("/", 1)[-1]
    return ":" not in last and "@" not in last


def save_targets(store, refs):
    """docker's parseNames: [(image ID, [tag keys])], in order. A name without tag or digest takes every tag
    of that repository; a tagged reference that one tag; an ID or a digest reference no tag."""
    index = store._read_index()
    out = collections.OrderedDict()
    for ref in refs:
        if not isinstance(ref, str) or not ref:
            raise errors.InvalidArgument("invalid reference format")
        found = []
        if _name_only(ref) and not ref.startswith("sha256:"):
            try:
                name = reference.parse(ref).name
            except errors.InvalidArgument:
                name = None
            if name is not None:
                found = [(v["id"], k) for k, v in sorted(index["refs"].items())
                         if is_tag(k) and reference.parse(k).name == name]
        if not found:
            image_id, key = store.find(index, ref)
            found = [(image_id, key if key and is_tag(key) else None)]
        for image_id, key in found:
            tags = out.setdefault(image_id, [])
            if key and key not in tags:
                tags.append(key)
    return list(out.items())


def save_plan(store, refs):
    """What ``docker save`` of ``refs`` needs, for the controller to write the archive from this host's blobs
    (fetched by SFTP, compressed): {"images": [{"id", "config": JSON text, "manifest": JSON text, "media_type",
    "tags": [[full, familiar]], "layers": [{"diff_id", "digest", "size", "mediaType", "path"}]}]}."""
    with store.lease():
        targets = save_targets(store, refs)
        index = store._read_index()
        images = []
        for image_id, keys in targets:
            entry = index["images"][image_id]
            config = store.content.read_bytes(image_id).decode()
            diff_ids = (json.loads(config).get("rootfs") or {}).get("diff_ids") or []
            descs = entry.get("layers") or []
            if len(descs) != len(diff_ids):
                raise errors.FailedPrecondition("image {} has {} layer blobs for {} diff_ids".format(
                    image_id, len(descs), len(diff_ids)))
            layers = []
            for d, desc in zip(diff_ids, descs):
                if not store.content.has(desc["digest"]):
                    raise errors.FailedPrecondition("layer {} of image {} has no blob in the image store".format(
                        desc["digest"], image_id))
                layers.append({"diff_id": d, "digest": desc["digest"], "size": desc.get("size"),
                               "mediaType": desc.get("mediaType", ""), "path": store.content.path(desc["digest"])})
            parsed = [reference.parse(k) for k in keys]
            images.append({"id": image_id, "config": config, "tags": [[r.string(), r.familiar()] for r in parsed],
                           "manifest": store.content.read_bytes(entry["manifest"]).decode(),
                           "media_type": entry.get("media_type") or registry.MT_DOCKER_MANIFEST, "layers": layers})
    return {"images": images}


# ---- layers in ---------------------------------------------------------------------------------------

def present_layers(store):
    """{diff_id: layer descriptor} of every layer whose compressed blob this host holds (from its images)."""
    index = store._read_index()
    out = {}
    for image_id, entry in index["images"].items():
        try:
            cfg = store.image_config(image_id)
        except (errors.NotFound, ValueError):
            continue
        for d, desc in zip((cfg.get("rootfs") or {}).get("diff_ids") or [], entry.get("layers") or []):
            if d not in out and store.content.has(desc["digest"]):
                out[d] = desc
    return out


class _Decompress:
    """Decompress gzip, bzip2 or xz by magic (docker's DecompressStream); zstd is refused; else the raw bytes."""

    def __init__(self, raw, what):
        head = raw.read(6)
        self.raw, self.head, self.obj = raw, head, None
        if head.startswith(b"\x1f\x8b"):
            self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self.kind = "gzip"
        elif head.startswith(b"BZh"):
            import bz2  # lazily, as lzma: a python built without them still loads plain and gzip archives
            self.obj, self.kind = bz2.BZ2Decompressor(), "bzip2"
        elif head.startswith(b"\xfd7zXZ\x00"):
            import lzma
            self.obj, self.kind = lzma.LZMADecompressor(), "xz"
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            raise errors.InvalidArgument("{}: zstd-compressed archives are not supported (the payload is "
                                         "stdlib-only)".format(what))
        self.what = what

    def read(self, n=CHUNK):
        """Up to about CHUNK decompressed bytes (never more per call: a small bomb cannot fill memory)."""
        if self.obj is None:
            data = self.head + self.raw.read(n)
            self.head = b""
            return data
        try:
            while True:
                data = self._step()
                if data is None or data:
                    return data or b""
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise errors.InvalidArgument("{}: corrupt {} data: {}".format(self.what, self.kind, exc))

    def _input(self):
        chunk = self.head + self.raw.read(CHUNK)
        self.head = b""
        return chunk

    def _step(self):
        """Some decompressed bytes (maybe b""), or None at the end of the stream."""
        obj = self.obj
        if self.kind == "gzip":
            if obj.unconsumed_tail:
                return obj.decompress(obj.unconsumed_tail, CHUNK)
            if obj.eof:
                rest = obj.unused_data or self._input()
                if not rest:
                    return None
                self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member
                return self.obj.decompress(rest, CHUNK)
            chunk = self._input()
            if not chunk:
                raise EOFError("the gzip stream ended early")
            return obj.decompress(chunk, CHUNK)
        if obj.eof:
            return None
        chunk = b""
        if obj.needs_input:
            chunk = self._input()
            if not chunk:
                raise EOFError("the {} stream ended early".format(self.kind))
        return obj.decompress(chunk, CHUNK)


class Prepared:
    """A layer compressed into a flocked temp file under ``ingest/``: diff_id, blob digest and size known."""

    def __init__(self, store, fd, path, diff_id, digest, size):
        self.store, self.fd, self.path = store, fd, path
        self.diff_id, self.digest, self.size = diff_id, digest, size

    def open(self):
        return os.fdopen(os.dup(self.fd), "rb")

    def apply(self, chain, parent, undo):
        """Unpack into the snapshot of ``chain`` (unless present; the safe applier, diff_id checked), then
        publish the blob (checked again); what this made is added to ``undo``."""
        def fill(fs):
            with self.open() as f:
                f.seek(0)
                unpack.apply_layer(f, fs, MT_DOCKER_LAYER, expected_diff_id=self.diff_id)
        _ensure(self.store, chain, parent, self.diff_id, fill, undo)
        with self.open() as f:
            f.seek(0)
            _publish(self.store, self.digest, undo, lambda: self.store.content.ingest(self.digest, self.size, f))
        return {"mediaType": MT_DOCKER_LAYER, "digest": self.digest, "size": self.size}

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _ensure(store, chain, parent, diff_id, fill, undo):
    if store.snapshots.ensure(chain, parent, diff_id, fill)[1]:
        undo.append(("snapshot", chain))


def _publish(store, digest, undo, write):
    had = store.content.has(digest)
    write()
    if not had:
        undo.append(("blob", digest))


def _undo(store, undo):
    """Remove what a failed image load or import made (its own snapshots and blobs, newest first)."""
    for kind, key in reversed(undo):
        try:
            if kind == "snapshot":
                store.snapshots.remove(key)
            else:
                store.content.delete(key)
        except (errors.NotFound, OSError):
            pass


def prepare_layer(store, reader, what):
    """Decompress ``reader`` (any of docker's compressions), hash it and gzip it to a temp file -> Prepared."""
    os.makedirs(store.paths.ingest, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="load-", dir=store.paths.ingest)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # clean_ingest leaves a locked file alone
        src = _Decompress(reader, what)
        diff, blob, size = hashlib.sha256(), hashlib.sha256(), 0
        z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        while True:
            data = src.read(CHUNK)
            if not data:
                break
            diff.update(data)
            for out in (z.compress(data),):
                if out:
                    blob.update(out)
                    size += len(out)
                    _write_all(fd, out)
        out = z.flush()
        blob.update(out)
        size += len(out)
        _write_all(fd, out)
        os.fsync(fd)
        return Prepared(store, fd, path, "sha256:" + diff.hexdigest(), "sha256:" + blob.hexdigest(), size)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _record(store, config_bytes, layers, chains, keys, created, undo, media_type=None):
    """Config blob, a manifest naming the layer blobs, and the index entry with its tags -> {"id", "renamed"}."""
    image_id = archive_formats._sha(config_bytes)
    _publish(store, image_id, undo, lambda: store.content.write_bytes(image_id, config_bytes))
    man = {"schemaVersion": 2, "mediaType": media_type or registry.MT_DOCKER_MANIFEST,
           "config": {"mediaType": MT_DOCKER_CONFIG, "digest": image_id, "size": len(config_bytes)},
           "layers": layers}
    man_bytes = json.dumps(man, indent=3).encode()
    man_digest = archive_formats._sha(man_bytes)
    _publish(store, man_digest, undo, lambda: store.content.write_bytes(man_digest, man_bytes))
    entry = {"manifest": man_digest, "digest": man_digest, "media_type": man["mediaType"], "layers": layers,
             "chain_ids": chains, "size": sum(int(d.get("size") or 0) for d in layers), "created": created,
             "endpoint": ""}
    index = store._read_index()
    renamed = []
    for k in keys:
        old = index["refs"].get(k)
        if old and old["id"] != image_id:
            renamed.append({"tag": reference.parse(k).familiar(), "old": old["id"]})
    if keys:
        entry["last_tag_time"] = _now()
    store.index_add(keys, image_id, entry, {"id": image_id, "digest": None})
    return {"id": image_id, "renamed": renamed}


# ---- load ----------------------------------------------------------------------------------------------

def load(store, images, open_staged):
    """Load images whose missing layers were staged: ``images`` [{"config": str, "tags": [str], "layers":
    [{"diff_id", "staging": path|None}]}]; ``open_staged(path)`` opens a staging file. Returns
    {"loaded": [{"id", "tags", "renamed"}], "layers_loaded": n}."""
    checked = []
    for img in images:
        if not isinstance(img, dict) or not isinstance(img.get("config"), str):
            raise errors.InvalidArgument("argument images: each image needs its config (a JSON string)")
        cfg_bytes = img["config"].encode()
        try:
            cfg = json.loads(img["config"])
        except ValueError:
            raise errors.InvalidArgument("image config is not valid JSON")
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        layers = img.get("layers") or []
        if [lay.get("diff_id") for lay in layers] != diff_ids:
            raise errors.InvalidArgument("image {}: the layers sent are not the config's diff_ids".format(
                archive_formats._sha(cfg_bytes)))
        keys = []
        for t in img.get("tags") or []:
            r = reference.parse(t)
            if r.digest is not None:
                raise errors.InvalidArgument("invalid tag {!r}: a digest reference".format(t))
            keys.append(r.string())
        checked.append((cfg_bytes, diff_ids, layers, keys))
    prepared = {}
    try:
        with store.lease():
            present = present_layers(store)
            # every staged layer is hashed before anything is applied: a mismatch leaves nothing behind
            for _cfg, _diffs, layers, _keys in checked:
                for lay in layers:
                    d, staging = lay["diff_id"], lay.get("staging")
                    if staging and d not in prepared:
                        with open_staged(staging) as raw:
                            p = prepare_layer(store, raw, "layer " + d)
                        prepared[d] = p
                        if p.diff_id != d:
                            raise errors.InvalidArgument("layer {} does not match its digest (the content is "
                                                         "{}): nothing was loaded".format(d, p.diff_id))
                    elif not staging and d not in present and d not in prepared:
                        raise errors.FailedPrecondition("layer {} is not on this host (any more): load again"
                                                        .format(d))
            loaded = []
            for cfg_bytes, diff_ids, layers, keys in checked:
                chains = snapshots.chain_ids(diff_ids)
                descs, undo = [], []
                try:
                    for i, d in enumerate(diff_ids):
                        parent = chains[i - 1] if i else None
                        if d in prepared:
                            descs.append(prepared[d].apply(chains[i], parent, undo))
                        else:
                            descs.append(_from_blob(store, present[d], chains[i], parent, d, undo))
                    cfg = json.loads(cfg_bytes.decode())
                    out = _record(store, cfg_bytes, descs, chains, keys, cfg.get("created") or "", undo)
                except BaseException:
                    _undo(store, undo)  # an unsafe layer: nothing of this image stays
                    raise
                out["tags"] = [reference.parse(k).familiar() for k in keys]
                loaded.append(out)
    finally:
        for p in prepared.values():
            p.discard()
    return {"loaded": loaded, "layers_loaded": len(prepared)}


def _from_blob(store, desc, chain, parent, diff_id, undo):
    """A layer the host holds as a blob: its snapshot on this chain (applied from the blob if needed)."""
    def fill(fs):
        with store.content.open(desc["digest"]) as f:
            unpack.apply_layer(f, fs, desc.get("mediaType", ""), expected_diff_id=diff_id)
    _ensure(store, chain, parent, diff_id, fill, undo)
    mt = desc.get("mediaType", "")
    return {"mediaType": MT_DOCKER_LAYER if "gzip" in mt else mt, "digest": desc["digest"], "size": desc["size"]}


# ---- import --------------------------------------------------------------------------------------------

def import_image(store, reader, what, config, message="", target=None):
    """docker import: the tar read from ``reader`` (compressed or not) becomes a one-layer image with the
    container config ``config`` (--change applied); tagged ``target``. Returns {"id", "tags", "renamed"}."""
    keys = []
    if target:
        r = reference.parse(target)
        if r.digest is not None:
            raise errors.InvalidArgument("refusing to create a tag with a digest reference")
        keys.append(r.string())
    os_name, arch, _variant = registry.host_platform()  # docker's import records GOOS/GOARCH, no variant
    p = prepare_layer(store, reader, what)
    try:
        with store.lease():
            undo = []
            try:
                desc = p.apply(p.diff_id, None, undo)
                created = _now()
                hist = {"created": created}
                if message:
                    hist["comment"] = message
                image = collections.OrderedDict([("architecture", arch)])
                if message:
                    image["comment"] = message
                image.update([("config", config), ("created", created), ("docker_version", ""),
                              ("history", [hist]), ("os", os_name),
                              ("rootfs", {"type": "layers", "diff_ids": [p.diff_id]})])
                cfg_bytes = json.dumps(image, separators=(",", ":")).encode()
                out = _record(store, cfg_bytes, [desc], [p.diff_id], keys, created, undo)
            except BaseException:
                _undo(store, undo)
                raise
    finally:
        p.discard()
    out["tags"] = [reference.parse(k).familiar() for k in keys]
    return out


def import_config(changes, check_signal=None):
    """import's container config: docker's empty Config with the ``-c`` changes applied."""
    from .instructions import apply_changes
    return apply_changes(dict(EMPTY_CONFIG), changes, check_signal=check_signal)

