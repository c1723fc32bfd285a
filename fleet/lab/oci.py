"""Deterministic OCI image layouts for the lab seed images: layers from trees or entry lists, manifests, indexes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Iterable, Optional

from .state import write_json

EPOCH = 1700000000                   # fixed mtime for every tar entry and the image's "created"
CREATED = "2023-11-14T22:13:20Z"     # == EPOCH
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha(data: bytes) -> str:
    """'sha256:<hex>' of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    """The JSON bytes every blob here is written as (sorted keys, no spaces), so digests are stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _gzip(raw: bytes) -> tuple[bytes, str]:
    """(gzip'd blob with no name or mtime in its header, diff_id of the raw tar)."""
    blob = io.BytesIO()
    with gzip.GzipFile(fileobj=blob, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
        gz.write(raw)
    return blob.getvalue(), sha(raw)


def tar_tree(rootfs: Path) -> tuple[bytes, str]:
    """A deterministic gzip'd tar of rootfs (sorted, fixed mtimes, no owner names); returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for entry in sorted(dirnames + filenames):
                full = os.path.join(dirpath, entry)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, rootfs))
                info.mtime, info.uname, info.gname = EPOCH, "", ""
                info.pax_headers = {}
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return _gzip(raw.getvalue())


def tar_entries(entries: Iterable[tuple]) -> tuple[bytes, str]:
    """A gzip'd tar written entry by entry, in the order given (order matters for whiteout tests).

    Each entry is (kind, name, mode, payload): kind 'dir' | 'file' (payload = text) | 'symlink' (payload = target)
    | 'hardlink' (payload = the earlier entry's name). Owner is root, mtime EPOCH."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, mode, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, EPOCH, 0, 0, "", ""
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "file":
                data = payload.encode()
                info.size = len(data)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            else:
                raise ValueError("unknown tar entry kind {!r}".format(kind))
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return _gzip(raw.getvalue())


def put_blob(out: Path, data: bytes) -> str:
    """Store data under out/blobs/sha256/ and return its digest."""
    digest = sha(data)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest.split(":")[1]).write_bytes(data)
    return digest


def read_blob(layout: Path, digest: str) -> bytes:
    """The bytes of a blob in an OCI layout."""
    return (Path(layout) / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def write_image(out: Path, layers: list[tuple[bytes, str]], config: dict, history: list[dict],
                arch: str = "amd64") -> dict:
    """Write the layer, config and manifest blobs of one image; return the manifest's descriptor.

    layers are (gzip blob, diff_id) bottom first; history has one entry per layer."""
    image = {"created": CREATED, "architecture": arch, "os": "linux", "config": config,
             "rootfs": {"type": "layers", "diff_ids": [d for _b, d in layers]}, "history": history}
    cfg = canonical(image)
    manifest = canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put_blob(out, cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": put_blob(out, b), "size": len(b)} for b, _d in layers],
    })
    return {"mediaType": OCI_MANIFEST, "digest": put_blob(out, manifest), "size": len(manifest)}


def write_index_blob(out: Path, manifests: list[dict]) -> dict:
    """Write an image index blob over manifests (descriptors carrying 'platform'); return its descriptor."""
    index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    return {"mediaType": OCI_INDEX, "digest": put_blob(out, index), "size": len(index)}


def finish_layout(out: Path, top: dict) -> None:
    """Write index.json (top descriptor tagged 'latest') and oci-layout."""
    entry = dict(top, annotations={REF_NAME: "latest"})
    write_json(out / "index.json", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
    write_json(out / "oci-layout", {"imageLayoutVersion": "1.0.0"})


def write_layout(out: Path, rootfs: Path, config: dict, created_by: str, comment: str) -> str:
    """Write an OCI image layout for a one-layer image of rootfs; returns the config digest."""
    top = write_image(out, [tar_tree(rootfs)], config,
                      [{"created": CREATED, "created_by": created_by, "comment": comment}])
    finish_layout(out, top)
    return config_digest(out)


def top_descriptor(layout: Path) -> dict:
    """The descriptor index.json tags 'latest'."""
    index = json.loads((Path(layout) / "index.json").read_text())
    return index["manifests"][0]


def config_digest(layout: Path) -> Optional[str]:
    """The config digest of the layout's 'latest' manifest (None when 'latest' is an index)."""
    top = top_descriptor(layout)
    if top.get("mediaType") == OCI_INDEX:
        return None
    return json.loads(read_blob(layout, top["digest"]))["config"]["digest"]


def image_layers(layout: Path) -> tuple[list[tuple[bytes, str]], list[dict], dict]:
    """(layers as (blob, diff_id), history, runtime config) of the layout's single-platform 'latest' image."""
    manifest = json.loads(read_blob(layout, top_descriptor(layout)["digest"]))
    image = json.loads(read_blob(layout, manifest["config"]["digest"]))
    blobs = [read_blob(layout, d["digest"]) for d in manifest["layers"]]
    return list(zip(blobs, image["rootfs"]["diff_ids"])), image.get("history", []), image.get("config", {})
