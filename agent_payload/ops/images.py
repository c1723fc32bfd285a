"""Image-store ops: images (and, with issue 3, rmi, tag, history, prune, inspect, system df)."""


def op_images(ctx, args, emit):
    """List images."""
    return {"images": ctx.images().list(all=bool(args.get("all")))}
