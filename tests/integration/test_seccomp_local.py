"""Seccomp in real containers run by the payload's runtime on this machine (root, busybox rootfs).

Docker's default profile is on unless seccomp=unconfined or --privileged; exec'd processes and --init commands
run under it too. The syscalls are tried by a small static C program (``probe``, compiled here with
``gcc -static``) with arguments chosen so that an unfiltered kernel answers something other than EPERM (EBADF,
EFAULT, EINVAL, success...): an EPERM then comes from the filter, not from a missing capability.
"""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from agent_payload import errors
from agent_payload.runtime import exec as execmod
from tests.helpers import runtime as local
from tests.helpers.runtime import _output, _run, _spec, needs_root

env = local.env
layers = local.layers
pytestmark = [pytest.mark.integration, needs_root]

PROBE_C = textwrap.dedent(r"""
    #define _GNU_SOURCE
    #include <errno.h>
    #include <pthread.h>
    #include <sched.h>
    #include <signal.h>
    #include <spawn.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/socket.h>
    #include <sys/syscall.h>
    #include <sys/wait.h>
    #include <unistd.h>

    extern char **environ;
    static void *thread_fn(void *arg) { return arg; }

    static long probe(const char *name) {
        if (!strcmp(name, "unshare-user")) return syscall(SYS_unshare, CLONE_NEWUSER);
        if (!strcmp(name, "setns")) return syscall(SYS_setns, -1, 0);
        if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0x7fff, 0, 0, 0, 0);
        if (!strcmp(name, "add_key")) return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
        if (!strcmp(name, "request_key")) return syscall(SYS_request_key, NULL, NULL, NULL, 0);
        if (!strcmp(name, "bpf")) return syscall(SYS_bpf, -1, NULL, 0);
        if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
        if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
        if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 1);  /* UFFD_USER_MODE_ONLY */
        if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 0, NULL);
        if (!strcmp(name, "get_mempolicy")) return syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0);
        if (!strcmp(name, "personality-bad")) return syscall(SYS_personality, 0x0040000);
        if (!strcmp(name, "personality-query")) return syscall(SYS_personality, 0xffffffffUL);
        if (!strcmp(name, "socket-vsock")) return syscall(SYS_socket, 40, SOCK_STREAM, 0);
        if (!strcmp(name, "socket-unix")) return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
        if (!strcmp(name, "clone3")) return syscall(SYS_clone3, NULL, 0);
        if (!strcmp(name, "clone-newuser") || !strcmp(name, "clone-plain")) {
            long flags = SIGCHLD | (name[6] == 'n' ? CLONE_NEWUSER : 0);
            long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
            if (pid == 0) syscall(SYS_exit_group, 0);
            if (pid > 0) { waitpid(pid, NULL, 0); return 0; }
            return pid;
        }
        if (!strcmp(name, "spawn")) {  /* glibc's posix_spawn: clone3 first, clone on ENOSYS */
            pid_t pid; char *argv[] = {"true", NULL}; int st;
            int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
            if (rc) { errno = rc; return -1; }
            waitpid(pid, &st, 0);
            return WEXITSTATUS(st) ? -1 : 0;
        }
        if (!strcmp(name, "thread")) {
            pthread_t t; int rc = pthread_create(&t, NULL, thread_fn, NULL);
            if (rc) { errno = rc; return -1; }
            return pthread_join(t, NULL);
        }
        errno = EINVAL;
        return -2;
    }

    int main(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
            errno = 0;
            long rc = probe(argv[i]);
            printf("%s %s\n", argv[i], rc >= 0 ? "OK" : strerrorname_np(errno));
        }
        return 0;
    }
    """)

#: the filter's answer under Docker's default profile (default capabilities)
CONFINED = {"setns": "EPERM", "keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM", "bpf": "EPERM",
            "perf_event_open": "EPERM", "mount": "EPERM", "userfaultfd": "EPERM", "io_uring_setup": "EPERM",
            "get_mempolicy": "EPERM", "personality-bad": "EPERM", "personality-query": "OK",
            "socket-vsock": "EPERM", "socket-unix": "OK", "clone3": "ENOSYS", "clone-newuser": "EPERM",
            "clone-plain": "OK", "spawn": "OK", "thread": "OK", "unshare-user": "EPERM"}
PROBES = list(CONFINED)  # unshare-user last: after it the process sits in a new user namespace


@pytest.fixture(scope="module")
def probe_layers(layers, tmp_path_factory):
    """busybox + /bin/probe (static); skips where gcc or a static libc is missing."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static probe")
    base = tmp_path_factory.mktemp("probe")
    src, binary = base / "probe.c", base / "layer" / "bin" / "probe"
    src.write_text(PROBE_C)
    binary.parent.mkdir(parents=True)
    built = subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(binary), str(src)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip("no static libc to build the probe: " + built.stderr[-300:])
    yield list(layers) + [str(base / "layer")]
    shutil.rmtree(str(base), ignore_errors=True)


def _answers(text):
    return dict(line.split(" ", 1) for line in text.splitlines() if line.split(" ", 1)[0] in CONFINED)


def _status(text):
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if line.startswith("Seccomp"))}


def test_default_profile_blocks_what_docker_blocks(env, probe_layers):
    rec, code = _run(env, probe_layers, ["sh", "-c", "grep Seccomp /proc/self/status; probe " + " ".join(PROBES)])
    out = _output(env, rec["id"])
    assert code == 0, out
    assert _status(out) == {"Seccomp": "2", "Seccomp_filters": "1"}, out
    assert _answers(out) == CONFINED, out


def test_unconfined_and_privileged_have_no_filter(env, probe_layers):
    rec, code = _run(env, probe_layers, ["sh", "-c", "grep Seccomp /proc/self/status; probe " + " ".join(PROBES)],
                     seccomp="unconfined")
    out = _output(env, rec["id"])
    assert code == 0, out
    assert _status(out)["Seccomp"] == "0", out
    got = _answers(out)
    for name, confined in CONFINED.items():  # the kernel itself answers: never the filter's EPERM/ENOSYS
        if confined != "OK":
            assert got[name] != confined, (name, out)
        else:
            assert got[name] == "OK", (name, out)
    script = ("grep Seccomp: /proc/self/status; "
              "unshare -U -r -m sh -c 'mkdir -p /m && mount -t tmpfs none /m && echo MOUNTED'")
    rec, code = _run(env, probe_layers, ["sh", "-c", script], privileged=True)
    out = _output(env, rec["id"])
    assert code == 0 and "Seccomp:\t0" in out and "MOUNTED" in out, out


def test_busybox_unshare_gets_eperm_and_works_unconfined(env, probe_layers):
    script = "unshare -U -r -m sh -c 'echo INSIDE' 2>&1; echo rc=$?"
    rec, code = _run(env, probe_layers, ["sh", "-c", script])
    out = _output(env, rec["id"])
    assert "Operation not permitted" in out and "INSIDE" not in out and "rc=1" in out, out
    rec, code = _run(env, probe_layers, ["sh", "-c", script], seccomp="unconfined")
    assert "INSIDE" in _output(env, rec["id"]), _output(env, rec["id"])


def test_busybox_workload_runs_under_the_profile(env, probe_layers):
    """A small server and its client, files, archives, pipes, scheduling and personality calls Docker allows."""
    script = "; ".join([
        "mkdir -p /www/sub && echo served > /www/sub/index.html",
        "httpd -p 127.0.0.1:8080 -h /www",
        "wget -q -O - http://127.0.0.1:8080/sub/ | sed 's/^/GOT /'",
        "tar -C /www -czf /tmp.tgz sub && mkdir /x && tar -C /x -xzf /tmp.tgz && cat /x/sub/index.html",
        "find /www -type f | xargs sha256sum | awk '{print length($1)}'",
        "mkfifo /fifo && (echo through-fifo > /fifo &) && cat /fifo",
        "timeout 5 sleep 0.01 && echo TIMEOUT-OK",
        "taskset -p 1 $$ > /dev/null && renice -n 5 -p $$ > /dev/null && ionice -c 3 true && echo SCHED-OK",
        "linux32 true && chroot / true && setsid true && echo MISC-OK",
    ])
    rec, code = _run(env, probe_layers, ["sh", "-c", script], network="none")
    out = _output(env, rec["id"])
    assert code == 0, out
    for needle in ("GOT served", "\nserved\n", "\n64\n", "through-fifo", "TIMEOUT-OK", "SCHED-OK", "MISC-OK"):
        assert needle in out, (needle, out)


def test_cap_sys_admin_opens_what_docker_opens(env, probe_layers):
    rec, code = _run(env, probe_layers, ["probe", "setns", "clone3", "unshare-user"], cap_add=["SYS_ADMIN"])
    got = _answers(_output(env, rec["id"]))
    assert got == {"setns": "EBADF", "clone3": "EINVAL", "unshare-user": "OK"}, got


def test_exec_processes_are_filtered(env, probe_layers):
    for setting, mode in ((None, "2"), ("unconfined", "0")):
        rec = env.create(_spec(probe_layers, ["sleep", "60"], seccomp=setting))
        env.start(rec["id"])
        try:
            for privileged in (False, True):
                lines = []
                res = execmod.execute(env.lookup(rec["id"]),
                                      ["sh", "-c", "grep Seccomp: /proc/self/status; probe setns"],
                                      privileged=privileged, emit=lambda _n, data: lines.append(data["line"]))
                out = "".join(lines)
                assert res["exit_code"] == 0, out
                assert _status(out)["Seccomp"] == mode, (setting, privileged, out)
                # as Docker: exec --privileged keeps the container's profile (compiled for its capabilities)
                assert _answers(out)["setns"] == ("EPERM" if setting is None else "EBADF"), out
        finally:
            env.remove([rec["id"]], force=True)


def test_init_command_and_pid1_are_filtered(env, probe_layers):
    script = "grep Seccomp: /proc/self/status /proc/1/status; probe unshare-user"
    rec, code = _run(env, probe_layers, ["sh", "-c", script], init=True)
    out = _output(env, rec["id"])
    assert code == 0, out
    assert "/proc/self/status:Seccomp:\t2" in out and "/proc/1/status:Seccomp:\t2" in out, out
    assert _answers(out) == {"unshare-user": "EPERM"}, out


def test_no_new_privileges_and_a_user_install_late_and_still_filter(env, probe_layers):
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; id -u; probe setns unshare-user"
    rec, code = _run(env, probe_layers, ["sh", "-c", script], no_new_privileges=True, user="1000:1000")
    out = _output(env, rec["id"])
    assert code == 0, out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out and "1000" in out, out
    assert _answers(out) == {"setns": "EPERM", "unshare-user": "EPERM"}, out


def test_custom_profile(env, probe_layers):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                            {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}
    script = "mkdir /x 2>&1; echo rc=$?; probe setns keyctl unshare-user; grep Seccomp: /proc/self/status"
    rec, code = _run(env, probe_layers, ["sh", "-c", script], seccomp=json.dumps(profile))
    out = _output(env, rec["id"])
    assert code == 0, out
    assert "Permission denied" in out and "rc=1" in out, out
    assert _answers(out) == {"setns": "EOPNOTSUPP", "keyctl": "EOPNOTSUPP", "unshare-user": "OK"}, out
    assert "Seccomp:\t2" in out, out
    # the JSON text is parsed and kept as the profile; inspect shows it as docker does
    from agent_payload.runtime import inspect
    obj = inspect.inspect_object(env.paths, env.lookup(rec["id"]))
    assert obj["HostConfig"]["SecurityOpt"] == ["seccomp=" + json.dumps(profile, separators=(",", ":"))]
    assert json.loads(env.lookup(rec["id"])["seccomp"]) == profile


def test_bad_profile_is_refused_before_anything_is_created(env, probe_layers):
    with pytest.raises(errors.InvalidArgument, match="SCMP_ACT_NOTIFY is not supported"):
        env.create(_spec(probe_layers, ["true"], seccomp='{"defaultAction": "SCMP_ACT_NOTIFY"}'))
    assert not os.path.isdir(env.paths.containers) or not os.listdir(env.paths.containers)
