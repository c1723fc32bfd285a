"""``docker commit --change``: the Dockerfile instructions a commit may apply to the new image's config.

Docker's list (moby ``validCommitCommands``): CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD,
STOPSIGNAL, USER, VOLUME, WORKDIR; anything else is "<instruction> is not a valid change command".  Each
change is one Dockerfile line; exec (JSON array) and shell forms as in a Dockerfile, ``$VAR``/``${VAR}``
expanded from the config's own Env where Dockerfile expands them (ENV, LABEL, EXPOSE, USER, VOLUME,
WORKDIR, STOPSIGNAL).  Every change is parsed and checked before the config is touched: a bad one raises
InvalidArgument naming it and nothing is written.
"""

import copy
import json
import posixpath
import re

from .. import errors

VALID = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal", "user", "volume",
         "workdir")
SHELL = ["/bin/sh", "-c"]
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _bad(change, why):
    return errors.InvalidArgument("invalid change {!r}: {}".format(change, why))


def split_words(text):
    """Split on unquoted whitespace, keeping quotes and backslashes in the words (Dockerfile's parseWords)."""
    words, cur, quote, esc, in_word = [], "", None, False, False
    for ch in text:
        if esc:
            cur, esc = cur + ch, False
            continue
        if ch == "\\" and quote != "'":
            cur, esc, in_word = cur + ch, True, True
            continue
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            cur, quote, in_word = cur + ch, ch, True
            continue
        if ch.isspace():
            if in_word:
                words.append(cur)
                cur, in_word = "", False
            continue
        cur, in_word = cur + ch, True
    if quote:
        raise errors.InvalidArgument("unexpected end of statement while looking for matching {}".format(quote))
    if in_word:
        words.append(cur)
    return words


def process_word(word, env):
    """Remove quotes and escapes and expand ``$VAR``/``${VAR}`` (not inside single quotes), as Dockerfile's lexer."""
    lookup = {}
    for entry in env or []:
        k, _, v = entry.partition("=")
        lookup[k] = v
    out, i, n, quote = [], 0, len(word), None
    while i < n:
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in '"\\$':
                out.append(ch)  # inside double quotes only \" \\ \$ are escapes
            out.append(nxt)
            i += 2
            continue
        if ch in "'\"" and quote is None:
            quote = ch
            i += 1
            continue
        if ch == '"' and quote == '"':
            quote = None
            i += 1
            continue
        if ch == "$" and i + 1 < n:
            if word[i + 1] == "{":
                end = word.find("}", i + 2)
                if end < 0:
                    raise errors.InvalidArgument("missing '}}' in {!r}".format(word))
                name = word[i + 2:end].split(":", 1)[0]
                out.append(lookup.get(name, ""))
                i = end + 1
                continue
            m = _VAR_RE.match(word, i + 1)
            if m:
                out.append(lookup.get(m.group(0), ""))
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _json_list(rest):
    """The exec form: a JSON array of strings, or None when ``rest`` is not one (then it is shell form)."""
    text = rest.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def _command(rest):
    args = _json_list(rest)
    return args if args is not None else SHELL + [rest.strip()]


def _pairs(change, instr, rest, env):
    """ENV/LABEL arguments: ``k=v k2="v 2"`` or the legacy ``k value with spaces``."""
    words = split_words(rest)
    if not words:
        raise _bad(change, "{} requires at least one argument".format(instr.upper()))
    if "=" not in words[0]:
        if len(words) < 2:
            raise _bad(change, "{} must have two arguments".format(instr.upper()))
        key = words[0]
        value = rest.strip()[len(words[0]):].strip()
        pairs = [(key, process_word(value, env))]
    else:
        pairs = []
        for w in words:
            if "=" not in w:
                raise _bad(change, "syntax error - can't find = in {!r}. Must be of the form: name=value".format(w))
            k, _, v = w.partition("=")
            pairs.append((process_word(k, env), process_word(v, env)))
    for k, _ in pairs:
        if not k:
            raise _bad(change, "{} names can not be blank".format(instr.upper()))
    return pairs


def parse_duration(text):
    """Go's time.ParseDuration for the non-negative values HEALTHCHECK takes -> nanoseconds."""
    from agent_payload.humanize import parse_duration as go_duration

    ns = None if text[:1] in "+-" else go_duration(text)
    if ns is None:
        raise errors.InvalidArgument('time: invalid duration "{}"'.format(text))
    return ns


def _healthcheck(change, rest):
    words = rest.split()
    if words and words[0].upper() == "NONE":
        if len(words) > 1:
            raise _bad(change, "HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    hc, i = {}, 0
    fields = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
              "start-interval": "StartInterval", "retries": "Retries"}
    while i < len(words) and words[i].startswith("--"):
        key, sep, value = words[i][2:].partition("=")
        if key not in fields or not sep:
            raise _bad(change, "unknown flag: {}".format(words[i].split("=")[0]))
        try:
            hc[fields[key]] = int(value) if key == "retries" else parse_duration(value)
        except ValueError:
            raise _bad(change, "invalid retries value {!r}".format(value))
        except errors.InvalidArgument as exc:
            raise _bad(change, exc.message)
        i += 1
    if i >= len(words) or words[i].upper() != "CMD":
        raise _bad(change, "Unknown type for healthcheck: expected CMD or NONE")
    cmd_text = rest.strip().split(None, i + 1)[i + 1] if len(words) > i + 1 else ""
    if not cmd_text:
        raise _bad(change, "Missing command after HEALTHCHECK CMD")
    args = _json_list(cmd_text)
    hc["Test"] = ["CMD"] + args if args is not None else ["CMD-SHELL", cmd_text.strip()]
    return hc


def _ports(change, rest, env):
    out = []
    for word in split_words(rest):
        spec = process_word(word, env)
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        lo, _, hi = port.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise _bad(change, "invalid containerPort: {}".format(port))
        for p in range(int(lo), int(hi or lo) + 1):
            out.append("{}/{}".format(p, proto))
    if not out:
        raise _bad(change, "EXPOSE requires at least one argument")
    return out


def apply_changes(config, changes, check_signal=None):
    """``config`` (an image config's "config" object) with the ``changes`` applied -> a new dict.

    ``config`` is not modified; an invalid change raises InvalidArgument before anything else happens.
    ``check_signal(name)`` validates a STOPSIGNAL (the runtime's parser; the image side does not import it).
    """
    cfg = copy.deepcopy(config or {})
    lines = []
    for change in changes or []:
        if not isinstance(change, str):
            raise errors.InvalidArgument("argument changes must be a list of strings")
        for line in change.splitlines():
            if line.strip() and not line.strip().startswith("#"):
                lines.append((change, line.strip()))
    for change, line in lines:  # the names first: docker refuses an invalid command before parsing any
        name = line.split(None, 1)[0].lower()
        if name not in VALID:
            raise errors.InvalidArgument("{} is not a valid change command".format(name))
    cmd_set = False
    for change, line in lines:
        parts = line.split(None, 1)
        instr, rest = parts[0].lower(), parts[1] if len(parts) > 1 else ""
        env = cfg.get("Env") or []
        if instr != "cmd" and not rest.strip():
            raise _bad(change, "{} requires at least one argument".format(instr.upper()))
        if instr == "cmd":
            cfg["Cmd"] = _command(rest) if rest.strip() else []
            cmd_set = True
        elif instr == "entrypoint":
            cfg["Entrypoint"] = _command(rest)
            if not cmd_set:
                cfg["Cmd"] = None  # a Dockerfile ENTRYPOINT resets an inherited CMD
        elif instr == "env":
            merged = list(env)
            for k, v in _pairs(change, instr, rest, env):
                entry = "{}={}".format(k, v)
                idx = [i for i, e in enumerate(merged) if e.partition("=")[0] == k]
                if idx:
                    merged[idx[0]] = entry
                else:
                    merged.append(entry)
            cfg["Env"] = merged
        elif instr == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(change, instr, rest, env))
            cfg["Labels"] = labels
        elif instr == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in _ports(change, rest, env):
                ports[p] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "volume":
            paths = _json_list(rest)
            if paths is None:
                paths = [process_word(w, env) for w in split_words(rest)]
            vols = dict(cfg.get("Volumes") or {})
            for p in paths:
                if not p.strip():
                    raise _bad(change, "VOLUME specified can not be an empty string")
                vols[p] = {}
            cfg["Volumes"] = vols
        elif instr == "user":
            cfg["User"] = process_word(rest.strip(), env)
        elif instr == "workdir":
            path = process_word(rest.strip(), env)
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", path))
        elif instr == "stopsignal":
            sig = process_word(rest.strip(), env)
            if check_signal is not None:
                try:
                    check_signal(sig)
                except errors.InvalidArgument as exc:
                    raise _bad(change, exc.message)
            cfg["StopSignal"] = sig
        elif instr == "onbuild":
            inner = rest.split(None, 1)[0].upper()
            if inner in ("ONBUILD", "FROM", "MAINTAINER"):
                raise _bad(change, "{} isn't allowed as an ONBUILD trigger".format(inner))
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
        elif instr == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(change, rest)
    return cfg
