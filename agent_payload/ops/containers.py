"""Container ops: run (image -> spec -> runtime), ps, logs, stop, rm."""

from agent_payload import errors
from agent_payload.ops.args import integer, string, string_list


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

def op_run(ctx, args, emit):
    """Create and start a container, pulling its image if missing; without detach, stream its output."""
    from agent_payload.image import reference
    from agent_payload.runtime.spec import ContainerSpec, check_name, check_user_fields

    image = string(args, "image", required=True)
    ref = reference.parse(image)
    name = check_name(string(args, "name"))
    env = string_list(args, "env")
    command = string_list(args, "command", allow_none=True)
    entrypoint = string_list(args, "entrypoint", allow_none=True)
    # Everything the user typed is checked before anything is pulled or created: bad input changes nothing.
    check_user_fields(env=env, workdir=string(args, "workdir"), hostname=string(args, "hostname"))
    store = ctx.images()
    runtime = ctx.runtime()
    # The lease keeps image GC (rmi, prune) from deleting the layers between resolving and create.
    with store.lease():
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
            workdir=string(args, "workdir") or cfg.get("WorkingDir") or "/",
            hostname=string(args, "hostname"),
            auto_remove=bool(args.get("rm")),
            labels=dict(cfg.get("Labels") or {}),
            stop_signal=cfg.get("StopSignal") or "SIGTERM",
        )
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
    """List containers (running, or all)."""
    return {"containers": ctx.runtime().list(all=bool(args.get("all")))}


def op_logs(ctx, args, emit):
    """Stream a container's log lines as events (tail, follow, timestamps)."""
    container = string(args, "container", required=True)
    tail = integer(args, "tail", minimum=0)
    for line in ctx.runtime().logs(container, tail=tail, follow=bool(args.get("follow")),
                                   timestamps=bool(args.get("timestamps"))):
        emit("log", line)
    return {}


def op_stop(ctx, args, emit):
    """Stop containers: stop signal, then SIGKILL after ``time`` seconds."""
    refs = string_list(args, "containers")
    if not refs:
        raise errors.InvalidArgument("stop requires at least one container")
    return {"stopped": ctx.runtime().stop(refs, time=integer(args, "time", default=10, minimum=0))}


def op_rm(ctx, args, emit):
    """Remove containers (force kills running ones first)."""
    refs = string_list(args, "containers")
    if not refs:
        raise errors.InvalidArgument("rm requires at least one container")
    return {"removed": ctx.runtime().remove(refs, force=bool(args.get("force")))}
