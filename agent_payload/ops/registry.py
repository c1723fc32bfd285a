"""Registry ops: pull and push (login, logout and configure follow below)."""

from agent_payload import errors


def _pull_result(record, info):
    return {"image": record.reference, "id": record.id, "digest": record.digest,
            "endpoint": info.get("endpoint"), "layers": info.get("layers"), "downloaded": info.get("downloaded")}


def op_pull(ctx, req, emit):
    """Pull an image (or every tag with ``all_tags``) for ``platform``; progress as events."""
    from agent_payload.image import pull, reference
    ref = reference.parse(req.image)
    platform = pull.parse_platform(req.platform)
    store = ctx.images()
    if req.all_tags:
        with store.lease():
            pulled = pull.pull_all_tags(store, req.image, emit, platform)
        return {"pulled": [_pull_result(rec, info) for rec, info in pulled]}
    with store.lease():  # GC must not sweep what the pull has stored before the index names it
        record, info = pull.Puller(store).pull(ref.string(), emit, platform)
    return _pull_result(record, info)


def op_push(ctx, req, emit):
    """Push a local image to its registry (blobs that exist are skipped, same-registry blobs mounted)."""
    from agent_payload.image import push, reference
    ref = reference.parse(req.image)
    store = ctx.images()
    with store.lease():  # GC must not sweep the blobs we are uploading
        return push.Pusher(store).push(ref.string(), emit)


def _registry(raw):
    """A request's ``registry`` as a host[:port] (None and hub aliases -> docker.io); InvalidArgument otherwise."""
    from agent_payload.image import auth, reference
    if raw is None or not raw.strip():
        return reference.DEFAULT_DOMAIN
    host = auth.hostname(raw)
    if not host or "@" in host or not all(c.isalnum() or c in ".-:[]" for c in host):
        raise errors.InvalidArgument("invalid registry {!r}".format(raw))
    return host


def op_login(ctx, req, emit):
    """Check the credentials against the registry, then store them in Docker's config.json (0600)."""
    from agent_payload import config
    from agent_payload.image import auth, registry
    domain = _registry(req.registry)
    username, password = req.username, req.password
    if not username or ":" in username:
        raise errors.InvalidArgument("username must be non-empty and contain no ':'")
    if not password:
        raise errors.InvalidArgument("password must not be empty")
    endpoints = registry.origin_endpoints(domain, config.load(ctx.paths))
    for i, ep in enumerate(endpoints):
        client = registry.RegistryClient(ep, "", (username, password))
        try:
            client.check_login()
            break
        except registry.Unauthorized:
            raise errors.FailedPrecondition("unauthorized: incorrect username or password",
                                            details={"registry": domain})
        except errors.Unavailable:
            if i == len(endpoints) - 1:
                raise  # an insecure registry's https attempt falls through to http, like pull
    auth.set(domain, username, password)
    return {"registry": domain, "status": "Login Succeeded"}


def op_logout(ctx, req, emit):
    """Forget the stored credentials; not being logged in is not an error (Docker: "Not logged in to X")."""
    from agent_payload.image import auth
    domain = _registry(req.registry)
    return {"registry": domain, "removed": auth.remove(domain)}


def op_configure(ctx, req, emit):
    """Merge keys into daemon.json (null removes), validate the result, then write it atomically (0644)."""
    from agent_payload import config
    daemon = req.daemon
    if not isinstance(daemon, dict) or not all(isinstance(k, str) for k in daemon):
        raise errors.InvalidArgument("argument daemon must be an object of daemon.json keys")
    changed, merged = config.update(ctx.paths, daemon)
    return {"changed": changed, "daemon": merged}
