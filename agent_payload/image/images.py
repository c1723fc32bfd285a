"""Public image API of the payload: the local image index (resolve, list) and pull (delegated to pull.py).

The index ``images/index.json`` (written atomically under the ``images`` lock)::

    {"refs":   {"docker.io/library/nginx:latest": {"id": "sha256:<config>", "digest": "sha256:<manifest>"},
                "docker.io/library/nginx@sha256:<manifest>": {...}},
     "images": {"sha256:<config>": {"manifest", "digest", "layers": [descriptor], "chain_ids", "size",
                                    "created", "endpoint"}}}
"""

import json
import os
import re
from dataclasses import dataclass, field

from .. import config as daemon_config
from .. import errors
from ..state import locks, store
from . import content, reference, snapshots

NONE = "<none>"
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

    def pull(self, ref, emit=None):
        """Pull ``ref`` -> (ImageRecord, {"endpoint", "downloaded", "layers"}) (see pull.py)."""
        from .pull import Puller
        return Puller(self).pull(ref, emit)

    def index_add(self, keys, image_id, entry, ref_info):
        """Record a pulled image: its entry by image ID and every reference key pointing at it (atomically)."""
        with locks.locked(self.lock_path):
            index = self._read_index()
            index["images"][image_id] = entry
            for key in keys:
                index["refs"][key] = ref_info
            store.write_json_atomic(self.index_path, index)

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
