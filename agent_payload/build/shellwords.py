"""Docker's Dockerfile word lexer: variable substitution and word splitting, ported from BuildKit's
frontend/dockerfile/shell/lex.go (the classic builder uses the same package).

``expand`` is lex.ProcessWord (quotes removed, spaces kept), ``expand_words`` is lex.ProcessWords (split into
words after substitution; a quoted part is never split).  Supported: ``$V``, ``${V}``, ``${V:-d}``, ``${V-d}``,
``${V:+a}``, ``${V+a}``, ``${V?msg}``, ``${V:?msg}``, ``${V#p}``, ``${V##p}``, ``${V%p}``, ``${V%%p}``,
``${V/p/r}``, ``${V//p/r}``, escapes with the Dockerfile's escape token, single and double quotes, ``$`` alone or
before a non-name character (kept), positional and special parameters (never set).  Pure, stdlib only.
"""

import re

from agent_payload.errors import InvalidArgument

_EOF = None


class ShellError(InvalidArgument):
    """A word the lexer cannot process (Docker's ``failed to process "w": ...``)."""


class _Error(Exception):
    pass


class _Words:
    """lex.go's wordsStruct: splits on unquoted whitespace."""

    def __init__(self):
        self.buf = []
        self.words = []
        self.in_word = False

    def add_char(self, ch):
        if ch.isspace() and self.in_word:
            if self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        elif not ch.isspace():
            self.add_raw_char(ch)

    def add_raw_char(self, ch):
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text):
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text):
        self.buf.append(text)
        self.in_word = True

    def get_words(self):
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


def _is_special_param(ch):
    return ch in "@*#?-$!0"


class _Lexer:
    def __init__(self, word, env, escape, raw_quotes=False, raw_escapes=False, skip_unset=False,
                 skip_quotes=False):
        self.text = word
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes

    # text/scanner's Peek and Next
    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self):
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def get_env(self, name):
        if name in self.env:
            value = self.env[name]
            return ("" if value is None else value), True
        return "", False

    def process_stop_on(self, stop, raw_escapes):
        result = []
        words = _Words()
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            while self.peek() is not _EOF:
                ch = self.peek()
                if stop is not _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                fn = None
                if ch == "$":
                    fn = self.process_dollar
                elif ch == "<":
                    fn = self.process_possible_heredoc
                elif not self.skip_quotes and ch == "'":
                    fn = self.process_single_quote
                elif not self.skip_quotes and ch == '"':
                    fn = self.process_double_quote
                if fn is not None:
                    tmp = fn()
                    result.append(tmp)
                    if ch == "$":
                        words.add_string(tmp)
                    else:
                        words.add_raw_string(tmp)
                    continue
                ch = self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch is _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        finally:
            self.raw_escapes = saved
        if stop is not _EOF:
            raise _Error("unexpected end of statement while looking for matching {}".format(stop))
        return "".join(result), words.get_words()

    def process_single_quote(self):
        result = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch is _EOF:
                raise _Error("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self):
        result = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        while True:
            peek = self.peek()
            if peek is _EOF:
                raise _Error("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self.next()
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if peek == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    result.append(ch)
                after = self.peek()
                if after is _EOF:
                    continue  # the escape at the end of the word is dropped (then: unterminated quote)
                if after in ('"', "$", self.escape):
                    ch = self.next()
            result.append(ch)

    def process_name(self):
        name = []
        while self.peek() is not _EOF:
            ch = self.peek()
            if not name and ch.isdecimal():
                while self.peek() is not _EOF and self.peek().isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and _is_special_param(ch):
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_possible_heredoc(self):
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() in ("\t", "\r", " "):
            space.append(self.next())
        return "<<" + "".join(space)

    def process_dollar(self):  # noqa: C901 - one switch, as lex.go's
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()
        peek = self.peek()
        if peek is _EOF:
            raise _Error("syntax error: missing '}'")
        if peek in ("{", "}", ":"):
            raise _Error("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch is not _EOF else "\ufffd"
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "${%s}" % name
            return value
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch if ch is not _EOF else "\ufffd"
        elif ch == "/":
            return self._replace(name)
        elif ch not in ("+", "-", "?", "#", "%"):
            raise _Error("unsupported modifier ({}) in substitution".format(chs))
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise _Error("unsupported modifier ({}) in substitution".format(chs))
        try:
            word, _ = self.process_stop_on("}", raw)
        except _Error:
            if self.peek() is _EOF:
                raise _Error("syntax error: missing '}'")
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${%s%s%s}" % (name, chs, word)
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise _Error("{}: {}".format(name, word or "is not allowed to be unset"))
            if null_is_unset and value == "":
                raise _Error("{}: {}".format(name, word or "is not allowed to be empty"))
            return value
        if ch in ("%", "#"):
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _Error("unsupported modifier ({}) in substitution".format(chs))

    def _replace(self, name):
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _Error:
            if self.peek() is _EOF:
                raise _Error("syntax error: missing '/' in ${}")
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _Error:
            if self.peek() is _EOF:
                raise _Error("syntax error: missing '}'")
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        regex = _pattern_regex(pattern, True, False)
        if replace_all:
            return regex.sub(lambda m: replacement, value)
        m = regex.search(value)
        if m:
            value = value[:m.start()] + replacement + value[m.end():]
        return value


def _pattern_regex(pattern, greedy, anchored):
    """lex.go's convertShellPatternToRegex: ``*`` and ``?`` wildcards, ``\\`` escapes, no brackets."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < len(pattern) else None
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise _Error("invalid pattern ({}) in substitution: invalid escape '\\{}'".format(
                    pattern, nxt if nxt is not None else ""))
            out.append("\\" + nxt)
            i += 1
            continue
        out.append(re.escape(tok) if tok in "[]{}.+()|^$" else tok)
    return re.compile("".join(out))


def _trim_prefix(pattern, value, greedy):
    m = _pattern_regex(pattern, greedy, True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern):
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        if tok == "\\" and i != last:
            out[last - i - 1] = tok
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern, value, greedy):
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def process(word, env, escape="\\", raw_quotes=False, raw_escapes=False, skip_unset=False, skip_quotes=False):
    """(ProcessWord's string, ProcessWords' list) for ``word``; raises ShellError."""
    lexer = _Lexer(word, env if env is not None else {}, escape, raw_quotes, raw_escapes, skip_unset, skip_quotes)
    try:
        return lexer.process_stop_on(_EOF, raw_escapes)
    except _Error as exc:
        raise ShellError("failed to process {}: {}".format(_go_quote(word), exc))


def expand(word, env, escape="\\"):
    """Docker's ProcessWord: ``word`` with variables substituted from ``env`` and quotes removed."""
    return process(word, env, escape)[0]


def expand_words(text, env, escape="\\"):
    """Docker's ProcessWords: ``text`` substituted, then split into words (quoted parts not split)."""
    return process(text, env, escape)[1]


def _go_quote(text):
    """Go's %q for the common cases (printable text, quotes and backslashes escaped)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append("\\x{:02x}".format(ord(ch)) if ord(ch) < 0x100 else "\\u{:04x}".format(ord(ch)))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
