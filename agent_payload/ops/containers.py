"""Container ops: run (image -> spec -> runtime), ps, logs, stop, rm."""

from agent_payload import errors
from agent_payload.ops.pername import per_name


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


def stdio_flags(req):
    """-i/-t of a ``run``/``create`` request: {"tty", "open_stdin", "stdin_once", "attach_stdin", "console_size"}.

    As docker: ``run -i`` without -d attaches stdin, and then stdin is StdinOnce (closed when that client's
    stdin ends); ``run -dit`` keeps it open for later ``attach`` clients.  ``create -i`` counts as attached.
    """
    from agent_payload.runtime.tty import check_console_size

    attach_stdin = req.open_stdin and not req.detach
    return {"tty": req.tty, "open_stdin": req.open_stdin, "stdin_once": attach_stdin, "attach_stdin": attach_stdin,
            "console_size": check_console_size(req.console_size) if req.tty else None}


def exposed_ports(values):
    """``expose``/--expose values as ExposedPorts keys (portspec.exposed_ports: the controller checks them too)."""
    from agent_payload.portspec import exposed_ports as parse

    return parse(values)


def _norm(target):
    import os
    return os.path.normpath(target)


def volumes_from(runtime, entries):
    """--volumes-from CONTAINER[:ro|rw]: that container's volume and bind mounts (not its tmpfs), each read-only
    or read-write as there unless the suffix says otherwise (docker's daemon)."""
    out = []
    for entry in entries or []:
        ref, _, mode = entry.partition(":")
        rec = runtime.lookup(ref)  # NotFound: "No such container: REF"
        for m in rec.get("mounts") or []:
            if m.get("type") not in ("volume", "bind"):
                continue
            m = {k: v for k, v in m.items() if k != "host_path"}
            if mode:
                m["readonly"] = mode == "ro"
            m.update(flag="volumes_from", target=_norm(m["target"]))
            if all(o["target"] != m["target"] for o in out):
                out.append(m)
    return out


def with_inherited(own, inherited):
    """A container's own mounts, and the inherited ones at destinations it does not mount itself."""
    targets = {_norm(m["target"]) for m in own}
    return list(own) + [m for m in inherited if m["target"] not in targets]


def run_platform(value):
    """--platform: None, or the host's own os/arch[/variant] as pull's (os, arch, variant); another platform is
    refused (fleet runs no emulated images)."""
    if value is None:
        return None
    from agent_payload import hostopts
    from agent_payload.image.pull import parse_platform
    from agent_payload.image.registry import host_platform

    wanted, host = parse_platform(hostopts.check_platform(value)), host_platform()
    if wanted[:2] != host[:2] or (wanted[2] and host[2] and wanted[2] != host[2]):
        raise errors.InvalidArgument('invalid argument "{}" for "--platform" flag: this host runs {} images only '
                                     '(no emulation)'.format(value, "/".join(p for p in host if p)))
    return wanted


# -- ops -----------------------------------------------------------------------------------------------

def create_container(ctx, req, emit):
    """``create`` and ``run``: check every user field, resolve or pull the image, create the container.

    Everything the user typed is checked before anything is pulled or created: bad input changes nothing.
    ``req`` is the decoded ``run``/``create`` request.  Returns the runtime's record of the new container.
    """
    from agent_payload.image import reference
    from agent_payload.runtime import health, logconfig, restart as restartmod, volumes
    from agent_payload.runtime.spec import (ISOLATION_ARGS, LIMIT_ARGS, ContainerSpec, check_labels, check_name,
                                            check_stop_timeout, check_user_fields, isolation_flags, limit_flags,
                                            signal_number)
    from agent_payload.ops.netvol import network_flags

    ref = reference.parse(req.image)
    name = check_name(req.name)
    env, command, entrypoint = req.env, req.command, req.entrypoint
    workdir, hostname = req.workdir, req.hostname
    check_user_fields(env=env, workdir=workdir, hostname=hostname)
    isolation = isolation_flags(**req.pick(ISOLATION_ARGS))
    # --memory, --cpus, ...: bad values fail here, before any pull
    resources = limit_flags(oom_kill_disable=req.oom_kill_disable, **req.pick(LIMIT_ARGS))
    if resources.oom_kill_disable:
        from agent_payload.runtime import cgroups
        if cgroups.detect().mode == "v2":  # no such switch on v2: docker discards it ("OomKillDisable discarded")
            resources = resources.replace(oom_kill_disable=None)
    from agent_payload.runtime.cgroups import without_unsupported_weights
    resources = without_unsupported_weights(resources)  # docker: "Weight discarded" where the kernel has none
    from agent_payload import hostopts
    host_options = hostopts.from_flags(**req.pick(hostopts.ARGS))  # --add-host, --tmpfs, --ulimit, ...
    hostopts.check_network(host_options["sysctls"], isolation["network"], host_options["links"])
    for device in host_options["devices"]:
        hostopts.device_node(device)  # a missing host device: bad input, nothing created
    pull_policy, platform = hostopts.check_pull(req.pull), run_platform(req.platform)
    stdio = stdio_flags(req)  # -i/-t: tty, open_stdin, stdin_once (+ console_size, attach_stdin for config)
    auto_remove = req.rm
    labels = check_labels(req.labels)  # -l/--label-file, parsed by the controller
    stop_signal = req.stop_signal
    if stop_signal is not None:
        signal_number(stop_signal)
    stop_timeout = check_stop_timeout(req.stop_timeout)
    restart_policy = restartmod.parse(req.restart)  # --restart: docker's checks, before any pull
    restartmod.check_auto_remove(restart_policy, auto_remove)
    user_health = health.from_flags(**req.pick(health.FLAG_ARGS))  # --health-*, --no-healthcheck: before any pull
    if req.healthcheck is not None:  # compose's healthcheck, docker's object: in place of the flags' result
        user_health = health.check(req.healthcheck)
    expose = exposed_ports(req.expose)  # compose's expose: added to the image's EXPOSE (-P publishes them too)
    log_config = logconfig.from_flags(req.log_driver, req.log_opts, ctx.paths)  # over daemon.json's log-driver/opts
    network = network_flags(ctx, req, isolation["network"])  # -p/-P/--network/--network-alias/--ip, before any pull
    volumes.plan(req.volumes, req.mounts)  # -v/--mount: bad specs and missing --mount sources fail before a pull
    inherited = volumes_from(ctx.runtime(), host_options["volumes_from"])  # NotFound before a pull
    for link in host_options["links"]:
        ctx.runtime().lookup(link.partition(":")[0])  # --link: "No such container" now, running at start
    store = ctx.images()
    if req.init is None:
        isolation["init"] = store.config.init  # daemon.json "init": true
    with store.lease():  # keeps image GC (rmi, prune) from deleting the layers between resolving and create
        record = None
        if pull_policy != "always":
            try:
                record = store.resolve(ref.string())
            except errors.NotFound:
                if pull_policy == "never":
                    raise errors.NotFound("No such image: {}".format(ref.familiar()))
        if record is None:
            from agent_payload.image import pull  # only when the image is missing: run of a present image skips it
            record, _info = pull.Puller(store).pull(ref.string(), emit, platform)
        cfg = record.config.get("config") or {}
        if expose:
            cfg = dict(cfg, ExposedPorts=dict(cfg.get("ExposedPorts") or {}, **{p: {} for p in expose}))
        spec = ContainerSpec(
            name=name, image=req.image, image_id=record.id, lowerdirs=list(record.layers),
            argv=container_argv(record.config, entrypoint, command),
            env=merge_env(cfg.get("Env"), env + (["TERM=xterm"] if stdio["tty"] and not any(
                e.startswith("TERM=") for e in list(cfg.get("Env") or []) + env) else [])),  # docker does for -t
            workdir=workdir or cfg.get("WorkingDir") or "/",
            hostname=hostname, auto_remove=auto_remove,
            labels=dict(cfg.get("Labels") or {}, **labels),  # --label beats the image's LABEL
            stop_signal=stop_signal or cfg.get("StopSignal") or "SIGTERM",
            stop_timeout=stop_timeout,
            limits=resources.to_dict(), tty=stdio["tty"], open_stdin=stdio["open_stdin"],
            publish_staged=req.publish_staged,  # start-first deploys: ports recorded, routed at the handover
            stdin_once=stdio["stdin_once"], restart_policy=restart_policy,
            healthcheck=health.merge(user_health, cfg.get("Healthcheck")), log_config=log_config,
            mounts=with_inherited(volumes.plan(req.volumes, req.mounts, {
                t: {} for t in cfg.get("Volumes") or {} if _norm(t) not in {m["target"] for m in inherited}}),
                inherited),  # -v/--mount, then --volumes-from's, then the image's VOLUMEs
            **host_options,
            **dict(isolation, user=isolation["user"] or cfg.get("User") or None,  # --user beats the image's USER
                   **network(dict(record.config, config=cfg))),
        )
        # What docker's Config.Entrypoint/Cmd show: the effective values after --entrypoint and the command.
        if entrypoint is not None:
            ep, cmd = [e for e in entrypoint if e] or None, list(command) if command else None
        else:
            ep = list(cfg.get("Entrypoint") or []) or None
            cmd = list(command) if command else (list(cfg.get("Cmd") or []) or None)
        # docker's Config.ExposedPorts: the image's EXPOSE, --expose and every published container port
        exposed = set(cfg.get("ExposedPorts") or {}) | {"{}/{}".format(b["container_port"], b["proto"])
                                                         for b in spec.ports or []}
        created = ctx.runtime().create(spec, extra={"entrypoint": ep, "cmd": cmd,
                                                    "console_size": stdio["console_size"],
                                                    "attach_stdin": stdio["attach_stdin"],
                                                    "exposed_ports": sorted(exposed)})
    if restart_policy["Name"] != "no":
        from agent_payload.runtime import boot
        boot.install_quietly(ctx.paths, ctx.launcher)  # so that the policy also holds across reboots
    return created


def op_run(ctx, req, emit):
    """Create and start a container, pulling its image if missing; without detach, stream its output.

    With -i/-t and without detach: attached (runtime/attach.py) until it exits or the detach keys arrive.
    """
    from agent_payload.runtime import attach_client as attach

    attached = not req.detach and (req.tty or req.open_stdin)
    if attached:
        attach.parse_detach_keys(req.detach_keys)
    created = create_container(ctx, req, emit)
    emit("created", {"id": created["id"]})  # before the start: the controller's --cidfile gets it now, as docker's
    runtime = ctx.runtime()
    started = runtime.start(created["id"])
    from agent_payload.runtime.status import ports_text
    result = {"id": started["id"], "name": started["name"], "image": req.image, "exit_code": None,
              "ports": ports_text(started)}  # the host ports it got: docker's PORTS text
    if req.detach:
        return result
    emit("container", {"id": started["id"], "name": started["name"]})  # whom the controller forwards signals to
    if attached:
        result.update(attach.attach_container(runtime, getattr(ctx, "stdin", None), started["id"], emit,
                                              stdin=req.open_stdin, detach_keys=req.detach_keys, replay=True,
                                              log_offset=0))
        return result
    if (created.get("log_config") or {}).get("Type") != "none":  # --log-driver none: nothing to stream
        for line in runtime.logs(started["id"], follow=True):
            emit("log", line)
    result["exit_code"] = runtime.wait(started["id"])
    return result


def op_ps(ctx, req, emit):
    """List containers: running, or all; ``filters`` (docker's -f), ``last`` (-n N / -l), ``size`` (-s)."""
    from agent_payload.image import reference
    from agent_payload.runtime.status import PsFilters, size_text

    runtime, store = ctx.runtime(), ctx.images()

    def normalize(ref):
        try:
            return reference.parse(ref).string()
        except errors.InvalidArgument:
            return ref

    def ancestor_of(value):
        # docker resolves the value to an image; a reference also matches containers of a since-retagged image
        refs = {value, normalize(value)}
        try:
            refs.add(store.resolve(value).id)
        except errors.AgentError:
            pass
        return refs

    filters = PsFilters(req.filters, resolve=runtime.lookup, ancestor_of=ancestor_of, normalize=normalize)
    rows = runtime.list(all=req.all, filters=filters, last=req.last, size=req.size)
    if req.size:
        image_sizes = {}
        for row in rows:
            image_id = row.get("image_id")
            if image_id not in image_sizes:
                try:
                    image_sizes[image_id] = store.resolve(image_id).size
                except errors.AgentError:
                    image_sizes[image_id] = 0  # the image was removed (rmi -f): only the container's own bytes
            row["size_root_fs"] = row["size_rw"] + image_sizes[image_id]
            row["size"] = size_text(row["size_rw"], row["size_root_fs"])
    return {"containers": rows}


def op_logs(ctx, req, emit):
    """Stream a container's log lines as events (tail, follow, timestamps, since, until, details)."""
    from agent_payload.runtime.logs import parse_timestamp

    since = parse_timestamp(req.since) if req.since else None
    until = parse_timestamp(req.until) if req.until else None
    # details: docker adds the log driver's extra attributes (log-opts labels/env); json-file here has none
    for line in ctx.runtime().logs(req.container, tail=req.tail, follow=req.follow, timestamps=req.timestamps,
                                   since=since, until=until):
        emit("log", line)
    return {}


def containers_of(req):
    """The request's ``containers``: at least one (InvalidArgument "<op> requires at least one container")."""
    if not req.containers:
        raise errors.InvalidArgument("{} requires at least one container".format(req.op))
    return req.containers


def op_stop(ctx, req, emit):
    """Stop containers: stop signal, then SIGKILL after ``time`` seconds; per-name results."""
    runtime = ctx.runtime()
    return per_name(containers_of(req), lambda ref: runtime.stop([ref], time=req.time), "stopped")


def op_rm(ctx, req, emit):
    """Remove containers (force kills running ones first; ``volumes``: their anonymous volumes too); per name."""
    runtime = ctx.runtime()
    return per_name(containers_of(req), lambda ref: runtime.remove([ref], force=req.force, volumes=req.volumes),
                    "removed")
