"""docker run/create's --env-file, -l/--label, --label-file, --stop-signal, --stop-timeout, --init and
--security-opt as op args.

Files are read here, on the controller, as the docker CLI reads them on the client: the hosts get plain values.
Bad input raises UsageError (exit 2) naming the file or flag before any host is contacted.
"""

from __future__ import annotations

import os

from fleet.errors import UsageError

_WHITESPACE = " \t"


def read_kv_file(path: str, lookup=None) -> list[str]:
    """Lines of a docker env/label file (the CLI's parseKeyValueFile).

    Leading whitespace is dropped; empty lines and lines starting with ``#`` are skipped; ``KEY=VALUE`` is kept as
    written (the value verbatim); a bare ``KEY`` is kept as is when ``lookup`` is None (label files), else it
    becomes ``KEY=<lookup(KEY)>`` or is dropped when ``lookup`` finds nothing (env files: the local environment).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise UsageError("open {}: {}".format(path, (exc.strerror or str(exc)).lower()))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # UTF-8 BOM
    out = []
    for number, bline in enumerate(raw.split(b"\n"), 1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("{} contains invalid utf8 bytes at line {}: {!r}".format(path, number, bline))
        line = line.rstrip("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key:
            raise UsageError("{}: no variable name on line '{}'".format(path, line))
        if any(c in key for c in _WHITESPACE):
            raise UsageError("{}: poorly formatted environment: variable '{}' contains whitespaces".format(path, key))
        if sep:
            out.append("{}={}".format(key, value))
        elif lookup is None:
            out.append(key)
        else:
            found = lookup(key)
            if found is not None:
                out.append("{}={}".format(key, found))
    return out


def env_file_entries(env_files: list[str]) -> list[str]:
    """KEY=VALUE entries of every --env-file in order (they come before -e, which overrides them)."""
    out = []
    for path in env_files:
        out += read_kv_file(path, lookup=os.environ.get)
    return out


def label_map(labels: list[str], label_files: list[str]) -> dict:
    """--label-file lines first, then -l values; ``K=V`` or ``K`` (empty value); an empty name is refused."""
    out = {}
    for entry in [e for path in label_files for e in read_kv_file(path)] + list(labels):
        key, _, value = entry.partition("=")
        if not key.strip():
            raise UsageError("invalid label '{}': empty name".format(entry))
        out[key] = value
    return out


def process_args(labels: list[str], label_files: list[str], stop_signal: str | None, stop_timeout: int | None,
                 init: bool | None) -> dict:
    """The op args of -l/--label-file/--stop-signal/--stop-timeout/--init (see protocol.py)."""
    from fleet.commands.lifecycle import _valid_signal

    if stop_signal is not None and not _valid_signal(stop_signal):
        raise UsageError("Invalid signal: {}".format(stop_signal))
    if stop_timeout is not None and stop_timeout < 0:
        raise UsageError('invalid argument "{}" for "--stop-timeout" flag: want seconds >= 0'.format(stop_timeout))
    return {"labels": label_map(labels, label_files), "stop_signal": stop_signal, "stop_timeout": stop_timeout,
            "init": init}


def _read_profile(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def security_args(security_opts: list[str]) -> dict:
    """--security-opt as op args {"no_new_privileges", "seccomp"} (linux/seccomp.py's security_opt_args).

    As the docker CLI does, ``seccomp=PROFILE.json`` is read here and its checked content (compact JSON) is what
    the hosts get; a missing or bad file is a UsageError naming it.
    """
    from agent_payload import errors
    from agent_payload.linux.seccomp import security_opt_args

    try:
        return security_opt_args(security_opts, _read_profile)
    except errors.InvalidArgument as exc:
        raise UsageError(exc.message)
