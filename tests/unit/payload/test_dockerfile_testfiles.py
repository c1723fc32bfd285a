"""The parser against every one of BuildKit's parser test files (tests/helpers/buildkit_testfiles.py): the same
AST, compared through a port of parser.Node.Dump; the negative files refused.  The instructions' own checks are
docker's second stage (instructions/parse.go) and not part of these files, so ``parse_ast`` is what is compared;
``parse`` is run too and must either agree or refuse with the instruction stage's error."""

import pytest

from agent_payload.build import dockerfile
from agent_payload.build.dfsyntax import parse_words
from tests.helpers.buildkit_testfiles import NEGATIVE, TESTFILES

_WS = dockerfile._WHITESPACE
#: Where fleet refuses on purpose what docker parses (fleet build's "unterminated JSON array", issue 14).
FLEET_REFUSES = {"jeztah-invalid-json-unterminated-bracket": "unterminated JSON array"}


def go_quote(text):
    """Go's strconv.Quote."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x{:02x}".format(ord(ch)))
        elif ord(ch) < 0x10000:
            out.append("\\u{:04x}".format(ord(ch)))
        else:
            out.append("\\U{:08x}".format(ord(ch)))
    return "".join(out) + '"'


def _values(inst, escape):
    """The node's Next chain of values, as line_parsers.go's dispatch table builds it."""
    cmd, rest = inst.cmd, inst.text
    if inst.cmd not in dockerfile.INSTRUCTIONS:
        return [""]  # parseIgnore: an empty node
    if cmd == "HEALTHCHECK":
        return list(inst.args)
    if inst.json:
        return list(inst.args)
    if cmd in ("ADD", "COPY", "VOLUME", "FROM", "EXPOSE"):
        return _WS.split(rest) if rest else []
    if cmd in ("ENV", "LABEL"):
        if not rest:
            return []
        sep = "=" if "=" in parse_words(rest, escape)[0] else ""
        return [x for k, v in dockerfile.raw_key_values(inst, escape) for x in (k, v, sep)]
    if cmd == "ARG":
        return parse_words(rest, escape)
    return [rest] if rest else []


def dump(inst, escape):
    """parser.Node.Dump of one instruction."""
    text = inst.cmd.lower() if inst.cmd in dockerfile.INSTRUCTIONS else inst.original.split()[0].lower()
    if inst.flag_words:
        text += " [" + " ".join(go_quote(f) for f in inst.flag_words) + "]"
    if inst.cmd == "ONBUILD" and inst.trigger is not None:
        return text + " (" + dump(inst.trigger, escape) + ")"
    for value in _values(inst, escape):
        text += " " + go_quote(value)
    return text.strip()


@pytest.mark.parametrize("name", sorted(TESTFILES))
def test_buildkit_testfile(name):
    text, result = TESTFILES[name]
    if name in FLEET_REFUSES:
        with pytest.raises(dockerfile.DockerfileError, match=FLEET_REFUSES[name]):
            dockerfile.parse_ast(text)
        return
    directives, insts, _ = dockerfile.parse_ast(text)
    got = "\n".join("(" + dump(i, directives["escape"]) + ")" for i in insts) + "\n"
    assert got == result
    try:
        df = dockerfile.parse(text)
    except dockerfile.DockerfileError as exc:  # docker's instructions stage refuses it too, then
        assert exc.instruction is None or exc.line > 0, exc
        return
    assert len(df.meta_args) + len(df.stages) + sum(len(s.instructions) for s in df.stages) == len(insts)


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_buildkit_negative_testfile(name):
    with pytest.raises(dockerfile.DockerfileError):
        dockerfile.parse_ast(NEGATIVE[name])
