"""Container lifecycle ops: create, start (-a), restart, kill, wait, rename, inspect, top, diff, export, prune,
update, stats, pause, unpause, exec.

Every op resolves and checks all of its input before it changes anything (an unknown container among
several, a bad signal, a name clash, an existing export target): bad input leaves the host as it was.
"""

from agent_payload import errors
from agent_payload.ops.args import boolean, integer, string, string_list


def _containers(args, op):
    refs = string_list(args, "containers")
    if not refs:
        raise errors.InvalidArgument("{} requires at least one container".format(op))
    return refs


def op_create(ctx, args, emit):
    """Create a container (pulling its image if missing) without starting it; returns {"id", "name", "image"}."""
    from agent_payload.ops.containers import create_container
    created = create_container(ctx, args, emit)
    return {"id": created["id"], "name": created["name"], "image": args["image"]}


def op_start(ctx, args, emit):
    """Start containers; with ``attach`` (one container) stream its output until it exits and return its code."""
    refs = _containers(args, "start")
    attach = boolean(args, "attach")
    if attach and len(refs) > 1:
        raise errors.InvalidArgument("you cannot start and attach multiple containers at once")
    attach_stdin = attach and boolean(args, "attach_stdin")
    if attach_stdin:
        from agent_payload.runtime import attach_client as attachmod
        attachmod.parse_detach_keys(string(args, "detach_keys"))
    runtime = ctx.runtime()
    recs = [runtime.lookup(ref) for ref in refs]
    if not attach:
        return {"started": [runtime.start(rec["id"])["id"] for rec in recs]}
    cid = recs[0]["id"]
    offset = runtime.log_offset(cid)  # docker start -a shows what this start prints, not the earlier runs
    runtime.start(cid)
    if attach_stdin:  # start -a -i: output events, stdin frames to the container's attach socket
        res = attachmod.attach_container(runtime, getattr(ctx, "stdin", None), cid, emit, stdin=True,
                                         detach_keys=string(args, "detach_keys"), replay=True, log_offset=offset)
        return dict(res, started=[cid])
    if (recs[0].get("log_config") or {}).get("Type") != "none":  # --log-driver none: nothing to stream
        for line in runtime.logs(cid, follow=True, offset=offset):
            emit("log", line)
    return {"started": [cid], "exit_code": runtime.wait(cid)}


def op_restart(ctx, args, emit):
    """Stop (stop signal, SIGKILL after ``time`` s) and start containers again."""
    refs = _containers(args, "restart")
    return {"restarted": ctx.runtime().restart(refs, time=integer(args, "time", minimum=0))}


def op_kill(ctx, args, emit):
    """Send a signal (name or number, default KILL) to running containers."""
    from agent_payload.runtime.spec import signal_number

    refs = _containers(args, "kill")
    sig = args.get("signal", "KILL")
    if sig is None:
        sig = "KILL"
    if isinstance(sig, bool) or not isinstance(sig, (str, int)):
        raise errors.InvalidArgument("argument signal must be a name or a number")
    signal_number(sig)
    return {"killed": ctx.runtime().kill(refs, str(sig))}


def op_wait(ctx, args, emit):
    """Block until each container has exited; returns their exit codes in order."""
    refs = _containers(args, "wait")
    runtime = ctx.runtime()
    cids = [runtime.resolve(ref) for ref in refs]
    return {"exited": [{"id": cid, "exit_code": runtime.wait(cid)} for cid in cids]}


def op_rename(ctx, args, emit):
    """Rename a container: {"container", "name"} -> {"id", "old_name", "name"}."""
    return ctx.runtime().rename(string(args, "container", required=True), string(args, "name", required=True))


def op_inspect(ctx, args, emit):
    """Docker's inspect objects of containers."""
    return {"containers": ctx.runtime().inspect(_containers(args, "inspect"))}


def op_top(ctx, args, emit):
    """The processes of a running container, ps -ef style."""
    return ctx.runtime().top(string(args, "container", required=True))


def op_diff(ctx, args, emit):
    """Files added (A), changed (C) and deleted (D) in a container's filesystem."""
    return {"changes": ctx.runtime().changes(string(args, "container", required=True))}


def op_export(ctx, args, emit):
    """Write a container's filesystem as a tar to ``output`` on this host (``force`` replaces a file)."""
    container = string(args, "container", required=True)
    output = string(args, "output", required=True)
    return ctx.runtime().export(container, output, force=boolean(args, "force"))


def op_container_prune(ctx, args, emit):
    """Remove all stopped containers; returns their IDs and the bytes their upper dirs held."""
    return ctx.runtime().prune()


def op_update(ctx, args, emit):
    """Change resource limits (docker update's flags) of containers: persisted, and live on running ones."""
    from agent_payload.runtime.spec import LIMIT_ARGS, limit_args

    from agent_payload.runtime import restart

    refs = _containers(args, "update")
    if all(args.get(key) is None for key in LIMIT_ARGS + ("restart",)):
        raise errors.InvalidArgument("you must provide one or more flags when using this command")
    change = limit_args(args, update=True)
    policy = None if args.get("restart") is None else restart.parse(args.get("restart"))
    runtime = ctx.runtime()
    if policy is not None:
        restart.check_update(runtime, refs, policy)  # every container checked before any is changed
    if any(args.get(key) is not None for key in LIMIT_ARGS):
        result = runtime.update(refs, change)
    else:
        result = {"updated": [runtime.resolve(ref) for ref in refs], "warnings": []}
    if policy is not None:
        restart.update_policy(runtime, refs, policy)
        if policy["Name"] != "no":
            from agent_payload.runtime import boot
            boot.install_quietly(ctx.paths, ctx.launcher)
    return result


def op_stats(ctx, args, emit):
    """One resource-usage sample per container (docker stats --no-stream): given containers, else running (all)."""
    refs = string_list(args, "containers")
    return ctx.runtime().stats(refs or None, all=boolean(args, "all"))


def op_pause(ctx, args, emit):
    """Freeze every process of running containers."""
    return {"paused": ctx.runtime().pause(_containers(args, "pause"))}


def op_unpause(ctx, args, emit):
    """Thaw paused containers."""
    return {"unpaused": ctx.runtime().unpause(_containers(args, "unpause"))}


def op_attach(ctx, args, emit):
    """Attach to a running container (docker attach): output events, stdin frames if it has -i/-t."""
    from agent_payload.runtime import attach_client as attach

    container = string(args, "container", required=True)
    stdin = args.get("stdin", True) is not False
    detach_keys = string(args, "detach_keys")
    attach.parse_detach_keys(detach_keys)
    runtime = ctx.runtime()
    rec = runtime.lookup(container)
    if rec.get("status") != "running":
        raise errors.Conflict("You cannot attach to a stopped container, start it first")
    if rec.get("paused"):
        raise errors.Conflict("You cannot attach to a paused container, unpause it first")
    res = attach.attach_container(runtime, getattr(ctx, "stdin", None), rec["id"], emit, stdin=stdin,
                                  detach_keys=detach_keys)
    return dict(res, id=rec["id"])


def op_exec(ctx, args, emit):
    """Run a command in a running container (docker exec): its namespaces, cgroup, user, caps, env.

    With ``interactive``/``tty`` stdin frames follow the request and the output is raw ``output`` events.

    Without ``detach`` the output streams as ``log`` events and the result is {"exit_code"}; with it the
    result is {"pid"} (host PID) at once and the process is reaped by the host's init, not by fleet.
    """
    from agent_payload.runtime import exec as execmod

    container = string(args, "container", required=True)
    command = string_list(args, "command")
    env = string_list(args, "env")
    workdir, user = string(args, "workdir"), string(args, "user")
    detach, privileged = boolean(args, "detach"), boolean(args, "privileged")
    interactive, tty = boolean(args, "interactive"), boolean(args, "tty")
    execmod.check_request(command, env, workdir, user, detach, interactive, tty, args.get("console_size"))
    frames = None
    if interactive or tty:
        from agent_payload.runtime.tty import FrameReader, check_console_size
        check_console_size(args.get("console_size"))
        if not detach and getattr(ctx, "stdin", None) is not None:
            frames = FrameReader(ctx.stdin)
    return execmod.execute(ctx.runtime().lookup(container), command, env=env, workdir=workdir, user_spec=user,
                           detach=detach, privileged=privileged, emit=emit, interactive=interactive, tty_=tty,
                           console_size=args.get("console_size"), frames=frames)
