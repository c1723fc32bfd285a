"""dockerfile: Docker's Dockerfile grammar, with cases ported from BuildKit's parser tests (parser_test.go,
parser_heredoc_test.go, directives_test.go, testfiles/*) and instructions/parse.go's errors."""

import pytest

from agent_payload.build import dockerfile
from agent_payload.build.dfsyntax import parse_words
from agent_payload.errors import InvalidArgument


def _insts(text):
    df = dockerfile.parse(text)
    out = []
    for stage in df.stages:
        out.append(("FROM", stage.original))
        out.extend(stage.instructions)
    return df, out


def _dump(inst):
    """BuildKit's Node.Dump, for the instructions these tests use."""
    if isinstance(inst, tuple):
        return inst[1]
    if inst.cmd in ("ENV", "LABEL"):
        return (inst.cmd.lower(),) + tuple(x for pair in dockerfile.raw_key_values(inst) for x in pair)
    if inst.json:
        return (inst.cmd.lower(),) + tuple(inst.args)
    return (inst.cmd.lower(), inst.text)


# testfiles/<name>/Dockerfile -> result
CONTINUE_INDENT = (
    "FROM ubuntu:14.04\n\nRUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\n"
    "RUN echo hello  \\\n  world\nRUN echo hello  \\\nworld\nRUN echo hello \\\ngoodbye\\\nfrog\n"
    "RUN echo hello  \\  \nworld\nRUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\n"
    "RUN echo goodbye\\\nfrog\nRUN echo good\\\nbye\\\nfrog\n\n"
    "RUN echo hello \\\n# this is a comment\n\n# this is a comment with a blank line surrounding it\n\n"
    "this is some more useful stuff\n")
CONTINUE_INDENT_RESULT = [
    "FROM ubuntu:14.04",
    ("run", "echo hello  world  goodnight    moon  lightning"),
    ("run", "echo hello    world"),
    ("run", "echo hello  world"),
    ("run", "echo hello goodbyefrog"),
    ("run", "echo hello  world"),
    ("run", "echo hi   world  goodnight"),
    ("run", "echo goodbyefrog"),
    ("run", "echo goodbyefrog"),
    ("run", "echo hello this is some more useful stuff"),
]
ENV_FILE = (
    'FROM ubuntu\nENV name value\nENV name=value\nENV name=value name2=value2\nENV name="value value1"\n'
    'ENV name=value\\ value2\nENV name="value\'quote space\'value2"\nENV name=\'value"double quote"value2\'\n'
    'ENV name=value\\ value2 name2=value2\\ value3\nENV name="a\\"b"\nENV name="a\\\'b"\nENV name=\'a\\\'b\'\n'
    'ENV name=\'a\\\'b\'\'\nENV name=\'a\\"b\'\nENV name="\'\'"\n'
    "# don't put anything after the next line - it must be the last line of the\n"
    "# Dockerfile and it must end with \\\n"
    'ENV name=value \\\n    name1=value1 \\\n    name2="value2a \\\n           value2b" \\\n'
    '    name3="value3a\\n\\"value3b\\"" \\\n\tname4="value4a\\\\nvalue4b" \\\n')
ENV_RESULT = [
    "FROM ubuntu",
    ("env", "name", "value"),
    ("env", "name", "value"),
    ("env", "name", "value", "name2", "value2"),
    ("env", "name", '"value value1"'),
    ("env", "name", "value\\ value2"),
    ("env", "name", "\"value'quote space'value2\""),
    ("env", "name", "'value\"double quote\"value2'"),
    ("env", "name", "value\\ value2", "name2", "value2\\ value3"),
    ("env", "name", '"a\\"b"'),
    ("env", "name", "\"a\\'b\""),
    ("env", "name", "'a\\'b'"),
    ("env", "name", "'a\\'b''"),
    ("env", "name", "'a\\\"b'"),
    ("env", "name", "\"''\""),
    ("env", "name", "value", "name1", "value1", "name2", '"value2a            value2b"', "name3",
     '"value3a\\n\\"value3b\\""', "name4", '"value4a\\\\nvalue4b"'),
]
ESCAPES_FILE = (
    'FROM ubuntu:14.04\nLABEL maintainer Erik \\\\Hollensbe <erik@hollensbe.org>\\"\n\n'
    'RUN apt-get \\update && \\\n  apt-get \\"install znc -y\nADD \\conf\\\\" /.znc\n\n'
    'RUN foo \\\n\nbar \\\n\nbaz\n\nCMD [ "\\/usr\\\\\\"/bin/znc", "-f", "-r" ]\n')
ESCAPES_RESULT = [
    "FROM ubuntu:14.04",
    ("label", "maintainer", 'Erik \\\\Hollensbe <erik@hollensbe.org>\\"'),
    ("run", 'apt-get \\update &&   apt-get \\"install znc -y'),
    ("add", '\\conf\\\\" /.znc'),
    ("run", "foo bar baz"),
    ("cmd", '/usr\\"/bin/znc', "-f", "-r"),
]
BACKTICK_FILE = "#escape = `\n\nFROM image\nLABEL maintainer foo@bar.com\nENV GOPATH `\n\\go"
BACKTICK_AFTER_COMMENT = ("# Comment here. Should not be looking for the following parser directive.\n"
                          "# escape = `\n\nFROM image\nLABEL maintainer foo@bar.com\nENV GOPATH \\\n\\go")
BACKTICK_NONEWLINE = ("# escape = `\n# There is no white space line after the directives.\nFROM image\n"
                      "LABEL maintainer foo@bar.com\nENV GOPATH `\n\\go\n")
GOPATH_RESULT = ["FROM image", ("label", "maintainer", "foo@bar.com"), ("env", "GOPATH", "\\go")]


@pytest.mark.parametrize("text,expected", [
    (CONTINUE_INDENT, CONTINUE_INDENT_RESULT),
    (ENV_FILE, ENV_RESULT),
    (ESCAPES_FILE, ESCAPES_RESULT),
    (BACKTICK_FILE, GOPATH_RESULT),
    (BACKTICK_AFTER_COMMENT, GOPATH_RESULT),
    (BACKTICK_NONEWLINE, GOPATH_RESULT),
    ("FROM alpine:3.5\n\nRUN something \\", ["FROM alpine:3.5", ("run", "something")]),
    ('FROM a\nCOPY ["a b", "c"]\nVOLUME /x /y\nRUN [ -f x ] && y\nCMD ["a" "b"]\nENTRYPOINT []\n',
     ["FROM a", ("copy", "a b", "c"), ("volume", "/x /y"), ("run", "[ -f x ] && y"), ("cmd", '["a" "b"]'),
      ("entrypoint",)]),
], ids=["continueIndent", "env", "escapes", "escape", "escape-after-comment", "escape-nonewline",
        "continue-at-eof", "json-or-shell"])
def test_testfiles(text, expected):
    _, insts = _insts(text)
    assert [_dump(i) for i in insts] == expected


def test_escape_directive_sets_the_escape_token():
    df = dockerfile.parse(BACKTICK_FILE)
    assert df.escape == "`" and df.directives == {"escape": "`"}
    df = dockerfile.parse(BACKTICK_AFTER_COMMENT)
    assert df.escape == "\\" and df.directives == {"escape": "\\"}


def test_directives_only_at_the_top_each_once():
    df = dockerfile.parse("# syntax = docker/dockerfile:1\n#  EScape=`\n# KEY = x\n# escape=\\\nFROM a `\n  AS b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.stages[0].name == "b"
    with pytest.raises(dockerfile.DockerfileError, match="only one escape parser directive can be used"):
        dockerfile.parse("# escape=`\n# escape=`\nFROM a\n")
    with pytest.raises(dockerfile.DockerfileError, match=r"^Dockerfile:1: invalid escape token 'x'"):
        dockerfile.parse("# escape=x\nFROM a\n")
    assert dockerfile.parse("\n# escape=`\nFROM a\n").escape == "\\"
    assert dockerfile.parse("\ufeff# escape=`\nFROM a\n").escape == "`"


def test_line_numbers():
    text = ("# ESCAPE=\\\n\n\n\nFROM brimstone/ubuntu:14.04\n\n\n# TORUN -v /var/run/docker.sock\n\n\n"
            "ENV GOPATH \\\n/go\n\n\n\n# Install the packages\nRUN apt-get update \\\n\t&& dpkg -l \\\n\n\n"
            "    && apt-get install -y git \\\n    && apt-get clean \\\n    && rm -rf /var/lib/apt/lists \\\n\n"
            "\t&& go get -v x \\\n    && mv a b \\\n\n\t&& dpkg -l \\\n\t&& apt-get remove \\\n"
            "\t&& rm /tmp/dpkg.* \\\n\t&& rm -rf $GOPATH\n\n\n\n\n")
    df = dockerfile.parse(text)
    assert df.stages[0].line == 5
    assert [(i.line, i.end_line) for i in df.stages[0].instructions] == [(11, 12), (17, 31)]


def test_empty_continuation_lines_warn():
    text = ("FROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n"
            "    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\n"
            "RUN indented \\\n    # this is an indented comment\n    comment\n\t")
    df = dockerfile.parse(text)
    assert len(df.warnings) == 2
    assert "RUN something     following     more" in df.warnings[0]
    assert "RUN another     thing" in df.warnings[1]
    assert [i.text for i in df.stages[0].instructions][-2:] == ["non-indented    after-comment",
                                                                 "indented     comment"]


@pytest.mark.parametrize("text,expected", [
    ("foo", ["foo"]), ("foo bar", ["foo", "bar"]), ("foo\\ bar", ["foo\\ bar"]), ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]), ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("\u00e0\u00f6\u00fb", ["\u00e0\u00f6\u00fb"]),
])
def test_parse_words(text, expected):
    assert parse_words(text) == expected


HEREDOC_FILE = """
FROM alpine:3.6

ENV NAME=me

RUN ls

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t"""
# (name, raw content, expand, chomp, fd) per instruction after FROM; parser_heredoc_test.go's table
HEREDOC_RESULT = [
    [], [],
    [("EMPTY", "", True, False, 0)],
    [("EMPTY2", "", True, False, 3)],
    [],
    [("INDENT", "\tfoo\n\tbar\n", True, False, 0)],
    [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)],
    [("UNINDENT2", "\tbaz\n\tquux\n", True, True, 0)],
    [("EXPAND", "\texpand $NAME\n", True, True, 0)],
    [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0)],
    [("COPY", "echo hello world\necho foo bar\n", True, False, 0)],
    [("COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n", True, False, 0)],
    [("MOUNT", "echo hello\n", True, False, 0)],
    [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)],
    [("EOF", "\"foo\"\n'bar'\n", True, False, 0)],
    [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)],
    [("COMPLEX", "print('hello world')\n", True, False, 0)],
    [("file.txt", "hello world\n", True, False, 0)],
    [("eof", "echo foo\n", False, False, 0)],
    [("eo'f", "echo foo\n", True, False, 0)],
    [("eo'f", "echo foo\n", False, False, 0)],
    [("one two", "echo bar\n", False, False, 0)],
    [("$EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
]


def test_heredocs():
    df = dockerfile.parse(HEREDOC_FILE)
    got = [[(h.name, h.raw, h.expand, h.chomp, h.fd) for h in i.heredocs] for i in df.stages[0].instructions]
    assert got == HEREDOC_RESULT
    unindent = df.stages[0].instructions[6].heredocs[0]
    assert unindent.content == "baz\nquux\n"  # <<- strips the leading tabs
    assert df.stages[0].instructions[12].flags == {"mount": ["type=cache,target=/foo"]}


def test_json_forms_have_no_heredocs():
    df = dockerfile.parse('FROM alpine:3.6\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n')
    assert [i.heredocs for i in df.stages[0].instructions] == [[], [], []]
    assert [i.args for i in df.stages[0].instructions] == [["whoami"], ["<<EOF"], ["<<'EOF'"]]


@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"',
                                  "<< EOF", "<<- EOF"])
def test_heredoc_words(word):
    assert dockerfile.parse_heredoc_word(word).name == "EOF"


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_not_heredoc_words(word):
    assert dockerfile.parse_heredoc_word(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_invalid_heredoc_words(word):
    with pytest.raises(InvalidArgument):
        dockerfile.parse_heredoc_word(word)


@pytest.mark.parametrize("line,names", [
    ("RUN <<EOF", ["EOF"]), ("RUN <<-EOF", ["EOF"]), ("RUN <<- EOF", []), ("RUN << -EOF", ["-EOF"]),
    ("RUN <<'EOF'", ["EOF"]), ("RUN 4<<EOF", ["EOF"]), ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
    ("RUN '<<EOF'", []), ('RUN "<<EOF"', []),
])
def test_heredocs_from_line(line, names):
    text = "FROM a\n" + line + "\n" + "".join("x\n{}\n".format(n) for n in names)
    assert [h.name for h in dockerfile.parse(text).stages[0].instructions[0].heredocs] == names


def test_stages_meta_args_and_target():
    df = dockerfile.parse("ARG A=1\nARG B\nFROM --platform=$BUILDPLATFORM ${A} AS Builder\nRUN x\n"
                          "FROM scratch\nCOPY --from=builder /a /b\n")
    assert [i.original for i in df.meta_args] == ["ARG A=1", "ARG B"]
    assert [(s.index, s.name, s.base, s.platform, s.line) for s in df.stages] == [
        (0, "builder", "${A}", "$BUILDPLATFORM", 3), (1, None, "scratch", None, 5)]
    assert df.stage("BUILDER") is df.stages[0]
    with pytest.raises(dockerfile.DockerfileError, match='target stage "nope" could not be found'):
        df.stage("nope")
    assert df.stages[1].instructions[0].flags == {"from": "builder"}


def test_onbuild():
    df = dockerfile.parse("FROM a\nONBUILD COPY --chown=1 <<EOF /x\nhi $A\nEOF\nonbuild run echo hi\n")
    first, second = df.stages[0].instructions
    assert first.cmd == "ONBUILD" and first.args == ["COPY --chown=1 <<EOF /x\nhi $A\nEOF"]
    assert first.trigger.cmd == "COPY" and first.trigger.flags == {"chown": "1"}
    assert [h.content for h in first.trigger.heredocs] == ["hi $A\n"]
    assert second.args == ["run echo hi"] and second.trigger.cmd == "RUN" and second.trigger.text == "echo hi"
    # a trigger is checked when it runs (docker accepts it in the parent's build)
    df = dockerfile.parse("FROM a\nONBUILD FOO bar\n")
    with pytest.raises(dockerfile.DockerfileError, match="unknown instruction: FOO"):
        dockerfile.parse_triggers(df.stages[0].instructions[0].args)
    triggers = dockerfile.parse_triggers(["RUN echo hi", "COPY <<EOF /x\nhi\nEOF"])
    assert [(t.cmd, [h.content for h in t.heredocs]) for t in triggers] == [("RUN", []), ("COPY", ["hi\n"])]


def test_healthcheck():
    insts = dockerfile.parse('FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD ["curl", "x"]\n'
                             "HEALTHCHECK CMD curl -f x || exit 1\nHEALTHCHECK none\n").stages[0].instructions
    assert [(i.flags, i.json, i.args) for i in insts] == [
        ({"interval": "5s", "retries": "3"}, True, ["CMD", "curl", "x"]),
        ({}, False, ["CMD", "curl -f x || exit 1"]), ({}, False, ["none"])]


def test_key_values_substitute_with_the_env_before_the_instruction():
    insts = dockerfile.parse('FROM a\nENV A=1 B="two words" C=$A\nENV D e $A\nLABEL "a b"=c\n'
                             "ARG X Y=${A:-z} \"Z\"='q r'\n").stages[0].instructions
    env = {"A": "0"}
    assert dockerfile.key_values(insts[0], env) == [("A", "1"), ("B", "two words"), ("C", "0")]
    assert dockerfile.key_values(insts[1], env) == [("D", "e 0")]
    assert dockerfile.key_values(insts[2], env) == [("a b", "c")]
    assert dockerfile.key_values(insts[3], {}) == [("X", None), ("Y", "z"), ("Z", "q r")]
    backtick = dockerfile.parse("# escape=`\nFROM a\nENV P=C:\\x Q=`$A\n").stages[0].instructions[0]
    assert dockerfile.key_values(backtick, env, "`") == [("P", "C:\\x"), ("Q", "$A")]


ERRORS = [
    ("FROM a\nFOO x\n", 2, "FOO", "unknown instruction: FOO"),
    ("RUN x\n", 1, "RUN", "no build stage in current context"),
    ("ARG A\n", 0, None, "dockerfile contains no stages to build"),
    ("", 0, None, "file with no instructions"),
    ("# only a comment\n\n", 0, None, "file with no instructions"),
    ("FROM a\nRUN <<EOF\nx\n", 2, "RUN", "unterminated heredoc EOF"),
    ('FROM a\nCMD ["a", "b"\n', 2, "CMD", 'unterminated JSON array: ["a", "b"'),
    ('FROM a\nRUN ["a",\n', 2, "RUN", "unterminated JSON array"),
    ('FROM a\nCMD ["a", 1]\n', 2, "CMD", "arrays must be comprised of strings only"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM x\n", 2, "ONBUILD", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD maintainer x\n", 2, "ONBUILD", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a b\n", 1, "FROM", "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", 1, "FROM", 'invalid name for build stage: "1x"'),
    ("FROM a\nCOPY a\n", 2, "COPY", "COPY requires at least two arguments"),
    ("FROM a\nCOPY a <<EOF\nx\nEOF\n", 2, "COPY", "COPY cannot accept a heredoc as a destination"),
    ("FROM a\nENV x\n", 2, "ENV", "ENV must have two arguments"),
    ("FROM a\nENV a=b c\n", 2, "ENV", "Syntax error - can't find = in \"c\""),
    ("FROM a\nLABEL =b\n", 2, "LABEL", "LABEL names can not be blank"),
    ("FROM a\nARG =b\n", 2, "ARG", "ARG names can not be blank"),
    ("FROM a\nCOPY --bad=1 a b\n", 2, "COPY", "unknown flag: --bad"),
    ("FROM a\nCOPY --from a b\n", 2, "COPY", "missing a value on flag: --from"),
    ("FROM a\nCOPY --link=maybe a b\n", 2, "COPY", "expecting boolean value for flag --link, not: maybe"),
    ("FROM a\nCOPY --chown=1 --chown=2 a b\n", 2, "COPY", "duplicate flag specified: --chown"),
    ("FROM a\nRUN -x y\n", 2, "RUN", None),
    ("FROM a\nWORKDIR\n", 2, "WORKDIR", "WORKDIR requires exactly one argument"),
    ("FROM a\nEXPOSE\n", 2, "EXPOSE", "EXPOSE requires at least one argument"),
    ("FROM a\nSHELL /bin/sh -c\n", 2, "SHELL", "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nSHELL []\n", 2, "SHELL", "SHELL requires at least one argument"),
    ('FROM a\nVOLUME ["/a", ""]\n', 2, "VOLUME", "VOLUME specified can not be an empty string"),
    ("FROM a\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK", "HEALTHCHECK NONE takes no arguments"),
    ("FROM a\nHEALTHCHECK CMD\n", 2, "HEALTHCHECK", "Missing command after HEALTHCHECK CMD"),
    ("FROM a\nHEALTHCHECK RUN x\n", 2, "HEALTHCHECK", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    ("FROM a\nHEALTHCHECK --interval=1x CMD x\n", 2, "HEALTHCHECK", 'time: invalid duration "1x"'),
    ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", 2, "HEALTHCHECK", "--retries cannot be negative (-1)"),
    ("FROM a\nRUN x \\\n  y\nBAD \\\n z\n", 4, "BAD", "unknown instruction: BAD"),
]


@pytest.mark.parametrize("text,line,instruction,message", ERRORS)
def test_errors_name_file_line_and_instruction(text, line, instruction, message):
    if message is None:  # RUN's words after a flag-less RUN are its command, not flags
        dockerfile.parse(text)
        return
    with pytest.raises(dockerfile.DockerfileError) as info:
        dockerfile.parse(text, "ctx/Dockerfile.dev")
    err = info.value
    assert isinstance(err, InvalidArgument)
    assert (err.filename, err.line, err.instruction) == ("ctx/Dockerfile.dev", line, instruction)
    assert message in err.reason
    prefix = "ctx/Dockerfile.dev:{}: ".format(line) if line else "ctx/Dockerfile.dev: "
    assert str(err) == prefix + ("{}: ".format(instruction) if instruction else "") + err.reason


def test_original_is_dockers_step_text():
    insts = dockerfile.parse("FROM a\n  run  apt-get update && \\\n    apt-get install -y x   \n").stages[0]
    assert insts.instructions[0].original == "run  apt-get update &&     apt-get install -y x"
    assert insts.instructions[0].cmd == "RUN"
    assert insts.instructions[0].text == "apt-get update &&     apt-get install -y x"


# instructions/parse_test.go: TestCommandsExactlyOneArgument, TestCommandsAtLeastOneArgument,
# TestCommandsNoDestinationArgument, TestErrorCases, TestParseOptInterval
@pytest.mark.parametrize("text,message", [
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("ENV", "ENV requires at least one argument"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("ADD arg1", "ADD requires at least two arguments, but only one was provided. Destination could not be "
                 "determined"),
    ("COPY arg1", "COPY requires at least two arguments, but only one was provided. Destination could not be "
                  "determined"),
    ("COPY\t\n\t\tquux \\\n      bar", "COPY requires at least two arguments"),
    ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
    ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FOO bar", "unknown instruction: FOO"),
    ("foo bar", "unknown instruction: foo"),
    ("HEALTHCHECK --interval=50ns CMD x", "cannot be less than 1ms"),
])
def test_buildkit_instruction_errors(text, message):
    with pytest.raises(dockerfile.DockerfileError) as info:
        dockerfile.parse("FROM a\n" + text + "\n")
    assert info.value.line == 2
    assert message in info.value.reason


def test_zero_intervals_are_allowed():
    dockerfile.parse("FROM a\nHEALTHCHECK --interval=0ms --timeout=1ms CMD x\n")
