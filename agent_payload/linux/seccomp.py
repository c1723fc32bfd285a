"""Seccomp as Docker applies it: Docker's JSON profiles, compiled to classic BPF here, installed with prctl(2).

No libseccomp (the payload is stdlib only), so this module does what moby's profiles/seccomp (rule selection),
runc (rule conversion) and libseccomp (code generation) do between them:

1. **Selection** (moby ``setupSeccomp``): a rule is dropped when its ``excludes`` match (any listed cap in the
   container's bounding set, the machine's arch listed, the kernel at least ``minKernel``) or its ``includes``
   do not (every listed cap, the arch, the kernel version). Arch names are libseccomp's (``amd64``, ``arm64``).
2. **Conversion** (runc ``InitSeccomp``/``matchCall``): names this machine's syscall table lacks are skipped; a
   rule with the default action is redundant and skipped; args on distinct indexes are ANDed in one rule, args
   repeating an index become one rule each (ORed). For one syscall, rules with arguments are tried in profile
   order, then its first rule without arguments, then the default action. (Docker's default profile never
   gives one syscall rules that overlap; for a custom profile that does, libseccomp's merging of its decision
   tree may pick differently, or refuse the profile.)
3. **Code** (libseccomp's generator, plus runc's ``patchbpf`` stub): check ``seccomp_data.arch`` against the
   native AUDIT_ARCH, on x86_64 also refuse the x32 ABI (syscall numbers with bit 0x40000000, except -1) as
   libseccomp does for a filter without x32; then a binary search over the syscall number (ranges with one
   constant answer are one leaf; a syscall with argument rules gets its checks inline, 64-bit compares done on
   the two 32-bit halves); a number above the highest one the profile names answers ENOSYS (runc's stub, so
   libc falls back from a syscall newer than the profile) unless the default action is an allow-like one.

Architectures: only the native ABI passes. Docker's profile also lists i386/x32 (on x86_64) and arm (on aarch64)
as sub-architectures; fleet has no tables for them, so their syscalls get the "bad arch" answer,
SECCOMP_RET_KILL_PROCESS (libseccomp's default bad-arch action kills too): a 32-bit binary cannot run in a
confined container. Syscall tables exist for x86_64 and aarch64 (``seccomp_tables.py``); on another machine a
confined container does not start (FailedPrecondition, naming ``seccomp=unconfined``).

The controller imports this module too (``security_opt_args``, ``check_option``): --security-opt is parsed
and a PROFILE.json checked by the same code on both ends, before any host is contacted.

Installing (``install``) needs no_new_privs or CAP_SYS_ADMIN: the init and exec'd processes install the filter
while still privileged unless no-new-privileges is set, as runc does (``runtime/process.py``).
"""

import ctypes
import errno as _errno
import json
import os

from .. import errors
from . import bpf, libc

# return values (<linux/seccomp.h>)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_DATA = 0x0000FFFF

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1

#: struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little-endian machines)
OFF_NR, OFF_ARCH, OFF_ARGS = 0, 4, 16
X32_SYSCALL_BIT = 0x40000000
MAX_ARGS = 6

BUILTIN, UNCONFINED = "builtin", "unconfined"

#: profile action -> return value (ERRNO and TRACE add errnoRet, EPERM by default); SCMP_ACT_KILL is KillThread
ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS, "SCMP_ACT_TRAP": RET_TRAP, "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE, "SCMP_ACT_ALLOW": RET_ALLOW, "SCMP_ACT_LOG": RET_LOG,
}
#: actions runc knows but fleet cannot honour (a user-space notifier needs an agent listening on a socket)
UNSUPPORTED_ACTIONS = ("SCMP_ACT_NOTIFY",)
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ")
#: runc's SCMP_ARCH_* names -> libseccomp's arch names (what includes/excludes "arches" use)
ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X32": "x32", "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_LOONGARCH64": "loong64",
}
#: filter flags runc applies (TSYNC is accepted and ignored, as runc does: the process is single-threaded)
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
UNSUPPORTED_FLAGS = ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",)  # only meaningful with a notifier


class Native(object):
    """What the compiler needs about one machine: its libseccomp arch name, AUDIT_ARCH value and x32 rule."""

    __slots__ = ("machine", "arch", "audit_arch", "x32_bit")

    def __init__(self, machine, arch, audit_arch, x32_bit):
        self.machine, self.arch, self.audit_arch, self.x32_bit = machine, arch, audit_arch, x32_bit


NATIVE = {
    "x86_64": Native("x86_64", "amd64", 0xC000003E, True),  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    "aarch64": Native("aarch64", "arm64", 0xC00000B7, False),  # EM_AARCH64 | 64BIT | LE
}
NATIVE["arm64"] = NATIVE["aarch64"]


class Filter(object):
    """A compiled filter: ``code`` (struct sock_filter array bytes) and the seccomp(2) ``flags`` it wants."""

    __slots__ = ("code", "flags")

    def __init__(self, code, flags=0):
        self.code, self.flags = code, flags

    def __len__(self):
        return len(self.code) // 8


# ------------------------------------------------------------------------------------------ validation

def _bad(source, what):
    return errors.InvalidArgument("{}: {}".format(source, what))


def _uint(value, bits):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < (1 << bits)


def _str_list(value):
    return value is None or isinstance(value, list) and all(isinstance(v, str) for v in value)


def kernel_version(text):
    """Docker's KernelVersion of "X.Y" (minKernel): (X, Y); ValueError as Docker's decoder refuses."""
    parts = text.split(".", 2)
    if len(parts) != 2 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError('invalid kernel version: "{}", expected "<kernel>.<major>"'.format(text))
    version = (int(parts[0]), int(parts[1]))
    if version == (0, 0):
        raise ValueError('invalid kernel version: "{}": version cannot be 0.0'.format(text))
    return version


def _check_filter(source, where, value):
    if value is None:
        return
    if not isinstance(value, dict):
        raise _bad(source, "{} must be an object".format(where))
    for key in ("caps", "arches"):
        if not _str_list(value.get(key)):
            raise _bad(source, "{}.{} must be a list of strings".format(where, key))
    mk = value.get("minKernel")
    if mk is not None:
        if not isinstance(mk, str):
            raise _bad(source, "{}.minKernel must be a string".format(where))
        if mk:
            try:
                kernel_version(mk)
            except ValueError as exc:
                raise _bad(source, "{}.minKernel: {}".format(where, exc))


def _check_action(source, where, action, errno_ret):
    if action in UNSUPPORTED_ACTIONS:
        raise _bad(source, "{}: {} is not supported by fleet".format(where, action))
    if action not in ACTIONS:
        raise _bad(source, "{}: invalid action {!r}".format(where, action))
    if errno_ret is not None and not _uint(errno_ret, 16):
        raise _bad(source, "{}: errnoRet must be an integer from 0 to 65535".format(where))


def validate(profile, source="seccomp profile"):
    """Check a decoded profile (Docker's format) as Docker, runc and libseccomp would; returns it.

    Unknown keys are ignored (Go's decoder does). A profile with neither defaultAction nor syscalls means
    "no filter", as in Docker. Errors are InvalidArgument naming ``source``.
    """
    if not isinstance(profile, dict):
        raise _bad(source, "a seccomp profile must be a JSON object")
    default = profile.get("defaultAction") or ""
    syscalls = profile.get("syscalls")
    if syscalls is not None and not isinstance(syscalls, list):
        raise _bad(source, "syscalls must be a list")
    if not isinstance(default, str):
        raise _bad(source, "defaultAction must be a string")
    if not default and not syscalls:
        return profile
    _check_action(source, "defaultAction", default, profile.get("defaultErrnoRet"))
    if profile.get("architectures") and profile.get("archMap"):
        raise _bad(source, "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
                           "'architectures' or 'archMap'")
    if not _str_list(profile.get("architectures")):
        raise _bad(source, "architectures must be a list of strings")
    arches = list(profile.get("architectures") or [])
    arch_map = profile.get("archMap") or []
    if not isinstance(arch_map, list) or not all(isinstance(a, dict) for a in arch_map):
        raise _bad(source, "archMap must be a list of objects")
    for entry in arch_map:
        if not isinstance(entry.get("architecture"), str) or not _str_list(entry.get("subArchitectures")):
            raise _bad(source, "archMap entries need an architecture and a list of subArchitectures")
        arches += [entry["architecture"]] + list(entry.get("subArchitectures") or [])
    for arch in arches:
        if arch not in ARCHES:
            raise _bad(source, "{!r} is not a valid arch for seccomp".format(arch))
    if not _str_list(profile.get("flags")):
        raise _bad(source, "flags must be a list of strings")
    for flag in profile.get("flags") or []:
        if flag in UNSUPPORTED_FLAGS or flag not in FLAGS:
            raise _bad(source, "seccomp flag {} is not supported by fleet".format(flag))
    if profile.get("listenerPath"):
        raise _bad(source, "listenerPath (SCMP_ACT_NOTIFY) is not supported by fleet")
    for i, call in enumerate(syscalls or []):
        where = "syscalls[{}]".format(i)
        if not isinstance(call, dict):
            raise _bad(source, "{} must be an object".format(where))
        name, names = call.get("name"), call.get("names")
        if name is not None and not isinstance(name, str) or not _str_list(names):
            raise _bad(source, "{}: name must be a string and names a list of strings".format(where))
        if name and names:
            raise _bad(source, "both 'name' and 'names' are specified in the seccomp profile, use either "
                               "'name' or 'names'")
        if not name and not names or any(not n for n in names or []):
            raise _bad(source, "{}: empty string is not a valid syscall".format(where))
        _check_action(source, where, call.get("action"), call.get("errnoRet"))
        args = call.get("args")
        if args is not None and not isinstance(args, list):
            raise _bad(source, "{}.args must be a list".format(where))
        for arg in args or []:
            if not isinstance(arg, dict):
                raise _bad(source, "{}.args entries must be objects".format(where))
            if not _uint(arg.get("index"), 32) or arg["index"] >= MAX_ARGS:
                raise _bad(source, "{}: argument index must be 0 to {}".format(where, MAX_ARGS - 1))
            for key in ("value", "valueTwo"):
                if arg.get(key) is not None and not _uint(arg[key], 64):
                    raise _bad(source, "{}: argument {} must be an unsigned 64-bit integer".format(where, key))
            if arg.get("op") not in OPERATORS:
                raise _bad(source, "{}: invalid operator {!r}".format(where, arg.get("op")))
        _check_filter(source, where + ".includes", call.get("includes"))
        _check_filter(source, where + ".excludes", call.get("excludes"))
    return profile


def parse(text, source="seccomp profile"):
    """Decode and validate a profile's JSON text; InvalidArgument naming ``source`` on any fault."""
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise _bad(source, "decoding seccomp profile failed: {}".format(exc))
    return validate(profile, source)


def check_option(value, source="seccomp profile"):
    """A container's seccomp setting as ContainerSpec.seccomp keeps it: None (the default), "builtin",
    "unconfined", or a checked profile as compact JSON text (what Docker keeps after "seccomp=" and inspect
    shows, in the file's key order). ``value`` may be any of these, or a profile dict."""
    if value is None or value in (BUILTIN, UNCONFINED):
        return value
    if isinstance(value, str):
        value = parse(value, source)
    if isinstance(value, dict):
        return json.dumps(validate(value, source), separators=(",", ":"))
    raise _bad(source, 'want "builtin", "unconfined" or a profile')


def security_opt_args(opts, read_file):
    """docker's --security-opt values as the op args {"no_new_privileges": bool, "seccomp": str|None}.

    As the docker CLI (and daemon) parse them: ``no-new-privileges[=|:true|false]``, ``seccomp=unconfined``,
    ``seccomp=builtin``, ``seccomp=PROFILE.json`` (the file is read here, on the client, by
    ``read_file(path) -> text``, checked, and sent as compact JSON text); ``key:value`` is accepted for
    ``key=value``; the last value of a key wins. Anything else (label=, apparmor=, ...) is InvalidArgument.
    """
    out = {"no_new_privileges": False, "seccomp": None}
    for opt in opts:
        if "=" in opt:
            key, _, value = opt.partition("=")
        else:
            key, _, value = opt.partition(":")
        if key == "no-new-privileges":
            if value.lower() not in ("", "true", "false") or (opt != key and not value):
                raise errors.InvalidArgument('invalid --security-opt "{}": want no-new-privileges[=true|false]'
                                             .format(opt))
            out["no_new_privileges"] = value.lower() != "false"
        elif key == "seccomp":
            if not value:
                raise errors.InvalidArgument('invalid --security-opt "{}": want seccomp=unconfined|builtin|'
                                             'PROFILE.json'.format(opt))
            if value in (BUILTIN, UNCONFINED):
                out["seccomp"] = value
                continue
            try:
                text = read_file(value)
            except (OSError, ValueError) as exc:  # ValueError: not UTF-8
                raise errors.InvalidArgument("opening seccomp profile ({}) failed: {}".format(
                    value, (getattr(exc, "strerror", None) or str(exc)).lower()))
            out["seccomp"] = check_option(text, "seccomp profile ({})".format(value))
        else:
            raise errors.InvalidArgument('unsupported security option "{}": fleet supports '
                                         'no-new-privileges[=true|false] and seccomp=unconfined|builtin|PROFILE.json'
                                         .format(opt))
    return out


# ------------------------------------------------------------------------------------------ compiling

def _action(name, errno_ret):
    base = ACTIONS[name]
    if base == RET_ERRNO or base == RET_TRACE:
        return base | ((_errno.EPERM if errno_ret is None else errno_ret) & RET_DATA)
    return base


def _kernel(release):
    """(major, minor) of a uname release ("6.1.0-18-amd64" -> (6, 1)), as Docker's kernel check reads it."""
    parts = []
    for piece in release.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (2 - len(parts)))


def _selected(call, arch, caps, kernel):
    """moby's setupSeccomp: does this rule apply to this container on this machine?"""
    exc = call.get("excludes") or {}
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    if exc.get("minKernel") and kernel >= kernel_version(exc["minKernel"]):
        return False
    inc = call.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel") and kernel < kernel_version(inc["minKernel"]):
        return False
    return True


def decisions(profile, caps, machine, release):
    """The profile resolved for one container: (default, {nr: (conditional rules, unconditional or None)},
    highest nr named) where a conditional rule is ([(index, op, value, value_two)], action)."""
    from .seccomp_tables import table

    native = NATIVE[machine]
    numbers = table(machine)
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    kernel = _kernel(release)
    rules, highest = {}, -1
    for call in profile.get("syscalls") or []:
        if not _selected(call, native.arch, caps, kernel):
            continue
        action = _action(call["action"], call.get("errnoRet"))
        args = [(a["index"], a["op"], a.get("value") or 0, a.get("valueTwo") or 0) for a in call.get("args") or []]
        indexes = [a[0] for a in args]
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        for name in [call["name"]] if call.get("name") else call.get("names") or []:
            nr = numbers.get(name)
            if nr is None:
                continue  # not a syscall of this machine (or newer than our table): libseccomp skips it too
            highest = max(highest, nr)
            if action == default:
                continue  # redundant, as runc skips it
            cond, uncond = rules.get(nr, ([], None))
            if not args:
                rules[nr] = (cond, action if uncond is None else uncond)
            else:
                rules[nr] = (cond + [(g, action) for g in groups], uncond)
    return default, rules, highest


def _arg_check(index, op, value, value_two, fail, out):
    """Code that falls through when the 64-bit argument passes ``op`` and jumps to ``fail`` otherwise."""
    lo, hi = OFF_ARGS + 8 * index, OFF_ARGS + 8 * index + 4
    ok = bpf.Label("pass")
    if op == "SCMP_CMP_MASKED_EQ":  # (arg & value) == valueTwo
        out += [bpf.ld_abs(hi), bpf.and_k(value >> 32), bpf.jump(bpf.BPF_JEQ, value_two >> 32, None, fail),
                bpf.ld_abs(lo), bpf.and_k(value), bpf.jump(bpf.BPF_JEQ, value_two, None, fail)]
    elif op == "SCMP_CMP_EQ":
        out += [bpf.ld_abs(hi), bpf.jump(bpf.BPF_JEQ, value >> 32, None, fail),
                bpf.ld_abs(lo), bpf.jump(bpf.BPF_JEQ, value, None, fail)]
    elif op == "SCMP_CMP_NE":
        out += [bpf.ld_abs(hi), bpf.jump(bpf.BPF_JEQ, value >> 32, None, ok),
                bpf.ld_abs(lo), bpf.jump(bpf.BPF_JEQ, value, fail, None)]
    else:  # ordered compares: the high halves decide unless equal, then the low halves (unsigned)
        greater = op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
        last = bpf.BPF_JGT if op in ("SCMP_CMP_GT", "SCMP_CMP_LE") else bpf.BPF_JGE
        out += [bpf.ld_abs(hi), bpf.jump(bpf.BPF_JGT, value >> 32, ok if greater else fail, None),
                bpf.jump(bpf.BPF_JEQ, value >> 32, None, fail if greater else ok),
                bpf.ld_abs(lo), bpf.jump(last, value, None if greater else fail, fail if greater else None)]
    out.append(ok)


def _leaf(result, blocks, out):
    kind, value = result
    if kind == "ret":
        out.append(bpf.ret(value))
        return
    cond, fallback = blocks[value]
    for checks, action in cond:
        nxt = bpf.Label("next-rule")
        for check in checks:
            _arg_check(*check, fail=nxt, out=out)
        out.append(bpf.ret(action))
        out.append(nxt)
    out.append(bpf.ret(fallback))


def _tree(intervals, blocks, out):
    """Binary search on the syscall number (in A) over [(first nr, result)], each up to the next one's start."""
    if len(intervals) == 1:
        _leaf(intervals[0][1], blocks, out)
        return
    mid = len(intervals) // 2
    right = bpf.Label("nr>={}".format(intervals[mid][0]))
    out.append(bpf.jump(bpf.BPF_JGE, intervals[mid][0], right, None))
    _tree(intervals[:mid], blocks, out)
    out.append(right)
    _tree(intervals[mid:], blocks, out)


def intervals(default, rules, highest):
    """The syscall-number line as [(first nr, result)] in order, each result ("ret", value) or ("block", nr)
    (a syscall with argument rules), adjacent equal answers merged; above ``highest``: ENOSYS when the
    default action is not allow-like (runc's stub)."""
    enosys = RET_ERRNO | _errno.ENOSYS
    stub = highest >= 0 and default & 0xFFFF0000 not in (RET_ALLOW, RET_LOG, RET_TRACE) and default != enosys
    points = {0: ("ret", default)}
    for nr in sorted(rules):
        cond, uncond = rules[nr]
        points[nr] = ("block", nr) if cond else ("ret", uncond)
        if nr + 1 not in rules:
            points[nr + 1] = ("ret", default)
    if stub:
        points = {nr: r for nr, r in points.items() if nr <= highest}
        points[highest + 1] = ("ret", enosys)
    out = []
    for nr in sorted(points):
        if not out or points[nr][0] == "block" or points[nr] != out[-1][1]:
            out.append((nr, points[nr]))
    return out


def compile_profile(profile, caps, machine=None, release=None):
    """Compile a validated profile for a container with bounding set ``caps`` (names) into a ``Filter``;
    None when the profile asks for no filter. FailedPrecondition on a machine without a syscall table."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    uname = os.uname()
    machine = machine or uname.machine
    native = NATIVE.get(machine)
    if native is None:
        raise errors.FailedPrecondition("seccomp: fleet has no syscall table for {}; run the container with "
                                        "--security-opt seccomp=unconfined".format(machine))
    default, rules, highest = decisions(profile, set(caps), machine, release or uname.release)
    blocks = {nr: (cond, default if uncond is None else uncond) for nr, (cond, uncond) in rules.items()}
    bad_arch, tree = bpf.Label("bad-arch"), bpf.Label("tree")
    out = [bpf.ld_abs(OFF_ARCH), bpf.jump(bpf.BPF_JEQ, native.audit_arch, None, bad_arch), bpf.ld_abs(OFF_NR)]
    if native.x32_bit:  # x32 ABI calls carry this bit; -1 (a tracer skipping a call) goes on to the filter
        out += [bpf.jump(bpf.BPF_JGE, X32_SYSCALL_BIT, None, tree), bpf.jump(bpf.BPF_JEQ, 0xFFFFFFFF, tree, bad_arch)]
    out.append(tree)
    _tree(intervals(default, blocks, highest), blocks, out)
    out += [bad_arch, bpf.ret(RET_KILL_PROCESS)]
    try:
        code = bpf.assemble(out)
    except ValueError as exc:
        raise errors.InvalidArgument("seccomp profile: {}".format(exc))
    flags = 0
    for flag in profile.get("flags") or []:
        flags |= FLAGS[flag]
    return Filter(code, flags)


# ------------------------------------------------------------------------------------------ the container's

def container_filter(setting, caps, privileged=False):
    """The filter a container gets, or None when it runs unconfined.

    ``setting`` is ContainerSpec.seccomp (None/"builtin": Docker's default, "unconfined", or a profile's JSON),
    ``caps`` the names in the container's bounding set. ``--privileged`` is unconfined, as in Docker. On a
    kernel without seccomp filters the default profile is skipped and a custom one is FailedPrecondition
    (Docker's rules).

    Compiling Docker's default profile takes about 1 ms (x86_64, 186 instructions), less than reading a
    cached program would with the hashing of its key, so nothing is cached.
    """
    if privileged or setting == UNCONFINED:
        return None
    custom = setting not in (None, BUILTIN)
    if custom:
        setting = parse(setting) if isinstance(setting, str) else validate(setting)  # checked at create already
    if not supported():
        if custom:
            raise errors.FailedPrecondition("seccomp is not enabled in your kernel, cannot run a custom seccomp "
                                            "profile")
        return None
    if not custom:
        from .seccomp_default import profile
        setting = profile()
    return compile_profile(setting, caps)


# ------------------------------------------------------------------------------------------ installing

class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_supported = []


def supported():
    """Does this kernel have seccomp filters (CONFIG_SECCOMP_FILTER)? /proc/self/status then has "Seccomp:"."""
    if not _supported:
        try:
            with open("/proc/self/status") as f:
                _supported.append(any(line.startswith("Seccomp:") for line in f))
        except OSError:
            _supported.append(False)
    return _supported[0]


def install(filt):
    """Load ``filt`` for the calling thread and its future children (prctl, or seccomp(2) when it has flags).

    The caller holds CAP_SYS_ADMIN or has set no_new_privs (the kernel's rule). OSError on failure.
    """
    code = ctypes.create_string_buffer(filt.code, len(filt.code))
    prog = _SockFprog(len(filt), ctypes.addressof(code))
    if not filt.flags:
        libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
        return
    from .seccomp_tables import table
    number = table(os.uname().machine)["seccomp"]
    ret = libc._lib().syscall(ctypes.c_long(number), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                              ctypes.c_uint(filt.flags), ctypes.c_void_p(ctypes.addressof(prog)))
    libc._check(ret)
