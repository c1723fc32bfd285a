"""The pure half of the builder: build args, the run config's shape, ``created_by`` texts and cache keys.

Everything here follows moby's classic builder (builder/dockerfile/buildargs.go, dispatchers.go, internals.go):

- every step commits an image whose history row's ``created_by`` is the step's container command joined by
  spaces: ``/bin/sh -c echo hi`` for ``RUN echo hi``, ``|2 A=1 B=2 /bin/sh -c echo hi`` when build args are in
  scope (sorted, only those declared or not builtin proxies), ``/bin/sh -c #(nop)  CMD ["sh"]`` for a metadata
  step (two spaces: ``"#(nop) "`` and the comment are joined by one) and ``/bin/sh -c #(nop) COPY file:<hash>
  in /dst `` for COPY/ADD and ``/bin/sh -c #(nop) WORKDIR /app`` (one space), the stage's SHELL in place of
  ``/bin/sh -c``;
- a step is found in the cache by its parent image ID and that same run config (``cache_key``).

Stdlib only, no I/O.
"""

import hashlib
import json

#: The proxy args docker accepts without an ARG (buildargs.go builtinAllowedBuildArgs); never in history
#: unless the Dockerfile declares them.
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: docker's container.Config of an image built FROM scratch (the keys it writes even when empty)
_EMPTY_CONFIG = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                 ("AttachStdout", False), ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
                 ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None),
                 ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None))


class BuildArgs:
    """buildargs.go's BuildArgs: declared ARGs (per stage), meta ARGs (before FROM), --build-arg values."""

    def __init__(self, options=None):
        self.options = dict(options or {})  # --build-arg: name -> value (None: no value given)
        self.allowed = {}  # ARG in this stage: name -> default (None: none)
        self.meta = {}  # ARG before the first FROM: name -> default
        self.referenced = set()

    def clone_for_stage(self):
        """A stage starts with the meta ARGs and --build-args, nothing declared (docker's ResetAllowed)."""
        other = BuildArgs(self.options)
        other.meta = dict(self.meta)
        other.referenced = self.referenced  # shared: the unused-args warning counts every stage's
        return other

    def add_arg(self, key, value):
        self.allowed[key] = value
        self.referenced.add(key)

    def add_meta(self, key, value):
        self.meta[key] = value
        self.referenced.add(key)

    def _get(self, key, mapping):
        if self.options.get(key) is not None:
            return self.options[key], True
        default = mapping.get(key)
        if default is None:
            if self.meta.get(key) is not None:
                return self.meta[key], True
            return "", False
        return default, key in mapping

    def _all(self, mapping):
        out = {}
        for key in list(mapping) + [k for k in BUILTIN_ARGS if k not in mapping]:
            if key in mapping or key in BUILTIN_ARGS and self.options.get(key) is not None:
                value, ok = self._get(key, mapping)
                if ok:
                    out[key] = value
        return out

    def all_allowed(self):
        return self._all(self.allowed)

    def all_meta(self):
        return self._all(self.meta)

    def filter_allowed(self, env):
        """The args in scope that the stage's ENV does not set, as ``K=V`` (FilterAllowed: ENV wins)."""
        keys = {e.partition("=")[0] for e in env or []}
        return ["{}={}".format(k, v) for k, v in sorted(self.all_allowed().items()) if k not in keys]

    def referenced_or_not_builtin(self, key):
        return key in self.allowed or key not in BUILTIN_ARGS

    def unused(self):
        """--build-args no ARG consumed (docker's warning), builtins excepted."""
        return sorted(k for k in self.options if k not in self.referenced and k not in BUILTIN_ARGS
                      and k != "SOURCE_DATE_EPOCH")  # fleet's (BuildKit's) reproducibility arg


def env_dict(env_list):
    """An Env list as a dict (a later entry wins)."""
    out = {}
    for entry in env_list or []:
        k, _, v = entry.partition("=")
        out[k] = v
    return out


def expansion_env(run_config, build_args):
    """What ``$VAR`` sees in an instruction: the stage's ENV, then the args in scope it does not set."""
    env = list(run_config.get("Env") or [])
    return env_dict(env + build_args.filter_allowed(env))


def prepend_env_on_cmd(build_args, arg_env, cmd):
    """``|N K=V ... cmd``: the build args RUN saw, sorted, for its history and cache key (prependEnvOnCmd)."""
    used = sorted(e for e in arg_env if build_args.referenced_or_not_builtin(e.partition("=")[0]))
    return ["|{}".format(len(used))] + used + list(cmd)


def base_config(image_config):
    """The run config a stage starts from: the base image's (a copy), docker's empty one FROM scratch; PATH
    is added when missing and stdin settings cleared (dispatchState.beginStage)."""
    cfg = json.loads(json.dumps((image_config or {}).get("config") or {})) if image_config else {}
    if not cfg:
        cfg = dict(_EMPTY_CONFIG)
    env = list(cfg.get("Env") or [])
    if not any(e.partition("=")[0] == "PATH" for e in env):
        env.append("PATH=" + DEFAULT_PATH)
    cfg["Env"] = env
    cfg["OpenStdin"] = False
    cfg["StdinOnce"] = False
    return cfg


def shell_of(run_config):
    return list(run_config.get("Shell") or DEFAULT_SHELL)


def nop_cmd(run_config, comment):
    """withCmdComment: a metadata step's container command (``#(nop) `` and the comment: two spaces)."""
    return shell_of(run_config) + ["#(nop) ", comment]


def nop_cmd_string(run_config, comment):
    """withCmdCommentString: COPY/ADD/WORKDIR's command (one space)."""
    return shell_of(run_config) + ["#(nop) " + comment]


def created_by(cmd):
    return " ".join(cmd)


def go_quote(text):
    """Go's strconv.Quote (what ``%q`` prints)."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch in "\a\b\f\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7f:
            out.append("\\x{:02x}".format(o))
        elif 0xd800 <= o <= 0xdfff:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote_list(items):
    """``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items or []) + "]"


def go_duration(ns):
    """Go's time.Duration.String() for a non-negative number of nanoseconds."""
    ns = int(ns or 0)
    if ns == 0:
        return "0s"
    if ns < 1000:
        return "{}ns".format(ns)
    if ns < 1000000:
        return _frac(ns, 1000) + "µs"
    if ns < 1000000000:
        return _frac(ns, 1000000) + "ms"
    secs, frac = divmod(ns, 1000000000)
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    text = _frac(seconds * 1000000000 + frac, 1000000000) + "s"
    if hours:
        return "{}h{}m{}".format(hours, minutes, text)
    if minutes:
        return "{}m{}".format(minutes, text)
    return text


def _frac(value, unit):
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return "{}.{}".format(whole, str(rest).rjust(digits, "0").rstrip("0"))


def go_char(n):
    """``%q`` of an int: Go's quoted rune ('\\x03', 'a')."""
    n = int(n or 0)
    if 0x20 <= n < 0x7f:
        return "'\\''" if n == 0x27 else ("'\\\\'" if n == 0x5c else "'{}'".format(chr(n)))
    if n < 0x100:
        return {7: "'\\a'", 8: "'\\b'", 9: "'\\t'", 10: "'\\n'", 11: "'\\v'", 12: "'\\f'", 13: "'\\r'"}.get(
            n, "'\\x{:02x}'".format(n))
    return "'{}'".format(chr(n))


def healthcheck_comment(hc):
    """``HEALTHCHECK %q`` of docker's *HealthConfig: ``&{["CMD-SHELL" "x"] "0s" "0s" "0s" "0s" '\\x00'}``."""
    return "HEALTHCHECK &{{{} {} {} {} {} {}}}".format(
        go_quote_list(hc.get("Test")), go_quote(go_duration(hc.get("Interval"))),
        go_quote(go_duration(hc.get("Timeout"))), go_quote(go_duration(hc.get("StartPeriod"))),
        go_quote(go_duration(hc.get("StartInterval"))), go_char(hc.get("Retries")))


def cache_key(parent_id, run_config, extra="", epoch=None):
    """The cache's key for a step: its parent image and its whole run config (command included); with
    SOURCE_DATE_EPOCH, that too (it sets the step's created time and its files' mtimes: another image)."""
    key = {"parent": parent_id, "config": run_config, "extra": extra}
    if epoch is not None:
        key["epoch"] = int(epoch)
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()


def format_created(epoch):
    """An image's ``created`` for SOURCE_DATE_EPOCH (RFC 3339, UTC, docker's Z form)."""
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
