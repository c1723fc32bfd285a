"""Deploy ops (``fleet deploy``'s host side, agent_payload/deploy/): image_resolve, deploy_lock, service_ls,
service_swap, service_rollback, service_down, deploy_journal."""

from agent_payload import errors


def op_image_resolve(ctx, req, emit):
    """{"image"} -> {"reference", "digest", "local"}: the digest the tag points at in the registry now."""
    from agent_payload.deploy import resolve
    return resolve.resolve(ctx.images(), req.image)


def op_deploy_lock(ctx, req, emit):
    """{"project", "deploy_id", "holder", "action"} -> {"acquired", "took_over"} | {"released"}."""
    from agent_payload.deploy import lock
    if req.action == "acquire":
        peer = getattr(ctx, "peer", None)  # a warm server's child: the holder is up from its peer, not its parent
        return lock.acquire(ctx.paths, req.project, req.deploy_id, req.holder,
                            process=lock.holder_process(start=peer) if peer else None,
                            parent_at_start=getattr(ctx, "parent", None))
    if req.action == "release":
        return lock.release(ctx.paths, req.project, req.deploy_id)
    raise errors.InvalidArgument('argument action must be "acquire" or "release", not {!r}'.format(req.action))


def op_service_ls(ctx, req, emit):
    """{"project"|null} -> {"services": [row]}: every container with compose labels (deploy/services.py)."""
    from agent_payload.deploy import check_project, services
    if req.project is not None:
        check_project(req.project)
    return {"services": services.listing(ctx.runtime(), ctx.paths, req.project)}


def _run_worker(ctx, req, emit, action):
    from agent_payload.deploy import check_project, lock, swap, worker
    check_project(req.project)
    check_project(req.service, "service")
    swap.check_request(req)
    if action == "swap":
        from agent_payload.ops.args import decode
        if not isinstance(req.create, dict):
            raise errors.InvalidArgument("argument create must be an object" if req.create is not None else
                                         "missing argument: create")
        networks = req.extra_networks or []
        if not isinstance(networks, list) or not all(
                isinstance(n, list) and len(n) == 2 and isinstance(n[0], str) and isinstance(n[1], list) and
                all(isinstance(a, str) for a in n[1]) for n in networks):
            raise errors.InvalidArgument("argument extra_networks must be a list of [network, [aliases]]")
        create = swap.check_labels(req.create, req.project, req.service)
        decode("create", dict(create, name=None))  # the create request's types, before anything changes
        req = req._replace(create=create)
    lock.check_held(ctx.paths, req.project, req.deploy_id)
    path = worker.progress_path(ctx.paths, req.project, req.service, action, req.deploy_id, req._asdict())
    worker.launch(path, swap.Job(ctx, req, action))
    try:
        return worker.follow(path, emit)
    finally:
        worker.consumed(path)


def op_service_swap(ctx, req, emit):
    """{"project", "service", "deploy_id", "create", "extra_networks", "order", "monitor", "probe", "timeout",
    "stop_grace_period", "keep", "journal"} -> {"result": "updated"|"rolled_back", ...} (deploy/swap.py)."""
    return _run_worker(ctx, req, emit, "swap")


def op_service_rollback(ctx, req, emit):
    """service_swap's args without create -> the same result; the target is the last retired container."""
    return _run_worker(ctx, req, emit, "rollback")


def op_service_down(ctx, req, emit):
    """{"project", "volumes"} -> {"removed": [names], "networks": [names]}."""
    from agent_payload.deploy import PROJECT, check_project, services
    from agent_payload.ops.netvol import _networks, _remove_bridge
    check_project(req.project)
    removed = services.down(ctx.runtime(), ctx.paths, req.project, volumes=req.volumes)
    nets = _networks(ctx)
    gone = []
    for rec in nets.list():
        if (rec.get("labels") or {}).get(PROJECT) == req.project and not rec.get("predefined"):
            try:
                gone.append(nets.remove(rec["name"], _remove_bridge(ctx))["name"])
            except (errors.Conflict, errors.NotFound):
                continue  # used by a container of another project, or gone meanwhile
    return {"removed": removed, "networks": gone}


def op_deploy_journal(ctx, req, emit):
    """{"project"|null, "service"|null, "last"|null} -> {"entries": [...]}, oldest first."""
    from agent_payload.deploy import journal
    return {"entries": journal.read(ctx.paths, req.project, req.service, req.last)}
