"""``save``, ``load`` (with ``load_probe``) and ``import``: image archives between this host's store and this
machine, the bytes moved by the controller with SFTP (image/loadsave.py does the store
side, image/archive_formats.py the formats).

``save`` answers what the archive needs (configs, manifests, tags and the paths of the layer blobs, which the
controller fetches compressed and writes the archive from: no copy is staged on the host); ``load`` and
``import`` read staging files the controller uploaded and always delete them, whatever happened.
"""

import os

from agent_payload import errors


def _staging(ctx, path):
    from agent_payload.runtime.copy import STAGING_PREFIX
    return (isinstance(path, str) and os.path.dirname(path) == ctx.paths.tmp.rstrip("/")
            and os.path.basename(path).startswith(STAGING_PREFIX))


def _remove(ctx, paths):
    for path in paths:
        if _staging(ctx, path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _open_staged(ctx):
    from agent_payload.runtime import copy

    def open_staged(path):
        return os.fdopen(copy.open_staging(ctx.paths, path), "rb")
    return open_staged


def op_save(ctx, req, emit):
    """{"images": [ref]} -> loadsave.save_plan's {"images": [...]}: every name resolved (docker's rules), with
    the config, manifest, tags and the path of each layer blob, which the controller fetches by SFTP."""
    from agent_payload.image import loadsave

    if not req.images:
        raise errors.InvalidArgument("at least one image is required")
    return loadsave.save_plan(ctx.images(), req.images)


def op_load_probe(ctx, req, emit):
    """{"diff_ids": [str]} -> {"present": [the ones whose layer blob this host holds]}."""
    from agent_payload.image import loadsave

    present = loadsave.present_layers(ctx.images())
    return {"present": [d for d in req.diff_ids if d in present]}


def op_load(ctx, req, emit):
    """{"images": [{"config": str, "tags": [str], "layers": [{"diff_id", "staging": path|null}]}]} ->
    {"loaded": [{"id", "tags", "renamed"}], "layers_loaded": n}; every staging file named is deleted."""
    from agent_payload.image import loadsave

    if not isinstance(req.images, list) or not all(isinstance(i, dict) for i in req.images):
        raise errors.InvalidArgument("argument images must be a list of objects")
    staged = [lay.get("staging") for img in req.images if isinstance(img, dict)
              for lay in (img.get("layers") or []) if isinstance(lay, dict)]
    try:
        for path in staged:
            if path is not None and not _staging(ctx, path):
                raise errors.InvalidArgument("staging file must be {}/cp-*: {!r}".format(ctx.paths.tmp, path))
        return loadsave.load(ctx.images(), req.images, _open_staged(ctx))
    finally:
        _remove(ctx, staged)


def op_import(ctx, req, emit):
    """{"staging": path|null, "url": str|null, "repository", "message", "changes"} -> {"id", "tags", "renamed"}:
    the tar (from the staging file, or fetched from the URL by this host) as a one-layer image."""
    from agent_payload.image import loadsave
    from agent_payload.runtime.spec import signal_number

    try:
        config = loadsave.import_config(req.changes, check_signal=signal_number)
        if req.repository:
            from agent_payload.image import commit
            commit.check_target(req.repository)
        store = ctx.images()
        if req.url:
            if not req.url.startswith(("http://", "https://")):
                raise errors.InvalidArgument("import URL must be http:// or https://: {!r}".format(req.url))
            reader = _fetch(req.url)
            what = req.url
        elif req.staging:
            reader = _open_staged(ctx)(req.staging)
            what = "the imported archive"
        else:
            raise errors.InvalidArgument("import needs a staging file or a URL")
        with reader:
            return loadsave.import_image(store, reader, what, config, message=req.message,
                                         target=req.repository or None)
    finally:
        _remove(ctx, [req.staging])


def _fetch(url):
    import urllib.error
    import urllib.request

    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "fleet-payload/1"}),
                                      timeout=60)
    except urllib.error.HTTPError as exc:
        raise errors.FailedPrecondition("Get {}: {} {}".format(url, exc.code, exc.reason))
    except (urllib.error.URLError, OSError) as exc:
        raise errors.FailedPrecondition("Get {}: {}".format(url, getattr(exc, "reason", exc)))
