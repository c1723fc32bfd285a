"""``commit``: where the runtime (the container's upper dir, pause) meets the image store (a new image).

Order: every argument is checked (target reference, --change lines, the container) before anything is
paused or written; then the container is frozen (unless ``pause`` is false or it is not running), its
upper dir is archived into a new layer, and it is thawed again whatever happened.
"""

from agent_payload import errors


def container_config(image_config, inspect_config):
    """The config docker commits: the image's config under the container's own (Env, Cmd, User, ...)."""
    cfg = dict(image_config.get("config") or {})
    for key, value in inspect_config.items():
        cfg[key] = value
    return cfg


def op_commit(ctx, req, emit):
    """Create an image from a container's changes: {"container", "repository", "author", "message",
    "changes", "pause"} -> {"id", "repository", "layer", "diff_id", "size"}."""
    from agent_payload.image import commit as commitmod
    from agent_payload.image.instructions import apply_changes
    from agent_payload.runtime import changes as changesmod
    from agent_payload.runtime.containers import INIT_PATHS
    from agent_payload.runtime.records import Layout
    from agent_payload.runtime.spec import signal_number

    target = req.repository or None
    commitmod.check_target(target)
    runtime = ctx.runtime()
    rec = runtime.lookup(req.container)
    store = ctx.images()
    cid = rec["id"]
    inspect_cfg = runtime.inspect([cid])[0]["Config"]
    try:
        image_cfg = store.image_config(rec["image_id"])
    except errors.NotFound:
        raise errors.FailedPrecondition("the image of container {} ({}) is no longer in the image store".format(
            cid, rec["image_id"]))
    base = container_config(image_cfg, inspect_cfg)
    new_cfg = apply_changes(base, req.changes, check_signal=signal_number)
    created_by = " ".join(inspect_cfg.get("Cmd") or [])
    upper = Layout(ctx.paths, cid).diff
    lowers = list(reversed(rec.get("lowerdirs") or []))
    froze = False
    if req.pause and rec.get("status") == "running" and not rec.get("paused"):
        runtime.pause([cid])
        froze = True
    try:
        return commitmod.commit(store, rec["image_id"],
                                lambda f: changesmod.write_layer_tar(upper, f, lowers, skip=INIT_PATHS),
                                new_cfg, created_by=created_by, author=req.author, comment=req.message,
                                container_id=cid, container_config=base, target=target)
    finally:
        if froze:
            try:
                runtime.unpause([cid])
            except (errors.Conflict, errors.NotFound):
                pass  # it exited (or was removed) meanwhile: nothing left to thaw
