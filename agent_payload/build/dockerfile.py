"""The Dockerfile parser: Docker's grammar, ported from BuildKit's frontend/dockerfile/parser (parser.go,
line_parsers.go, split_command.go, directives.go) and the checks of instructions/parse.go.

``parse(text)`` returns a Dockerfile: parser directives (``# syntax=``, ``# escape=``, ``# check=``: only at the
very top, each once), ARGs before the first FROM (``meta_args``) and the stages, each a list of Instructions.
Lines are joined at the escape token at the end of a line; comment lines inside a continuation are dropped and
empty continuation lines skipped (docker warns; ``Dockerfile.warnings``).  Exec (JSON array) and shell forms: a
text that is not a JSON array of strings is the shell form, as docker; a JSON array holding a non-string is
docker's error; one that lacks only its closing ``]`` is refused ("unterminated JSON array": docker would run it
as a shell command).  Heredocs (BuildKit): ``RUN <<EOF``, ``<<-EOF`` (leading tabs stripped), quoted delimiters
(``<<"EOF"``, no expansion when the build runs), several on one line, ``COPY <<EOF /dst``, also under ONBUILD.
Errors are DockerfileError (InvalidArgument): "Dockerfile:7: RUN: <docker's message>".

An Instruction's ``args`` is the JSON array (``json`` True) or ``[the rest of the line]``; HEALTHCHECK's is
``[TYPE] + the command's`` (``json`` telling the command's form).  ``flags`` holds the builder flags docker
accepts for the instruction (others are its "unknown flag" error): string flags as str, boolean ones
(``--link``, ``--parents``, ``--unpack``, ``--keep-git-dir``) as True/False, the repeatable ones (``--mount``,
``--exclude``) as a list always.  ``warnings`` holds docker's "Empty continuation line found in: ..." texts.

Substitution is not done here: the builder expands the instructions Docker expands (ADD COPY ENV EXPOSE FROM
LABEL STOPSIGNAL USER VOLUME WORKDIR ARG, the --chown/--chmod/--from flags) with ``shellwords`` at run time;
``key_values`` does it for ENV, LABEL and ARG.  Pure and stdlib only (fleet parses before contacting a host).
"""

import re
from dataclasses import dataclass, field
from typing import List, Optional

from agent_payload.build import shellwords
from agent_payload.build.dfsyntax import Fail as _Fail
from agent_payload.build.dfsyntax import Heredoc, Directives, chomp, extract_flags, heredocs_in, is_comment, \
    json_array, parse_heredoc_word, parse_words, split_lines
from agent_payload.errors import InvalidArgument
from agent_payload.humanize import parse_duration

#: Where fleet's build context carries a Dockerfile that is not part of the context (-f outside it, -f -, or one
#: .dockerignore excludes): the builder never shows this directory to COPY/ADD.
CONTEXT_DOCKERFILE_DIR = ".fleet-dockerfile"
INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
#: The instructions whose arguments Docker substitutes variables in (plus the --chown/--chmod/--from flags).
SUBSTITUTED = ("ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

# flag name -> kind ("str", "bool", "strs": may repeat, always a list), per instruction (BuildKit's parse.go)
_FLAGS = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "strs", "network": "str", "security": "str"},
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "keep-git-dir": "bool", "checksum": "str",
            "unpack": "bool", "exclude": "strs"},
    "COPY": {"chown": "str", "from": "str", "chmod": "str", "link": "bool", "parents": "bool", "exclude": "strs"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str", "start-interval": "str",
                    "retries": "str"},
}
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


class DockerfileError(InvalidArgument):
    """A Dockerfile docker would refuse: names the file, the line and the instruction."""

    def __init__(self, filename, line, instruction, message):
        self.filename, self.line, self.instruction, self.reason = filename, line, instruction, message
        where = "{}:{}: ".format(filename, line) if line else "{}: ".format(filename)
        super().__init__(where + ("{}: ".format(instruction) if instruction else "") + message)


@dataclass
class Instruction:
    cmd: str                 # upper case
    line: int                # first line, 1-based
    original: str            # the text, continuations joined, as docker prints it in "Step N/M : ..."
    flags: dict = field(default_factory=dict)
    json: bool = False
    args: List[str] = field(default_factory=list)    # JSON form: the array; shell form: [the rest of the line]
    heredocs: List[Heredoc] = field(default_factory=list)
    trigger: Optional["Instruction"] = None           # ONBUILD's instruction
    end_line: int = 0
    flag_words: List[str] = field(default_factory=list)  # the flags as written (``--from=x``)

    @property
    def text(self):
        """The shell form's text ("" when there is none)."""
        return self.args[0] if self.args and not self.json else ""


@dataclass
class Stage:
    index: int
    name: Optional[str]      # lower case, as docker
    base: str                # the image text after FROM, unsubstituted
    platform: Optional[str]
    line: int
    original: str
    instructions: List[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    directives: dict
    escape: str
    meta_args: List[Instruction]
    stages: List[Stage]
    warnings: List[str] = field(default_factory=list)
    filename: str = "Dockerfile"

    def stage(self, target):
        """The stage named ``target`` (docker's --target); DockerfileError when there is none."""
        wanted = target.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        raise DockerfileError(self.filename, 0, None, "target stage {} could not be found".format(
            shellwords._go_quote(target)))


# --------------------------------------------------------------------------------------------- instructions

def _flags(cmd, words):
    """BuildKit's BFlags.Parse over the ``--name[=value]`` words of ``cmd``."""
    spec = _FLAGS.get(cmd, {})
    out = {}
    for word in words:
        if word == "--":
            break
        if not word.startswith("--"):
            raise _Fail("arg should start with -- : {}".format(word))
        name, has_value, value = word.partition("=")
        key = name[2:]
        kind = spec.get(key)
        if kind is None:
            raise _Fail("unknown flag: {}".format(name))
        if key in out and kind != "strs":
            raise _Fail("duplicate flag specified: {}".format(name))
        if kind == "bool":
            if has_value and value == "":
                raise _Fail("missing a value on flag: {}".format(name))
            if value.lower() not in ("", "true", "false"):
                raise _Fail("expecting boolean value for flag {}, not: {}".format(name, value))
            out[key] = value.lower() != "false"
        elif not has_value:
            raise _Fail("missing a value on flag: {}".format(name))
        elif kind == "strs":
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def _name_val(cmd, rest, esc):
    """parseNameVal: (key, value) pairs as written (quotes kept), ENV k v or ENV k=v k2=v2."""
    words = parse_words(rest, esc)
    if not words:
        raise _Fail("{} requires at least one argument".format(cmd))
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, 1)
        if len(parts) < 2:
            raise _Fail("{} must have two arguments".format(cmd))
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in words:
            if "=" not in word:
                raise _Fail("Syntax error - can't find = in {}. Must be of the form: name=value".format(
                    shellwords._go_quote(word)))
            key, _, value = word.partition("=")
            pairs.append((key, value))
    if any(not key for key, _ in pairs):
        raise _Fail("{} names can not be blank".format(cmd))
    return pairs


def _node(line, esc, nested=False, checked=True):
    """newNodeFromLine (+ the instruction's own checks when ``checked``): an Instruction (line numbers set by
    the caller)."""
    parts = _WHITESPACE.split(line.strip(), 1)
    word = parts[0]
    cmd = word.upper()
    rest, flag_words = extract_flags(parts[1], esc) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    inst = Instruction(cmd=cmd, line=0, original=line.strip(), flag_words=flag_words)
    if nested and checked:  # an ONBUILD trigger is only checked when it runs (parse_triggers), as docker
        try:
            return _node(line, esc)
        except _Fail:
            return _node(line, esc, checked=False)
    if cmd not in INSTRUCTIONS:
        if checked:
            raise _Fail("unknown instruction: {}".format(word))
        inst.args = [rest] if rest else []
        return inst
    if checked:
        inst.flags = _flags(cmd, flag_words)
    args = None
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME") and (rest or cmd in ("ADD", "COPY")):
        args = json_array(rest)
    if args is not None:
        inst.json, inst.args = True, args
    elif rest:
        inst.args = [rest]
    if checked:
        _check(inst, rest, esc)
    elif cmd in ("ENV", "LABEL") and rest:
        _name_val(cmd, rest, esc)  # parser-level: line_parsers.go's parseNameVal
    elif cmd == "HEALTHCHECK":
        _healthcheck_args(inst, rest)
    if cmd == "ONBUILD" and rest:
        inst.trigger = _node(rest, esc, nested=True, checked=checked)
    return inst


def _check(inst, rest, esc):  # noqa: C901 - instructions/parse.go's per-instruction checks, one branch each
    cmd = inst.cmd
    words = inst.args if inst.json else (_WHITESPACE.split(rest) if rest else [])
    if cmd in ("ENV", "LABEL"):
        _name_val(cmd, rest, esc)
    elif cmd in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL") and not rest:
        raise _Fail("{} requires exactly one argument".format(cmd))
    elif cmd in ("ADD", "COPY"):
        if len(words) < 2:
            raise _Fail("{} requires at least two arguments, but only one was provided. Destination could not be "
                        "determined".format(cmd))
        if not inst.json and _heredoc_or_none(words[-1]) is not None:
            raise _Fail("{} cannot accept a heredoc as a destination".format(cmd))
    elif cmd == "FROM":
        if len(words) == 3 and words[1].lower() == "as":
            if not _STAGE_NAME.match(words[2].lower()):
                raise _Fail("invalid name for build stage: {}, name can't start with a number or contain "
                            "symbols".format(shellwords._go_quote(words[2])))
        elif len(words) != 1:
            raise _Fail("FROM requires either one or three arguments")
    elif cmd in ("EXPOSE", "VOLUME", "ARG", "ONBUILD", "HEALTHCHECK") and not words:
        raise _Fail("{} requires at least one argument".format(cmd))
    elif cmd == "VOLUME" and any(not v.strip() for v in words):
        raise _Fail("VOLUME specified can not be an empty string")
    elif cmd == "SHELL":
        if not inst.json:
            raise _Fail("SHELL requires the arguments to be in JSON form")
        if not inst.args:
            raise _Fail("SHELL requires at least one argument")
    if cmd == "ARG":
        for word in parse_words(rest, esc):
            if word.startswith("="):
                raise _Fail("ARG names can not be blank")
    elif cmd == "ONBUILD":
        trigger = words[0].upper()
        if trigger == "ONBUILD":
            raise _Fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _Fail("{} isn't allowed as an ONBUILD trigger".format(trigger))
    elif cmd == "HEALTHCHECK":
        _check_healthcheck(inst, rest)


def _healthcheck_args(inst, rest):
    """parseHealthConfig: [TYPE] + the command's JSON array or text; (TYPE, the text after it)."""
    sep = re.match(r"\S+", rest)
    typ = sep.group(0) if sep else ""
    after = rest[len(typ):].strip()
    json_args = json_array(after) if after else None
    inst.json = json_args is not None
    inst.args = ([typ] if typ else []) + (json_args if json_args is not None else ([after] if after else []))
    return typ, after


def _check_healthcheck(inst, rest):
    typ, after = _healthcheck_args(inst, rest)
    if typ.upper() == "NONE":
        if after:
            raise _Fail("HEALTHCHECK NONE takes no arguments")
        return
    if typ.upper() != "CMD":
        raise _Fail("Unknown type {} in HEALTHCHECK (try CMD)".format(shellwords._go_quote(typ.upper())))
    if not inst.args[1:]:
        raise _Fail("Missing command after HEALTHCHECK CMD")
    for key in ("interval", "timeout", "start-period", "start-interval"):
        value = inst.flags.get(key, "")
        if value:
            ns = parse_duration(value)
            if ns is None:
                raise _Fail("time: invalid duration {}".format(shellwords._go_quote(value)))
            if 0 < ns < 10 ** 6 or ns < 0:
                raise _Fail("Interval {} cannot be less than 1ms".format(shellwords._go_quote(key)))
    retries = inst.flags.get("retries", "")
    if retries:
        try:
            count = int(retries, 10)
        except ValueError:
            raise _Fail('strconv.ParseInt: parsing {}: invalid syntax'.format(shellwords._go_quote(retries)))
        if count < 0:
            raise _Fail("--retries cannot be negative ({})".format(count))


def _heredoc_or_none(word):
    try:
        return parse_heredoc_word(word)
    except InvalidArgument:  # MustParseHeredoc
        return None


def _can_heredoc(inst):
    target = inst.trigger if inst.cmd == "ONBUILD" and inst.trigger is not None else inst
    return target.cmd in ("ADD", "COPY", "RUN") and not target.json


# --------------------------------------------------------------------------------------------- parse

def _instructions(text, filename, checked=True):
    """(directives, instructions, warnings): parser.go's Parse, each node checked as instructions.Parse does."""
    d = Directives()
    lines = split_lines(text)
    out, warnings = [], []
    i, current = 0, 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        try:
            token = d.process(raw, True)
        except _Fail as exc:
            raise DockerfileError(filename, current + 1, None, str(exc))
        current += 1
        start = current
        token, end = d.trim_continuation(token)
        if end and not token:
            continue
        buf, empty_continuation = [token], False
        while not end and i < len(lines):
            raw = lines[i]
            i += 1
            part = d.process(raw, False)
            current += 1
            if is_comment(raw):
                continue
            if not part.strip():
                empty_continuation = True
                continue
            part, end = d.trim_continuation(part)
            buf.append(part)
        line = "".join(buf)
        word = _WHITESPACE.split(line.strip(), 1)[0].upper()
        if empty_continuation:
            warnings.append("Empty continuation line found in: " + line)
        try:
            inst = _node(line, d.escape, checked=checked)
        except _Fail as exc:
            raise DockerfileError(filename, start, word, str(exc))
        inst.line = start
        if _can_heredoc(inst) and "<<" in line:
            try:
                docs = heredocs_in(line)
            except _Fail as exc:
                raise DockerfileError(filename, start, word, str(exc))
            for doc in docs:
                content, terminated = [], False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    possible = raw.rstrip("\r\n")
                    if doc.chomp:
                        possible = possible.lstrip("\t")
                    if possible == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise DockerfileError(filename, start, word, "unterminated heredoc {}".format(doc.name))
                doc.raw = "".join(content)
                doc.content = chomp(doc.raw) if doc.chomp else doc.raw
                inst.heredocs.append(doc)
            if inst.trigger is not None:
                inst.trigger.heredocs = list(inst.heredocs)
        inst.end_line = current
        if inst.trigger is not None:
            inst.trigger.line, inst.trigger.end_line = inst.line, inst.end_line
            inst.args = [_onbuild_expression(inst)]
        out.append(inst)
    directives = dict(d.seen)
    return directives, out, warnings


def _onbuild_expression(inst):
    """What docker stores in the image's OnBuild list: the text after ONBUILD (+ heredocs, as BuildKit)."""
    text = re.sub(r"(?i)^\s*ONBUILD\s*", "", inst.original, count=1)
    for doc in inst.heredocs:
        text += "\n" + doc.raw + doc.name
    inst.trigger.original = text.split("\n", 1)[0] if inst.heredocs else text
    return text


def parse(text, filename="Dockerfile"):
    """The Dockerfile in ``text``; DockerfileError (InvalidArgument) for anything docker refuses."""
    directives, insts, warnings = _instructions(text, filename)
    if not insts:
        raise DockerfileError(filename, 0, None, "file with no instructions")
    meta_args, stages = [], []
    for inst in insts:
        if inst.cmd == "FROM":
            words = _WHITESPACE.split(inst.text)
            stages.append(Stage(index=len(stages), name=words[2].lower() if len(words) == 3 else None,
                                base=words[0], platform=inst.flags.get("platform"), line=inst.line,
                                original=inst.original))
        elif not stages:
            if inst.cmd != "ARG":
                raise DockerfileError(filename, inst.line, inst.cmd, "no build stage in current context")
            meta_args.append(inst)
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError(filename, 0, None, "dockerfile contains no stages to build")
    return Dockerfile(directives=directives, escape=directives["escape"], meta_args=meta_args, stages=stages,
                      warnings=warnings, filename=filename)


def parse_ast(text, filename="Dockerfile"):
    """BuildKit's parser.Parse alone: (directives, instructions, warnings), without the instructions' own checks
    (unknown instructions and flags, argument counts) nor the stage structure; its syntax errors still raise."""
    directives, insts, warnings = _instructions(text, filename, checked=False)
    if not insts:
        raise DockerfileError(filename, 0, None, "file with no instructions")
    return directives, insts, warnings


def parse_triggers(triggers, filename="ONBUILD", escape="\\"):
    """The Instructions of an image's OnBuild list (docker parses them as Dockerfile lines when the image is a
    base): unknown instructions and docker's refused triggers are DockerfileError."""
    text = ("# escape=`\n" if escape == "`" else "") + "\n".join(triggers)
    _, insts, _ = _instructions(text, filename)
    for inst in insts:
        if inst.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(filename, inst.line, inst.cmd, "{} isn't allowed as an ONBUILD trigger".format(
                inst.cmd) if inst.cmd != "ONBUILD" else "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    return insts


def raw_key_values(inst, escape="\\"):
    """ENV/LABEL's (key, value) pairs as written (quotes and escapes kept, nothing substituted)."""
    try:
        return _name_val(inst.cmd, inst.text, escape)
    except _Fail as exc:
        raise DockerfileError("Dockerfile", inst.line, inst.cmd, str(exc))


def key_values(inst, env, escape="\\"):
    """ENV/LABEL/ARG's (key, value) pairs, both forms, substituted from ``env`` (ARG without a value: None).

    Docker expands every pair with the environment before the instruction (``ENV a=1 b=$a`` sees the old a)."""
    if inst.cmd == "ARG":
        pairs = []
        for word in parse_words(inst.text, escape):
            key, has_value, value = word.partition("=")
            pairs.append((shellwords.expand(key, env, escape),
                          shellwords.expand(value, env, escape) if has_value else None))
        return pairs
    if inst.cmd not in ("ENV", "LABEL"):
        raise ValueError("key_values is for ENV, LABEL and ARG, not " + inst.cmd)
    pairs = raw_key_values(inst, escape)
    return [(shellwords.expand(k, env, escape), shellwords.expand(v, env, escape)) for k, v in pairs]
