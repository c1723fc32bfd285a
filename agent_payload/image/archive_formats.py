"""Image archives as ``docker save`` writes them and ``docker load`` reads them (stdlib only, no store access).

Two formats:

- **docker-archive** (docker 20.10's ``docker save``): ``manifest.json`` (``[{"Config", "RepoTags", "Layers"}]``),
  ``repositories`` (``{"repo": {"tag": "<top v1 id>"}}``, only when something is tagged), ``<config hex>.json``
  and one directory per layer, ``<v1 id>/{VERSION,json,layer.tar}``, where ``layer.tar`` is the *uncompressed*
  layer (its sha256 is the config's diff_id). A layer already written under another v1 ID (same diff_id on
  another chain) is a relative symlink to the first one, as docker's.
- **oci-archive**: a tar of an OCI image layout: ``oci-layout``, ``index.json`` (one descriptor per tag, named
  by ``io.containerd.image.name`` and ``org.opencontainers.image.ref.name``, as docker 25's save), and
  ``blobs/sha256/<hex>`` for manifests, configs and the (compressed) layers; plus a ``manifest.json`` naming the
  same blobs, so ``docker load`` takes it too (docker 25 does the same).

The writers take callables for the layer bytes (the host's store provides them); the reader works on any
seekable tar file and checks every layer's digest before anything is loaded (``Archive.verify``).  The v1
layer IDs are deterministic (a digest of the chain and parent, plus the image config for the top layer) but not
docker's byte for byte: nothing reads them but ``repositories``, which names the top one.
"""

import hashlib
import json
import posixpath
import tarfile
import zlib

from .. import errors

MANIFEST = "manifest.json"
REPOSITORIES = "repositories"
OCI_LAYOUT = "oci-layout"
OCI_INDEX = "index.json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_IMAGE_NAME = "io.containerd.image.name"
CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
#: Bound on manifest.json / index.json / config sizes read into memory.
MAX_JSON = 16 << 20


def _bad(what):
    return errors.InvalidArgument(what)


def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else _sha((out[-1] + " " + d).encode()))
    return out


def _json_bytes(obj):
    """Go's json.Encoder output (compact, trailing newline)."""
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def v1_ids(config):
    """The v1 layer IDs (hex) of an image config: one per diff_id, bottom up."""
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    top = {k: v for k, v in config.items() if k not in ("rootfs", "history")}
    out, parent = [], ""
    for i, chain in enumerate(chain_ids(diff_ids)):
        v1 = dict(top) if i == len(diff_ids) - 1 else {"created": "1970-01-01T00:00:00Z"}
        v1["layer_id"] = chain
        if parent:
            v1["parent"] = "sha256:" + parent
        parent = hashlib.sha256(json.dumps(v1, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        out.append(parent)
    return out


# ---- writing -------------------------------------------------------------------------------------------

class TarWriter:
    """A tar stream on a seekable binary file; regular files of unknown size are patched in place."""

    def __init__(self, f):
        self.f = f

    def _info(self, name, type_, size=0, mode=0o644, mtime=0, linkname=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = type_, size, mode, int(mtime), linkname
        ti.uid = ti.gid = 0
        return ti

    def add_dir(self, name, mtime=0):
        self.f.write(self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode=0o755, mtime=mtime).tobuf(
            tarfile.GNU_FORMAT))

    def add_symlink(self, name, target, mtime=0):
        self.f.write(self._info(name, tarfile.SYMTYPE, mode=0o777, mtime=mtime, linkname=target).tobuf(
            tarfile.GNU_FORMAT))

    def add_bytes(self, name, data, mtime=0):
        self.f.write(self._info(name, tarfile.REGTYPE, size=len(data), mtime=mtime).tobuf(tarfile.GNU_FORMAT))
        self.f.write(data)
        self._pad(len(data))

    def add_stream(self, name, reader, mtime=0):
        """Copy ``reader`` to the end as a file; its header is written first and rewritten with the size
        once known (a GNU header is 512 bytes whatever the size). Returns (size, sha256 digest)."""
        start = self.f.tell()
        self.f.write(self._info(name, tarfile.REGTYPE, size=0, mtime=mtime).tobuf(tarfile.GNU_FORMAT))
        h, size = hashlib.sha256(), 0
        while True:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
            self.f.write(chunk)
            size += len(chunk)
        end = self.f.tell()
        self.f.seek(start)
        self.f.write(self._info(name, tarfile.REGTYPE, size=size, mtime=mtime).tobuf(tarfile.GNU_FORMAT))
        self.f.seek(end)
        self._pad(size)
        return size, "sha256:" + h.hexdigest()

    def _pad(self, size):
        if size % tarfile.BLOCKSIZE:
            self.f.write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def close(self):
        self.f.write(b"\0" * (tarfile.BLOCKSIZE * 2))


def _created_time(config):
    import calendar
    import time
    text = (config.get("created") or "")[:19]
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def write_docker_archive(f, images, open_layer):
    """``docker save``'s tar onto seekable ``f``.

    ``images``: [{"id", "config": bytes, "tags": ["repo:tag" familiar]}] (one entry per image, in order);
    ``open_layer(diff_id)`` returns a reader of the layer's uncompressed tar, which must hash to ``diff_id``
    (Internal otherwise: the store is corrupt). Returns {"layers": layer.tar files written, "size"}.
    """
    entries = {}  # name -> (kind, payload, mtime)
    manifest, repos, first_path = [], {}, {}
    for img in images:
        config = json.loads(img["config"].decode())
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        created = _created_time(config)
        ids = v1_ids(config)
        layers = []
        for i, (diff_id, v1) in enumerate(zip(diff_ids, ids)):
            top = i == len(ids) - 1
            mtime = created if top else 0
            layers.append(v1 + "/layer.tar")
            if v1 + "/" in entries:
                continue
            js = {"id": v1, "created": config.get("created") if top else "1970-01-01T00:00:00Z"}
            if i:
                js["parent"] = ids[i - 1]
            if top:
                js.update({k: v for k, v in config.items() if k not in ("rootfs", "history", "created")})
            entries[v1 + "/"] = ("dir", None, mtime)
            entries[v1 + "/VERSION"] = ("bytes", b"1.0", mtime)
            entries[v1 + "/json"] = ("bytes", json.dumps(js, separators=(",", ":")).encode(), mtime)
            if diff_id in first_path:
                entries[v1 + "/layer.tar"] = ("link", "../" + first_path[diff_id], mtime)
            else:
                first_path[diff_id] = v1 + "/layer.tar"
                entries[v1 + "/layer.tar"] = ("layer", diff_id, mtime)
        hexid = img["id"].split(":", 1)[-1]
        entries[hexid + ".json"] = ("bytes", img["config"], created)
        manifest.append({"Config": hexid + ".json", "RepoTags": list(img["tags"]) or None, "Layers": layers})
        for tag in img["tags"]:
            repo, _, t = tag.rpartition(":")
            if layers:
                repos.setdefault(repo, {})[t] = ids[-1]
    entries[MANIFEST] = ("bytes", _json_bytes(manifest), 0)
    if repos:
        entries[REPOSITORIES] = ("bytes", _json_bytes(repos), 0)
    w = TarWriter(f)
    written = 0
    for name in sorted(entries):
        kind, payload, mtime = entries[name]
        if kind == "dir":
            w.add_dir(name, mtime)
        elif kind == "bytes":
            w.add_bytes(name, payload, mtime)
        elif kind == "link":
            w.add_symlink(name, payload, mtime)
        else:
            reader = open_layer(payload)
            try:
                _size, digest = w.add_stream(name, reader, mtime)
            finally:
                getattr(reader, "close", lambda: None)()
            if digest != payload:
                raise errors.Internal("layer {} in the store reads back as {}: the image store is corrupt".format(
                    payload, digest))
            written += 1
    w.close()
    return {"layers": written, "size": f.tell()}


def oci_manifest(manifest_bytes, media_type):
    """(bytes, digest) of the image's manifest in OCI terms: an OCI manifest as it is, a Docker v2s2 one with
    OCI media types (so its digest changes, as skopeo's conversion does)."""
    if media_type == MT_OCI_MANIFEST:
        return manifest_bytes, _sha(manifest_bytes)
    man = json.loads(manifest_bytes.decode())
    layers = []
    for d in man.get("layers") or []:
        mt = d.get("mediaType", "")
        new = MT_OCI_LAYER_GZIP if "gzip" in mt else MT_OCI_LAYER if mt.endswith(".tar") or "rootfs.diff.tar" in mt \
            else mt
        layers.append({"mediaType": new, "digest": d["digest"], "size": d["size"]})
    out = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
           "config": {"mediaType": MT_OCI_CONFIG, "digest": man["config"]["digest"], "size": man["config"]["size"]},
           "layers": layers}
    data = json.dumps(out, separators=(",", ":")).encode()
    return data, _sha(data)


def write_oci_archive(f, images, open_blob):
    """An OCI image layout as a tar onto ``f``.

    ``images``: [{"id", "config": bytes, "manifest": bytes, "media_type", "tags": [(full "domain/path:tag",
    familiar "repo:tag")]}];
    ``open_blob(digest)`` returns a reader of a stored (compressed) layer blob. Returns {"layers", "size"}.
    """
    blobs, index, docker_manifest = {}, [], []
    layer_blobs = []
    for img in images:
        man_bytes, man_digest = oci_manifest(img["manifest"], img.get("media_type"))
        man = json.loads(man_bytes.decode())
        blobs[man_digest] = man_bytes
        blobs[img["id"]] = img["config"]
        for d in man["layers"]:
            if d["digest"] not in layer_blobs:
                layer_blobs.append(d["digest"])
        desc = {"mediaType": MT_OCI_MANIFEST, "digest": man_digest, "size": len(man_bytes)}
        for full, familiar in img["tags"] or [(None, None)]:
            if full is None:
                index.append(dict(desc))
            else:
                index.append(dict(desc, annotations={ANN_IMAGE_NAME: full,
                                                     ANN_REF_NAME: full.rpartition(":")[2]}))
        docker_manifest.append({"Config": "blobs/sha256/" + img["id"].split(":", 1)[1],
                                "RepoTags": [fam for _full, fam in img["tags"]] or None,
                                "Layers": ["blobs/sha256/" + d["digest"].split(":", 1)[1] for d in man["layers"]]})
    w = TarWriter(f)
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    for digest in sorted(set(blobs) | set(layer_blobs)):
        name = "blobs/sha256/" + digest.split(":", 1)[1]
        if digest in blobs:
            w.add_bytes(name, blobs[digest])
            continue
        reader = open_blob(digest)
        try:
            _size, got = w.add_stream(name, reader)
        finally:
            getattr(reader, "close", lambda: None)()
        if got != digest:
            raise errors.Internal("blob {} in the store reads back as {}: the image store is corrupt".format(
                digest, got))
    w.add_bytes(OCI_INDEX, _json_bytes({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index}))
    w.add_bytes(MANIFEST, _json_bytes(docker_manifest))
    w.add_bytes(OCI_LAYOUT, _json_bytes({"imageLayoutVersion": "1.0.0"}))
    w.close()
    return {"layers": len(layer_blobs), "size": f.tell()}


def write_plan(f, images, fmt, open_blob):
    """The archive of a host's ``save`` plan (``loadsave.save_plan``'s images) onto seekable ``f``: "docker"
    (layers decompressed from the blobs) or "oci" (the blobs as they are); ``open_blob(digest)`` reads a blob."""
    blobs = {}
    for img in images:
        for lay in img["layers"]:
            blobs.setdefault(lay["diff_id"], lay["digest"])
    if fmt == "docker":
        def open_layer(diff_id):
            raw = open_blob(blobs[diff_id])
            return _Closing(Gunzip(raw), raw)
        return write_docker_archive(f, [{"id": i["id"], "config": i["config"].encode(),
                                         "tags": [fam for _full, fam in i["tags"]]} for i in images], open_layer)
    return write_oci_archive(f, [{"id": i["id"], "config": i["config"].encode(), "manifest": i["manifest"].encode(),
                                  "media_type": i["media_type"], "tags": [tuple(t) for t in i["tags"]]}
                                 for i in images], open_blob)


class _Closing:
    def __init__(self, reader, f):
        self.reader, self.f = reader, f

    def read(self, n=CHUNK):
        return self.reader.read(n)

    def close(self):
        self.f.close()


# ---- reading -------------------------------------------------------------------------------------------

class Gunzip:
    """A reader of the decompressed bytes of a gzip stream (several members allowed), or the raw bytes."""

    def __init__(self, raw):
        head = raw.read(2)
        self.raw, self.head = raw, head
        self.gzip = head == _GZIP_MAGIC
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS) if self.gzip else None
        self.buf = b""
        self.eof = False

    def read(self, n=CHUNK):
        if not self.gzip:
            data, self.head = self.head + self.raw.read(max(n - len(self.head), 0)), b""
            return data
        while len(self.buf) < n and not self.eof:
            d = self.d
            if d.unconsumed_tail:  # output is bounded per call: a small bomb cannot fill memory
                self.buf += d.decompress(d.unconsumed_tail, CHUNK)
            elif d.eof:
                rest = d.unused_data or self.raw.read(CHUNK)
                if not rest:
                    self.eof = True
                    break
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.buf += self.d.decompress(rest, CHUNK)
            else:
                chunk = self.head + self.raw.read(CHUNK)
                self.head = b""
                if not chunk:
                    raise zlib.error("compressed layer ended early")
                self.buf += d.decompress(chunk, CHUNK)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class Image:
    """One image of an archive: config bytes, its ID, tags, and its layers' member names (bottom up)."""

    def __init__(self, config, tags, layers):
        self.config_bytes, self.tags, self.layers = config, tags, layers
        self.id = _sha(config)
        try:
            self.config = json.loads(config.decode())
        except (UnicodeDecodeError, ValueError):
            raise _bad("invalid image config {}: not JSON".format(self.id))
        if not isinstance(self.config, dict):
            raise _bad("invalid image config {}: not a JSON object".format(self.id))
        self.diff_ids = list((self.config.get("rootfs") or {}).get("diff_ids") or [])
        if len(self.diff_ids) != len(layers):
            raise _bad("invalid manifest, layers length mismatch: expected {}, got {}".format(
                len(self.diff_ids), len(layers)))
        for d in self.diff_ids:
            if not isinstance(d, str) or len(d) != 71 or not d.startswith("sha256:"):
                raise _bad("invalid diff_id {!r} in image config {}".format(d, self.id))


class Archive:
    """A docker-archive or OCI layout tar opened for reading (``open_archive``)."""

    def __init__(self, tar, name):
        self.tar, self.name = tar, name
        self.members = {}
        for m in tar.getmembers():
            self.members[posixpath.normpath(m.name.lstrip("/")) if m.name.strip("/") else "."] = m
        self.format = None
        self.images = []

    def _member(self, name, hops=0):
        key = posixpath.normpath(name.lstrip("/"))
        if key.startswith("../") or key == "..":
            raise _bad("{}: {} points outside the archive".format(self.name, name))
        m = self.members.get(key)
        if m is None:
            raise _bad("{}: {} is missing from the archive".format(self.name, name))
        if m.issym() or m.islnk():
            if hops > 8:
                raise _bad("{}: {}: too many levels of links".format(self.name, name))
            target = posixpath.join(posixpath.dirname(key), m.linkname) if m.issym() else m.linkname
            return self._member(target, hops + 1)
        if not m.isreg():
            raise _bad("{}: {} is not a regular file".format(self.name, name))
        return m

    def open(self, name):
        return self.tar.extractfile(self._member(name))

    def read_json(self, name, what=None):
        m = self._member(name)
        if m.size > MAX_JSON:
            raise _bad("{}: {} is too large".format(self.name, name))
        data = self.tar.extractfile(m).read()
        try:
            return json.loads(data.decode())
        except (UnicodeDecodeError, ValueError):
            raise _bad("{}: {} is not valid JSON".format(self.name, what or name))

    def read_bytes(self, name):
        m = self._member(name)
        if m.size > MAX_JSON:
            raise _bad("{}: {} is too large".format(self.name, name))
        return self.tar.extractfile(m).read()

    def layer_key(self, name):
        """The member a layer path resolves to (the same file under two names is read once)."""
        return self._member(name).name

    def verify(self, on_layer=None):
        """Check every layer against its diff_id (sha256 of the uncompressed tar); InvalidArgument naming the
        layer otherwise. ``on_layer(diff_id, reader)`` may consume a copy of the raw bytes as they are read."""
        seen = {}
        for img in self.images:
            for name, diff_id in zip(img.layers, img.diff_ids):
                key = self.layer_key(name)
                if seen.get(key) == diff_id:
                    continue
                h = hashlib.sha256()
                sink = on_layer(diff_id) if on_layer else None
                raw = _Tee(self.open(name), sink)
                try:
                    z = Gunzip(raw)
                    while True:
                        chunk = z.read(CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                except (zlib.error, EOFError) as exc:
                    raise _bad("{}: layer {}: corrupt compressed data: {}".format(self.name, name, exc))
                finally:
                    if sink is not None:
                        sink.close()
                got = "sha256:" + h.hexdigest()
                if got != diff_id:
                    raise _bad("{}: layer {} does not match its digest: the image config says {}, the content "
                               "is {}".format(self.name, name, diff_id, got))
                seen[key] = diff_id


class _Tee:
    def __init__(self, raw, sink):
        self.raw, self.sink = raw, sink

    def read(self, n=CHUNK):
        data = self.raw.read(n)
        if data and self.sink is not None:
            self.sink.write(data)
        return data


def open_archive(fileobj, name="archive"):
    """Read the image list of a docker-archive (``manifest.json``) or an OCI layout (``index.json``) tar.

    A file that is not a tar, or a tar that is neither, is InvalidArgument naming ``name``.
    """
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:")
        arch = Archive(tar, name)
    except (tarfile.TarError, EOFError) as exc:
        raise _bad("{}: not a tar archive ({})".format(name, exc))
    if MANIFEST in arch.members:
        arch.format = "docker-archive"
        manifest = arch.read_json(MANIFEST)
        if not isinstance(manifest, list) or not all(isinstance(e, dict) for e in manifest):
            raise _bad("{}: manifest.json is not a list of images".format(name))
        for e in manifest:
            if not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers") or [], list):
                raise _bad("{}: manifest.json entry without Config".format(name))
            tags = e.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise _bad("{}: manifest.json RepoTags must be a list of strings".format(name))
            arch.images.append(Image(arch.read_bytes(e["Config"]), tags, list(e.get("Layers") or [])))
    elif OCI_INDEX in arch.members and OCI_LAYOUT in arch.members:
        arch.format = "oci-archive"
        by_manifest = {}
        for desc in (arch.read_json(OCI_INDEX).get("manifests") or []):
            digest = desc.get("digest", "") if isinstance(desc, dict) else ""
            if desc.get("mediaType") not in (MT_OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"):
                raise _bad("{}: index.json entry {} is a {}: only single-platform image manifests can be "
                           "loaded".format(name, digest, desc.get("mediaType")))
            ann = desc.get("annotations") or {}
            tag = ann.get(ANN_IMAGE_NAME) or (ann.get(ANN_REF_NAME) if any(c in ann.get(ANN_REF_NAME, "")
                                                                           for c in ":/") else None)
            entry = by_manifest.setdefault(digest, [])
            if tag and tag not in entry:
                entry.append(tag)
        for digest, tags in by_manifest.items():
            man = arch.read_json(_blob_path(name, digest))
            layers = [_blob_path(name, d.get("digest", "")) for d in man.get("layers") or []]
            cfg = (man.get("config") or {}).get("digest", "")
            arch.images.append(Image(arch.read_bytes(_blob_path(name, cfg)), tags, layers))
    else:
        raise _bad("{}: not an image archive (no manifest.json or index.json + oci-layout)".format(name))
    if not arch.images:
        raise _bad("{}: the archive holds no image".format(name))
    return arch


def _blob_path(name, digest):
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71 or \
            any(c not in "0123456789abcdef" for c in digest[7:]):
        raise _bad("{}: unsupported or malformed digest {!r}".format(name, digest))
    return "blobs/sha256/" + digest[7:]
