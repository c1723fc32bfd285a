"""Go's text/template, the part docker users write, with docker's function set (cli/templates/templates.go).

``parse(text)`` gives a :class:`Template`; ``Template.execute(data)`` renders it.  Data are decoded JSON (dicts,
lists, str, int, float, bool, None) and :class:`Record` (a Go struct: an unknown field is an error, fields may be
methods taking arguments).  Semantics follow Go: fields and map keys (``.A.B``; a missing map key is ``<no value>``),
``$`` and variables (``$x := ...``, ``$x = ...``, ``range $k, $v := ...``), pipelines, parenthesised
pipelines, ``if``/``else if``/``else``, ``range`` (maps in sorted key order, ``else``, ``break``, ``continue``),
``with``/``else with``, ``{{- -}}`` trim markers, comments, and the functions ``and or not len index slice eq ne
lt le gt ge print printf println`` plus docker's ``json split join title lower upper pad truncate``.
Errors are :class:`TemplateError` with Go's text (``template: :1:2: executing "" at <.X>: ...``).
"""

from __future__ import annotations

import json
import re

from fleet.render import gofmt

NOVALUE = gofmt.NOVALUE


class TemplateError(Exception):
    """A parse or execution error, worded as Go's text/template words it."""


class Record:
    """A Go struct: ``fields`` name -> value, or a callable (a method; called with the template's arguments)."""

    def __init__(self, fields: dict, type_name: str, json_fields=None, printable=False, methods=False):
        self.fields, self.type_name, self.printable, self.methods = fields, type_name, printable, methods
        self.json_fields = json_fields if json_fields is not None else [k for k, v in fields.items()
                                                                          if not callable(v)]

    def as_json(self):
        return {k: self.fields[k]() if callable(self.fields[k]) else self.fields[k] for k in self.json_fields}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ---------------------------------------------------------------- lexing

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<declare>:=)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[|(),=])
""", re.X | re.S)

_COMMENT = re.compile(r"\s*/\*")
_TRIM_END = re.compile(r"[ \t\r\n]+-}}")
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block", "nil",
             "true", "false"}
_TRIM = " \t\r\n"


class _Node:
    """A parsed node: ``kind`` and its parts; ``pos`` is the byte offset in the template (for errors)."""

    def __init__(self, kind, pos, **parts):
        self.kind, self.pos = kind, pos
        self.__dict__.update(parts)


def _lex(text):
    """The template as a list of ("text", str, pos) and ("action", [tokens], pos, end) items."""
    items, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            items.append(("text", text[pos:], pos))
            return items
        body = start + 2
        trim_left = text.startswith("-", body) and body + 1 < len(text) and text[body + 1] in _TRIM
        items.append(("text", text[pos:start].rstrip(_TRIM) if trim_left else text[pos:start], pos))
        if trim_left:
            body += 1
        tokens, i = [], body
        while True:
            if i >= len(text):
                raise TemplateError("template: :{}: unclosed action".format(_line(text, start)))
            if text.startswith("}}", i):
                end, trim_right = i + 2, False
                break
            marker = _TRIM_END.match(text, i)
            if marker:
                end, trim_right = marker.end(), True
                break
            m = _TOKEN.match(text, i)
            if not m or m.end() == i:
                if text.startswith("}", i):
                    raise TemplateError('template: :{}: unexpected "}}" in operand'.format(_line(text, i)))
                raise TemplateError("template: :{}: unexpected {!r} in command".format(_line(text, i), text[i]))
            kind = m.lastgroup
            if kind not in ("space", "comment"):
                tokens.append((kind, m.group(kind), i))
            i = m.end()
        if not tokens and not _COMMENT.match(text, body):
            raise TemplateError("template: :{}: missing value for command".format(_line(text, start)))
        items.append(("action", tokens, start, end))
        pos = end
        if trim_right:
            while pos < len(text) and text[pos] in _TRIM:
                pos += 1


def _line(text, pos):
    return text.count("\n", 0, pos) + 1


# ---------------------------------------------------------------- parsing

class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.items = _lex(text)
        self.i = 0
        self.ranges = 0  # how many {{range}} bodies enclose the action being parsed (for break/continue)

    def fail(self, pos, msg):
        raise TemplateError("template: :{}: {}".format(_line(self.text, pos), msg))

    def parse(self):
        return self.list_until(())[0]

    def list_until(self, stops):
        """Nodes up to an action starting with a word of ``stops`` (returned, unconsumed) or the end."""
        nodes = []
        while self.i < len(self.items):
            item = self.items[self.i]
            if item[0] == "text":
                self.i += 1
                if item[1]:
                    nodes.append(_Node("text", item[2], text=item[1]))
                continue
            tokens = item[1]
            if not tokens:  # a comment only
                self.i += 1
                continue
            word = tokens[0][1] if tokens[0][0] == "ident" else None
            if word in ("end", "else"):
                if word in stops:
                    return nodes, item
                self.fail(item[2], "unexpected {{{{{}}}}}".format(word))
            self.i += 1
            nodes.append(self.action(word, tokens, item))
        if stops:
            self.fail(len(self.text), "unexpected EOF")
        return nodes, None

    def action(self, word, tokens, item):
        pos = tokens[0][2]
        if word in ("if", "range", "with"):
            return self.block(word, tokens[1:], pos, item)
        if word in ("break", "continue"):
            if not self.ranges:
                self.fail(pos, "{{{{{}}}}} outside {{{{range}}}}".format(word))
            if len(tokens) > 1:
                self.fail(pos, "unexpected {} in {{{{{}}}}}".format(tokens[1][1], word))
            return _Node(word, pos)
        if word in ("define", "template", "block"):
            self.fail(pos, "{{{{{}}}}} is not supported by fleet".format(word))
        return _Node("action", pos, pipe=self.pipeline(tokens, "command", decl_ok=True))

    def block(self, word, tokens, pos, item):
        if not tokens:
            self.fail(pos, "missing value for {}".format(word))
        pipe = self.pipeline(tokens, word, decl_ok=True, two_vars=word == "range")
        self.ranges += word == "range"
        body, stop = self.list_until(("end", "else"))
        self.ranges -= word == "range"
        other = None
        if stop[1][0][1] == "else":
            rest = stop[1][1:]
            self.i += 1
            if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with") and word in ("if", "with"):
                other = [self.block(rest[0][1], rest[1:], rest[0][2], stop)]  # else if/with: a nested block
                return _Node(word, pos, pipe=pipe, body=body, other=other)
            if rest:
                self.fail(stop[2], "unexpected {} in else".format(rest[0][1]))
            other, stop = self.list_until(("end",))
            if stop[1][0][1] != "end":
                self.fail(stop[2], "unexpected {{else}}")
        if len(stop[1]) > 1:
            self.fail(stop[2], "unexpected {} in end".format(stop[1][1][1]))
        self.i += 1
        return _Node(word, pos, pipe=pipe, body=body, other=other)

    def pipeline(self, tokens, context, decl_ok=False, two_vars=False):
        decl, assign, pos = [], False, tokens[0][2] if tokens else 0
        if decl_ok and tokens and tokens[0][0] == "variable":
            j = 1
            names = [tokens[0][1]]
            if two_vars and len(tokens) > 2 and tokens[1] == ("punct", ",", tokens[1][2]) and \
                    tokens[2][0] == "variable":
                names.append(tokens[2][1])
                j = 3
            if len(tokens) > j and (tokens[j][0] == "declare" or (tokens[j][1] == "=" and tokens[j][0] == "punct")):
                decl, assign = names, tokens[j][1] == "="
                tokens = tokens[j + 1:]
        cmds, cur, depth = [], [], 0
        for tok in tokens:
            if tok[1] == "(" and tok[0] == "punct":
                depth += 1
            elif tok[1] == ")" and tok[0] == "punct":
                depth -= 1
                if depth < 0:
                    self.fail(tok[2], "unexpected right paren")
            if tok[1] == "|" and tok[0] == "punct" and depth == 0:
                cmds.append(cur)
                cur = []
            else:
                cur.append(tok)
        if depth > 0:
            self.fail(pos, "unclosed left paren")
        cmds.append(cur)
        if not cmds[0] and len(cmds) == 1:
            self.fail(pos, "missing value for {}".format(context))
        parsed = []
        for n, cmd in enumerate(cmds):
            if not cmd:
                self.fail(pos, "missing command")
            parsed.append(self.command(cmd))
            if n and parsed[-1][0].kind not in ("ident", "field", "chain", "variable"):
                self.fail(cmd[0][2], "non executable command in pipeline stage {}".format(n + 1))
        return _Node("pipe", pos, decl=decl, assign=assign, cmds=parsed)

    def command(self, tokens):
        args, i = [], 0
        while i < len(tokens):
            node, i = self.operand(tokens, i)
            args.append(node)
        return args

    def operand(self, tokens, i):
        kind, val, pos = tokens[i]
        if kind == "punct" and val == "(":
            depth, j = 0, i
            while True:
                if tokens[j][1] == "(" and tokens[j][0] == "punct":
                    depth += 1
                elif tokens[j][1] == ")" and tokens[j][0] == "punct":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            node = _Node("paren", pos, pipe=self.pipeline(tokens[i + 1:j], "parenthesized pipeline"))
            i = j + 1
            if i < len(tokens) and tokens[i][0] == "field" and tokens[i][2] == tokens[j][2] + 1:
                node = _Node("chain", pos, node=node, names=tokens[i][1][1:].split("."))
                i += 1
            return node, i
        if kind == "field":
            return _Node("field", pos, names=val[1:].split(".")), i + 1
        if kind == "variable":
            names = []
            if i + 1 < len(tokens) and tokens[i + 1][0] == "field" and tokens[i + 1][2] == pos + len(val):
                names = tokens[i + 1][1][1:].split(".")
                i += 1
            return _Node("variable", pos, name=val, names=names), i + 1
        if kind == "dot":
            return _Node("dot", pos), i + 1
        if kind in ("string", "raw", "char"):
            return _Node("const", pos, value=self.string(kind, val, pos)), i + 1
        if kind == "number":
            return _Node("const", pos, value=self.number(val, pos)), i + 1
        if kind == "ident":
            if val in ("true", "false"):
                return _Node("const", pos, value=val == "true"), i + 1
            if val == "nil":
                return _Node("nil", pos), i + 1
            if val in _KEYWORDS or val not in FUNCS:
                self.fail(pos, 'function "{}" not defined'.format(val))
            return _Node("ident", pos, name=val), i + 1
        self.fail(pos, "unexpected {!r} in operand".format(val))

    def string(self, kind, val, pos):
        """A Go string literal ("...", `raw`, or a 'c' rune constant, which is its code point)."""
        if kind == "raw":
            return val[1:-1]
        inner = val[1:-1] if kind == "string" else val[1:-1].replace('"', '\\"')
        try:
            out = json.loads('"' + _ESCAPE.sub(_json_escape, inner) + '"', strict=False)
        except ValueError:
            self.fail(pos, "malformed constant: {}".format(val))
        if kind == "char":
            if len(out) != 1:
                self.fail(pos, "malformed character constant: {}".format(val))
            return ord(out)
        return out

    def number(self, val, pos):
        try:
            clean = val.replace("_", "")
            if re.match(r"^[+-]?0[xX]", clean) or re.match(r"^[+-]?\d+$", clean):
                return int(clean, 0) if not re.match(r"^[+-]?0\d", clean) else int(clean, 8)
            return float(clean)
        except ValueError:
            self.fail(pos, "bad number syntax: {!r}".format(val))


_ESCAPE = re.compile(r"\\([abfnrtv'\\\"]|x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "'": 39, "\\": 92, '"': 34}


def _json_escape(m):
    """One Go escape as the JSON escape of the same character."""
    c = m.group(1)
    if c in _SIMPLE:
        code = _SIMPLE[c]
    elif c[0] in "xuU":
        code = int(c[1:], 16)
    else:
        code = int(c, 8)
    return json.dumps(chr(code))[1:-1]


# ---------------------------------------------------------------- execution

class Template:
    """A parsed template; ``missing_error``: a missing map key is an error (Go's ``missingkey=error``)."""

    def __init__(self, text: str, missing_error: bool = False):
        self.text, self.missing_error = text, missing_error
        self.nodes = _Parser(text).parse()

    def execute(self, data, header: bool = False) -> str:
        """Render with ``data`` as dot.  ``header``: docker's table header pass (the formatting functions give
        their argument back; an error ends the output where it happened instead of raising)."""
        out: list[str] = []
        try:
            _State(self, header).walk(self.nodes, data, [("$", data)], out)
        except TemplateError:
            if not header:
                raise
        return "".join(out)


#: docker's HeaderFunctions: in a table's header row these leave the header text as it is.
_HEADER_FUNCS = ("json", "split", "join", "title", "lower", "upper", "truncate")


class _State:
    def __init__(self, tmpl, header):
        self.tmpl, self.header = tmpl, header

    def fail(self, node, msg):
        text = self.tmpl.text
        line_start = text.rfind("\n", 0, node.pos) + 1
        raise TemplateError('template: :{}:{}: executing "" at <{}>: {}'.format(
            _line(text, node.pos), node.pos - line_start, _source(node), msg))

    def walk(self, nodes, dot, scope, out):
        for node in nodes:
            kind = node.kind
            if kind == "text":
                out.append(node.text)
            elif kind == "action":
                value = self.pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    out.append(self.printable(node, value))
            elif kind in ("if", "with"):
                mark = len(scope)
                value = self.pipe(node.pipe, dot, scope)
                if gofmt.truth(value):
                    self.walk(node.body, value if kind == "with" else dot, scope, out)
                elif node.other:
                    self.walk(node.other, dot, scope, out)
                del scope[mark:]
            elif kind == "range":
                self.range(node, dot, scope, out)
            elif kind == "break":
                raise _Break()
            elif kind == "continue":
                raise _Continue()

    def range(self, node, dot, scope, out):
        mark = len(scope)
        pipe = node.pipe
        value = self.pipe(_Node("pipe", pipe.pos, decl=[], assign=False, cmds=pipe.cmds), dot, scope)
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is NOVALUE:
            pairs = []
        else:
            self.fail(pipe, "range can't iterate over {}".format(gofmt.go_print(value)))
        for key, item in pairs:
            inner = scope[:mark]
            if len(pipe.decl) == 1:
                inner.append((pipe.decl[0], item))
            elif len(pipe.decl) == 2:
                inner += [(pipe.decl[0], key), (pipe.decl[1], item)]
            try:
                self.walk(node.body, item, inner, out)
            except _Break:
                break
            except _Continue:
                continue
        if not pairs and node.other:
            self.walk(node.other, dot, scope, out)
        del scope[mark:]

    def printable(self, node, value):
        if isinstance(value, Record) and not value.printable:
            self.fail(node.pipe.cmds[-1][0], 'printing "." (a whole {}) is not supported: use {{{{json .}}}}'
                      .format(value.type_name))
        return gofmt.go_print(value)

    def pipe(self, pipe, dot, scope):
        value = NOVALUE
        final = None
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, scope, final)
            final = (value,)
        for name in pipe.decl:
            if pipe.assign:
                for n in range(len(scope) - 1, -1, -1):
                    if scope[n][0] == name:
                        scope[n] = (name, value)
                        break
                else:
                    self.fail(pipe, 'undefined variable "{}"'.format(name))
            else:
                scope.append((name, value))
        return value

    def command(self, cmd, dot, scope, final):
        first = cmd[0]
        if first.kind == "ident" and first.name in ("and", "or") and len(cmd) + bool(final) > 1:
            value = None  # Go's and/or stop at the first operand that decides, later ones are not evaluated
            for node in cmd[1:] + ([None] if final else []):
                value = final[0] if node is None else self.operand(node, dot, scope, [])
                if gofmt.truth(value) == (first.name == "or"):
                    break
            return value
        if first.kind == "ident":
            args = [self.arg(a, dot, scope) for a in cmd[1:]] + (list(final) if final else [])
            return self.call(first, first.name, args)
        if first.kind in ("field", "chain", "variable"):
            args = [self.arg(a, dot, scope) for a in cmd[1:]] + (list(final) if final else [])
            return self.operand(first, dot, scope, args)
        if len(cmd) > 1 or final:
            self.fail(first, "can't give argument to non-function {}".format(_source(first)))
        return self.operand(first, dot, scope, [])

    def arg(self, node, dot, scope):
        value = self.operand(node, dot, scope, [])
        return None if value is NOVALUE else value

    def operand(self, node, dot, scope, args):
        kind = node.kind
        if kind == "const":
            return node.value
        if kind == "nil":
            self.fail(node, "nil is not a command")
        if kind == "dot":
            return dot
        if kind == "paren":
            return self.pipe(node.pipe, dot, scope)
        if kind == "ident":
            return self.call(node, node.name, args)
        if kind == "field":
            return self.chain(node, dot, node.names, args)
        if kind == "chain":
            return self.chain(node, self.pipe(node.node.pipe, dot, scope), node.names, args)
        for name, value in reversed(scope):  # a variable
            if name == node.name:
                return self.chain(node, value, node.names, args) if node.names else value
        self.fail(node, 'undefined variable "{}"'.format(node.name))

    def chain(self, node, value, names, args):
        for n, name in enumerate(names):
            last = n == len(names) - 1
            value = self.field(node, value, name, args if last else [], last)
        return value

    def field(self, node, value, name, args, last):
        if isinstance(value, Record):
            if name not in value.fields:
                self.fail(node, "can't evaluate field {} in type {}".format(name, value.type_name))
            found = value.fields[name]
            if callable(found):
                try:
                    return found(*args)
                except TypeError:
                    self.fail(node, "wrong number of args for {}: want {} got {}".format(
                        name, getattr(found, "arity", 0), len(args)))
            if args and value.methods:  # docker's formatter contexts: every field is a method
                self.fail(node, "wrong number of args for {}: want 0 got {}".format(name, len(args)))
            if args:
                self.fail(node, "{} has arguments but cannot be invoked as function".format(name))
            return found
        if isinstance(value, dict):
            if args:
                self.fail(node, "{} is not a method but has arguments".format(name))
            if name in value:
                return value[name]
            if self.tmpl.missing_error:
                self.fail(node, 'map has no entry for key "{}"'.format(name))
            return NOVALUE
        if value is NOVALUE:
            if self.tmpl.missing_error:
                self.fail(node, 'nil data; no entry for key "{}"'.format(name))
            return NOVALUE
        if value is None:
            self.fail(node, "nil pointer evaluating interface {{}}.{}".format(name))
        self.fail(node, "can't evaluate field {} in type {}".format(name, gofmt.type_name(value)))

    def call(self, node, name, args):
        if self.header and name in _HEADER_FUNCS and args:
            return args[0]
        fn = FUNCS[name]
        try:
            return fn(*args)
        except gofmt.ArgTypeError as exc:
            self.fail(node, str(exc))
        except gofmt.GoError as exc:
            self.fail(node, "error calling {}: {}".format(name, exc))
        except TypeError:
            self.fail(node, "wrong number of args for {}: want {} got {}".format(name, ARITY.get(name, "?"),
                                                                                 len(args)))


def _source(node) -> str:
    """The node as Go prints it in ``at <...>``."""
    kind = node.kind
    if kind == "field":
        return "." + ".".join(node.names)
    if kind == "variable":
        return node.name + "".join("." + n for n in node.names)
    if kind == "ident":
        return node.name
    if kind == "dot":
        return "."
    if kind == "const":
        return json.dumps(node.value) if isinstance(node.value, str) else gofmt.go_print(node.value)
    if kind == "pipe":
        return " | ".join(" ".join(_source(a) for a in cmd) for cmd in node.cmds)
    if kind == "paren":
        return "(" + _source(node.pipe) + ")"
    if kind == "chain":
        return _source(node.node) + "." + ".".join(node.names)
    return kind


FUNCS = gofmt.FUNCS
ARITY = gofmt.ARITY


def parse(text: str, missing_error: bool = False) -> Template:
    """Parse ``text`` (TemplateError with Go's message on bad syntax)."""
    return Template(text, missing_error)
