"""Device cgroup policy: Docker's default rules, v1 lines, and the eBPF program run through a small interpreter."""

import itertools
import struct

import pytest

from agent_payload import errors
from agent_payload.linux import bpf
from agent_payload.runtime.cgroups import devices
from agent_payload.runtime.cgroups.devices import ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR, Rule


def run(insns, dev_type, major, minor, access):
    """Interpret the subset of eBPF the device program uses, on a bpf_cgroup_dev_ctx; returns r0."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    reg = [0] * 11
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 10000 and 0 <= pc < len(insns), "ran off the program"
        ins = insns[pc]
        pc += 1
        cls = ins.code & 0x07
        if ins.code == bpf.BPF_LDX | bpf.BPF_MEM | bpf.BPF_W:
            assert ins.src == 1 and ins.off in (0, 4, 8), "only ctx reads"
            reg[ins.dst] = struct.unpack_from("<I", ctx, ins.off)[0]
        elif cls == bpf.BPF_ALU:
            op, src = ins.code & 0xF0, reg[ins.src] if ins.code & bpf.BPF_X else ins.imm & 0xFFFFFFFF
            cur = reg[ins.dst]
            reg[ins.dst] = {bpf.BPF_AND: cur & src, bpf.BPF_RSH: cur >> src, bpf.BPF_MOV: src}[op] & 0xFFFFFFFF
        elif ins.code == bpf.BPF_JMP | bpf.BPF_JNE | bpf.BPF_K:
            if reg[ins.dst] != ins.imm & 0xFFFFFFFFFFFFFFFF:
                pc += ins.off
        elif ins.code == bpf.BPF_JMP | bpf.BPF_EXIT:
            return reg[0]
        else:
            raise AssertionError("unexpected opcode {:#x}".format(ins.code))


def test_default_rules_are_runcs_allowlist():
    lines = [r.line() for r in devices.DEFAULT_ALLOWED]
    assert lines == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
                     "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]
    assert devices.rules_for(privileged=True) == [Rule("a")]
    assert devices.allows_all(devices.rules_for(True)) and not devices.allows_all(devices.rules_for())


def test_v1_writes():
    writes = devices.v1_writes(devices.rules_for())
    assert writes[0] == ("devices.deny", "a")
    assert writes[1:3] == [("devices.allow", "c *:* m"), ("devices.allow", "b *:* m")]
    assert all(name == "devices.allow" for name, _ in writes[1:]) and len(writes) == 12
    assert devices.v1_writes(devices.rules_for(privileged=True)) == [("devices.allow", "a")]
    assert devices.v1_writes([Rule("c", 4, 1, "rw", allow=False)]) == [("devices.deny", "a"),
                                                                        ("devices.deny", "c 4:1 rw")]


def test_bad_rules_refused():
    for bad in (("x",), ("c", 1, 3, "rx"), ("c", 1, 3, "")):
        with pytest.raises(errors.InvalidArgument, match="invalid device rule"):
            Rule(*bad)
    assert Rule("c", 1, 3, "mwr").access == "rwm"


def test_program_shape():
    prog = devices.program(devices.rules_for())
    assert all(isinstance(i, bpf.Insn) for i in prog)
    # prelude: r2 = type, r3 = access, r4 = major, r5 = minor
    assert prog[:6] == [bpf.ldx_w(2, 1, 0), bpf.alu32_imm(bpf.BPF_AND, 2, 0xFFFF), bpf.ldx_w(3, 1, 0),
                        bpf.alu32_imm(bpf.BPF_RSH, 3, 16), bpf.ldx_w(4, 1, 4), bpf.ldx_w(5, 1, 8)]
    # "c *:* m": type check, access check (r1 = r3 & (r|w)), allow
    assert prog[6:12] == [bpf.jne_imm(2, DEV_CHAR, 5), bpf.mov32_reg(1, 3), bpf.alu32_imm(bpf.BPF_AND, 1, 6),
                          bpf.jne_imm(1, 0, 2), bpf.mov32_imm(0, 1), bpf.exit_insn()]
    # "c 1:3 rwm": no access check
    assert prog[18:23] == [bpf.jne_imm(2, DEV_CHAR, 4), bpf.jne_imm(4, 1, 3), bpf.jne_imm(5, 3, 2),
                           bpf.mov32_imm(0, 1), bpf.exit_insn()]
    assert prog[-2:] == [bpf.mov32_imm(0, 0), bpf.exit_insn()]  # default deny
    raw = bpf.encode(prog)
    assert len(raw) == 8 * len(prog)
    assert raw[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])  # ldxw r2, [r1+0]: dst low nibble, src high
    assert bpf.jne_imm(4, 136, 3).encode() == struct.pack("<BBhi", 0x55, 0x04, 3, 136)


@pytest.mark.parametrize("privileged", [False, True])
def test_program_matches_reference_semantics(privileged):
    rules = devices.rules_for(privileged)
    prog = devices.program(rules)
    majors = (1, 4, 5, 7, 8, 10, 136, 254)
    minors = (0, 1, 2, 3, 5, 7, 8, 9, 200, 4096)
    accesses = (ACC_MKNOD, ACC_READ, ACC_WRITE, ACC_READ | ACC_WRITE, ACC_READ | ACC_WRITE | ACC_MKNOD)
    for t, ma, mi, acc in itertools.product((DEV_BLOCK, DEV_CHAR), majors, minors, accesses):
        assert run(prog, t, ma, mi, acc) == int(devices.evaluate(rules, t, ma, mi, acc)), (t, ma, mi, acc)


def test_reference_semantics_examples():
    rules = devices.rules_for()
    ok = lambda *a: devices.evaluate(rules, *a)  # noqa: E731
    assert ok(DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE) and ok(DEV_CHAR, 136, 7, ACC_READ)
    assert ok(DEV_BLOCK, 8, 0, ACC_MKNOD) and not ok(DEV_BLOCK, 8, 0, ACC_READ)
    assert not ok(DEV_CHAR, 1, 1, ACC_READ)  # /dev/mem
    assert not ok(DEV_CHAR, 4, 1, ACC_MKNOD | ACC_READ)  # mknod alone yes, with read no


def test_program_with_mixed_rules():
    rules = [Rule("c", 4, devices.WILDCARD, "r"), Rule("b", 8, 0, "rw", allow=False), Rule("b", 8, devices.WILDCARD)]
    prog = devices.program(rules)
    for t, ma, mi, acc in itertools.product((DEV_BLOCK, DEV_CHAR), (4, 8), (0, 1), (1, 2, 4, 6, 7)):
        assert run(prog, t, ma, mi, acc) == int(devices.evaluate(rules, t, ma, mi, acc)), (t, ma, mi, acc)
