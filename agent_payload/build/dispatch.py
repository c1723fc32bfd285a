"""One handler per Dockerfile instruction, as moby's builder/dockerfile/dispatchers.go.

``do_<instruction>(builder, stage, inst)`` substitutes variables where docker does (with the stage's ENV and
the build args in scope), updates the stage's run config and commits the step through the builder: a metadata
step commits an empty layer with ``#(nop)  <INSTRUCTION ...>`` as its history; RUN, COPY, ADD and WORKDIR (when
it creates the directory) commit a layer.
"""

import posixpath

from .. import errors
from . import history as H


def _expand(b, st, word):
    from . import shellwords
    return shellwords.expand(word, b.env(st), b.df.escape)


def _words(b, st, inst):
    from . import shellwords
    if inst.json:
        return [_expand(b, st, w) for w in inst.args]
    return shellwords.expand_words(inst.args[0] if inst.args else "", b.env(st), b.df.escape)


def _pairs(b, st, inst):
    if getattr(inst, "key", None) is not None:  # a --label of the build: no substitution
        return [(inst.key, inst.value)]
    from . import dockerfile
    return dockerfile.key_values(inst, b.env(st), b.df.escape)


def _bad(inst, message):
    return errors.InvalidArgument("Dockerfile:{}: {}: {}".format(inst.line, inst.cmd, message))


def precheck(inst):
    """What can be checked of an instruction before the build starts (bad input: nothing runs, nothing is made)."""
    if inst.cmd == "RUN":
        from . import runstep
        runstep.precheck(inst)
    elif inst.cmd in ("COPY", "ADD"):
        from . import copystep
        copystep.precheck(inst)
    elif inst.cmd == "HEALTHCHECK":
        _health_flags(inst)


def _health_flags(inst):
    from agent_payload.image.instructions import parse_duration
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval"}
    hc = {}
    for flag, value in inst.flags.items():
        if flag in names:
            try:
                ns = parse_duration(value)
            except errors.InvalidArgument as exc:
                raise _bad(inst, exc.message)
            if 0 < ns < 1000000:
                raise _bad(inst, "{} cannot be less than 1ms".format(names[flag]))
            if ns:
                hc[names[flag]] = ns
        elif flag == "retries":
            try:
                retries = int(value)
            except ValueError:
                raise _bad(inst, 'strconv.ParseInt: parsing "{}": invalid syntax'.format(value))
            if retries < 0:
                raise _bad(inst, "--retries cannot be negative ({})".format(retries))
            if retries:
                hc["Retries"] = retries
        else:
            raise _bad(inst, "unknown flag: --{}".format(flag))
    return hc


def _cmdline(st, inst):
    """resolveCmdLine: the exec form as is, the shell form under the stage's SHELL."""
    if inst.json:
        return list(inst.args)
    return H.shell_of(st.config) + [inst.args[0] if inst.args else ""]


def do_env(b, st, inst):
    env = list(st.config.get("Env") or [])
    texts = []
    for key, value in _pairs(b, st, inst):
        entry = "{}={}".format(key, value)
        texts.append(entry)
        idx = [i for i, e in enumerate(env) if e.partition("=")[0] == key]
        if idx:
            env[idx[0]] = entry
        else:
            env.append(entry)
    st.config["Env"] = env
    b.commit_nop(st, "ENV " + " ".join(texts))


def do_label(b, st, inst):
    labels = dict(st.config.get("Labels") or {})
    texts = []
    for key, value in _pairs(b, st, inst):
        labels[key] = value
        texts.append("{}={}".format(key, value))
    st.config["Labels"] = labels
    b.commit_nop(st, "LABEL " + " ".join(texts))


def do_maintainer(b, st, inst):
    st.maintainer = (inst.args[0] if inst.args else "").strip()
    b.commit_nop(st, "MAINTAINER " + st.maintainer)


def do_expose(b, st, inst):
    from agent_payload.portspec import exposed_ports
    from . import shellwords
    raw = list(inst.args) if inst.json else (inst.args[0] if inst.args else "").split()
    words = []
    for word in sorted(raw):  # BuildKit's parseExpose sorts the words as written, then each is expanded
        words += shellwords.expand_words(word, b.env(st), b.df.escape)
    ports = dict(st.config.get("ExposedPorts") or {})
    for p in exposed_ports(words):
        ports[p] = {}
    st.config["ExposedPorts"] = ports
    b.commit_nop(st, "EXPOSE " + " ".join(words))


def do_user(b, st, inst):
    st.config["User"] = _expand(b, st, (inst.args[0] if inst.args else "").strip())
    b.commit_nop(st, "USER " + st.config["User"])


def do_volume(b, st, inst):
    vols = dict(st.config.get("Volumes") or {})
    words = _words(b, st, inst)
    for v in words:
        if not v.strip():
            raise _bad(inst, "VOLUME specified can not be an empty string")
        vols[v] = {}
    st.config["Volumes"] = vols
    b.commit_nop(st, "VOLUME [" + " ".join(words) + "]")


def do_stopsignal(b, st, inst):
    from agent_payload.runtime.spec import signal_number
    sig = _expand(b, st, (inst.args[0] if inst.args else "").strip())
    signal_number(sig)
    st.config["StopSignal"] = sig
    b.commit_nop(st, "STOPSIGNAL " + sig)


def do_healthcheck(b, st, inst):
    kind = (inst.args[0] if inst.args else "").upper()
    if kind == "NONE":
        test = ["NONE"]
    elif kind == "CMD" and len(inst.args) > 1:
        test = ["CMD"] + list(inst.args[1:]) if inst.json else ["CMD-SHELL", inst.args[1]]
    else:
        raise _bad(inst, "Unknown type {} in HEALTHCHECK (try CMD)".format(kind))
    hc = dict({"Test": test}, **_health_flags(inst))
    parent = st.config.get("Healthcheck") or {}
    old = parent.get("Test") or []
    if old and old[0] != "NONE":
        b.out("Note: overriding previous HEALTHCHECK: {}\n".format("[" + " ".join(old) + "]"))
    # The classic builder creates the step's container with the run config's own *HealthConfig, which the
    # daemon's merge (daemon/commit.go) fills from the parent image's: an option left out (or 0) keeps the
    # previous HEALTHCHECK's value, NONE included; the history shows the instruction's own values.
    merged = dict(hc)
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not merged.get(key) and parent.get(key):
            merged[key] = parent[key]
    st.config["Healthcheck"] = merged
    b.commit_nop(st, H.healthcheck_comment(hc))


def do_shell(b, st, inst):
    if not inst.json or not inst.args:
        raise _bad(inst, "SHELL requires the arguments to be in JSON form")
    st.config["Shell"] = list(inst.args)
    b.commit_nop(st, "SHELL [" + " ".join(inst.args) + "]")  # %v, not %q


def do_cmd(b, st, inst):
    cmd = _cmdline(st, inst)
    st.config["Cmd"] = cmd
    b.commit_nop(st, "CMD " + H.go_quote_list(cmd))
    if inst.args:
        st.cmd_set = True


def do_entrypoint(b, st, inst):
    ep = _cmdline(st, inst)
    st.config["Entrypoint"] = ep
    if not st.cmd_set:
        st.config["Cmd"] = None
    b.commit_nop(st, "ENTRYPOINT " + H.go_quote_list(ep))


def do_onbuild(b, st, inst):
    text = (inst.args[0] if inst.args else "").strip()
    trigger = getattr(inst, "trigger", None)
    name = (trigger.cmd if trigger is not None else text.split(None, 1)[0] if text else "").upper()
    if name in ("ONBUILD", "FROM", "MAINTAINER"):
        raise _bad(inst, "{} isn't allowed as an ONBUILD trigger".format(name))
    st.config["OnBuild"] = list(st.config.get("OnBuild") or []) + [text]
    b.commit_nop(st, "ONBUILD " + text)


def do_arg(b, st, inst):
    from . import dockerfile
    texts = []
    for key, value in dockerfile.key_values(inst, b.env(st), b.df.escape):
        st.build_args.add_arg(key, value)
        texts.append(key if value is None else "{}={}".format(key, value))
    b.commit_nop(st, "ARG " + " ".join(texts))


def do_workdir(b, st, inst):
    from . import layers
    path = _expand(b, st, (inst.args[0] if inst.args else "").strip())
    if not path:
        raise _bad(inst, "WORKDIR requires exactly one argument")
    st.config["WorkingDir"] = posixpath.normpath(posixpath.join(st.config.get("WorkingDir") or "/", path))
    cmd = H.nop_cmd_string(st.config, "WORKDIR " + st.config["WorkingDir"])
    if b.probe(st, dict(st.config, Cmd=cmd, Image=st.image_id or "")) is not None:
        return
    lowers = list(reversed(st.layers))
    real = layers.resolve(lowers, st.config["WorkingDir"])
    if layers.kind(lowers, real) == "dir":
        b.commit(st, st.config, cmd)
        return
    upper = layers.new_upper(b.scratch)
    try:
        layers.make_dirs(upper, lowers, real)
        b.commit(st, st.config, cmd, write_tar=b.layer_writer(upper, lowers))
    finally:
        layers.remove_upper(upper)


def do_run(b, st, inst):
    from . import runstep
    runstep.run(b, st, inst, _cmdline(st, inst))


def do_copy(b, st, inst):
    from . import copystep
    copystep.copy(b, st, inst, add=False)


def do_add(b, st, inst):
    from . import copystep
    copystep.copy(b, st, inst, add=True)
