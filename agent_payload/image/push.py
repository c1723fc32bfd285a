"""Pushing a local image: skip blobs the registry has, mount same-registry blobs, upload the rest, then the manifest.

Upload protocol (distribution spec)::

    HEAD /v2/<name>/blobs/<digest>                          200 -> "Layer already exists"
    POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo> 201 -> "Mounted from <repo>"; 202 -> upload below
    POST /v2/<name>/blobs/uploads/                          202 Location: <session>
    PUT  <session>?digest=<digest>  (whole body)            small blobs (monolithic)
    PATCH <session> Content-Range: <start>-<end> (chunk)... large blobs (chunked), then PUT ?digest= (empty)
    PUT  /v2/<name>/manifests/<tag>  Content-Type: <media type>   the exact stored bytes: same digest
"""

import json
import urllib.parse

from .. import errors
from . import content, reference, registry

#: Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of ``CHUNK_SIZE``.
CHUNK_THRESHOLD = 8 * 1024 * 1024
CHUNK_SIZE = 8 * 1024 * 1024


class Pusher:
    """One push from an ImageStore's content store to the registry named by the target reference."""

    def __init__(self, store, chunk_threshold=CHUNK_THRESHOLD, chunk_size=CHUNK_SIZE):
        self.store = store
        self.content = store.content
        self.chunk_threshold = chunk_threshold
        self.chunk_size = chunk_size

    def push(self, ref, emit=None):
        """Push local image ``ref`` to ``ref``'s repository; returns the protocol's push result."""
        emit = emit or (lambda name, data: None)
        r = reference.parse(ref)
        if r.digest:
            raise errors.InvalidArgument("cannot push a digest reference {!r}: push a tag".format(ref))
        record = self.store.resolve(r.string())
        entry = self.store._read_index()["images"][record.id]  # TODO: a public ImageStore.entry(id)
        manifest = self.content.read_bytes(entry["manifest"])
        # An image pulled through a manifest list holds only our platform's manifest and blobs: that one
        # manifest is what gets pushed (as docker push does for a single-platform local image).
        media_type = entry.get("media_type") or _media_type(manifest)
        blobs = list(entry["layers"]) + [json.loads(manifest.decode())["config"]]
        for desc in blobs:
            if not self.content.has(desc["digest"]):
                raise errors.FailedPrecondition("{}: blob {} is not in the local store; pull the image again".format(
                    r.familiar(), desc["digest"]))
        source = entry.get("repository") if entry.get("domain") == r.domain else None
        client = self._client(r)
        layers = []
        for desc in blobs:
            status = self._push_blob(client, desc, source if source != r.path else None, emit)
            if desc is not blobs[-1]:
                layers.append({"digest": desc["digest"], "status": status})
        resp = client.request("PUT", "/v2/{}/manifests/{}".format(r.path, r.tag), {"Content-Type": media_type},
                              manifest, scope_actions=("pull", "push"))
        _expect(resp, (201,), "uploading the manifest of {}".format(r.familiar()))
        digest = content.sha256_digest(manifest)
        self.store.add_digest_ref(record.id, r.with_digest(digest))  # docker's RepoDigests after a push
        return {"image": r.string(), "digest": digest, "size": len(manifest), "endpoint": client.endpoint.url,
                "layers": layers}

    def _client(self, r):
        """The first origin endpoint that answers (https, then http for an insecure registry)."""
        failures = []
        for ep in registry.origin_endpoints(r.domain, self.store.config):
            client = registry.RegistryClient(ep, r.path, None)
            try:
                client.ping()
                return client
            except errors.Unavailable as exc:
                failures.append({"endpoint": ep.url, "error": exc.message})
        raise errors.Unavailable("cannot reach {}: {}".format(r.domain, failures[-1]["error"]),
                                 details={"tried": failures})

    def _push_blob(self, client, desc, source, emit):
        """Make blob ``desc`` present in the target repository; return the status string."""
        digest, size = desc["digest"], int(desc.get("size") or self.content.size(desc["digest"]))
        short = content.digest_hex(digest)[:12]
        emit("progress", {"layer": short, "status": "Preparing", "current": 0, "total": size})
        path = "/v2/{}/blobs/{}".format(client.repository, digest)
        resp = client.request("HEAD", path, scope_actions=("pull", "push"))
        resp.close()
        if resp.getcode() == 200:
            emit("progress", {"layer": short, "status": "Layer already exists", "current": size, "total": size})
            return "Layer already exists"
        uploads = "/v2/{}/blobs/uploads/".format(client.repository)
        if source:
            query = urllib.parse.urlencode({"mount": digest, "from": source})
            resp = client.request("POST", uploads + "?" + query, {"Content-Length": "0"}, b"",
                                  scope_actions=("pull", "push"), extra_scopes=("repository:{}:pull".format(source),))
            if resp.getcode() == 201:
                resp.close()
                status = "Mounted from " + source
                emit("progress", {"layer": short, "status": status, "current": size, "total": size})
                return status
            _expect(resp, (202,), "mounting blob {}".format(digest))
            location = resp.headers.get("Location")
        else:
            resp = client.request("POST", uploads, {"Content-Length": "0"}, b"", scope_actions=("pull", "push"))
            _expect(resp, (202,), "starting the upload of blob {}".format(digest))
            location = resp.headers.get("Location")
        if not location:
            raise errors.Unavailable("{}: upload session without a Location".format(client.endpoint.url))
        location = urllib.parse.urljoin(client.endpoint.url + uploads, location)
        with self.content.open(digest) as f:
            if size <= self.chunk_threshold:
                body = f.read()
            else:
                location = self._patch_chunks(client, location, f, size, short, emit)
                body = b""
        final = _with_query(location, {"digest": digest})
        resp = client.request("PUT", final, {"Content-Type": "application/octet-stream"}, body,
                              scope_actions=("pull", "push"))
        _expect(resp, (201,), "uploading blob {}".format(digest))
        emit("progress", {"layer": short, "status": "Pushed", "current": size, "total": size})
        return "Pushed"

    def _patch_chunks(self, client, location, f, size, short, emit):
        """Send the blob in ``chunk_size`` PATCHes; return the session URL for the final PUT."""
        offset = 0
        while offset < size:
            chunk = f.read(self.chunk_size)
            if not chunk:
                raise errors.Internal("local blob shorter than its descriptor size")
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                       "Content-Range": "{}-{}".format(offset, offset + len(chunk) - 1)}
            resp = client.request("PATCH", location, headers, chunk, scope_actions=("pull", "push"))
            _expect(resp, (202,), "uploading a chunk at offset {}".format(offset))
            location = urllib.parse.urljoin(location, resp.headers.get("Location") or location)
            offset += len(chunk)
            emit("progress", {"layer": short, "status": "Pushing", "current": offset, "total": size})
        return location


def _with_query(url, params):
    """``url`` with ``params`` added to its query (upload session URLs already carry state there)."""
    parts = urllib.parse.urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _expect(resp, codes, what):
    """Raise Unavailable naming ``what`` unless the response code is one of ``codes``."""
    code = resp.getcode()
    if code in codes:
        resp.close()
        return
    detail = ""
    try:
        detail = resp.read(4096).decode("utf-8", "replace").strip()
    except Exception:  # the body is only a hint for the message
        pass
    resp.close()
    raise errors.Unavailable("{} failed: HTTP {}{}".format(what, code, ": " + detail if detail else ""))


def _media_type(body):
    """The manifest's media type from its own field (OCI manifests may omit it: then it is OCI)."""
    return json.loads(body.decode()).get("mediaType") or registry.MT_OCI_MANIFEST
