"""RUN: the step's command in a container of the fleet runtime, its changes committed as the step's layer.

As docker's dispatchRun: the container has the stage's run config (ENV, USER, WORKDIR, VOLUMEs, no
healthcheck, no entrypoint) with the build args in scope added to its environment (ENV wins); the history and
cache key carry ``|N K=V ...`` before the command when args are in scope.  Its output is streamed as build
events; a non-zero exit fails the build with docker's "The command '...' returned a non-zero code: N".  The
container is removed after a success (``rm``) and after a failure only with ``force_rm``, as docker.
"""

from .. import errors
from . import history as H


SCRIPT_PATH = "/.fleet-heredoc"  # a shebang heredoc's file in the step's upper dir, never in its layer


def _script(inst, cmd):
    """A RUN with heredocs (BuildKit) -> (cmd, script): ``RUN <<EOF`` alone runs the heredoc as the shell's
    script, or, when it starts with ``#!``, as an executable file (``script``: its text, run as SCRIPT_PATH);
    otherwise the heredocs stay in the shell text for the shell to feed."""
    docs = list(getattr(inst, "heredocs", None) or [])
    if not docs or inst.json:
        return cmd, None
    line = cmd[-1].strip()
    if len(docs) == 1 and line.lstrip("<-").strip("'\"") == docs[0].name and line.startswith("<<"):
        if docs[0].content.startswith("#!"):
            return cmd[:-1] + [docs[0].content], docs[0].content
        return cmd[:-1] + [docs[0].content], None
    text = cmd[-1]
    for d in docs:
        text += "\n" + d.content + ("" if d.content.endswith("\n") or not d.content else "\n") + d.name
    return cmd[:-1] + [text], None


def _write_script(upper, text):
    import os
    path = os.path.join(upper, SCRIPT_PATH.lstrip("/"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        os.fchmod(f.fileno(), 0o755)
        f.write(text)


def precheck(inst):
    """RUN's flags, before anything runs: --network's value, --mount and --security as fleet cannot honour."""
    if inst.flags.get("mount"):
        raise errors.InvalidArgument("Dockerfile:{}: RUN --mount is not supported by fleet build".format(inst.line))
    security = inst.flags.get("security")
    if security not in (None, "sandbox"):
        raise errors.InvalidArgument("Dockerfile:{}: RUN --security={} is not allowed (no entitlement)".format(
            inst.line, security))
    if inst.flags.get("network") not in (None, "default", "none", "host"):
        raise errors.InvalidArgument("Dockerfile:{}: RUN --network={} not supported (default, none, host)".format(
            inst.line, inst.flags.get("network")))


def run(b, st, inst, cmd):
    cmd, script = _script(inst, cmd)
    precheck(inst)
    network = inst.flags.get("network") or b.req.network or "default"  # RUN --network (BuildKit) first
    mode = {"default": "bridge", "none": "none", "host": "host"}.get(network)
    if mode is None:
        raise errors.InvalidArgument("network mode {!r} not supported by the builder (default, none, host)"
                                     .format(network))
    if mode == "bridge" and b.store.config.bridge == "none":
        mode = "none"
    if st.image_id is None:
        raise errors.FailedPrecondition("Please provide a source image with `from` prior to run")
    arg_env = st.build_args.filter_allowed(st.config.get("Env"))
    save_cmd = H.prepend_env_on_cmd(st.build_args, arg_env, cmd) if arg_env else list(cmd)
    probe_cfg = dict(st.config, Cmd=save_cmd, Image=st.image_id)
    if b.probe(st, probe_cfg) is not None:
        return
    runtime = b.ctx.runtime()
    created = _create(b, st, runtime, [SCRIPT_PATH] if script is not None else cmd, arg_env, mode)
    cid = created["id"]
    ok = False
    try:
        if script is not None:
            from ..runtime.records import Layout
            _write_script(Layout(b.ctx.paths, cid).diff, script)
        b.out(" ---> Running in {}\n".format(cid[:12]))
        runtime.start(cid)
        for line in runtime.logs(cid, follow=True):
            b.out(line.get("line", ""))
        code = runtime.wait(cid)
        if code != 0:
            raise errors.Conflict("The command '{}' returned a non-zero code: {}".format(" ".join(cmd), code))
        _commit(b, st, runtime, cid, save_cmd, probe_cfg)
        ok = True
    finally:
        if ok and b.req.rm or not ok and b.req.force_rm:
            try:
                runtime.remove([cid], force=True, volumes=True)
                if ok:
                    b.out("Removing intermediate container {}\n".format(cid[:12]))
            except errors.AgentError:
                pass


def _create(b, st, runtime, cmd, arg_env, mode):
    from ..ops.containers import merge_env
    from ..runtime import volumes
    from ..runtime.spec import ContainerSpec

    cfg = st.config
    spec = ContainerSpec(
        name=None, image=st.image_id, image_id=st.image_id, lowerdirs=list(st.layers), argv=list(cmd),
        env=merge_env(cfg.get("Env"), arg_env), workdir=cfg.get("WorkingDir") or "/",
        user=cfg.get("User") or None, network=mode, networks={}, ports=[], labels={},
        healthcheck=None, mounts=volumes.plan([], [], {_volume_target(t): {} for t in cfg.get("Volumes") or {}}))
    return runtime.create(spec, extra={"entrypoint": None, "cmd": list(cmd), "build": True})


def _volume_target(path):
    """A VOLUME as the step's container mounts it: a relative one is under "/" (docker joins it to the rootfs)."""
    import posixpath
    return posixpath.normpath("/" + path.lstrip("/"))


def _commit(b, st, runtime, cid, save_cmd, probe_cfg):
    from ..runtime.containers import INIT_PATHS
    from ..runtime.records import Layout

    rec = runtime.lookup(cid)
    upper = Layout(b.ctx.paths, cid).diff
    lowers = list(reversed(rec.get("lowerdirs") or []))
    # a VOLUME's mountpoint the runtime made stays in the layer (docker's RUN commits the directory runc made
    # in the container's layer); what the step wrote under it went to the volume, not into the upper dir
    skip = set(INIT_PATHS) | {SCRIPT_PATH}
    b.commit(st, st.config, save_cmd, write_tar=b.layer_writer(upper, lowers, frozenset(skip)),
             container_id=cid, probe_config=probe_cfg)
