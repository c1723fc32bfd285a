"""The device cgroup policy of a container: Docker's default rules, as v1 devices.allow lines or a v2 eBPF program.

Docker's spec denies every device ("a *:* rwm" deny) and runc appends its ``AllowedDevices``
(libcontainer/specconv): mknod of any char or block node, and read/write/mknod of the standard nodes
(/dev/null, zero, full, random, urandom, tty, ptmx and the /dev/pts slaves; /dev/net/tun kept for backward
compatibility). With this policy a container can hold CAP_MKNOD: it may create a host disk's node, but
opening it fails with EPERM. ``--privileged`` allows everything.

cgroup v1 writes ``a`` to devices.deny, then one devices.allow line per rule. cgroup v2 has no device files:
the kernel runs a BPF_PROG_TYPE_CGROUP_DEVICE program on every open/mknod of a device node, with
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}`` (access_type = access << 16 | type),
and allows the operation when it returns 1. ``program(rules)`` builds that program::

    r2 = ctx->access_type & 0xffff     device type (1 block, 2 char)
    r3 = ctx->access_type >> 16        requested access (1 mknod, 2 read, 4 write; or-ed)
    r4 = ctx->major; r5 = ctx->minor
    per rule, one block; any mismatch jumps to the next block:
        if r2 != type: next            (absent for type "a")
        r1 = r3 & ~access; if r1 != 0: next   (absent for "rwm": every request is a subset)
        if r4 != major: next           (absent for the wildcard)
        if r5 != minor: next           (absent for the wildcard)
        r0 = allow; exit
    r0 = 0; exit                       nothing matched: deny

The first matching rule decides (our rules are an allowlist, so order does not matter for them).
"""

from ... import errors
from ...linux import bpf

WILDCARD = -1
DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4  # BPF_DEVCG_ACC_*
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"a": None, "b": DEV_BLOCK, "c": DEV_CHAR}


class Rule(tuple):
    """One device rule: (type "a"/"b"/"c", major, minor (-1 = any), access subset of "rwm", allow)."""

    __slots__ = ()

    def __new__(cls, type, major=WILDCARD, minor=WILDCARD, access="rwm", allow=True):
        if type not in _TYPES or not access or any(c not in "rwm" for c in access):
            raise errors.InvalidArgument("invalid device rule {} {}:{} {}".format(type, major, minor, access))
        return tuple.__new__(cls, (type, major, minor, "".join(c for c in "rwm" if c in access), allow))

    type = property(lambda self: self[0])
    major = property(lambda self: self[1])
    minor = property(lambda self: self[2])
    access = property(lambda self: self[3])
    allow = property(lambda self: self[4])

    def line(self):
        """The v1 devices.allow/deny syntax: ``c 1:3 rwm``, ``b *:* m``, ``a``."""
        if self.type == "a":
            return "a"
        num = lambda n: "*" if n == WILDCARD else str(n)  # noqa: E731
        return "{} {}:{} {}".format(self.type, num(self.major), num(self.minor), self.access)

    def access_mask(self):
        """The BPF_DEVCG_ACC_* bits of ``access``."""
        mask = 0
        for c in self.access:
            mask |= _ACCESS_BITS[c]
        return mask


#: runc's AllowedDevices (libcontainer/specconv), which Docker containers get after the spec's deny-all.
DEFAULT_ALLOWED = (
    Rule("c", WILDCARD, WILDCARD, "m"),  # mknod of any node; opening it is another matter
    Rule("b", WILDCARD, WILDCARD, "m"),
    Rule("c", 1, 3), Rule("c", 1, 8), Rule("c", 1, 7), Rule("c", 5, 0), Rule("c", 1, 5), Rule("c", 1, 9),
    Rule("c", 136, WILDCARD),  # /dev/pts/*
    Rule("c", 5, 2),  # /dev/ptmx
    Rule("c", 10, 200),  # /dev/net/tun: runc keeps it for backward compatibility (runc#3468)
)
ALLOW_ALL = (Rule("a"),)


def rules_for(privileged=False, added=()):
    """The allowlist of a container: everything for ``--privileged``, else Docker's default and ``added``
    (--device entries: each host node's type and numbers with its CgroupPermissions)."""
    if privileged:
        return list(ALLOW_ALL)
    from ... import hostopts

    extra = []
    for entry in added or []:
        kind, major, minor = hostopts.device_node(entry)[:3]
        extra.append(Rule(kind, major, minor, entry["CgroupPermissions"]))
    return list(DEFAULT_ALLOWED) + extra


def allows_all(rules):
    """True if the rules allow every access to every device."""
    return any(r.type == "a" and r.major == WILDCARD and r.minor == WILDCARD and r.access == "rwm" and r.allow
               for r in rules)


def v1_writes(rules):
    """(file, value) writes for a v1 devices cgroup: reset to deny-all (or allow-all), then each allow rule."""
    if allows_all(rules):
        return [("devices.allow", "a")]
    return [("devices.deny", "a")] + [("devices.allow" if r.allow else "devices.deny", r.line()) for r in rules]


def program(rules):
    """The eBPF instructions of the v2 device program for ``rules`` (see the module docstring)."""
    prelude = [
        bpf.ldx_w(2, 1, 0), bpf.alu32_imm(bpf.BPF_AND, 2, 0xFFFF),
        bpf.ldx_w(3, 1, 0), bpf.alu32_imm(bpf.BPF_RSH, 3, 16),
        bpf.ldx_w(4, 1, 4), bpf.ldx_w(5, 1, 8),
    ]
    blocks = []
    for rule in rules:
        checks = []  # (instructions, index of its jump within them)
        if _TYPES[rule.type] is not None:
            checks.append([("jne", 2, _TYPES[rule.type])])
        deny_bits = ~rule.access_mask() & (ACC_MKNOD | ACC_READ | ACC_WRITE)
        if deny_bits:
            checks.append([bpf.mov32_reg(1, 3), bpf.alu32_imm(bpf.BPF_AND, 1, deny_bits), ("jne", 1, 0)])
        if rule.major != WILDCARD:
            checks.append([("jne", 4, rule.major)])
        if rule.minor != WILDCARD:
            checks.append([("jne", 5, rule.minor)])
        body = [i for c in checks for i in c] + [bpf.mov32_imm(0, 1 if rule.allow else 0), bpf.exit_insn()]
        # resolve each placeholder jump to the first instruction after this block
        out = []
        for pos, insn in enumerate(body):
            if isinstance(insn, tuple) and not isinstance(insn, bpf.Insn):
                _, reg, imm = insn
                insn = bpf.jne_imm(reg, imm, len(body) - pos - 1)
            out.append(insn)
        blocks.extend(out)
        if rule.type == "a" and rule.major == WILDCARD and rule.minor == WILDCARD and not deny_bits:
            break  # matches everything: nothing after it can run
    return prelude + blocks + [bpf.mov32_imm(0, 0), bpf.exit_insn()]


def evaluate(rules, dev_type, major, minor, access):
    """What the policy answers for one request (reference semantics for tests): True = allowed."""
    for rule in rules:
        if _TYPES[rule.type] not in (None, dev_type):
            continue
        if access & ~rule.access_mask():
            continue
        if rule.major not in (WILDCARD, major) or rule.minor not in (WILDCARD, minor):
            continue
        return rule.allow
    return False
