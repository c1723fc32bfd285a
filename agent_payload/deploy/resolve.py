"""``image_resolve``: the manifest digest a tag points at now, asked of the registry, nothing stored.

The endpoints are pull's (daemon.json mirrors first, the origin last, credentials from Docker's config.json),
asked for the tag's top-level manifest (an index for a multi-platform image: pulling ``repo@digest`` then
selects the platform as pulling the tag would).  When no endpoint can be reached and the image is present
locally with a repository digest, that digest is the answer, marked ``"local": true``.
"""

from agent_payload import errors
from agent_payload.image import reference, registry


def _local(store, r):
    """The digest the tag points at locally when it came from a registry (a repo digest is recorded), or None."""
    refs = store._read_index().get("refs") or {}
    digest = (refs.get(r.string()) or {}).get("digest")
    if digest and r.with_digest(digest).string() in refs:
        return digest
    return None


def resolve(store, image):
    """{"reference", "digest", "local"} of ``image`` (see the module doc)."""
    r = reference.parse(image)
    if r.digest:
        return {"reference": r.string(), "digest": r.digest, "local": False}
    timeout = getattr(store.config, "stall_timeout", None) or registry.TIMEOUT
    endpoints = registry.endpoints_for(r.domain, store.config, "resolve")
    failures = []
    for i, ep in enumerate(endpoints):
        client = registry.RegistryClient(ep, r.path, None, timeout)
        try:
            _body, _mt, digest = client.get_manifest(r.tag, r.familiar())
            return {"reference": r.string(), "digest": digest, "local": False}
        except errors.AgentError as exc:
            last = i == len(endpoints) - 1
            if not last and (ep.mirror or isinstance(exc, errors.Unavailable)):
                failures.append({"endpoint": ep.url, "error": exc.message})
                continue
            if isinstance(exc, errors.Unavailable):
                digest = _local(store, r)
                if digest is not None:
                    return {"reference": r.string(), "digest": digest, "local": True}
            if failures:
                exc.details = {"tried": failures}
            raise
    raise errors.Internal("no endpoint for {}".format(r.string()))
