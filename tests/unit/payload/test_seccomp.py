"""The seccomp compiler: Docker's profiles to classic BPF, checked by running the program bytes in an interpreter.

The interpreter below executes every classic instruction the compiler emits on a ``struct seccomp_data``, so
each assertion is about the real program: what it answers for a syscall number, an architecture and arguments.
One test also loads a filter into a forked child's kernel.
"""

import ctypes
import errno
import json
import os
import struct

import pytest

from agent_payload import errors
from agent_payload.linux import bpf, seccomp, seccomp_default, seccomp_tables
from agent_payload.runtime import caps

X86_64, AARCH64, I386 = 0xC000003E, 0xC00000B7, 0x40000003
ALLOW, KILL_PROCESS = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS
EPERM, ENOSYS = seccomp.RET_ERRNO | errno.EPERM, seccomp.RET_ERRNO | errno.ENOSYS
DEFAULT_CAPS = list(caps.DOCKER_DEFAULT)


def run_filter(code, nr, arch=X86_64, args=()):
    """Execute a classic BPF seccomp program on (nr, arch, args); returns its 32-bit answer."""
    args = list(args) + [0] * (6 - len(args))
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *args)
    insns = bpf.disassemble(code)
    pc, acc, steps = 0, 0, 0
    while True:
        steps += 1
        assert steps <= len(insns), "a classic program cannot loop"
        code_, jt, jf, k = insns[pc]
        if code_ == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_ABS:
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code_ == bpf.BPF_ALU | bpf.BPF_AND | bpf.BPF_K:
            acc &= k
            pc += 1
        elif code_ == bpf.BPF_RET | bpf.BPF_K:
            return k
        elif code_ == bpf.BPF_JMP | bpf.BPF_JA:
            pc += 1 + k
        elif code_ & 0x07 == bpf.BPF_JMP:
            taken = {bpf.BPF_JEQ: acc == k, bpf.BPF_JGT: acc > k, bpf.BPF_JGE: acc >= k,
                     bpf.BPF_JSET: bool(acc & k)}[code_ & 0xF0]
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError("unexpected instruction {:#x}".format(code_))
        assert pc < len(insns), "ran off the end of the program"


def docker_default(caps_=DEFAULT_CAPS, machine="x86_64", release="6.1.0-18-amd64"):
    return seccomp.compile_profile(seccomp_default.profile(), caps_, machine, release)


def nr(name, machine="x86_64"):
    return seccomp_tables.table(machine)[name]


# ------------------------------------------------------------------------------------------ assembler

def test_assemble_resolves_labels_and_next():
    end, other = bpf.Label("end"), bpf.Label("other")
    code = bpf.assemble([bpf.ld_abs(0), bpf.jump(bpf.BPF_JEQ, 5, end, None), bpf.jump(bpf.BPF_JGT, 9, None, other),
                         bpf.ret(1), other, bpf.ret(2), end, bpf.ret(3)])
    assert bpf.disassemble(code)[1] == (bpf.BPF_JMP | bpf.BPF_JEQ, 3, 0, 5)
    assert bpf.disassemble(code)[2] == (bpf.BPF_JMP | bpf.BPF_JGT, 0, 1, 9)
    assert [run_filter(code, n) for n in (5, 10, 7)] == [3, 1, 2]


def test_assemble_far_targets_go_through_trampolines():
    far, far2 = bpf.Label("far"), bpf.Label("far2")
    filler = [bpf.ret(100 + i) for i in range(300)]
    items = [bpf.ld_abs(0), bpf.jump(bpf.BPF_JEQ, 1, far, None), bpf.jump(bpf.BPF_JEQ, 2, None, far2),
             bpf.ret(7)] + filler + [far, bpf.ret(8), far2, bpf.ret(9)]
    code = bpf.assemble(items)
    assert all(jt <= 255 and jf <= 255 for _, jt, jf, _ in bpf.disassemble(code))
    assert sum(1 for c, _, _, _ in bpf.disassemble(code) if c == bpf.BPF_JMP | bpf.BPF_JA) == 2
    assert [run_filter(code, n) for n in (1, 2, 3)] == [8, 7, 9]


def test_assemble_refuses_backward_jumps_unplaced_labels_and_long_programs():
    back, nowhere = bpf.Label("back"), bpf.Label("nowhere")
    with pytest.raises(ValueError, match="backward"):
        bpf.assemble([back, bpf.ld_abs(0), bpf.jump(bpf.BPF_JEQ, 1, back, None), bpf.ret(0)])
    with pytest.raises(ValueError, match="never placed"):
        bpf.assemble([bpf.goto(nowhere), bpf.ret(0)])
    with pytest.raises(ValueError, match="too long"):
        bpf.assemble([bpf.ret(0)] * (bpf.BPF_MAXINSNS + 1))


# ------------------------------------------------------------------------------------------ Docker's default

BLOCKED = ("unshare", "mount", "umount2", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
           "kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "pivot_root",
           "clock_settime", "settimeofday", "userfaultfd", "open_by_handle_at", "fsopen", "move_mount",
           "sethostname", "setdomainname", "syslog", "acct", "iopl", "ioperm", "kcmp", "process_madvise",
           "quotactl", "vhangup", "lookup_dcookie", "mbind", "set_mempolicy", "uselib", "nfsservctl")
ALLOWED = ("read", "write", "openat", "close", "execve", "exit_group", "futex", "epoll_wait", "mmap", "capset",
           "setuid", "setgroups", "prctl", "chroot", "ptrace", "arch_prctl", "wait4", "kill", "seccomp", "statx",
           "rseq", "fchmodat2", "listxattrat", "mknodat", "socketpair", "vfork")


@pytest.mark.parametrize("machine,arch", [("x86_64", X86_64), ("aarch64", AARCH64)])
def test_default_profile_blocks_and_allows(machine, arch):
    prog = docker_default(machine=machine)
    table = seccomp_tables.table(machine)
    for name in BLOCKED:
        if name in table:
            assert run_filter(prog.code, table[name], arch) == EPERM, name
    for name in ALLOWED:
        if name in table:
            assert run_filter(prog.code, table[name], arch) == ALLOW, name
    assert sum(1 for n in BLOCKED if n in table) > 25


def test_default_profile_clone_flags_clone3_personality_and_sockets():
    prog = docker_default().code
    fork_flags = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD: what fork() passes
    assert run_filter(prog, nr("clone"), args=[fork_flags]) == ALLOW
    for flag in (0x10000000, 0x00020000, 0x20000000, 0x40000000, 0x04000000, 0x08000000, 0x02000000):
        assert run_filter(prog, nr("clone"), args=[fork_flags | flag]) == EPERM, hex(flag)
    assert run_filter(prog, nr("clone3")) == ENOSYS  # libc falls back to clone, which is filtered
    for persona, want in ((0, ALLOW), (8, ALLOW), (0x20000, ALLOW), (0x20008, ALLOW), (0xFFFFFFFF, ALLOW),
                          (0x0400000, EPERM), (0x0040000, EPERM), (1, EPERM), (0x1FFFFFFFF, EPERM)):
        assert run_filter(prog, nr("personality"), args=[persona]) == want, hex(persona)
    for family, want in ((1, ALLOW), (2, ALLOW), (10, ALLOW), (16, ALLOW), (37, ALLOW), (38, EPERM),
                         (39, ALLOW), (40, EPERM), (41, ALLOW), (45, ALLOW)):
        assert run_filter(prog, nr("socket"), args=[family]) == want, family


def test_default_profile_with_capabilities_opens_what_docker_opens():
    prog = docker_default(DEFAULT_CAPS + ["CAP_SYS_ADMIN"]).code
    for name in ("unshare", "mount", "setns", "clone3", "sethostname", "bpf", "perf_event_open"):
        assert run_filter(prog, nr(name)) == ALLOW, name
    assert run_filter(prog, nr("clone"), args=[0x10000000]) == ALLOW
    assert run_filter(prog, nr("keyctl")) == EPERM  # not capability-gated: never allowed
    prog = docker_default(DEFAULT_CAPS + ["CAP_SYS_PTRACE", "CAP_SYS_TIME"]).code
    assert run_filter(prog, nr("process_madvise")) == ALLOW and run_filter(prog, nr("clock_settime")) == ALLOW
    assert run_filter(prog, nr("unshare")) == EPERM
    prog = docker_default([c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"]).code
    assert run_filter(prog, nr("chroot")) == EPERM


def test_default_profile_min_kernel():
    assert run_filter(docker_default(release="4.4.0-1-amd64").code, nr("ptrace")) == EPERM
    assert run_filter(docker_default(release="4.8.0").code, nr("ptrace")) == ALLOW
    assert run_filter(docker_default(DEFAULT_CAPS + ["CAP_SYS_PTRACE"], release="4.4.0").code, nr("ptrace")) == ALLOW


def test_architecture_check_and_x32():
    prog = docker_default().code
    assert run_filter(prog, nr("read"), arch=I386) == KILL_PROCESS  # no i386 table: the foreign ABI is refused
    assert run_filter(prog, 0x40000000 | nr("read")) == KILL_PROCESS  # x32 ABI
    assert run_filter(prog, 0xFFFFFFFF) == ENOSYS  # -1 passes the x32 check (libseccomp's exception)
    arm = docker_default(machine="aarch64").code
    assert run_filter(arm, nr("read", "aarch64"), arch=X86_64) == KILL_PROCESS
    assert run_filter(arm, 0x40000000 | nr("read", "aarch64"), arch=AARCH64) == ENOSYS  # no x32 on arm64


def test_syscalls_newer_than_the_profile_answer_enosys():
    prog = docker_default().code
    highest = max(v for k, v in seccomp_tables.table("x86_64").items()
                  if any(k in r.get("names", []) for r in seccomp_default.profile()["syscalls"]))
    assert run_filter(prog, highest + 1) == ENOSYS and run_filter(prog, 1000) == ENOSYS
    assert run_filter(prog, 336) == EPERM  # inside the profile's range, not named: the default action


def test_default_program_is_small():
    assert len(docker_default()) < 300  # a binary search, not a 370-step chain


# ------------------------------------------------------------------------------------------ custom profiles

def profile(*rules, default="SCMP_ACT_ERRNO", **extra):
    return dict({"defaultAction": default, "syscalls": list(rules)}, **extra)


def compile_x86(prof, caps_=DEFAULT_CAPS):
    return seccomp.compile_profile(seccomp.validate(prof), caps_, "x86_64", "6.1.0").code


def reference(op, arg, value, value_two):
    return {"SCMP_CMP_NE": arg != value, "SCMP_CMP_LT": arg < value, "SCMP_CMP_LE": arg <= value,
            "SCMP_CMP_EQ": arg == value, "SCMP_CMP_GE": arg >= value, "SCMP_CMP_GT": arg > value,
            "SCMP_CMP_MASKED_EQ": arg & value == value_two}[op]


@pytest.mark.parametrize("op", seccomp.OPERATORS)
@pytest.mark.parametrize("value", [0, 7, 0xFFFFFFFF, 0x100000000, 0x500000007, 0xFFFFFFFFFFFFFFFF])
def test_argument_compares_are_64_bit(op, value):
    value_two = value & 0x0000000F0000000F
    prog = compile_x86(profile({"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 2, "value": value, "valueTwo": value_two, "op": op}]}))
    probes = {0, 1, 6, 7, 8, 0xFFFFFFFE, 0xFFFFFFFF, 0x100000000, 0x100000007, 0x500000006, 0x500000007,
              0x500000008, 0x4FFFFFFFF, 0xFFFFFFFFFFFFFFFF, value, value_two, (value + 1) & (2 ** 64 - 1),
              (value - 1) % 2 ** 64}
    for arg in sorted(probes):
        want = ALLOW if reference(op, arg, value, value_two) else EPERM
        assert run_filter(prog, nr("ioctl"), args=[0, 0, arg]) == want, (op, hex(value), hex(arg))


def test_rules_and_or_order_and_actions():
    prog = compile_x86(profile(
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW",  # one index twice: runc makes one rule of each (OR)
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EIO},
        {"names": ["read"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"name": "write", "action": "SCMP_ACT_LOG"},
        {"names": ["getpid", "no_such_syscall"], "action": "SCMP_ACT_KILL"},
        {"names": ["gettid"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
        {"names": ["getuid"], "action": "SCMP_ACT_ERRNO"},  # == the default: skipped
        {"names": ["getuid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64", "amd64"]}},
        {"names": ["file_setattr"], "action": "SCMP_ACT_ALLOW"},  # the highest number: no ENOSYS below it
    ))
    assert run_filter(prog, nr("ioctl"), args=[1, 2]) == ALLOW
    assert run_filter(prog, nr("ioctl"), args=[1, 3]) == EPERM and run_filter(prog, nr("ioctl"), args=[2, 2]) == EPERM
    assert [run_filter(prog, nr("fcntl"), args=[a]) for a in (1, 2, 3)] == [ALLOW, ALLOW, EPERM]
    assert run_filter(prog, nr("read"), args=[9]) == seccomp.RET_TRAP  # conditional before unconditional
    assert run_filter(prog, nr("read"), args=[8]) == seccomp.RET_ERRNO | errno.EIO
    assert run_filter(prog, nr("write")) == seccomp.RET_LOG
    assert run_filter(prog, nr("getpid")) == seccomp.RET_KILL_THREAD
    assert run_filter(prog, nr("gettid")) == KILL_PROCESS
    assert run_filter(prog, nr("getppid")) == seccomp.RET_TRACE | 5
    assert run_filter(prog, nr("getuid")) == ALLOW
    assert run_filter(prog, nr("unshare")) == EPERM and run_filter(prog, nr("setns")) == EPERM
    assert run_filter(prog, nr("mount")) == ALLOW


def test_allow_default_has_no_enosys_stub_and_errno_default_keeps_its_errno():
    prog = compile_x86(profile({"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}, default="SCMP_ACT_ALLOW"))
    assert run_filter(prog, nr("keyctl")) == EPERM
    assert run_filter(prog, nr("read")) == ALLOW and run_filter(prog, 1000) == ALLOW
    prog = compile_x86(dict(profile({"names": ["read", "mount"], "action": "SCMP_ACT_ALLOW"}),
                            defaultErrnoRet=errno.EACCES))
    assert run_filter(prog, nr("write")) == seccomp.RET_ERRNO | errno.EACCES
    assert run_filter(prog, nr("mount") + 1) == ENOSYS  # above the highest syscall the profile names (runc)


def test_many_conditional_rules_still_decide_right():
    """Enough argument rules to push jumps past 255 instructions: trampolines must keep every answer right."""
    rules = [{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]}
             for v in range(0, 400, 2)] + [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    prog = compile_x86(profile(*rules))
    assert len(prog) // 8 > 1000
    for v in (0, 2, 3, 200, 398, 399, 400):
        want = ALLOW if v % 2 == 0 and v < 400 else EPERM
        assert run_filter(prog, nr("ioctl"), args=[0, v]) == want, v
    assert run_filter(prog, nr("write")) == ALLOW and run_filter(prog, nr("open")) == EPERM


def test_a_profile_without_action_and_syscalls_means_no_filter():
    assert seccomp.compile_profile(seccomp.validate({}), DEFAULT_CAPS) is None
    assert seccomp.container_filter(seccomp.check_option("{}"), DEFAULT_CAPS) is None


def test_flags():
    prog = seccomp.compile_profile(seccomp.validate(profile(flags=["SECCOMP_FILTER_FLAG_LOG",
                                                                   "SECCOMP_FILTER_FLAG_TSYNC"])), DEFAULT_CAPS)
    assert prog.flags == 2


def test_unknown_machine_is_failed_precondition():
    with pytest.raises(errors.FailedPrecondition, match="seccomp=unconfined"):
        seccomp.compile_profile(seccomp_default.profile(), DEFAULT_CAPS, "riscv64")


@pytest.mark.parametrize("prof,message", [
    ([], "JSON object"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "invalid action 'SCMP_ACT_NOPE'"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "not supported"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "errnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]}, "both 'architectures'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}, "not a valid arch"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "not supported"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}, "listenerPath"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {"names": ["read"]}}, "syscalls must be a list"),
    ({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}, "invalid action ''"),
    (profile({"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}), "both 'name' and 'names'"),
    (profile({"names": [], "action": "SCMP_ACT_ALLOW"}), "empty string is not a valid syscall"),
    (profile({"names": ["read"]}), "syscalls[0]: invalid action None"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1,
                                                                      "op": "SCMP_CMP_EQ"}]}), "index"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2 ** 64,
                                                                      "op": "SCMP_CMP_EQ"}]}), "64-bit"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1.5,
                                                                      "op": "SCMP_CMP_EQ"}]}), "64-bit"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "EQ"}]}), "operator"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}), "kernel version"),
    (profile({"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": "CAP_SYS_ADMIN"}}), "caps"),
])
def test_validation_names_the_source(prof, message):
    with pytest.raises(errors.InvalidArgument) as err:
        seccomp.check_option(json.dumps(prof), source="/tmp/p.json")
    assert err.value.message.startswith("/tmp/p.json: ") and message in err.value.message, err.value.message


def test_check_option_keywords_and_broken_json():
    assert seccomp.check_option(None) is None
    assert seccomp.check_option("unconfined") == "unconfined" and seccomp.check_option("builtin") == "builtin"
    with pytest.raises(errors.InvalidArgument, match="decoding seccomp profile failed"):
        seccomp.check_option('{"defaultAction": ', source="p.json")
    with pytest.raises(errors.InvalidArgument):
        seccomp.check_option(5)
    text = '{\n "syscalls": [],\n "defaultAction": "SCMP_ACT_ALLOW"\n}'
    assert seccomp.check_option(text) == '{"syscalls":[],"defaultAction":"SCMP_ACT_ALLOW"}'  # compact, same order
    assert seccomp.check_option({"defaultAction": "SCMP_ACT_ALLOW"}) == '{"defaultAction":"SCMP_ACT_ALLOW"}'


def test_container_filter_privileged_and_unconfined_are_none():
    assert seccomp.container_filter(None, DEFAULT_CAPS, privileged=True) is None
    assert seccomp.container_filter("unconfined", DEFAULT_CAPS) is None
    assert seccomp.container_filter(json.dumps(profile()), DEFAULT_CAPS, privileged=True) is None
    assert seccomp.container_filter("builtin", DEFAULT_CAPS).code == seccomp.container_filter(None, DEFAULT_CAPS).code


def test_default_profile_is_mobys_data():
    prof = seccomp_default.profile()
    assert seccomp.validate(prof) is prof
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    names = [n for r in prof["syscalls"] for n in r["names"]]
    assert len(names) > 400 and "unshare" in names and "keyctl" not in names


# ------------------------------------------------------------------------------------------ the kernel

@pytest.mark.skipif(os.uname().machine not in seccomp.NATIVE, reason="no syscall table for this machine")
def test_installed_filter_blocks_in_the_kernel():
    """A forked child with no_new_privs loads Docker's default program: unshare(CLONE_NEWUSER) is EPERM there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
            seccomp.install(seccomp.container_filter(None, DEFAULT_CAPS))
            with open("/proc/self/status") as f:
                mode = [line.split()[1] for line in f if line.startswith("Seccomp:")][0]
            rc = libc.unshare(0x10000000)
            err = ctypes.get_errno()
            os.write(w, "{} {} {} {}".format(mode, rc, err, os.getpid() > 0).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = os.read(r, 100).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert out == "2 -1 {} True".format(errno.EPERM)


# ------------------------------------------------------------------------------------------ the op args

def test_run_args_seccomp_checked_before_anything():
    from agent_payload.runtime.spec import isolation_flags

    assert isolation_flags()["seccomp"] is None
    assert isolation_flags(**{"seccomp": "unconfined"})["seccomp"] == "unconfined"
    text = json.dumps(profile({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                              default="SCMP_ACT_ALLOW"), indent=2)
    assert json.loads(isolation_flags(**{"seccomp": text})["seccomp"]) == json.loads(text)
    with pytest.raises(errors.InvalidArgument, match="seccomp profile: syscalls.0.: invalid action 'NOPE'"):
        isolation_flags(**{"seccomp": json.dumps(profile({"names": ["read"], "action": "NOPE"}))})
    huge = profile(*[{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]} for v in range(1500)])
    with pytest.raises(errors.InvalidArgument, match="program too long"):
        isolation_flags(**{"seccomp": json.dumps(huge)})
    assert isolation_flags(**{"seccomp": json.dumps(huge), "privileged": True})["privileged"]  # never compiled


def test_hand_cli_run_reads_the_profile_on_the_host(tmp_path):
    from agent_payload import handcli

    f = tmp_path / "p.json"
    f.write_text(json.dumps(profile(default="SCMP_ACT_ALLOW")))
    ns = handcli._parser().parse_args(["run", "--security-opt", "seccomp=" + str(f), "--security-opt",
                                       "no-new-privileges", "--privileged", "busybox", "true"])
    args = handcli._hand_args(ns)
    assert json.loads(args["seccomp"]) == profile(default="SCMP_ACT_ALLOW")
    assert args["no_new_privileges"] is True and args["privileged"] is True and args["command"] == ["true"]
    ns = handcli._parser().parse_args(["run", "--security-opt", "seccomp=" + str(tmp_path / "nope.json"), "busybox"])
    with pytest.raises(errors.InvalidArgument, match="opening seccomp profile .*nope.json.* failed"):
        handcli._hand_args(ns)


def test_inspect_security_opt(tmp_path):
    from agent_payload.runtime import inspect
    from agent_payload.state.paths import Paths

    rec = {"id": "f" * 64, "name": "c", "status": "created", "argv": ["true"]}
    paths = Paths(root=str(tmp_path))
    assert inspect.inspect_object(paths, rec)["HostConfig"]["SecurityOpt"] is None
    obj = inspect.inspect_object(paths, dict(rec, no_new_privileges=True, seccomp="unconfined"))
    assert obj["HostConfig"]["SecurityOpt"] == ["no-new-privileges", "seccomp=unconfined"]
    obj = inspect.inspect_object(paths, dict(rec, seccomp='{"defaultAction":"SCMP_ACT_ALLOW"}'))
    assert obj["HostConfig"]["SecurityOpt"] == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']

