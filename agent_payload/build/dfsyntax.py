"""The low layer of the Dockerfile parser (dockerfile.py): parser directives, line continuations, builder
flags, word splitting, JSON arrays and heredoc words, ported from BuildKit's frontend/dockerfile/parser
(directives.go, parser.go, split_command.go, line_parsers.go).  Pure, stdlib only."""

import json
import re
from dataclasses import dataclass

from agent_payload.build import shellwords

_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"

class Fail(Exception):
    """A parse error without its location (added by the caller)."""


@dataclass
class Heredoc:
    name: str                # the delimiter word, quotes removed (COPY <<EOF /dst: the source's name)
    content: str             # the lines up to the delimiter; <<- : leading tabs already stripped
    expand: bool             # False when any part of the delimiter was quoted (<<"EOF", <<'EOF')
    chomp: bool              # <<-
    fd: int = 0              # RUN 3<<EOF
    raw: str = ""            # the content as written (ONBUILD keeps it so)



# --------------------------------------------------------------------------------------------- lines

class Directives:
    """directives.go: ``# key=value`` lines at the top; the first other line ends them."""

    def __init__(self):
        self.done = False
        self.seen = {"escape": "\\"}
        self.explicit = set()
        self.escape = "\\"
        self.continuation = self._regex("\\")

    @staticmethod
    def _regex(esc):
        e = re.escape(esc)
        return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")

    def feed(self, line):
        if self.done:
            return
        if not line.startswith("#"):
            self.done = True
            return
        m = _DIRECTIVE.match(line[1:].lstrip())
        key = m.group(1).lower() if m else None
        if key not in ("syntax", "escape", "check"):
            self.done = True
            return
        if key in self.explicit:
            raise Fail("only one {} parser directive can be used".format(key))
        self.explicit.add(key)
        value = m.group(2)
        if key == "escape":
            if value not in ("`", "\\"):
                raise Fail("invalid escape token '{}' does not match ` or \\".format(value))
            self.escape = value
            self.continuation = self._regex(value)
        self.seen[key] = value

    def process(self, raw, strip_left):
        token = raw.rstrip("\r\n")
        if strip_left:
            token = token.lstrip()
        self.feed(token)
        return "" if is_comment(token) else token

    def trim_continuation(self, line):
        if self.continuation.search(line):
            return self.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True


def is_comment(line):
    return line.lstrip()[:1] == "#"


def split_lines(text):
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# --------------------------------------------------------------------------------------------- words

def extract_flags(line, esc):
    """split_command.go's extractBuilderFlags: the leading ``--flag`` words and the rest of the line."""
    words, buf, quote, blank_ok, phase, pos = [], [], None, False, "spaces", 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if ch.isspace():
                word = "".join(buf)
                phase = "spaces"
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == esc:
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


def parse_words(rest, esc="\\"):
    """line_parsers.go's parseWords: split on unquoted whitespace, quotes and escapes kept in the words."""
    words, buf, quote, blank_ok, phase = [], [], None, False, "spaces"
    chars = list(rest)
    n, pos = len(chars), 0
    while pos <= n:
        ch = chars[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == "word":
            if ch.isspace():
                phase = "spaces"
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, "quote"
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = chars[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = "word"
        if ch == esc and quote != "'":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = chars[pos]
        buf.append(ch)
        pos += 1
    return words


def json_array(rest):
    """The list of a JSON array of strings, None when ``rest`` is not JSON (shell form); _Fail for non-strings."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None

    def _no_constants(name):
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError:
        _unterminated(text, _no_constants)
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise Fail(_NOT_STRINGS)
    return value


def _unterminated(text, no_constants):
    body = text.rstrip()
    if body.endswith("]"):
        return
    for candidate in (body + "]", body.rstrip(",") + "]"):
        try:
            value = json.loads(candidate, parse_constant=no_constants)
        except ValueError:
            continue
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            raise Fail("unterminated JSON array: {} (add the closing ])".format(body))


# --------------------------------------------------------------------------------------------- heredocs

def parse_heredoc_word(word):
    """parser.ParseHeredoc: the Heredoc a word like ``<<EOF``, ``<<-"EOF"``, ``3<<EOF`` names (content ""),
    or None when the word is not one."""
    m = _HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    words = shellwords.process(rest, {}, "\\", skip_unset=True)[1]
    if len(words) != 1:
        return None
    raw = shellwords.process(rest, {}, "\\", raw_quotes=True, skip_unset=True)[1]
    if len(raw) != 1:
        raise Fail("internal lexing of heredoc produced inconsistent results: {}".format(rest))
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], content="", expand=quotes == raw_quotes, chomp=m.group(2) == "-",
                   fd=int(m.group(1) or 0))


def heredocs_in(line):
    try:
        words = shellwords.process(line, {}, "\\", raw_quotes=True, raw_escapes=True, skip_unset=True)[1]
    except shellwords.ShellError:
        words = []
    docs = []
    for word in words:
        try:
            doc = parse_heredoc_word(word)
        except shellwords.ShellError as exc:
            raise Fail(exc.message)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp(content):
    """ChompHeredocContent: leading tabs off every line."""
    return re.sub(r"(?m)^\t+", "", content)
