"""Public image API of the payload: the local image index (resolve, list, tag, history, inspect).

The index ``images/index.json`` (written atomically under the ``images`` lock)::

    {"refs":   {"docker.io/library/nginx:latest": {"id": "sha256:<config>", "digest": "sha256:<manifest>"},
                "docker.io/library/nginx@sha256:<manifest>": {...}},
     "images": {"sha256:<config>": {"manifest", "digest", "layers": [descriptor], "chain_ids", "size",
                                    "created", "endpoint", "last_tag_time" (set by ``tag``)}}}

A key without ``@`` is a tag; a key with ``@`` is a canonical (digest) reference, Docker's RepoDigests.
Digests shown next to a tag come from the canonical keys of the same repository, as the Docker CLI does.
Pulls live in pull.py (callers hold ``lease`` around them); removal and garbage collection in gc.py; sizes
are unpacked bytes (SnapshotStore.usage).
"""

import contextlib
import fcntl
import json
import os
import re
import time

from .. import errors
from ..state import locks, store
from . import content, reference, snapshots
from .imagerecord import NONE, ImageRecord
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: Docker's LastTagTime of a never-tagged image
_ID_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")
_FULL_ID_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{64})$")


def short_id(image_id):
    """Docker's ``stringid.TruncateID``: drop the algorithm, keep 12 hex digits."""
    return image_id.split(":", 1)[-1][:12]


def is_id_prefix(image_id, text):
    """Docker's ``isImageIDPrefix``: ``text`` is a prefix of the ID with or without ``sha256:``."""
    return bool(text) and (image_id.startswith(text) or image_id.split(":", 1)[-1].startswith(text))


def refs_of(index, image_id):
    """Sorted reference keys pointing at ``image_id``."""
    return sorted(k for k, v in index["refs"].items() if v["id"] == image_id)


def parent_ids(index):
    """The images another image of the index names as its parent (a build's steps, commit's parent)."""
    return {e.get("parent") for e in index["images"].values() if e.get("parent")}


def is_tag(key):
    """True for a tag key (``repo:tag``), False for a canonical one (``repo@sha256:...``)."""
    return "@" not in key


class ImageStore:
    """Pulls images into the content store and snapshots, and answers local lookups."""

    def __init__(self, paths, config=None):
        self.paths = paths
        self._config = config
        self.content = content.ContentStore(paths)
        self.snapshots = snapshots.SnapshotStore(paths)
        self.index_path = os.path.join(paths.images, "index.json")
        self.lock_path = paths.lock_file("images")
        self.lease_path = paths.lock_file("images-lease")


    @property
    def config(self):
        """daemon.json, read on first use: local lookups (``run`` of a present image) never need it."""
        if self._config is None:
            from .. import config as daemon_config
            self._config = daemon_config.load(self.paths)
        return self._config

    @contextlib.contextmanager
    def lease(self):
        """Hold a shared lease that keeps garbage collection from deleting unreferenced blobs and snapshots.

        Pulls hold it from their first blob to ``index_add``: between snapshot creation and the index
        entry, their content is referenced by nothing, and only this lease tells GC so.  Anyone who
        resolves an image and then records its snapshot dirs elsewhere (``run`` creating a container)
        should hold it across both steps.  GC takes it exclusively without waiting (``exclusive_lease``).
        """
        with locks.locked(self.lease_path, shared=True):
            yield

    @contextlib.contextmanager
    def exclusive_lease(self):
        """Yield True when no lease is held (and block new ones meanwhile), else False at once."""
        os.makedirs(os.path.dirname(self.lease_path), exist_ok=True)
        fd = os.open(self.lease_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except BlockingIOError:
                got = False
            yield got
        finally:
            os.close(fd)

    def index_add(self, keys, image_id, entry, ref_info):
        """Record a pulled image: its entry by image ID and every reference key pointing at it (atomically)."""
        with locks.locked(self.lock_path):
            # GC deletes under this same lock: if it swept this pull's content before now (a pull that
            # held no lease), refuse to record an image whose layers are gone rather than a broken one.
            missing = [c for c in entry.get("chain_ids") or [] if self.snapshots.lookup(c) is None]
            if missing or not self.content.has(image_id):
                raise errors.FailedPrecondition("image {} lost its content to a concurrent rmi/prune while "
                                                "being pulled; pull it again".format(image_id))
            index = self._read_index()
            old = index["images"].get(image_id) or {}
            if "last_tag_time" in old and "last_tag_time" not in entry:
                entry = dict(entry, last_tag_time=old["last_tag_time"])
            index["images"][image_id] = entry
            for key in keys:
                index["refs"][key] = ref_info
            self.write_index(index)

    def image_chains(self):
        """{image ID: its layers' chain IDs} of every image (system df -v's shared and unique sizes)."""
        return {image_id: list(entry.get("chain_ids") or [])
                for image_id, entry in self._read_index()["images"].items()}

    def image_count(self):
        """How many images the store holds (docker info's Images)."""
        return len(self._read_index()["images"])

    def add_digest_ref(self, image_id, canonical):
        """Record ``canonical`` (``repo@sha256:<manifest>``, a parsed reference) as a RepoDigest of ``image_id``,
        as docker does after a push: the image keeps it while it exists (a vanished image records nothing)."""
        with locks.locked(self.lock_path):
            index = self._read_index()
            if image_id not in index["images"]:
                return
            index["refs"][canonical.string()] = {"id": image_id, "digest": canonical.digest}
            self.write_index(index)

    # -- lookups ----------------------------------------------------------------------------------------

    def _read_index(self):
        data = store.read_json(self.index_path, default=None) or {}
        data.setdefault("refs", {})
        data.setdefault("images", {})
        return data

    def write_index(self, index):
        """Persist ``index``; the caller holds ``locks.locked(self.lock_path)`` (so the temp files a killed
        writer of this index left can go now)."""
        locks.reap_temp_files(os.path.dirname(self.index_path))
        store.write_json_atomic(self.index_path, index)

    def find(self, index, ref):
        """Docker's GetImage order -> (image ID, matching reference key or None).

        A full ID (``sha256:`` optional) first, then a reference, then a unique ID prefix.  Unknown
        images are NotFound "No such image: <familiar ref>" (with ``:latest`` added, as Docker says).
        """
        s = ref.strip() if isinstance(ref, str) else ""
        if not s:
            raise errors.InvalidArgument("image reference must not be empty")
        m = _FULL_ID_RE.match(s)
        if m and "sha256:" + m.group(1) in index["images"]:
            return "sha256:" + m.group(1), None
        parsed, parse_error = None, None
        if not m:
            try:
                parsed = reference.parse(s)
            except errors.InvalidArgument as exc:
                parse_error = exc
        if parsed is not None and parsed.string() in index["refs"]:
            return index["refs"][parsed.string()]["id"], parsed.string()
        m = _ID_RE.match(s)
        if m:
            found = [i for i in index["images"] if i.split(":", 1)[-1].startswith(m.group(1))]
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                raise errors.NotFound("No such image: {} (ambiguous image ID prefix)".format(s))
        if parse_error is not None:
            raise parse_error
        raise errors.NotFound("No such image: {}".format(parsed.familiar() if parsed is not None else s))

    def resolve(self, ref):
        """Find a local image by reference or by image ID (full, ``sha256:`` or unique prefix)."""
        index = self._read_index()
        image_id, key = self.find(index, ref)
        return self._record(index, image_id, key)

    def _record(self, index, image_id, key):
        entry = index["images"].get(image_id)
        if entry is None:
            raise errors.NotFound("No such image: {}".format(image_id))
        keys = refs_of(index, image_id)
        if key is None:
            # By ID: name it after a tag pointing at it if there is one, else a digest reference.
            key = ([k for k in keys if is_tag(k)] or keys or [None])[0]
        if key is not None:
            r = reference.parse(key)
            digests = _repo_digests(keys, r.name)
            repository, tag = r.familiar_name(), r.tag or NONE
            digest = r.digest or (digests[0] if digests else entry["digest"])
        else:
            repository, tag, digest = NONE, NONE, entry["digest"]
        return ImageRecord(id=image_id, reference=key or "", repository=repository, tag=tag, digest=digest,
                           config=self.image_config(image_id), layers=self.snapshots.mounts(entry["chain_ids"]),
                           size=self.image_size(entry), created=entry.get("created", ""))

    def image_config(self, image_id):
        """The image's config JSON (the blob named by the image ID)."""
        return json.loads(self.content.read_bytes(image_id).decode())

    def image_size(self, entry):
        """Docker's image SIZE: the unpacked bytes of all its layers (shared layers included)."""
        return sum(self.snapshots.usage(c) for c in entry.get("chain_ids") or [])

    def list(self, all=False, digests=False, filters=None, usage=None):
        """Rows like ``docker images``: one per tag; untagged images show ``<none>`` (dangling included).

        Without ``all``, an untagged image that is the parent of another (a build's intermediate step) is left
        out, as docker's; ``all`` shows them.
        ``filters`` is a list of ``key=value`` strings (see ``ImageFilters``); ``usage`` maps image IDs
        to the containers using them (for the CONTAINERS column).
        """
        index = self._read_index()
        flt = ImageFilters(filters or [], self, index)
        usage = usage or {}
        rows = []
        parents = set() if all else parent_ids(index)
        for image_id, entry in index["images"].items():
            keys = refs_of(index, image_id)
            if not keys and image_id in parents:
                continue  # an intermediate image: docker images -a only
            if not flt.keep_image(image_id, entry, keys):
                continue
            shown = [k for k in keys if flt.keep_ref(k)]
            if keys and not shown:
                continue  # a reference filter matched none of its names
            base = {"id": image_id, "created": entry.get("created", ""), "size": self.image_size(entry),
                    "containers": len(usage.get(image_id, []))}
            rows.extend(dict(base, **cols) for cols in _name_columns(shown, digests))
        rows.sort(key=lambda row: (row["created"], row["repository"], row["tag"]), reverse=True)
        return rows

    # -- tag, history, inspect --------------------------------------------------------------------------

    def tag(self, source, target):
        """Point ``target`` (normalised; no digest) at the image ``source`` names -> {"id", "target"}.

        An existing tag is moved, which can leave its previous image dangling (as ``docker tag``).
        """
        t = reference.parse(target)
        if t.digest is not None:
            raise errors.InvalidArgument("refusing to create a tag with a digest reference")
        with locks.locked(self.lock_path):
            index = self._read_index()
            image_id, _key = self.find(index, source)
            index["refs"][t.string()] = {"id": image_id, "digest": None}
            index["images"][image_id]["last_tag_time"] = _now()
            self.write_index(index)
        return {"id": image_id, "target": t.familiar()}

    def history(self, ref):
        """``docker history``: the config's history, newest first; the top row has the image's ID, each row below
        its parent's while the parent chain lasts (a build's intermediate images), then ``<missing>``."""
        index = self._read_index()
        image_id, _key = self.find(index, ref)
        entry = index["images"][image_id]
        chains = entry.get("chain_ids") or []
        rows, layer = [], 0
        for h in self.image_config(image_id).get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                if layer >= len(chains):
                    raise errors.FailedPrecondition("too many non-empty layers in History section")
                size = self.snapshots.usage(chains[layer])
                layer += 1
            rows.append({"id": "<missing>", "created": h.get("created", ""), "created_by": h.get("created_by", ""),
                         "size": size, "comment": h.get("comment", "")})
        rows.reverse()
        cur = image_id  # docker: each row down the parent chain gets that image's ID (a build's steps)
        for row in rows:
            row["id"] = cur
            cur = index["images"].get(cur, {}).get("parent")
            if cur not in index["images"]:
                break
        return rows

    def inspect(self, ref):
        """Docker's ``image inspect`` object for one image."""
        index = self._read_index()
        image_id, _key = self.find(index, ref)
        entry = index["images"][image_id]
        cfg = self.image_config(image_id)
        keys = refs_of(index, image_id)
        out = {
            "Id": image_id,
            "RepoTags": [reference.parse(k).familiar() for k in keys if is_tag(k)],
            "RepoDigests": [reference.parse(k).familiar() for k in keys if not is_tag(k)],
            "Parent": entry.get("parent") or "",  # a build step's or commit's parent, as docker's
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created", entry.get("created", "")),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or {},
            "Architecture": cfg.get("architecture", ""),
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        out["Os"] = cfg.get("os", "")
        if cfg.get("os.version"):
            out["OsVersion"] = cfg["os.version"]
        out.update(Size=self.image_size(entry), GraphDriver=self._graph_driver(entry),
                   RootFS={"Type": "layers", "Layers": list((cfg.get("rootfs") or {}).get("diff_ids") or [])},
                   Metadata={"LastTagTime": entry.get("last_tag_time", ZERO_TIME)})
        return out

    def _graph_driver(self, entry):
        """overlay2's GraphDriver block over our snapshot dirs: the top layer is UpperDir, the rest LowerDir."""
        dirs = self.snapshots.mounts(entry.get("chain_ids") or [])
        data = {}
        if dirs:
            top = os.path.dirname(dirs[-1])
            if len(dirs) > 1:
                data["LowerDir"] = ":".join(reversed(dirs[:-1]))
            data.update(MergedDir=os.path.join(top, "merged"), UpperDir=dirs[-1], WorkDir=os.path.join(top, "work"))
        return {"Name": "overlay2", "Data": data}


def _repo_digests(keys, name):
    """Digests of the canonical keys of repository ``name`` (full name)."""
    out = []
    for k in keys:
        if not is_tag(k):
            r = reference.parse(k)
            if r.name == name:
                out.append(r.digest)
    return out


def _name_columns(keys, digests):
    """(repository, tag, digest) columns for an image's shown references, as the Docker CLI lays them out.

    One row per tag; a repository known only by digest gets a ``<none>`` tag row; ``digests`` expands a
    tag into one row per digest of its repository.  No references at all: one ``<none>`` row.
    """
    tags, digs = {}, {}
    for k in keys:
        r = reference.parse(k)
        if r.digest is None:
            tags.setdefault(r.familiar_name(), []).append(r.tag)
        else:
            digs.setdefault(r.familiar_name(), []).append(r.digest)
    if not tags and not digs:
        return [{"repository": NONE, "tag": NONE, "digest": NONE}]
    rows = []
    for repo in sorted(tags):
        ds = digs.pop(repo, [])
        for tag in sorted(tags[repo]):
            for d in (sorted(ds) if digests and ds else [ds[0] if ds else NONE]):
                rows.append({"repository": repo, "tag": tag, "digest": d})
    for repo in sorted(digs):
        for d in (sorted(digs[repo]) if digests else digs[repo][:1]):
            rows.append({"repository": repo, "tag": NONE, "digest": d})
    return rows


def _now():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1000000000)) + ".{:09d}Z".format(ns % 1000000000)


# -- filters ----------------------------------------------------------------------------------------------

_FILTER_KEYS = ("dangling", "reference", "label", "before", "since")


class ImageFilters:
    """``docker images --filter``: the same key ORs its values, different keys AND.

    ``dangling`` means "has no tag" (digest-only images count as dangling, as ``image prune`` treats them).
    ``reference`` is a Go ``path.Match`` glob against each familiar ``repo:tag`` and the repository.
    """

    def __init__(self, specs, store, index):
        self.store = store
        self.values = {}
        for spec in specs:
            if not isinstance(spec, str) or "=" not in spec:
                raise errors.InvalidArgument("bad format of filter (expected name=value)")
            key, _, value = spec.partition("=")
            key, value = key.strip().lower(), value.strip()
            if key not in _FILTER_KEYS:
                raise errors.InvalidArgument("invalid filter '{}'".format(key))
            self.values.setdefault(key, [])
            if value not in self.values[key]:
                self.values[key].append(value)
        self.dangling = None
        if "dangling" in self.values:
            vals = self.values["dangling"]
            truth = {v.lower() in ("1", "true") for v in vals if v.lower() in ("0", "1", "true", "false")}
            if len(vals) != 1 or len(truth) != 1:
                raise errors.InvalidArgument("invalid filter 'dangling=[{}]'".format(" ".join(sorted(vals))))
            self.dangling = truth.pop()
        self.patterns = [_glob_regex(p) for p in self.values.get("reference", [])]
        self.before = [self._created(store, index, v) for v in self.values.get("before", [])]
        self.since = [self._created(store, index, v) for v in self.values.get("since", [])]

    @staticmethod
    def _created(store, index, ref):
        image_id, _ = store.find(index, ref)
        return index["images"][image_id].get("created", "")

    def keep_image(self, image_id, entry, keys):
        """Image-level filters: dangling, label, before, since (and no names left for a reference filter)."""
        tagged = any(is_tag(k) for k in keys)
        if self.dangling is not None and self.dangling == tagged:
            return False
        if self.patterns and not keys:
            return False
        created = entry.get("created", "")
        if self.before and not any(created < b for b in self.before):
            return False
        if self.since and not any(created > s for s in self.since):
            return False
        if "label" in self.values:
            return self._labels_match(entry, image_id)
        return True

    def keep_ref(self, key):
        """Reference filter: the familiar ``repo:tag``/``repo@digest`` or the bare repository matches."""
        if not self.patterns:
            return True
        r = reference.parse(key)
        return any(p.match(r.familiar()) or p.match(r.familiar_name()) for p in self.patterns)

    def _labels_match(self, entry, image_id):
        # Reading the config only when a label filter asks for it keeps plain listings cheap.
        labels = ((self.store.image_config(image_id).get("config") or {}).get("Labels")) or {}
        for want in self.values["label"]:
            k, sep, v = want.partition("=")
            if k in labels and (not sep or labels[k] == v):
                return True
        return False


def _glob_regex(pattern):
    """Compile Go's ``path.Match`` syntax: ``*`` and ``?`` never match "/", ``[^a-z]`` classes, ``\\`` escapes."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise errors.InvalidArgument("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j, cls = i + 1, ""
            if j < n and pattern[j] == "^":
                cls, j = "^", j + 1
            body = ""
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\":
                    j += 1
                    if j >= n:
                        raise errors.InvalidArgument("syntax error in pattern")
                    body += re.escape(pattern[j])
                else:
                    body += "-" if pattern[j] == "-" else re.escape(pattern[j])
                j += 1
            if j >= n or not body:
                raise errors.InvalidArgument("syntax error in pattern")
            out.append("[" + cls + body + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.S)
