"""shellwords: Docker's word lexer, table-driven from BuildKit's own tests (frontend/dockerfile/shell: envVarTest,
wordsTest and lex_test.go's cases, ported as they are; the Windows-only rows left out)."""

import pytest

from agent_payload.build import shellwords
from agent_payload.errors import InvalidArgument

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "\ud55c\uad6d\uc5b4", "NULL": ""}

# envVarTest: (word, ProcessWord's result or "error")
ENV_VAR_CASES = [
    ('hello', 'hello'),
    ("he'll'o", 'hello'),
    ("he'llo", 'error'),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", 'error'),
    ('abc\\tdef', 'abctdef'),
    ('"abc\\tdef"', 'abc\\tdef'),
    ('"abc\\\\tdef"', 'abc\\tdef'),
    ("'abc\\tdef'", 'abc\\tdef'),
    ('hello\\', 'hello'),
    ('hello\\\\', 'hello\\'),
    ('"hello', 'error'),
    ('"hello\\"', 'error'),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", 'error'),
    ("'hello\\'", 'hello\\'),
    ("'hello\\there'", 'hello\\there'),
    ("'hello\\\\there'", 'hello\\\\there'),
    ('"\'\'"', "''"),
    ('$.', '$.'),
    ('he$1x', 'hex'),
    ('he$.x', 'he$.x'),
    ('he$pwd.', 'he.'),
    ('he$PWD', 'he/home'),
    ('he\\$PWD', 'he$PWD'),
    ('he\\\\$PWD', 'he\\/home'),
    ('"he\\$PWD"', 'he$PWD'),
    ('"he\\\\$PWD"', 'he\\/home'),
    ('\\${}', '${}'),
    ('\\${}aaa', '${}aaa'),
    ('he\\${}', 'he${}'),
    ('he\\${}xx', 'he${}xx'),
    ('${}', 'error'),
    ('${}aaa', 'error'),
    ('he${}', 'error'),
    ('he${}xx', 'error'),
    ('he${hi}', 'he'),
    ('he${hi}xx', 'hexx'),
    ('he${PWD}', 'he/home'),
    ('he${.}', 'error'),
    ('he${XXX:-000}xx', 'he000xx'),
    ('he${PWD:-000}xx', 'he/homexx'),
    ('he${XXX:-$PWD}xx', 'he/homexx'),
    ('he${XXX:-${PWD:-yyy}}xx', 'he/homexx'),
    ('he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'),
    ('he${XXX:YYY}', 'error'),
    ('he${XXX?}', 'error'),
    ('he${XXX:?}', 'error'),
    ('he${PWD?}', 'he/home'),
    ('he${PWD:?}', 'he/home'),
    ('he${NULL?}', 'he'),
    ('he${NULL:?}', 'error'),
    ('he${XXX:+${PWD}}xx', 'hexx'),
    ('he${PWD:+${XXX}}xx', 'hexx'),
    ('he${PWD:+${SHELL}}xx', 'hebashxx'),
    ('he${XXX:+000}xx', 'hexx'),
    ('he${PWD:+000}xx', 'he000xx'),
    ("'he${XX}'", 'he${XX}'),
    ('"he${PWD}"', 'he/home'),
    ('"he\'$PWD\'"', "he'/home'"),
    ('"$PWD"', '/home'),
    ("'$PWD'", '$PWD'),
    ("'\\$PWD'", '\\$PWD'),
    ('\'"hello"\'', '"hello"'),
    ('he\\$PWD', 'he$PWD'),
    ('"he\\$PWD"', 'he$PWD'),
    ("'he\\$PWD'", 'he\\$PWD'),
    ('he${PWD', 'error'),
    ('he${PWD:=000}xx', 'error'),
    ('he${PWD:+${PWD}:}xx', 'he/home:xx'),
    ('he${XXX:-\\$PWD:}xx', 'he$PWD:xx'),
    ('he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'),
    ('안녕하세요', '안녕하세요'),
    ("안'녕'하세요", '안녕하세요'),
    ("안'녕하세요", 'error'),
    ("안녕\\'하세요", "안녕'하세요"),
    ("안\\\\'녕하세요", 'error'),
    ('안녕\\t하세요', '안녕t하세요'),
    ('"안녕\\t하세요"', '안녕\\t하세요'),
    ("'안녕\\t하세요", 'error'),
    ('안녕하세요\\', '안녕하세요'),
    ('안녕하세요\\\\', '안녕하세요\\'),
    ('"안녕하세요', 'error'),
    ('"안녕하세요\\"', 'error'),
    ('"안녕\'하세요"', "안녕'하세요"),
    ("'안녕하세요", 'error'),
    ("'안녕하세요\\'", '안녕하세요\\'),
    ('안녕$1x', '안녕x'),
    ('안녕$.x', '안녕$.x'),
    ('안녕$pwd.', '안녕.'),
    ('안녕$PWD', '안녕/home'),
    ('안녕\\$PWD', '안녕$PWD'),
    ('안녕\\\\$PWD', '안녕\\/home'),
    ('안녕\\${}', '안녕${}'),
    ('안녕\\${}xx', '안녕${}xx'),
    ('안녕${}', 'error'),
    ('안녕${}xx', 'error'),
    ('안녕${hi}', '안녕'),
    ('안녕${hi}xx', '안녕xx'),
    ('안녕${PWD}', '안녕/home'),
    ('안녕${.}', 'error'),
    ('안녕${XXX:-000}xx', '안녕000xx'),
    ('안녕${PWD:-000}xx', '안녕/homexx'),
    ('안녕${XXX:-$PWD}xx', '안녕/homexx'),
    ('안녕${XXX:-${PWD:-yyy}}xx', '안녕/homexx'),
    ('안녕${XXX:-${YYY:-yyy}}xx', '안녕yyyxx'),
    ('안녕${XXX:YYY}', 'error'),
    ('안녕${XXX:+${PWD}}xx', '안녕xx'),
    ('안녕${PWD:+${XXX}}xx', '안녕xx'),
    ('안녕${PWD:+${SHELL}}xx', '안녕bashxx'),
    ('안녕${XXX:+000}xx', '안녕xx'),
    ('안녕${PWD:+000}xx', '안녕000xx'),
    ("'안녕${XX}'", '안녕${XX}'),
    ('"안녕${PWD}"', '안녕/home'),
    ('"안녕\'$PWD\'"', "안녕'/home'"),
    ('\'"안녕"\'', '"안녕"'),
    ('안녕\\$PWD', '안녕$PWD'),
    ('"안녕\\$PWD"', '안녕$PWD'),
    ("'안녕\\$PWD'", '안녕\\$PWD'),
    ('안녕${PWD', 'error'),
    ('안녕${PWD:=000}xx', 'error'),
    ('안녕${PWD:+${PWD}:}xx', '안녕/home:xx'),
    ('안녕${XXX:-\\$PWD:}xx', '안녕$PWD:xx'),
    ('안녕${XXX:-\\${PWD}z}xx', '안녕${PWDz}xx'),
    ('$KOREAN', '한국어'),
    ('안녕$KOREAN', '안녕한국어'),
    ('${{aaa}', 'error'),
    ('${aaa}}', '}'),
    ('${aaa', 'error'),
    ('${{aaa:-bbb}', 'error'),
    ('${aaa:-bbb}}', 'bbb}'),
    ('${aaa:-bbb', 'error'),
    ('${aaa:-bbb}', 'bbb'),
    ('${aaa:-${bbb:-ccc}}', 'ccc'),
    ('${aaa:-bbb ${foo}', 'error'),
    ('${aaa:-bbb {foo}', 'bbb {foo'),
    ('${:}', 'error'),
    ('${:-bbb}', 'error'),
    ('${:+bbb}', 'error'),
    ('$1', ''),
    ('${1}', ''),
    ('${1:+bbb}', ''),
    ('${1:-bbb}', 'bbb'),
    ('$2', ''),
    ('${2}', ''),
    ('${2:+bbb}', ''),
    ('${2:-bbb}', 'bbb'),
    ('$3', ''),
    ('${3}', ''),
    ('${3:+bbb}', ''),
    ('${3:-bbb}', 'bbb'),
    ('$4', ''),
    ('${4}', ''),
    ('${4:+bbb}', ''),
    ('${4:-bbb}', 'bbb'),
    ('$5', ''),
    ('${5}', ''),
    ('${5:+bbb}', ''),
    ('${5:-bbb}', 'bbb'),
    ('$6', ''),
    ('${6}', ''),
    ('${6:+bbb}', ''),
    ('${6:-bbb}', 'bbb'),
    ('$7', ''),
    ('${7}', ''),
    ('${7:+bbb}', ''),
    ('${7:-bbb}', 'bbb'),
    ('$8', ''),
    ('${8}', ''),
    ('${8:+bbb}', ''),
    ('${8:-bbb}', 'bbb'),
    ('$9', ''),
    ('${9}', ''),
    ('${9:+bbb}', ''),
    ('${9:-bbb}', 'bbb'),
    ('$999', ''),
    ('${999}', ''),
    ('${999:+bbb}', ''),
    ('${999:-bbb}', 'bbb'),
    ('$999aaa', 'aaa'),
    ('${999}aaa', 'aaa'),
    ('${999:+bbb}aaa', 'aaa'),
    ('${999:-bbb}aaa', 'bbbaaa'),
    ('$001', ''),
    ('${001}', ''),
    ('${001:+bbb}', ''),
    ('${001:-bbb}', 'bbb'),
    ('$001aaa', 'aaa'),
    ('${001}aaa', 'aaa'),
    ('${001:+bbb}aaa', 'aaa'),
    ('${001:-bbb}aaa', 'bbbaaa'),
    ('$@', ''),
    ('${@}', ''),
    ('${@:+bbb}', ''),
    ('${@:-bbb}', 'bbb'),
    ('$@@@', '@@'),
    ('$@aaa', 'aaa'),
    ('${@}aaa', 'aaa'),
    ('${@:+bbb}aaa', 'aaa'),
    ('${@:-bbb}aaa', 'bbbaaa'),
    ('$*', ''),
    ('${*}', ''),
    ('${*:+bbb}', ''),
    ('${*:-bbb}', 'bbb'),
    ('$#', ''),
    ('${#}', ''),
    ('${#:+bbb}', ''),
    ('${#:-bbb}', 'bbb'),
    ('$?', ''),
    ('${?}', ''),
    ('${?:+bbb}', ''),
    ('${?:-bbb}', 'bbb'),
    ('$-', ''),
    ('${-}', ''),
    ('${-:+bbb}', ''),
    ('${-:-bbb}', 'bbb'),
    ('$$', ''),
    ('${$}', ''),
    ('${$:+bbb}', ''),
    ('${$:-bbb}', 'bbb'),
    ('$!', ''),
    ('${!}', ''),
    ('${!:+bbb}', ''),
    ('${!:-bbb}', 'bbb'),
    ('$0', ''),
    ('${0}', ''),
    ('${0:+bbb}', ''),
    ('${0:-bbb}', 'bbb'),
]

WORDS_CASES = [
    ((), 'hello', ['hello']),
    ((), 'hello${hi}bye', ['hellobye']),
    (('hi=hi',), 'hello${hi}bye', ['hellohibye']),
    (('hi=hi', 'space=abc  def'), 'hello${space}bye', ['helloabc', 'defbye']),
    (('hi=hi', 'space=abc  def'), 'hello"${space}"bye', ['helloabc  defbye']),
    (('hi=hi', 'space=abc  def'), 'hello "${space}"bye', ['hello', 'abc  defbye']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c'), 'hello${leading}def', ['hello', 'ab', 'cdef']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c'), 'hello"${leading}" def', ['hello  ab c', 'def']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c'), 'hello"${leading}"', ['hello  ab c']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c'), 'hello${leading}', ['hello', 'ab', 'c']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello${trailing}', ['helloab', 'c']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello${trailing}d', ['helloab', 'c', 'd']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello"${trailing}"d', ['helloab c   d']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hel"lo${trailing}"', ['helloab c   ']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello" there  "', ['hello there  ']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello there', ['hello', 'there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello\\ there', ['hello there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello" there', ['error']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello\\" there', ['hello"', 'there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello"\\\\there"', ['hello\\there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), 'hello"\\there"', ['hello\\there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), "hello'\\\\there'", ['hello\\\\there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), "hello'\\there'", ['hello\\there']),
    (('hi=hi', 'space=abc  def', 'leading=  ab c', 'trailing=ab c   '), "hello'$there'", ['hello$there']),
]


@pytest.mark.parametrize("word,expected", ENV_VAR_CASES)
def test_env_var_table(word, expected):
    if expected == "error":
        with pytest.raises(shellwords.ShellError):
            shellwords.expand(word, ENV)
    else:
        assert shellwords.expand(word, ENV) == expected


def _env(pairs):
    env = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


@pytest.mark.parametrize("envs,text,expected", WORDS_CASES)
def test_words_table(envs, text, expected):
    try:
        result = shellwords.expand_words(text, _env(envs))
    except shellwords.ShellError:
        result = ["error"]
    assert result == expected


# lex_test.go's TestProcessWithMatches: pattern trimming and replacement
PATTERN_CASES = [
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"}, "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"}, "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT}", {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
     "https://google.de"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    ("${FOO+bar}", {"FOO": ""}, "bar"),
    ("${FOO-bar}", {"FOO": ""}, ""),
    ("${FOO-bar}", {}, "bar"),
    ("${FOO+bar}", {}, ""),
]


@pytest.mark.parametrize("word,env,expected", PATTERN_CASES)
def test_patterns(word, env, expected):
    assert shellwords.expand(word, env) == expected


@pytest.mark.parametrize("word", ["${FOO:#}", "${FOO:##}", "${FOO:%}", "${FOO:%%}", "${FOO//ww}", "${FOO//}",
                                  "${FOO=}", "${FOO#\\x}"])
def test_pattern_errors(word):
    with pytest.raises(InvalidArgument):
        shellwords.expand(word, {"FOO": "xxyy"})


def test_mandatory_vars():
    assert shellwords.expand("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(shellwords.ShellError, match="message herex"):
            shellwords.expand("${VAR:?message here$ARG}", env)
    assert shellwords.expand("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(shellwords.ShellError, match=r'failed to process "\$\{VAR\?m\}": VAR: m'):
        shellwords.expand("${VAR?m}", {})


def test_backtick_escape():
    assert shellwords.expand("a`$PWD", ENV, escape="`") == "a$PWD"
    assert shellwords.expand("C:\\dir", ENV, escape="`") == "C:\\dir"
    assert shellwords.expand_words("a` b c", {}, escape="`") == ["a b", "c"]


def test_raw_modes_for_heredoc_words():
    # the parser's heredoc detection: quotes kept, unset variables kept as written
    assert shellwords.process("<<'EOF'", {}, raw_quotes=True, skip_unset=True)[1] == ["<<'EOF'"]
    assert shellwords.process("$X ${Y:-z}", {}, skip_unset=True)[0] == "$X ${Y:-z}"
    assert shellwords.process("a\\ b", {}, raw_escapes=True)[1] == ["a\\ b"]
