"""Protocol operations: each op takes validated args and an ``emit`` callback and returns result data.

This is where the image side and the runtime meet (the runtime never imports ``image``): ``run`` resolves
or pulls the image, turns its config and the user's overrides into a ContainerSpec, and starts it.
Heavy modules are imported inside the ops so that ``ping`` stays a bare interpreter start.
"""

import os
import sys

from agent_payload import errors


class Context:
    """What every op needs: the state paths, the payload's own identity, and how to re-launch it."""

    def __init__(self, paths, payload_sha, launcher):
        self.paths = paths
        self.payload_sha = payload_sha
        self.launcher = launcher

    def runtime(self):
        from agent_payload.runtime.containers import Runtime
        return Runtime(self.paths, self.launcher)

    def images(self):
        from agent_payload.image.images import ImageStore
        return ImageStore(self.paths)


# -- argument helpers ---------------------------------------------------------------------------------

def _str(args, key, default=None, required=False):
    value = args.get(key, default)
    if value is None:
        if required:
            raise errors.InvalidArgument("missing argument: {}".format(key))
        return None
    if not isinstance(value, str):
        raise errors.InvalidArgument("argument {} must be a string".format(key))
    return value


def _strlist(args, key, allow_none=False):
    value = args.get(key)
    if value is None:
        if allow_none:
            return None
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidArgument("argument {} must be a list of strings".format(key))
    return value


def _int(args, key, default=None, minimum=None):
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidArgument("argument {} must be an integer".format(key))
    if minimum is not None and value < minimum:
        raise errors.InvalidArgument("argument {} must be >= {}".format(key, minimum))
    return value


def container_argv(image_config, entrypoint=None, command=None):
    """Combine ENTRYPOINT and CMD exactly as Docker does.

    ``entrypoint`` (``--entrypoint``) replaces the image's ENTRYPOINT and also drops the image's CMD;
    ``[""]`` or ``[]`` resets it.  ``command`` (the args after the image) replaces the image's CMD.
    """
    cfg = image_config.get("config") or {}
    if entrypoint is not None:
        ep = [e for e in entrypoint if e != ""] if entrypoint != [""] else []
        cmd = list(command or [])
    else:
        ep = list(cfg.get("Entrypoint") or [])
        cmd = list(command) if command else list(cfg.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise errors.InvalidArgument("no command specified: the image has no CMD or ENTRYPOINT and none was given")
    return argv


def merge_env(image_env, overrides):
    """Image ENV first, then ``-e`` values; a later KEY replaces an earlier one in place."""
    merged = {}
    for entry in list(image_env or []) + list(overrides or []):
        key, sep, value = entry.partition("=")
        if not key or not sep:
            raise errors.InvalidArgument('invalid environment variable "{}": expected KEY=VALUE'.format(entry))
        merged[key] = value
    return ["{}={}".format(k, v) for k, v in merged.items()]


# -- ops -----------------------------------------------------------------------------------------------

def op_ping(ctx, args, emit):
    return {"hostname": os.uname().nodename, "payload": ctx.payload_sha,
            "python": "{}.{}.{}".format(*sys.version_info[:3])}


def op_facts(ctx, args, emit):
    from agent_payload import facts
    return facts.gather(ctx.paths)


def op_pull(ctx, args, emit):
    from agent_payload.image import reference
    ref = reference.parse(_str(args, "image", required=True))
    record, info = ctx.images().pull(ref.string(), emit)
    return {"image": record.reference, "id": record.id, "digest": record.digest,
            "endpoint": info.get("endpoint"), "layers": info.get("layers"), "downloaded": info.get("downloaded")}


def op_images(ctx, args, emit):
    return {"images": ctx.images().list(all=bool(args.get("all")))}


def op_run(ctx, args, emit):
    from agent_payload.image import reference
    from agent_payload.runtime.spec import ContainerSpec, check_name, check_user_fields

    image = _str(args, "image", required=True)
    ref = reference.parse(image)
    name = check_name(_str(args, "name"))
    env = _strlist(args, "env")
    command = _strlist(args, "command", allow_none=True)
    entrypoint = _strlist(args, "entrypoint", allow_none=True)
    # Everything the user typed is checked before anything is pulled or created: bad input changes nothing.
    check_user_fields(env=env, workdir=_str(args, "workdir"), hostname=_str(args, "hostname"))
    store = ctx.images()
    try:
        record = store.resolve(ref.string())
    except errors.NotFound:
        record, _info = store.pull(ref.string(), emit)
    cfg = record.config.get("config") or {}
    spec = ContainerSpec(
        name=name,
        image=image,
        image_id=record.id,
        lowerdirs=list(record.layers),
        argv=container_argv(record.config, entrypoint, command),
        env=merge_env(cfg.get("Env"), env),
        workdir=_str(args, "workdir") or cfg.get("WorkingDir") or "/",
        hostname=_str(args, "hostname"),
        auto_remove=bool(args.get("rm")),
        labels=dict(cfg.get("Labels") or {}),
        stop_signal=cfg.get("StopSignal") or "SIGTERM",
    )
    runtime = ctx.runtime()
    created = runtime.create(spec)
    started = runtime.start(created["id"])
    result = {"id": started["id"], "name": started["name"], "image": image, "exit_code": None}
    if args.get("detach"):
        return result
    for line in runtime.logs(started["id"], follow=True):
        emit("log", line)
    result["exit_code"] = runtime.wait(started["id"])
    return result


def op_ps(ctx, args, emit):
    return {"containers": ctx.runtime().list(all=bool(args.get("all")))}


def op_logs(ctx, args, emit):
    container = _str(args, "container", required=True)
    tail = _int(args, "tail", minimum=0)
    for line in ctx.runtime().logs(container, tail=tail, follow=bool(args.get("follow")),
                                   timestamps=bool(args.get("timestamps"))):
        emit("log", line)
    return {}


def op_stop(ctx, args, emit):
    refs = _strlist(args, "containers")
    if not refs:
        raise errors.InvalidArgument("stop requires at least one container")
    return {"stopped": ctx.runtime().stop(refs, time=_int(args, "time", default=10, minimum=0))}


def op_rm(ctx, args, emit):
    refs = _strlist(args, "containers")
    if not refs:
        raise errors.InvalidArgument("rm requires at least one container")
    return {"removed": ctx.runtime().remove(refs, force=bool(args.get("force")))}


OPS = {
    "ping": op_ping,
    "facts": op_facts,
    "pull": op_pull,
    "images": op_images,
    "run": op_run,
    "ps": op_ps,
    "logs": op_logs,
    "stop": op_stop,
    "rm": op_rm,
}


def dispatch(ctx, op, args, emit):
    """Run ``op``; unknown ops are InvalidArgument."""
    handler = OPS.get(op)
    if handler is None:
        raise errors.InvalidArgument("unknown op {!r}".format(op))
    if not isinstance(args, dict):
        raise errors.InvalidArgument("args must be an object")
    return handler(ctx, args, emit)


def payload_identity(argv0):
    """Return (sha, path) of the running payload: the zipapp's name is its sha256; "dev" from source."""
    path = os.path.abspath(argv0)
    base = os.path.basename(path)
    if base.endswith(".pyz") and os.path.isfile(path):
        return base[:-4], path
    return "dev", None
