"""``--log-driver``/``--log-opt`` and daemon.json ``log-driver``/``log-opts``: docker's json-file options, checked.

Stored in config.json as docker's HostConfig.LogConfig: {"Type": "json-file" | "none", "Config": {opt: str}}.
Drivers: json-file (rotation with max-size/max-file, see logs.RotatingFile) and none (nothing is kept; ``logs``
refuses as docker does).  Docker's merge (daemon ``mergeAndVerifyLogConfig``): no ``--log-driver`` means the
daemon's; when the type is the daemon's, its log-opts fill the keys the container did not set.
"""

from .. import errors
from ..humanize import from_human_size  # noqa: F401  (logconfig.from_human_size: callers' spelling)

DRIVERS = ("json-file", "none")
JSON_FILE_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
DEFAULT = {"Type": "json-file", "Config": {}}
def parse_opts(items):
    """``--log-opt k=v`` strings (or a dict) -> dict; InvalidArgument on an item without "=" (docker's message)."""
    if items is None:
        return {}
    if isinstance(items, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in items.items()):
            raise errors.InvalidArgument("log options must map strings to strings")
        return dict(items)
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise errors.InvalidArgument("argument log_opts must be a list of strings")
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise errors.InvalidArgument("invalid key value pair format in logging opts")
        out[key] = value
    return out


def check(cfg):
    """Validate a LogConfig dict (driver known, json-file keys and values as docker's json-file driver); a copy."""
    if cfg is None:
        return {"Type": DEFAULT["Type"], "Config": {}}
    if not isinstance(cfg, dict):
        raise errors.InvalidArgument("log_config must be an object")
    kind = cfg.get("Type") or "json-file"
    opts = parse_opts(cfg.get("Config") or {})
    if kind not in DRIVERS:
        raise errors.InvalidArgument("failed to get logging factory: logger: no log driver named '{}' is registered "
                                     "(fleet supports {})".format(kind, ", ".join(DRIVERS)))
    if kind == "json-file":
        for key in opts:
            if key not in JSON_FILE_OPTS:
                raise errors.InvalidArgument("unknown log opt '{}' for json-file log driver".format(key))
        if "max-size" in opts and from_human_size(opts["max-size"]) <= 0:
            raise errors.InvalidArgument("max-size must be a positive number")
        if "max-file" in opts:
            try:
                count = int(opts["max-file"])
            except ValueError:
                raise errors.InvalidArgument('strconv.Atoi: parsing "{}": invalid syntax'.format(opts["max-file"]))
            if count < 1:
                raise errors.InvalidArgument("max-file cannot be less than 1")
    return {"Type": kind, "Config": opts}


def daemon_default(paths):
    """The daemon.json ``log-driver``/``log-opts`` defaults as a checked LogConfig (json-file without opts if unset)."""
    from ..config import _read_raw

    data = _read_raw(paths.daemon_json) or {}
    if not isinstance(data, dict):
        return dict(DEFAULT)
    try:
        return check({"Type": data.get("log-driver") or "json-file", "Config": data.get("log-opts") or {}})
    except errors.InvalidArgument as exc:
        raise errors.InvalidArgument("{}: {}".format(paths.daemon_json, exc.message))


def from_flags(log_driver, log_opts, paths):
    """``--log-driver`` (a string or None) and ``--log-opt`` (a list of KEY=VALUE, an object or None) merged with
    daemon.json's defaults (docker's rules), checked."""
    opts = parse_opts(log_opts)
    default = daemon_default(paths)
    kind = log_driver or default["Type"]
    if kind == default["Type"]:
        opts = dict(default["Config"], **opts)
    return check({"Type": kind, "Config": opts})


def rotation(cfg):
    """(max_size bytes or None, max_file) of a LogConfig: docker rotates only with max-size."""
    opts = (cfg or {}).get("Config") or {}
    size = from_human_size(opts["max-size"]) if opts.get("max-size") else None
    return size, int(opts.get("max-file") or 1)
