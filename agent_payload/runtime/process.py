"""The container init: namespaces, rootfs, hostname, fd hygiene and exec, run in the child the shim forks.

Sync protocol between the shim and the init (one JSON object per line on the init pipe, which is the
only fd the init keeps besides stdio until just before exec)::

    shim                                   init (PID 1 of the new PID namespace)
      | unshare(CLONE_NEWPID); fork() --------> spec, capability mask, seccomp filter compiled (init_prepare)
      | cgroup placement, "go" ---------------> setsid, PDEATHSIG=KILL, stdio = /dev/null + log pipes
      |                                         unshare(NEWNS|NEWUTS|NEWIPC|NEWCGROUP[|NEWNET]),
      |                                         rootfs.setup() (mounts, masks, pivot_root), sethostname,
      |                                         resolve --user in the container's /etc/passwd,
      |                                         close fds >= 3, chdir(workdir), [read-only /],
      |                                         [seccomp filter], no_new_privs, drop bounding caps, setuid,
      |                                         capset, [seccomp filter with no_new_privs]
      |<------------- {"type": "ready"} -------  (or {"type": "error", ...} and _exit(1))
      |                                         close pipe, execvpe(argv)
      |                                         exec failed: message on stderr, _exit(127 or 126)

EOF on the pipe without a message means the init died during setup.

Seccomp (``linux/seccomp.py``): the container's filter (Docker's default profile unless ``seccomp`` says
otherwise; none with --privileged or seccomp=unconfined) is compiled before pivot_root, while the payload's
modules are reachable, and installed as runc does: without no_new_privs the kernel only lets a process holding
CAP_SYS_ADMIN install one, so it goes in just before the privileges are dropped (Docker's profile allows what
follows: prctl, capset, setgroups, setres[ug]id, fchown); with no_new_privs it goes in last, after capset. Either
way it is in place before the "ready" message and the exec, and a --init PID 1 and its child both run under it.
"""

import errno
import gc
import json
import os
import resource
import signal
import sys
import traceback

from .. import errors, hostopts
from ..linux import libc, seccomp
from ..linux.consts import (CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUTS, PR_SET_KEEPCAPS,
                            PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG)
from . import caps, rootfs, user
from . import init as initmod  # imported now: after pivot_root the payload's files are out of reach
from .spec import ContainerSpec, container_env

EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def send(fd, msg):
    """Write one JSON message line to a sync pipe."""
    data = json.dumps(msg).encode() + b"\n"
    while data:
        data = data[os.write(fd, data):]


def recv(fd):
    """Read one JSON message line from a sync pipe (blocking); None on EOF before a full line."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    line = buf.split(b"\n", 1)[0]
    if not line:
        return None
    try:
        return json.loads(line.decode())
    except ValueError:
        return {"type": "error", "kind": "Internal", "message": "garbled sync message: {!r}".format(line[:200])}


def error_message(exc):
    """A sync-pipe error message for an exception (errors.to_wire), the traceback in its details."""
    return dict(errors.to_wire(exc), type="error", details=traceback.format_exc())


def close_fds_except(keep):
    """Close every fd >= 3 except ``keep`` (PITFALLS 3.10: no host fd may reach the container).

    Lists /proc/self/fd rather than looping to SC_OPEN_MAX (which can be 10^6 close() calls on 3.8).
    Every caller is a forked child: Python objects it inherited (a selector, a file) may still own fds closed
    here, whose numbers the next pipe reuses. A garbage collection would finalize the unreachable ones and
    close those reused fds (a health probe's result pipe was lost so), so everything alive now is frozen out
    of the collector first (gc.freeze: never collected in this process).
    """
    gc.freeze()
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        maxfd = os.sysconf("SC_OPEN_MAX")
        os.closerange(3, keep)
        os.closerange(keep + 1, maxfd)
        return
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the fd listdir itself used, already closed


def _reset_signals():
    """Undo what Python did to signal dispositions: exec keeps ignored signals ignored (SIGPIPE, SIGXFSZ)."""
    for name in ("SIGPIPE", "SIGXFSZ", "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGCHLD"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def exec_container(argv, env):
    """execvpe with the container's PATH; on failure report as Docker does and exit 127/126 (never returns)."""
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            code = EXIT_NOT_FOUND
            if "/" in argv[0]:
                what = "no such file or directory"
            else:
                what = "executable file not found in $PATH"
        else:
            code = EXIT_NOT_EXECUTABLE
            what = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        msg = 'exec: "{}": {}\n'.format(argv[0], what)
        try:
            os.write(2, msg.encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(code)


def drop_privileges(spec, who, keep, seccomp_filter=None, after_switch=()):
    """The last step before exec, after every mount, for the init and exec's process alike: no_new_privs,
    bounding set, user switch, capability sets, and the seccomp filter (if any) where runc installs it (see
    the module docstring).

    Order as runc's finalizeNamespace: the bounding set is cut while we still hold CAP_SETPCAP;
    PR_SET_KEEPCAPS carries the permitted set across setuid so capset can still narrow it; exec then
    gives root ``keep`` and a non-root user nothing (its file has no capabilities, inheritable is empty).
    ``after_switch``: (option, value) prctls a uid/gid change resets, set again right after it (the init's
    parent-death signal; exec's non-dumpable flag).
    """
    if spec.no_new_privileges:
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    elif seccomp_filter is not None:
        seccomp.install(seccomp_filter)  # needs CAP_SYS_ADMIN without no_new_privs: while we still hold it
    caps.drop_bounding(keep)
    libc.prctl(PR_SET_KEEPCAPS, 1)
    user.chown_stdio(who)
    user.switch(who)
    for option, value in after_switch:
        libc.prctl(option, value)
    libc.prctl(PR_SET_KEEPCAPS, 0)
    caps.apply_sets(keep)
    if spec.no_new_privileges and seccomp_filter is not None:
        seccomp.install(seccomp_filter)  # as late as possible: the fewer of our own syscalls pass through it


def container_seccomp(spec, keep):
    """The container's compiled seccomp filter (None: unconfined), for bounding set ``keep``; exec's too."""
    return seccomp.container_filter(spec.seccomp, caps.mask_names(keep), privileged=spec.privileged)


def init_prepare(config):
    """What the init computes without touching the system: the spec, the capability mask and the compiled seccomp
    filter (~2-3 ms).  The shim's child runs it while it still waits for "go", i.e. while the shim moves it into
    the container's cgroup (a cgroup v1 migration waits for an RCU grace period, ~10 ms): that wait then costs
    nothing extra.  An error is kept and raised by ``init_main`` where these steps used to run.
    """
    try:
        spec = ContainerSpec.from_dict(config)
        keep = caps.container_mask(spec)  # before pivot: an unavailable --cap-add fails early
        return {"spec": spec, "keep": keep, "seccomp": container_seccomp(spec, keep)}  # tables are host files
    except Exception as exc:
        return {"error": exc}


def init_main(layout, config, stdout_fd, stderr_fd, sync_fd, stdio=None, prepared=None):
    """Body of the container's PID 1 up to exec; never returns.

    ``stdio`` (attach.ShimIO.child_stdio, -i/-t): {"stdin": pipe read end | None, "tty_sock": socket | None}.
    ``prepared``: ``init_prepare(config)``'s result, when the caller ran it already.
    """
    try:
        prepared = prepared if prepared is not None else init_prepare(config)
        spec = prepared.get("spec") or ContainerSpec.from_dict(config)
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the container never outlives its shim
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null if not stdio or stdio.get("stdin") is None else stdio["stdin"], 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        for fd in (null, stdout_fd, stderr_fd):
            if fd > 2:
                os.close(fd)
        if config.get("netns"):  # the namespace net.setup made (or another container's): join it
            fd = os.open(config["netns"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc.setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP
        if config.get("netns_new"):
            flags |= CLONE_NEWNET  # --network none: an empty namespace of its own
        # the cgroup namespace is rooted where the init is now: cgroup placement must happen before this
        libc.unshare(flags)
        if config.get("netns_new"):
            libc.interface_up("lo")  # Docker's "none": only loopback, up
        hostopts.apply_sysctls(spec.sysctls)  # --sysctl: the host's /proc/sys shows our new net and ipc namespaces
        if "error" in prepared:
            raise prepared["error"]  # the spec, --cap-add or the seccomp profile: reported from here, as before
        keep, seccomp_filter = prepared["keep"], prepared["seccomp"]
        rootfs.setup(layout, len(spec.lowerdirs), privileged=spec.privileged, mounts=spec.mounts, spec=spec)
        if stdio and stdio.get("tty_sock") is not None:
            from .attach import init_tty
            init_tty(stdio["tty_sock"], stdio.get("size"))  # a PTY of the container's devpts (mounted just now)
        libc.sethostname(config["hostname"])
        who = user.lookup(spec.user, spec.group_add)  # the container's own /etc/passwd, /etc/group (inside it now)
        env = container_env(spec, config["hostname"], home=who.home)
        _reset_signals()
        close_fds_except(sync_fd)
        # created inside the new root, so a WORKDIR can never name a host path
        os.makedirs(spec.workdir, 0o755, exist_ok=True)
        os.chdir(spec.workdir)
        if spec.read_only:
            rootfs.make_root_readonly()
        hostopts.apply_ulimits(spec.ulimits, resource)  # --ulimit: while we hold CAP_SYS_RESOURCE
        if spec.init:
            initmod.prepare(spec.argv)  # --init: non-dumpable PID 1, while it still holds every capability
        # a uid/gid change clears the parent-death signal: set again at once
        drop_privileges(spec, who, keep, seccomp_filter, after_switch=((PR_SET_PDEATHSIG, signal.SIGKILL),))
        send(sync_fd, {"type": "ready"})
        os.close(sync_fd)
    except BaseException as exc:  # report anything, then die: we are a forked copy of the shim
        try:
            send(sync_fd, error_message(exc))
        except BaseException:
            traceback.print_exc(file=sys.stderr)
        os._exit(1)
    if spec.init:
        initmod.run(spec.argv, env, keep, exec_container)  # --init: stay PID 1, fork the command, reap
    exec_container(spec.argv, env)
    os._exit(EXIT_NOT_EXECUTABLE)  # not reached
