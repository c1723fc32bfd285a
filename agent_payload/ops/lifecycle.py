"""Container lifecycle ops: create, start (-a), restart, kill, wait, rename, inspect, top, diff, export, prune,
update, stats, pause, unpause, exec.

Every op checks all of its input before it changes anything (a bad signal, a name clash, an existing export
target): bad input leaves the host as it was. start/restart/kill/pause/unpause (and stop/rm) act on each name
as its own operation, as docker does: a missing or refusing container fails only its own name (per_name).
"""

from agent_payload import errors
from agent_payload.ops.containers import containers_of
from agent_payload.ops.pername import per_name


def op_create(ctx, req, emit):
    """Create a container (pulling its image if missing) without starting it; returns {"id", "name", "image"}."""
    from agent_payload.ops.containers import create_container
    created = create_container(ctx, req, emit)
    return {"id": created["id"], "name": created["name"], "image": req.image}


def op_start(ctx, req, emit):
    """Start containers; with ``attach`` (one container) stream its output until it exits and return its code."""
    refs = containers_of(req)
    attach = req.attach
    if attach and len(refs) > 1:
        raise errors.InvalidArgument("you cannot start and attach multiple containers at once")
    attach_stdin = attach and req.attach_stdin
    if attach_stdin:
        from agent_payload.runtime import attach_client as attachmod
        attachmod.parse_detach_keys(req.detach_keys)
    runtime = ctx.runtime()
    _refresh_boot_hook(ctx)
    if not attach:
        return per_name(refs, lambda ref: runtime.start(ref)["id"], "started")
    rec = runtime.lookup(refs[0])
    cid = rec["id"]
    offset = runtime.log_offset(cid)  # docker start -a shows what this start prints, not the earlier runs
    runtime.start(cid)
    if attach_stdin:  # start -a -i: output events, stdin frames to the container's attach socket
        res = attachmod.attach_container(runtime, getattr(ctx, "stdin", None), cid, emit, stdin=True,
                                         detach_keys=req.detach_keys, replay=True, log_offset=offset)
        return dict(res, started=[cid])
    if (rec.get("log_config") or {}).get("Type") != "none":  # --log-driver none: nothing to stream
        for line in runtime.logs(cid, follow=True, offset=offset):
            emit("log", line)
    return {"started": [cid], "exit_code": runtime.wait(cid)}


def op_restart(ctx, req, emit):
    """Stop (stop signal, SIGKILL after ``time`` s) and start containers again."""
    runtime = ctx.runtime()
    _refresh_boot_hook(ctx)
    return per_name(containers_of(req), lambda ref: runtime.restart([ref], time=req.time), "restarted")


def _refresh_boot_hook(ctx):
    from agent_payload.runtime import boot
    boot.refresh(ctx.paths, ctx.launcher)


def op_kill(ctx, req, emit):
    """Send a signal (name or number, default KILL) to running containers."""
    from agent_payload.runtime.spec import signal_number

    refs = containers_of(req)
    sig = req.signal
    if isinstance(sig, bool) or not isinstance(sig, (str, int)):
        raise errors.InvalidArgument("argument signal must be a name or a number")
    signal_number(sig)
    runtime = ctx.runtime()
    return per_name(refs, lambda ref: runtime.kill([ref], str(sig)), "killed")


def op_wait(ctx, req, emit):
    """Block until each container has exited; returns their exit codes in order."""
    refs = containers_of(req)
    runtime = ctx.runtime()
    cids = [runtime.resolve(ref) for ref in refs]
    return {"exited": [{"id": cid, "exit_code": runtime.wait(cid)} for cid in cids]}


def op_rename(ctx, req, emit):
    """Rename a container: {"container", "name"} -> {"id", "old_name", "name"}."""
    return ctx.runtime().rename(req.container, req.name)


INSPECT_TYPES = {None: "object", "container": "container", "image": "image"}


def op_inspect(ctx, req, emit):
    """docker inspect: each name a container, else an image (docker's order; ``type`` keeps to one kind).

    Returns {"containers": [inspect objects, in the names' order], "errors": [{"name", "kind", "message"}]} (no
    "errors" key when all were found); NotFound ("No such object: x", docker's words) when none was.
    """
    refs = containers_of(req)
    kind = req.type or None
    if kind not in INSPECT_TYPES:
        raise errors.InvalidArgument('"{}" is not a valid value for --type'.format(kind))
    runtime = ctx.runtime()
    found, failures = [], []
    for ref in refs:
        obj = None
        if kind in (None, "container"):
            try:
                obj = runtime.inspect([ref])[0]
            except errors.NotFound:
                pass
        if obj is None and kind in (None, "image"):
            try:
                obj = ctx.images().inspect(ref)
            except (errors.NotFound, errors.InvalidArgument):  # not an image reference: no such image either
                pass
        if obj is None:
            failures.append({"name": ref, "kind": "NotFound",
                             "message": "No such {}: {}".format(INSPECT_TYPES[kind], ref)})
        else:
            found.append(obj)
    if failures and not found:
        raise errors.NotFound("; ".join(f["message"] for f in failures))
    out = {"containers": found}
    if failures:
        out["errors"] = failures
    return out


def op_top(ctx, req, emit):
    """The processes of a running container in the columns of the ps options (default ps -ef)."""
    return ctx.runtime().top(req.container, req.ps_args)


def op_diff(ctx, req, emit):
    """Files added (A), changed (C) and deleted (D) in a container's filesystem."""
    return {"changes": ctx.runtime().changes(req.container)}


def op_export(ctx, req, emit):
    """Write a container's filesystem as a tar to ``output`` on this host (``force`` replaces a file)."""
    return ctx.runtime().export(req.container, req.output, force=req.force)


def op_container_prune(ctx, req, emit):
    """Remove all stopped containers; returns their IDs and the bytes their upper dirs held."""
    return ctx.runtime().prune()


def op_update(ctx, req, emit):
    """Change resource limits (docker update's flags) of containers: persisted, and live on running ones."""
    from agent_payload.runtime import restart
    from agent_payload.runtime.spec import LIMIT_ARGS, limit_flags

    refs = containers_of(req)
    limits = req.pick(LIMIT_ARGS)
    if req.restart is None and all(value is None for value in limits.values()):
        raise errors.InvalidArgument("you must provide one or more flags when using this command")
    from agent_payload.runtime.cgroups import without_unsupported_weights
    change = without_unsupported_weights(limit_flags(update=True, **limits))
    policy = None if req.restart is None else restart.parse(req.restart)
    runtime = ctx.runtime()
    if policy is not None:
        restart.check_update(runtime, refs, policy)  # every container checked before any is changed
    if any(value is not None for value in limits.values()):
        result = runtime.update(refs, change)
    else:
        result = {"updated": [runtime.resolve(ref) for ref in refs], "warnings": []}
    if policy is not None:
        restart.update_policy(runtime, refs, policy)
        if policy["Name"] != "no":
            from agent_payload.runtime import boot
            boot.install_quietly(ctx.paths, ctx.launcher)
    return result


def op_stats(ctx, req, emit):
    """One resource-usage sample per container (docker stats --no-stream): given containers, else running (all)."""
    return ctx.runtime().stats(req.containers or None, all=req.all)


def op_pause(ctx, req, emit):
    """Freeze every process of running containers."""
    runtime = ctx.runtime()
    return per_name(containers_of(req), lambda ref: runtime.pause([ref]), "paused")


def op_unpause(ctx, req, emit):
    """Thaw paused containers."""
    runtime = ctx.runtime()
    return per_name(containers_of(req), lambda ref: runtime.unpause([ref]), "unpaused")


def op_attach(ctx, req, emit):
    """Attach to a running container (docker attach): output events, stdin frames if it has -i/-t."""
    from agent_payload.runtime import attach_client as attach

    attach.parse_detach_keys(req.detach_keys)
    runtime = ctx.runtime()
    rec = runtime.lookup(req.container)
    if rec.get("status") != "running":
        raise errors.Conflict("You cannot attach to a stopped container, start it first")
    if rec.get("paused"):
        raise errors.Conflict("You cannot attach to a paused container, unpause it first")
    res = attach.attach_container(runtime, getattr(ctx, "stdin", None), rec["id"], emit, stdin=req.stdin,
                                  detach_keys=req.detach_keys)
    return dict(res, id=rec["id"])


def op_exec(ctx, req, emit):
    """Run a command in a running container (docker exec): its namespaces, cgroup, user, caps, env.

    With ``interactive``/``tty`` stdin frames follow the request and the output is raw ``output`` events.

    Without ``detach`` the output streams as ``log`` events and the result is {"exit_code"}; with it the
    result is {"pid"} (host PID) at once and the process is reaped by the host's init, not by fleet.
    """
    from agent_payload.runtime import exec as execmod

    interactive, tty = req.interactive, req.tty
    execmod.check_request(req.command, req.env, req.workdir, req.user, req.detach, interactive, tty,
                          req.console_size)
    frames = None
    if interactive or tty:
        from agent_payload.runtime.tty import FrameReader, check_console_size
        check_console_size(req.console_size)
        if not req.detach and getattr(ctx, "stdin", None) is not None:
            frames = FrameReader(ctx.stdin)
    return execmod.execute(ctx.runtime().lookup(req.container), req.command, env=req.env, workdir=req.workdir,
                           user_spec=req.user, detach=req.detach, privileged=req.privileged, emit=emit,
                           interactive=interactive, tty_=tty, console_size=req.console_size, frames=frames)
