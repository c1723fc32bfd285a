"""Go's value printing (fmt's ``%v``, ``printf`` verbs) and the template functions docker users call.

Values are decoded JSON plus ``gotemplate.Record`` (a Go struct) and :data:`NOVALUE` (Go's invalid reflect.Value:
a missing map key, printed ``<no value>``).  ``FUNCS`` is text/template's builtins with docker's
(cli/templates/templates.go: json, split, join, title, lower, upper, pad, truncate).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal


class _NoValue:
    def __repr__(self):
        return "<no value>"


NOVALUE = _NoValue()


class NilSlice(list):
    """A nil slice: prints ``[]``, is null in JSON."""


class NilMap(dict):
    """A nil map: prints ``map[]``, is null in JSON."""


class GoError(Exception):
    """A function's error (Go: ``error calling NAME: ...``)."""


class ArgTypeError(GoError):
    """An argument of the wrong type (Go checks it before the call: no ``error calling`` prefix)."""


def is_record(value) -> bool:
    return hasattr(value, "fields") and hasattr(value, "type_name")


def type_name(value) -> str:
    """Go's name of a value's type (in error messages and ``%T``)."""
    if is_record(value):
        return value.type_name
    if value is None or value is NOVALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]string" if value and all(isinstance(v, str) for v in value) else "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def go_float(f: float) -> str:
    """``%v`` of a float64: the shortest digits, exponent form below 1e-4 and from 1e6 (fmt's %g, shortest)."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    text = "".join(map(str, digits))
    point = len(digits) + exp  # the decimal point sits after this many digits
    e10 = point - 1
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return "{}{}e{}{:02d}".format(neg, mant, "-" if e10 < 0 else "+", abs(e10))
    if point <= 0:
        return neg + "0." + "0" * -point + text
    if point >= len(text):
        return neg + text + "0" * (point - len(text))
    return neg + text[:point] + "." + text[point:]


def go_print(value) -> str:
    """``fmt.Sprint``/``%v`` of one value (nil is ``<nil>``, a missing value ``<no value>``, maps sorted)."""
    if value is NOVALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join("{}:{}".format(k, go_print(value[k])) for k in sorted(value)) + "]"
    if is_record(value):
        return "{" + " ".join(go_print(v) for v in value.as_json().values()) + "}"
    return str(value)


def truth(value) -> bool:
    """Go's template truth: false, 0, "", nil, empty slices and maps are false; structs are true."""
    if value is NOVALUE or value is None:
        return False
    if is_record(value):
        return True
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch == " " or (ch.isprintable() and code != 0x7f):
            out.append(ch)
        elif code < 0x80:
            out.append("\\x{:02x}".format(code))
        elif code < 0x10000:
            out.append("\\u{:04x}".format(code))
        else:
            out.append("\\U{:08x}".format(code))
    return "".join(out) + '"'


def to_json(value) -> str:
    """docker's ``json``: compact, no HTML escaping, a missing value is null."""
    def plain(v):
        if is_record(v):
            return {k: plain(x) for k, x in v.as_json().items()}
        if v is NOVALUE or isinstance(v, (NilSlice, NilMap)):
            return None
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    text = json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------- printf

_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d*|\*))?([a-zA-Z%])")


def _bad(verb, value) -> str:
    if value is None or value is NOVALUE:
        return "%!{}(<nil>)".format(verb)
    return "%!{}({}={})".format(verb, type_name(value), go_print(value))


def _pad(text: str, flags: str, width, zero_ok=False) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and zero_ok:
        sign = text[0] if text[:1] in "+- " and text[:1] else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)


def _number(value, verb, flags, prec):
    """The digits of an int or float for a numeric verb, or None when the verb does not fit the value."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if verb in "dv":
            text = str(abs(value))
        elif verb in "xXob":
            text = format(abs(value), {"x": "x", "X": "X", "o": "o", "b": "b"}[verb])
            if "#" in flags and verb in "xX":
                text = "0" + verb + text
        elif verb == "c":
            return chr(value)
        elif verb == "q":
            return "'" + go_quote(chr(value))[1:-1].replace("'", "\\'") + "'"
        else:
            return None
        if prec is not None:
            text = text.rjust(prec, "0")
        neg = value < 0
    elif isinstance(value, float):
        if verb in "eEfFgG":
            p = 6 if prec is None and verb in "eEfF" else prec
            text = ("{:" + ("." + str(p) if p is not None else "") + verb + "}").format(abs(value))
            if verb in "gG" and prec is None:
                text = go_float(abs(value))
        elif verb == "v":
            text = go_float(abs(value))
        else:
            return None
        neg = value < 0 or (value == 0 and math.copysign(1, value) < 0)
    else:
        return None
    sign = "-" if neg else ("+" if "+" in flags else (" " if " " in flags else ""))
    return sign + text


def _fmt_one(verb, flags, width, prec, value) -> str:
    if verb == "T":
        return _pad(type_name(value), flags, width)
    if verb == "v" and not isinstance(value, (int, float)) or (verb == "v" and isinstance(value, bool)):
        return _pad(go_print(value), flags, width)
    if verb in "sq" and isinstance(value, str):
        text = value if prec is None else value[:prec]
        return _pad(go_quote(text) if verb == "q" else text, flags, width)
    if verb in "xX" and isinstance(value, str):
        text = value.encode().hex()
        return _pad(text.upper() if verb == "X" else text, flags, width)
    if verb == "t" and isinstance(value, bool):
        return _pad("true" if value else "false", flags, width)
    if isinstance(value, (list, tuple)) and verb != "T":
        return _pad("[" + " ".join(_fmt_one(verb, flags, None, prec, v) for v in value) + "]", flags, width)
    if isinstance(value, dict):
        return _pad("map[" + " ".join("{}:{}".format(_fmt_one(verb, flags, None, prec, k),
                                                     _fmt_one(verb, flags, None, prec, value[k]))
                                      for k in sorted(value)) + "]", flags, width)
    number = _number(value, verb, flags, prec)
    if number is not None:
        return _pad(number, flags, width, zero_ok=verb not in "cq")
    return _bad(verb, value)


def sprintf(fmt: str, *args) -> str:
    """Go's fmt.Sprintf for the verbs scripts use: %v %s %q %d %x %X %o %b %c %f %e %g %t %T %%, flags -+# 0,
    width and precision; a verb without an argument is ``%!v(MISSING)``, extra arguments ``%!(EXTRA ...)``."""
    if not isinstance(fmt, str):
        raise ArgTypeError("wrong type for value; expected string; got {}".format(type_name(fmt)))
    out, n, pos = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        star = []
        for part in (width, prec):
            if part == "*":
                star.append(args[n] if n < len(args) else 0)
                n += 1
            else:
                star.append(int(part) if part else (0 if part == "" else None))
        width, prec = star
        if n >= len(args):
            out.append("%!{}(MISSING)".format(verb))
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[n]))
        n += 1
    out.append(fmt[pos:])
    if n < len(args):
        out.append("%!(EXTRA " + ", ".join("{}={}".format(type_name(a), go_print(a)) for a in args[n:]) + ")")
    return "".join(out)


# ---------------------------------------------------------------- functions

def _str(value, what="string") -> str:
    if not isinstance(value, str):
        raise ArgTypeError("wrong type for value; expected {}; got {}".format(what, type_name(value)))
    return value


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgTypeError("wrong type for value; expected int; got {}".format(type_name(value)))
    return value


def _and(first, *rest):
    for v in (first,) + rest:
        if not truth(v):
            return v
    return v


def _or(first, *rest):
    for v in (first,) + rest:
        if truth(v):
            return v
    return v


def _len(value) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    raise GoError("len of type {}".format(type_name(value)))


def _index(item, *keys):
    for key in keys:
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise GoError("value has type {}; should be string".format(type_name(key)))
            if key in item:
                item = item[key]
            else:  # the map's zero value: "" for a map of strings (labels), nothing for any other
                item = "" if all(isinstance(v, str) for v in item.values()) else NOVALUE
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise GoError("cannot index slice/array with type {}".format(type_name(key)))
            seq = item.encode() if isinstance(item, str) else item
            if not 0 <= key < len(seq):
                raise GoError("index out of range: {}".format(key))
            item = seq[key]
        elif item is None or item is NOVALUE:
            raise GoError("index of untyped nil")
        else:
            raise GoError("can't index item of type {}".format(type_name(item)))
    return item


def _slice(item, *bounds):
    if not isinstance(item, (str, list, tuple)):
        raise GoError("can't slice item of type {}".format(type_name(item)))
    idx = [_int(b) for b in bounds]
    if len(idx) > 2 or any(not 0 <= i <= len(item) for i in idx) or (len(idx) == 2 and idx[0] > idx[1]):
        raise GoError("index out of range: {}".format(idx))
    return item[idx[0] if idx else 0: idx[1] if len(idx) > 1 else len(item)]


def _basic(value):
    if value is NOVALUE:
        value = None
    if isinstance(value, (list, tuple, dict)) or is_record(value):
        raise GoError("non-comparable type {}: {}".format(go_print(value), type_name(value)))
    return value


def _kind(value):
    if value is None or isinstance(value, bool) or isinstance(value, str):
        return type(value)
    return float


def _eq(first, *others):
    if not others:
        raise GoError("missing argument for comparison")
    a = _basic(first)
    for other in others:
        b = _basic(other)
        if a is None or b is None:
            if a is b:
                return True
            continue
        if _kind(a) is not _kind(b):
            raise GoError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a, b):
    a, b = _basic(a), _basic(b)
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        raise GoError("invalid type for comparison")
    if _kind(a) is not _kind(b):
        raise GoError("incompatible types for comparison")
    return a < b


def _print(*args) -> str:
    out = []
    for i, a in enumerate(args):  # Sprint: a space between operands when neither is a string
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(a))
    return "".join(out)


def _title(s) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest left as is."""
    out, prev = [], " "
    for ch in _str(s):
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _split(s, sep):
    s, sep = _str(s), _str(sep)
    return list(s) if sep == "" else s.split(sep)


def _join(items, sep):
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ArgTypeError("wrong type for value; expected []string; got {}".format(type_name(items)))
    return _str(sep).join(items)


def _pad_fn(s, prefix, suffix):
    s = _str(s)
    return s if s == "" else " " * _int(prefix) + s + " " * _int(suffix)


def _truncate(s, n):
    s, n = _str(s), _int(n)
    return s if len(s) < n else s[:n]


FUNCS = {
    "and": _and, "or": _or, "not": lambda v: not truth(v), "len": _len, "index": _index, "slice": _slice,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "lt": _lt, "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_lt(a, b) or _eq(a, b)), "ge": lambda a, b: not _lt(a, b),
    "print": _print, "printf": sprintf, "println": lambda *a: " ".join(go_print(x) for x in a) + "\n",
    "json": to_json, "split": _split, "join": _join, "title": _title, "lower": lambda s: _str(s).lower(),
    "upper": lambda s: _str(s).upper(), "pad": _pad_fn, "truncate": _truncate,
}
#: The number of arguments each fixed-arity function wants (for Go's "wrong number of args" message).
ARITY = {"and": "at least 1", "or": "at least 1", "eq": "at least 1", "index": "at least 1", "slice": "at least 1",
         "printf": "at least 1", "not": 1, "len": 1, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2, "json": 1,
         "split": 2, "join": 2, "title": 1, "lower": 1, "upper": 1, "pad": 3, "truncate": 2}
