"""Image-store ops: images, rmi, tag, history, image prune, image inspect and system df.

These ops are where the image store meets the runtime (the image side never imports ``runtime``): the
containers that use images come from ``Runtime.image_usage`` and are handed to the store as ContainerUse.
"""

from agent_payload import errors


def _uses(ctx):
    """Every container as a ContainerUse (image ID, running?, lowerdirs); ones removed meanwhile are skipped."""
    from agent_payload.image.gc import ContainerUse
    rt = ctx.runtime()
    out = []
    for image_id, cids in sorted(rt.image_usage().items()):
        for cid in cids:
            try:
                rec = rt.lookup(cid)
            except errors.NotFound:
                continue
            out.append(ContainerUse(id=cid, image_id=image_id, running=rec.get("status") == "running",
                                    lowerdirs=list(rec.get("lowerdirs") or [])))
    return out


def _collector(ctx):
    from agent_payload.image.gc import Collector
    return Collector(ctx.images(), lambda: _uses(ctx))


def _refs(refs, what):
    if not refs:
        raise errors.InvalidArgument("{} requires at least 1 argument".format(what))
    for ref in refs:
        if not ref.strip():
            raise errors.InvalidArgument("image reference must not be empty")
    return refs


def op_images(ctx, req, emit):
    """List images (filters ANDed across keys, ORed within one; digests; a containers count per image)."""
    usage = {}
    for use in _uses(ctx):
        usage.setdefault(use.image_id, []).append(use.id)
    return {"images": ctx.images().list(all=req.all, digests=req.digests, filters=req.filters, usage=usage)}


def op_rmi(ctx, req, emit):
    """Remove images by reference or ID (Docker's untag/delete/conflict rules), each name its own operation.

    Returns {"untagged", "deleted"} over all names, "errors" when some failed, and "results": per name
    {"name", "id", "ok", "error", "untagged", "deleted"}. One name alone: the collector's answer (its error
    raised).
    """
    refs = _refs(req.images, "rmi")
    collector = _collector(ctx)
    if len(refs) == 1:
        return collector.remove(refs, force=req.force)
    out = {"untagged": [], "deleted": [], "results": []}
    failures = []
    for ref in refs:
        try:
            done = collector.remove([ref], force=req.force)
        except errors.AgentError as exc:
            failures.append({"image": ref, "kind": exc.kind, "message": exc.message})
            out["results"].append({"name": ref, "id": None, "ok": False, "untagged": [], "deleted": [],
                                   "error": {"kind": exc.kind, "message": exc.message}})
            continue
        out["untagged"].extend(done["untagged"])
        out["deleted"].extend(done["deleted"])
        out["results"].append({"name": ref, "id": (done["deleted"] or [None])[0], "ok": True, "error": None,
                               "untagged": done["untagged"], "deleted": done["deleted"]})
    if failures:
        out["errors"] = failures
    return out


def op_tag(ctx, req, emit):
    """Create or move a tag TARGET pointing at SOURCE's image."""
    return ctx.images().tag(req.source, req.target)


def op_history(ctx, req, emit):
    """The image's layer history, newest first."""
    return {"history": ctx.images().history(req.image)}


def op_image_prune(ctx, req, emit):
    """Delete dangling images (all unused ones with ``all``) and the content only they used."""
    return _collector(ctx).prune(all=req.all)


def op_image_inspect(ctx, req, emit):
    """Docker's inspect object per image; unknown ones are reported in ``errors`` (raised if all fail)."""
    from agent_payload.ops.pername import inspect_each

    return inspect_each(_refs(req.images, "image inspect"), ctx.images().inspect, "images")


def op_system_df(ctx, req, emit):
    """``docker system df`` rows: images, containers (their upper dirs), local volumes and build cache."""
    from agent_payload.image.gc import df_row, system_df_images
    from agent_payload.fs import tree_size as disk_usage
    from agent_payload.runtime.records import Layout
    uses = _uses(ctx)
    sizes = {u.id: disk_usage(Layout(ctx.paths, u.id).diff) for u in uses}
    containers = df_row(len(uses), sum(1 for u in uses if u.running), sum(sizes.values()),
                        sum(sizes[u.id] for u in uses if not u.running))
    out = {"images": system_df_images(ctx.images(), uses), "containers": containers,
           "volumes": _volumes_df(ctx, df_row, disk_usage), "build_cache": df_row(0, 0, 0, 0)}
    if req.verbose:
        out["verbose"] = _df_verbose(ctx, uses, sizes, disk_usage, emit)
    return out


def _df_verbose(ctx, uses, sizes, disk_usage, emit):
    """``system df -v``: per image (shared and unique size), per container, per volume (links); no build cache."""
    from agent_payload.ops import dispatch
    from agent_payload.runtime.volumes import Volumes, all_configs
    store = ctx.images()
    usage = {}
    for use in uses:
        usage.setdefault(use.image_id, []).append(use.id)
    chains = store.image_chains()
    holders = {}
    for chain_ids in chains.values():
        for c in set(chain_ids):
            holders[c] = holders.get(c, 0) + 1
    images = []
    for row in store.list(usage=usage):
        own = set(chains.get(row["id"]) or [])
        unique = sum(store.snapshots.usage(c) for c in own if holders.get(c) == 1)
        images.append(dict(row, unique_size=unique, shared_size=row["size"] - unique))
    configs = all_configs(ctx.paths)
    containers = []
    for c in dispatch(ctx, "ps", {"all": True}, emit)["containers"]:
        mounts = (configs.get(c["id"]) or {}).get("mounts") or []
        containers.append({"id": c["id"], "image": c["image"], "command": c["command"], "created": c["created"],
                           "status": c["status"], "names": c["name"], "size": sizes.get(c["id"], 0),
                           "local_volumes": sum(1 for m in mounts if m.get("type") == "volume")})
    vols = Volumes(ctx.paths)
    volumes = [{"name": rec["Name"], "links": len(vols.users(rec["Name"], configs)),
                "size": disk_usage(vols.data_dir(rec["Name"]))} for rec in vols.list()]
    return {"images": images, "containers": containers, "volumes": volumes, "build_cache": []}


def _volumes_df(ctx, df_row, disk_usage):
    """docker's "Local Volumes" row: reclaimable is what unused volumes hold."""
    from agent_payload.runtime.volumes import Volumes, all_configs
    vols, configs = Volumes(ctx.paths), all_configs(ctx.paths)
    rows = [(bool(vols.users(rec["Name"], configs)), disk_usage(vols.data_dir(rec["Name"]))) for rec in vols.list()]
    return df_row(len(rows), sum(1 for used, _ in rows if used), sum(size for _, size in rows),
                  sum(size for used, size in rows if not used))

