"""``docker exec``: run a process in a running container's namespaces, cgroup, user, capabilities and env.

Processes (P = this payload on the host, never inside the container)::

    P: check the container, open /proc/<init>/ns/* (init identity re-checked after), pipes; fork C1
      C1: PR_SET_DUMPABLE 0; setns(ipc, uts, net, pid, mnt) (those that differ from ours); fork C2
      |   C2 (PID namespace of the container): setsid; wait for "go"
      |<- C1 sends {"type": "pid", "pid": <C2 host pid>}, then waits for C2 (or exits at once with detach)
    P: cgroups.attach(id).add(C2); "go" -> C2
          C2: setns(cgroup) (rooted at the container's cgroup now), stdio, user from the container's
              /etc/passwd, env, chdir, close fds >= 3, then the init's last step (process.drop_privileges:
              [seccomp], no_new_privs, bounding set, setuid, capset, [seccomp with no_new_privs]), exec
    P: sync pipe EOF = exec happened (it is O_CLOEXEC); any {"type": "error"} before is raised.

C1 and C2 are non-dumpable from before the PID namespace is joined until exec (CVE-2019-5736): nothing in
the container may open /proc/<pid>/exe of our host interpreter; a uid change resets the flag, so C2 sets
it again after setuid. The output pipes are read by P, which stays outside the container. The exit code
comes from C1 (128 + signal for a killed process, as docker). With ``detach`` C1 exits as soon as C2 is
running: C2 is reparented to the host's init (or nearest subreaper) which reaps it; fleet does not.

Interactive (-i: a stdin pipe whose write end P keeps; -t: a TTY): after "go", C2 (already in the container's
mount namespace) opens a PTY from the container's devpts (tty.open_pty), sets the initial size, sends the
master to P over a socketpair (SCM_RIGHTS, as runc's console socket), makes the slave its controlling
terminal and its stdio. P relays stdin frames and the output with tty.Relay until C1 exits.

Seccomp: the exec'd process gets the container's filter, compiled by P for the container's capabilities (as
Docker, whose exec processes share the container's profile, --privileged or not) and installed by C2 where the
init installs it (``process.drop_privileges``).
"""

import errno
import fcntl
import os
import select

from .. import errors, hostopts, protocol
from ..linux import libc
from ..linux.consts import CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS
from . import caps, cgroups, process, records, tty, user
from .spec import ContainerSpec, check_user_fields, container_env

PR_SET_DUMPABLE = 4
#: Join order as runc's nsenter; mnt last but one so the /proc fds we hold are all opened from the host view.
NAMESPACES = (("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID),
              ("mnt", CLONE_NEWNS))
CHUNK = 65536
MAX_LINE = 16 * 1024  # docker's log driver splits longer lines too


def check_args(command, env, workdir, user_spec):
    """Validate an exec request before anything happens (InvalidArgument)."""
    if not command or not isinstance(command, list) or not all(isinstance(a, str) and "\x00" not in a
                                                                for a in command) or not command[0]:
        raise errors.InvalidArgument("No exec command specified")
    check_user_fields(env=env, workdir=workdir)
    user.check_spec(user_spec)


def _open_namespaces(pid, pid_start):
    """{type: fd} for the init's namespaces that differ from ours, plus the cgroup one (None if shared)."""
    fds = {}
    try:
        for name in [n for n, _ in NAMESPACES] + ["cgroup"]:
            path = "/proc/{}/ns/{}".format(pid, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if name == "cgroup":
                    continue  # a kernel without cgroup namespaces
                raise
            if os.fstat(fd).st_ino == os.stat("/proc/self/ns/" + name).st_ino:
                os.close(fd)  # shared with us (e.g. --network host): nothing to join
                continue
            fds[name] = fd
        # the fds are the right ones only if the init we recorded is still the process they came from
        if not records.is_alive(pid, pid_start):
            raise errors.Conflict("container init (pid {}) exited".format(pid))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _merged_env(config_env, overrides):
    merged = {}
    for entry in list(config_env or []) + list(overrides or []):
        key, _, value = entry.partition("=")
        merged[key] = value
    return ["{}={}".format(k, v) for k, v in merged.items()]


def _report_and_die(sync_w, exc):
    """In an exec child: send the error to the payload over the sync pipe, then exit (never returns)."""
    try:
        process.send(sync_w, process.error_message(exc))
    except BaseException:
        pass
    os._exit(1)


def _exec(argv, env, sync_fd):
    """execvpe; on failure tell P (detach needs it) and stderr, then exit 127/126 as Docker (never returns)."""
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        what = ("no such file or directory" if "/" in argv[0] else "executable file not found in $PATH") \
            if missing else (os.strerror(exc.errno).lower() if exc.errno else str(exc))
        code = process.EXIT_NOT_FOUND if missing else process.EXIT_NOT_EXECUTABLE
        msg = 'exec: "{}": {}'.format(argv[0], what)
        try:
            process.send(sync_fd, {"type": "exec_failed", "code": code, "message": msg})
            os.write(2, (msg + "\n").encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(code)


def _c2(spec, hostname, req, ns_cgroup, stdio, go_r, sync_w, tty_sock=None, seccomp_filter=None):
    """The exec'd process up to exec, inside the container's PID namespace; never returns."""
    try:
        os.setsid()
        if os.read(go_r, 1) != b"g":
            os._exit(1)  # P could not place us in the cgroup and has reported that
        os.close(go_r)
        if ns_cgroup is not None:
            libc.setns(ns_cgroup, CLONE_NEWCGROUP)
        if tty_sock is not None:
            stdio = _own_tty(req, tty_sock)
        for i, fd in enumerate(stdio):
            os.dup2(fd, i)
        # the container's /etc files (its root now); --group-add counts for exec too (docker's getUser)
        who = user.lookup(req["user"] if req["user"] else spec.user, spec.group_add)
        keep = libc.capget()[1] if req["privileged"] else caps.container_mask(spec)
        env = container_env(ContainerSpec(env=_merged_env(spec.env, req["env"])), hostname, home=who.home)
        if tty_sock is not None:
            env.setdefault("TERM", "xterm")  # as docker does for -t
        process._reset_signals()
        process.close_fds_except(sync_w)
        os.chdir(req["workdir"] or spec.workdir or "/")
        hostopts.apply_ulimits(spec.ulimits, process.resource)  # --ulimit holds for exec'd processes too (runc)
        # setuid resets the dumpable flag to fs.suid_dumpable, which may be 1
        process.drop_privileges(spec, who, keep, seccomp_filter, after_switch=((PR_SET_DUMPABLE, 0),))
    except BaseException as exc:
        _report_and_die(sync_w, exc)
    _exec(req["command"], env, sync_w)


def _own_tty(req, tty_sock):
    """Open a PTY in the container's devpts, hand the master to P, make the slave our controlling terminal."""
    master, slave = tty.open_pty()
    if req.get("console_size"):
        tty.set_size(slave, *req["console_size"])
    tty.send_fd(tty_sock, master)
    os.close(master)
    os.close(tty_sock)
    tty.make_controlling(slave)
    return (slave, slave, slave)


def _c1(spec, hostname, req, fds, stdio, go, sync_w, tty_sock=None, seccomp_filter=None):
    """Join the namespaces, fork the exec'd process, report its pid, then wait for it; never returns."""
    try:
        libc.prctl(PR_SET_DUMPABLE, 0)  # before the PID namespace: nothing inside may open our /proc/<pid>/exe
        for i in (0, 1, 2):
            os.dup2(stdio[0], i)  # our stdio is the RPC stream to the controller: never reachable from inside
        os.close(go[1])
        for name, flag in NAMESPACES:
            if name in fds:
                libc.setns(fds[name], flag)
        pid = os.fork()
        if pid == 0:
            _c2(spec, hostname, req, fds.get("cgroup"), stdio, go[0], sync_w, tty_sock, seccomp_filter)
        os.close(go[0])
        if tty_sock is not None:
            os.close(tty_sock)  # P sees EOF on the socket if C2 dies before passing the master
        for fd in set(stdio) | set(fds.values()):
            os.close(fd)
        process.send(sync_w, {"type": "pid", "pid": pid})
        os.close(sync_w)
    except BaseException as exc:
        _report_and_die(sync_w, exc)
    if req["detach"]:
        os._exit(0)  # C2 is reparented to the host's init (or a subreaper), which reaps it
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _lines(buffers, stream, data, emit, final=False):
    """Emit complete lines of ``stream`` (and the rest when ``final``) as log events."""
    buf = buffers[stream] + data
    while True:
        nl = buf.find(b"\n")
        if nl < 0 and len(buf) < MAX_LINE:
            break
        cut = nl + 1 if nl >= 0 else MAX_LINE
        emit("log", protocol.log_line(stream, buf[:cut]))
        buf = buf[cut:]
    if final and buf:
        emit("log", protocol.log_line(stream, buf))
        buf = b""
    buffers[stream] = buf


def _pump(readers, c1, emit):
    """Stream the pipes until C1 (hence the exec'd process) exited, then drain what is buffered; C1's status."""
    buffers = {name: b"" for name in readers.values()}
    for fd in readers:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    status = None
    open_fds = set(readers)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 0.1)
        for fd in ready if status is None else list(open_fds):
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                if status is not None:
                    open_fds.discard(fd)  # exited: a background child holding the pipe does not keep us here
                continue
            if not data:
                open_fds.discard(fd)
                continue
            _lines(buffers, readers[fd], data, emit)
        if status is None:
            done, st = os.waitpid(c1, os.WNOHANG)
            if done:
                status = st
    for name in buffers:
        _lines(buffers, name, b"", emit, final=True)
    if status is None:
        status = os.waitpid(c1, 0)[1]
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _raise(msg):
    # the request was valid (checked before forking): what fails inside is about this container
    raise errors.from_wire(msg, "exec failed", checked=True)


def check_request(command, env, workdir, user_spec, detach, interactive, tty_, console_size):
    """Everything about an exec request that needs no container (callers check it before looking one up);
    returns the checked console size."""
    check_args(command, list(env), workdir, user_spec)
    console_size = tty.check_console_size(console_size)
    if detach and (interactive or tty_):
        raise errors.InvalidArgument("exec: -d cannot be combined with -i/-t (nothing would be attached)")
    return console_size


def execute(rec, command, env=(), workdir=None, user_spec=None, detach=False, privileged=False,
            emit=None, interactive=False, tty_=False, console_size=None, frames=None):
    """Run ``command`` in a running container; {"exit_code"} after streaming output, or {"pid"} with ``detach``.

    ``rec``: the container's record (``resolver.lookup``: config and reconciled state).

    ``interactive``/``tty_`` (docker's -i/-t): ``frames`` (a tty.FrameReader) feeds stdin and resizes, the
    output goes out as raw ``output`` events (see the module docstring).
    """
    console_size = check_request(command, env, workdir, user_spec, detach, interactive, tty_, console_size)
    cid = rec["id"]
    if rec.get("status") != "running":
        raise errors.Conflict("Container {} is not running".format(cid))
    if rec.get("paused"):
        raise errors.Conflict("container {} is paused, unpause the container before exec".format(cid))
    spec = ContainerSpec.from_dict(rec)
    seccomp_filter = process.container_seccomp(spec, caps.container_mask(spec))  # the container's, not -privileged's
    req = {"command": list(command), "env": list(env), "workdir": workdir, "user": user_spec,
           "detach": bool(detach), "privileged": bool(privileged), "console_size": console_size}
    cgroup = cgroups.attach(cid)
    fds = _open_namespaces(rec["pid"], rec.get("pid_start"))
    owned = list(fds.values())
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        owned.append(null)
        io = {"stdin_w": None, "sock": None, "child_sock": None}  # P's ends of the interactive channels
        if detach or tty_:
            stdio, readers = (null, null, null), {}
            if tty_:
                io["sock"], io["child_sock"] = tty.socketpair_fds()
                owned.append(io["child_sock"])
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            owned += [out_w, err_w]
            stdio, readers = (null, out_w, err_w), {out_r: "stdout", err_r: "stderr"}
            if interactive:
                in_r, io["stdin_w"] = os.pipe()
                owned.append(in_r)
                stdio = (in_r, out_w, err_w)
        go = os.pipe()
        sync_r, sync_w = os.pipe()
        owned += [go[0], sync_w]
        c1 = os.fork()
        if c1 == 0:
            os.close(sync_r)
            for fd in list(readers) + [io["stdin_w"], io["sock"]]:
                if fd is not None:
                    os.close(fd)  # C1 holding P's stdin end would keep the process from ever seeing EOF
            _c1(spec, rec["hostname"], req, fds, stdio, go, sync_w, io["child_sock"], seccomp_filter)
    except BaseException:
        for fd in owned + [v for k, v in io.items() if k != "child_sock" and v is not None]:
            os.close(fd)
        raise
    for fd in owned:
        os.close(fd)  # the children hold them now; EOFs then mean what they should
    try:
        if interactive or tty_:
            return _parent_interactive(cgroup, c1, go[1], sync_r, readers, io, emit, frames)
        return _parent(cgroup, c1, go[1], sync_r, readers, detach, emit)
    finally:
        for fd in list(readers) + [sync_r, io["stdin_w"], io["sock"]]:
            if fd is not None:
                os.close(fd)


def _parent_interactive(cgroup, c1, go_w, sync_r, readers, io, emit, frames):
    """P's side with -i/-t: as ``_parent``, then take the PTY master (-t) and relay until C1 exits."""
    _parent(cgroup, c1, go_w, sync_r, {}, True, None, wait=False)
    master = None
    if io["sock"] is not None:
        master = tty.recv_fd(io["sock"], timeout=30)
        if master is None:
            os.waitpid(c1, 0)
            raise errors.Internal("exec failed: the process did not pass its TTY")
        tty.check_master(master)
    try:
        outputs = {master: "stdout"} if master is not None else readers
        relay = tty.Relay(frames, emit or (lambda *a: None), stdin_fd=master if master is not None else io["stdin_w"],
                          tty_fd=master, outputs=outputs)
        io["stdin_w"] = None  # the relay owns (and closes on an EOF frame) the pipe's write end now
        status = []

        def finished():
            if not status:
                done, st = os.waitpid(c1, os.WNOHANG)
                if done:
                    status.append(st)
            return bool(status)

        relay.run(finished)
        if relay.stdin_fd is not None and relay.stdin_fd != master:
            os.close(relay.stdin_fd)
    finally:
        if master is not None:
            os.close(master)
    st = status[0]
    return {"exit_code": os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)}


def _parent(cgroup, c1, go_w, sync_r, readers, detach, emit, wait=True):
    """P's side: place C2 in the cgroup, release it, wait for exec, then stream or return the pid.

    ``wait=False`` (interactive): C1 is left running and only failures are raised.
    """
    pid, failure, exec_failed = None, None, None
    try:
        msg = process.recv(sync_r)
        if msg is None or msg.get("type") != "pid":
            failure = msg or {"kind": "Internal", "message": "the exec helper died before forking"}
        else:
            pid = msg["pid"]
            try:
                cgroup.add(pid)
            except (errors.AgentError, OSError) as exc:
                failure = {"kind": getattr(exc, "kind", "Internal"),
                           "message": "joining the container's cgroup: {}".format(getattr(exc, "message", exc))}
            else:
                os.write(go_w, b"g")
    finally:
        os.close(go_w)  # without "go", C2 exits on EOF
    while failure is None:
        msg = process.recv(sync_r)
        if msg is None:
            break  # EOF: the command was exec'ed
        if msg.get("type") == "exec_failed":
            exec_failed = msg
        else:
            failure = msg
    if failure is not None or detach:
        for fd in readers:
            os.close(fd)
        readers.clear()
        if wait or failure is not None:
            os.waitpid(c1, 0)
        if failure is not None:
            _raise(failure)
        if not wait:
            return None  # interactive: a failed exec's message and code come through the relay
        if exec_failed is not None:
            cls = errors.NotFound if exec_failed["code"] == process.EXIT_NOT_FOUND else errors.FailedPrecondition
            raise cls("exec failed: {}".format(exec_failed["message"]))
        return {"pid": pid}
    return {"exit_code": _pump(readers, c1, emit or (lambda *a: None))}
