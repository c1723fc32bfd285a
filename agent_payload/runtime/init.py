"""``--init``: the container's PID 1 as a small reaper (what Docker's docker-init, i.e. tini, does), no binary needed.

The Python process that set the container up (``process.init_main``) stays PID 1 instead of exec'ing::

    PID 1 (this module, non-dumpable)              child (the user's command)
      all catchable signals blocked                  setpgid(0, 0); foreground of the tty if stdin is one
      fork() ------------------------------------->  signal mask restored, execvpe(argv, env)
      sigwaitinfo() loop:                            (exactly the setup it gets without --init: same user,
        SIGCHLD  -> waitpid(-1, WNOHANG) until         capabilities, no_new_privs, env, cwd, fds)
                    nothing is left to reap
        other    -> kill(child, sig)
      child reaped -> reap what is left, exit(code), 128 + signal if it was killed by one

Credentials: the child is forked after ``drop_privileges``, so it inherits the container user's uid/gids and
capability sets and then execs exactly as a container without --init would. PID 1 keeps the same uid/gids (as
tini, which runs as the container user: PID 1 must be allowed to signal the user's process, and a process of
the same user always is), but narrows its own capabilities to CAP_KILL alone (when the container has it):
enough to forward a signal to a command that changed its uid (su-exec, gosu), nothing else to steal. tini keeps
the whole set; we have no use for it.

Seccomp: ``drop_privileges`` installs the container's filter before the fork, so the command inherits it and
PID 1 runs under it too (as tini does under Docker); everything PID 1 does afterwards (fork, prctl, capset,
rt_sigtimedwait, kill, wait4, exit_group) is allowed by Docker's default profile.

Exposure: PID 1 runs the host's Python interpreter, so /proc/1/exe names a host binary (CVE-2019-5736). PID 1 is
made non-dumpable (PR_SET_DUMPABLE 0) before the container is reported ready: /proc/1/exe, fd/*, mem, environ
then need CAP_SYS_PTRACE, which a default container lacks. It holds no host fds (``process.close_fds_except``
ran before), and its argv memory is rewritten to ``fleet-init -- <command>`` (``set_title``; the shim's host
environment there is overwritten too), so ``ps``/``top`` show the init as PID 1 and the command as its child
rather than the host shim's arguments.

Everything here must be imported before pivot_root: the payload's own files are unreachable afterwards.
"""

import ctypes
import errno
import os
import signal

from ..linux import libc
from ..linux.consts import PR_SET_NAME
from . import caps

NAME = "fleet-init"
PR_SET_DUMPABLE = 4
#: tini does not forward these: they are the kernel's synchronous faults, or job-control stops at a tty
NOT_FORWARDED = ("SIGFPE", "SIGILL", "SIGSEGV", "SIGBUS", "SIGABRT", "SIGTRAP", "SIGSYS", "SIGTTIN", "SIGTTOU",
                 "SIGKILL", "SIGSTOP")
_keep = []  # ctypes buffers /proc/1/cmdline and environ point at: alive as long as the process


def forwarded_signals():
    """Every signal PID 1 forwards to the child (all catchable ones but the synchronous faults and SIGCHLD)."""
    skip = {getattr(signal, n) for n in NOT_FORWARDED if hasattr(signal, n)} | {signal.SIGCHLD}
    return [s for s in range(1, signal.NSIG) if s not in skip and s not in (32, 33)]  # 32/33: glibc-internal


def prepare(argv):
    """Called while the init is still root with every capability (before ``drop_privileges``): non-dumpable,
    comm and /proc/1/cmdline set to ``fleet-init -- <argv>``. The cosmetic steps are best effort."""
    libc.prctl(PR_SET_DUMPABLE, 0)
    try:
        libc.prctl(PR_SET_NAME, ctypes.addressof(_buffer(NAME.encode() + b"\0")))
    except OSError:
        pass
    try:
        set_title([NAME, "--"] + list(argv))
    except (OSError, ValueError, IndexError):
        pass  # ps then shows the shim's arguments; nothing else depends on the title


def _buffer(data):
    buf = ctypes.create_string_buffer(data, len(data))
    _keep.append(buf)
    return buf


def set_title(args):
    """Rewrite this process's original argv (and environ) memory, which /proc/<pid>/cmdline reads.

    PR_SET_MM could point the kernel elsewhere, but needs CAP_SYS_RESOURCE, which not every host's root has;
    this is setproctitle's method instead: the area is fixed (the shim's arguments and environment), so a long
    command is cut. If ``args`` fit into the argv area they keep their NUL separators; otherwise they are joined
    with spaces and run on into the environ area (the kernel reads on past argv when its last byte is not NUL).
    The host environment is overwritten on the way (libc's copy is dropped first so nothing reads it again).
    """
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    arg_start, arg_end, env_start, env_end = (int(v) for v in fields[45:49])  # stat fields 48-51
    if not 0 < arg_start < arg_end:
        return
    area = env_end - arg_start if env_start == arg_end and env_end > env_start else arg_end - arg_start
    nul_form = b"".join(os.fsencode(a) + b"\0" for a in args)
    if len(nul_form) <= arg_end - arg_start:
        data = nul_form
    else:
        data = b" ".join(os.fsencode(a) for a in args)[:area - 1]
    os.environ.clear()  # unsetenv() each: libc's environ no longer points into the area we overwrite
    ctypes.memmove(arg_start, data + b"\0" * (area - len(data)), area)


def run(argv, env, keep, exec_fn):
    """Fork the command, forward signals to it, reap every zombie, exit with its code (never returns).

    ``keep`` is the container's capability mask (PID 1 narrows itself to CAP_KILL & keep); ``exec_fn(argv,
    env)`` is ``process.exec_container`` (reports exec failures with 127/126 as without --init).
    """
    sigs = forwarded_signals() + [signal.SIGCHLD]
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    # The command starts only once PID 1 has narrowed itself: until the gate closes, the child waits, so nothing
    # in the container ever sees (or races) a PID 1 that still holds the container's whole capability set.
    gate_r, gate_w = os.pipe()
    try:
        child = os.fork()
    except OSError as exc:
        os.write(2, "{}: fork: {}\n".format(NAME, exc.strerror).encode())
        os._exit(1)
    if child == 0:
        os.close(gate_w)
        while os.read(gate_r, 1):
            pass  # EOF: PID 1 is narrowed (or gone)
        os.close(gate_r)
        _child_setup()
        exec_fn(argv, env)
        os._exit(127)  # not reached
    os.close(gate_r)
    try:
        libc.prctl(PR_SET_DUMPABLE, 0)  # again: a uid change in drop_privileges reset it to suid_dumpable
        kill = 1 << caps.CAP_NUMBERS["CAP_KILL"]
        try:
            caps.apply_sets(keep & kill)
        except OSError:
            pass
    finally:
        os.close(gate_w)
    os._exit(supervise(child, sigs))


def _child_setup():
    """In the forked child: own process group (tini's isolate_child), the tty's foreground, default mask."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    try:
        if os.isatty(0):
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from a background group stops us
            os.tcsetpgrp(0, os.getpgrp())
            signal.signal(signal.SIGTTOU, old)
    except OSError:
        pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def supervise(child, sigs):
    """The PID 1 loop; returns Docker's exit code of ``child`` once it is gone."""
    code = None
    while code is None:
        info = signal.sigwaitinfo(sigs)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        code = reap(child)
    reap(None)  # zombies that died with the child; the kernel kills the rest when PID 1 exits
    return code


def reap(child):
    """waitpid(-1, WNOHANG) until nothing is left to reap; the exit code of ``child`` if it was reaped."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        if pid == 0:
            return code
        if pid == child:
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
