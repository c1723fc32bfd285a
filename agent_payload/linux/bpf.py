"""BPF through ctypes: eBPF for cgroup programs (bpf(2)), and an assembler of classic BPF for seccomp filters.

eBPF: only what the cgroup v2 device policy needs (``runtime/cgroups/devices.py``): BPF_PROG_LOAD of a
BPF_PROG_TYPE_CGROUP_DEVICE program, BPF_PROG_ATTACH/DETACH on a cgroup directory fd, BPF_PROG_QUERY of what is
attached there, and prog id <-> fd lookups (to detach programs we no longer hold an fd of, and for tests).
``union bpf_attr`` layouts are from <linux/bpf.h>; every command zero-fills the whole attr as the kernel demands.

Classic BPF (``struct sock_filter``, <linux/filter.h>), what seccomp filters are written in
(``linux/seccomp.py``): ``CInsn`` instructions whose jump targets are ``Label`` objects, and ``assemble`` which
lays them out, turning a conditional jump whose target lies beyond the 8-bit jt/jf reach into a jump to a
``BPF_JA`` (32-bit offset) trampoline. The class, size, mode and jump-op codes below are shared by both forms.
"""

import ctypes
import os
import struct

from . import libc

# commands (enum bpf_cmd)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type
BPF_F_ALLOW_MULTI = 2

SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280}
ATTR_SIZE = 144  # bigger than every attr we fill; the kernel accepts trailing zeroes
LOG_SIZE = 1 << 16

# instruction classes and fields (<linux/bpf_common.h>, <linux/bpf.h>)
BPF_LD, BPF_LDX, BPF_ALU, BPF_JMP, BPF_RET = 0x00, 0x01, 0x04, 0x05, 0x06
BPF_W, BPF_ABS, BPF_MEM = 0x00, 0x20, 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xb0
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_JNE, BPF_EXIT = 0x50, 0x90  # eBPF only
BPF_MAXINSNS = 4096  # the kernel's limit on a classic program


class Insn(tuple):
    """One ``struct bpf_insn``: (code, dst, src, off, imm); ``encode()`` gives its 8 bytes."""

    __slots__ = ()

    def __new__(cls, code, dst=0, src=0, off=0, imm=0):
        return tuple.__new__(cls, (code, dst, src, off, imm))

    code = property(lambda self: self[0])
    dst = property(lambda self: self[1])
    src = property(lambda self: self[2])
    off = property(lambda self: self[3])
    imm = property(lambda self: self[4])

    def encode(self):
        """Little-endian layout: u8 code, u8 (src << 4 | dst), s16 off, s32 imm."""
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def ldx_w(dst, src, off):
    """dst = *(u32 *)(src + off)"""
    return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)


def alu32_imm(op, dst, imm):
    """dst = (u32)(dst op imm)"""
    return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)


def mov32_imm(dst, imm):
    """dst = (u32)imm"""
    return Insn(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm)


def mov32_reg(dst, src):
    """dst = (u32)src"""
    return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def jne_imm(dst, imm, off):
    """if dst != imm: pc += off (relative to the next instruction)"""
    return Insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)


def exit_insn():
    """return r0"""
    return Insn(BPF_JMP | BPF_EXIT)


def encode(insns):
    """The instruction array as bytes."""
    return b"".join(i.encode() for i in insns)


# ------------------------------------------------------------------------------------------ classic BPF

class Label(object):
    """A position in a classic program; place it in the instruction list where it points."""

    __slots__ = ("name",)

    def __init__(self, name=""):
        self.name = name

    def __repr__(self):
        return "Label({!r})".format(self.name)


class CInsn(tuple):
    """One classic instruction (code, jt, jf, k); in a conditional jump jt/jf are Labels or None (the next one)."""

    __slots__ = ()

    def __new__(cls, code, jt=None, jf=None, k=0):
        return tuple.__new__(cls, (code, jt, jf, k & 0xFFFFFFFF))

    code = property(lambda self: self[0])
    jt = property(lambda self: self[1])
    jf = property(lambda self: self[2])
    k = property(lambda self: self[3])


def ld_abs(offset):
    """A = *(u32 *)(data + offset) (for seccomp: the struct seccomp_data)"""
    return CInsn(BPF_LD | BPF_W | BPF_ABS, k=offset)


def and_k(mask):
    """A &= mask"""
    return CInsn(BPF_ALU | BPF_AND | BPF_K, k=mask)


def jump(op, k, jt=None, jf=None):
    """if (A op k) goto jt else goto jf (None: the next instruction); op is BPF_JEQ, BPF_JGT, BPF_JGE or BPF_JSET"""
    return CInsn(BPF_JMP | op | BPF_K, jt, jf, k)


def goto(label):
    """goto label (BPF_JA: a 32-bit offset, any distance forward)"""
    return CInsn(BPF_JMP | BPF_JA, label)


def ret(k):
    """return k"""
    return CInsn(BPF_RET | BPF_K, k=k)


def _is_cond(insn):
    return insn.code & 0x07 == BPF_JMP and insn.code & 0xF0 != BPF_JA


def assemble(items):
    """Lay out a list of CInsn and Label items; returns the program as ``struct sock_filter`` bytes.

    Jumps only go forward (the kernel rejects anything else). A conditional jump's jt/jf reach at most 255
    instructions: a farther target gets a ``goto`` trampoline right after the jump, and layout is redone until
    every jump fits (trampolines only ever lengthen jumps, so this ends). ValueError on a backward jump, a
    label placed twice or never, or a program longer than BPF_MAXINSNS.
    """
    insns, labels = [], {}
    for item in items:
        if isinstance(item, Label):
            if item in labels:
                raise ValueError("label {!r} placed twice".format(item))
            labels[item] = len(insns)
        else:
            insns.append(item)
    far = set()  # (instruction index, 0 for jt / 1 for jf) that go through a trampoline
    while True:
        pos, at = [], 0
        for i, insn in enumerate(insns):
            pos.append(at)
            at += 1 + sum(1 for side in (0, 1) if (i, side) in far)
        end = at
        where = {label: (pos[i] if i < len(insns) else end) for label, i in labels.items()}

        def target(i, label):
            if label is None:
                return pos[i + 1] if i + 1 < len(insns) else end  # the next original instruction
            if label not in where:
                raise ValueError("label {!r} used but never placed".format(label))
            return where[label]

        grew = False
        for i, insn in enumerate(insns):
            if not _is_cond(insn):
                continue
            for side in (0, 1):
                if (i, side) in far:
                    continue
                dist = target(i, insn[1 + side]) - pos[i] - 1
                if dist < 0:
                    raise ValueError("backward jump at instruction {}".format(i))
                if dist > 255:
                    far.add((i, side))
                    grew = True
        if not grew:
            break
    if end > BPF_MAXINSNS:
        raise ValueError("program too long: {} instructions > {}".format(end, BPF_MAXINSNS))
    out = []
    for i, insn in enumerate(insns):
        here = pos[i]
        if _is_cond(insn):
            jt = jf = 0
            tramp = here + 1
            offs = []
            for side in (0, 1):
                if (i, side) in far:
                    offs.append(tramp - here - 1)
                    tramp += 1
                else:
                    offs.append(target(i, insn[1 + side]) - here - 1)
            jt, jf = offs
            out.append(struct.pack("=HBBI", insn.code, jt, jf, insn.k))
            tramp = here + 1
            for side in (0, 1):
                if (i, side) in far:
                    out.append(struct.pack("=HBBI", BPF_JMP | BPF_JA, 0, 0,
                                           target(i, insn[1 + side]) - tramp - 1))
                    tramp += 1
        elif insn.code == BPF_JMP | BPF_JA:
            dist = target(i, insn.jt) - here - 1
            if dist < 0:
                raise ValueError("backward jump at instruction {}".format(i))
            out.append(struct.pack("=HBBI", insn.code, 0, 0, dist))
        else:
            out.append(struct.pack("=HBBI", insn.code, 0, 0, insn.k))
    return b"".join(out)


def disassemble(code):
    """(code, jt, jf, k) tuples of ``struct sock_filter`` bytes (for tests and debugging)."""
    return [struct.unpack_from("=HBBI", code, off) for off in range(0, len(code), 8)]


# ------------------------------------------------------------------------------------------ syscall

def _bpf(cmd, attr):
    number = SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(38, "bpf: unsupported machine {}".format(os.uname().machine))
    lib = libc._lib()
    ret = lib.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.c_void_p(ctypes.addressof(attr)),
                      ctypes.c_uint(ctypes.sizeof(attr)))
    return libc._check(ret)


def _attr(fmt, *values):
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def prog_load(prog_type, insns, license="Apache-2.0", expected_attach_type=0, name=b"fleet_dev"):
    """Load a program; returns its fd (O_CLOEXEC). A verifier rejection raises OSError with the log appended."""
    code = ctypes.create_string_buffer(encode(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(LOG_SIZE)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version, prog_flags,
    # prog_name[16], prog_ifindex, expected_attach_type
    attr = _attr("<IIQQIIQII16sII", prog_type, len(insns), ctypes.addressof(code), ctypes.addressof(lic),
                 1, LOG_SIZE, ctypes.addressof(log), 0, 0, name[:15], 0, expected_attach_type)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        text = log.value.decode("utf-8", "replace").strip()
        raise OSError(exc.errno, "{}{}".format(exc.strerror, ": " + text[-500:] if text else ""))


def prog_attach(target_fd, prog_fd, attach_type, flags=0):
    """Attach ``prog_fd`` to the object of ``target_fd`` (a cgroup directory)."""
    _bpf(BPF_PROG_ATTACH, _attr("<IIII", target_fd, prog_fd, attach_type, flags))


def prog_detach(target_fd, prog_fd, attach_type):
    """Detach one program (by fd) from ``target_fd``."""
    _bpf(BPF_PROG_DETACH, _attr("<IIII", target_fd, prog_fd, attach_type, 0))


def prog_query(target_fd, attach_type, max_ids=64):
    """IDs of the programs attached directly to ``target_fd`` for ``attach_type``."""
    ids = (ctypes.c_uint32 * max_ids)()
    # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
    attr = _attr("<IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), max_ids)
    _bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids[:min(count, max_ids)])


def prog_fd_by_id(prog_id):
    """An fd of the loaded program ``prog_id``; OSError ENOENT once the kernel freed it."""
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("<III", prog_id, 0, 0))


def prog_id(prog_fd):
    """The kernel ID of the program behind ``prog_fd`` (struct bpf_prog_info: u32 type, u32 id, ...)."""
    info = ctypes.create_string_buffer(64)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("<IIQ", prog_fd, 64, ctypes.addressof(info)))
    return struct.unpack_from("<I", info, 4)[0]
