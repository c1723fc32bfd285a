"""Typed access to a request's args: every malformed value is an InvalidArgument naming the key."""

from agent_payload import errors


def string(args, key, default=None, required=False):
    value = args.get(key, default)
    if value is None:
        if required:
            raise errors.InvalidArgument("missing argument: {}".format(key))
        return None
    if not isinstance(value, str):
        raise errors.InvalidArgument("argument {} must be a string".format(key))
    return value


def string_list(args, key, allow_none=False):
    value = args.get(key)
    if value is None:
        if allow_none:
            return None
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidArgument("argument {} must be a list of strings".format(key))
    return value


def integer(args, key, default=None, minimum=None):
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidArgument("argument {} must be an integer".format(key))
    if minimum is not None and value < minimum:
        raise errors.InvalidArgument("argument {} must be >= {}".format(key, minimum))
    return value


def boolean(args, key, default=False):
    """A boolean arg; missing or null is ``default``."""
    value = args.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise errors.InvalidArgument("argument {} must be a boolean".format(key))
    return value


_TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str_list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "object": lambda v: isinstance(v, dict),
}


def decode(op, args):
    """Check ``args`` against ``requests.REQUESTS[op]`` once, before the op runs; returns ``args``.

    In the schema's order: a required arg that is missing or null is "missing argument: X", a value of the
    wrong type "argument X must be a ...".  Args with a ``checked_by`` are left to that module (its wording);
    args the schema does not name are ignored.
    """
    from agent_payload.requests import REQUESTS, TYPE_MESSAGES

    for key, arg in REQUESTS[op].items():
        if arg.checked_by is not None:
            continue
        value = args.get(key)
        if value is None:
            if arg.required:
                raise errors.InvalidArgument("missing argument: {}".format(key))
        elif not _TYPE_CHECKS[arg.type](value):
            raise errors.InvalidArgument(TYPE_MESSAGES[arg.type].format(key))
    return args
