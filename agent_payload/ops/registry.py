"""Registry ops: pull (and, with issue 3, push, login, logout)."""

from agent_payload.ops.args import string


def op_pull(ctx, args, emit):
    """Pull an image (mirrors and insecure registries from daemon.json); progress as events."""
    from agent_payload.image import reference
    ref = reference.parse(string(args, "image", required=True))
    record, info = ctx.images().pull(ref.string(), emit)
    return {"image": record.reference, "id": record.id, "digest": record.digest,
            "endpoint": info.get("endpoint"), "layers": info.get("layers"), "downloaded": info.get("downloaded")}
