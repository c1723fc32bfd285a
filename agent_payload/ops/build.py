"""``build``: a Dockerfile built on this host from a context tar the controller uploaded (agent_payload/build/).

The request is checked first (the context's name, the build args, the network, the platform, the tags), then
the Dockerfile is read from the context tar and parsed (a syntax error is InvalidArgument naming its file and
line), and only then does anything run.  Progress is ``build`` events {"stream": text} in docker's classic
builder's words; the result is {"id", "tags", "steps", "cached"}.
"""

import os
import re
import tarfile

from agent_payload import errors

_SHA = re.compile(r"^[0-9a-f]{64}$")


def context_path(paths, sha):
    return os.path.join(paths.root, "build", "contexts", sha + ".tar")


def _check(ctx, req):
    if not isinstance(req.context, str) or not _SHA.match(req.context):
        raise errors.InvalidArgument("invalid build context {!r}: want its sha256 hex".format(req.context))
    args = req.build_args or {}
    if not isinstance(args, dict) or not all(isinstance(k, str) and k and (v is None or isinstance(v, str))
                                             for k, v in args.items()):
        raise errors.InvalidArgument("argument build_args must map names to strings")
    if req.network not in (None, "default", "none", "host"):
        raise errors.InvalidArgument('network mode "{}" not supported by the builder (default, none, host)'
                                     .format(req.network))
    from agent_payload.image import reference
    from agent_payload.runtime.spec import check_labels
    for tag in req.tags or []:
        r = reference.parse(tag)
        if r.digest is not None:
            raise errors.InvalidArgument("invalid tag {!r}: a digest is not a tag".format(tag))
    check_labels(req.labels or {})
    if req.platform is not None:
        from agent_payload.ops.containers import run_platform
        run_platform(req.platform)
    path = context_path(ctx.paths, req.context)
    if not os.path.isfile(path):
        raise errors.NotFound("build context {} not found on this host (upload it first)".format(req.context))
    return path


def read_dockerfile(path, name):
    """The Dockerfile's text from the context tar (``name``: its path inside the tar)."""
    want = os.path.normpath(name.lstrip("/")) if name else "Dockerfile"
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if os.path.normpath(m.name.lstrip("/")) == want and m.isreg():
                    return tar.extractfile(m).read().decode("utf-8", "surrogateescape")
    except (tarfile.TarError, OSError) as exc:
        raise errors.FailedPrecondition("cannot read the build context: {}".format(exc))
    raise errors.InvalidArgument("Cannot locate specified Dockerfile: {}".format(name))


def op_build(ctx, req, emit):
    """{"context", "dockerfile", "build_args", "target", "tags", "labels", "no_cache", "pull", "network", "quiet",
    "platform", "source_date_epoch", "rm", "force_rm"} -> {"id", "tags", "steps", "cached"}."""
    from agent_payload.build import dockerfile
    from agent_payload.build.builder import Builder

    path = _check(ctx, req)
    text = read_dockerfile(path, req.dockerfile)
    df = dockerfile.parse(text, filename=os.path.basename(req.dockerfile or "Dockerfile"))
    builder = Builder(ctx, req, emit, df, path)
    store = ctx.images()
    try:
        with store.lease():  # no image GC between a step's commit and the next step's use of it
            return builder.build()
    finally:
        builder.close()
