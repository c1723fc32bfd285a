"""Each op's request decoded once, into a typed record (the schema is ``agent_payload/requests.py``).

``decode(op, args)`` checks the wire dict against ``REQUESTS[op]`` and returns a ``<Op>Request``: a namedtuple
with one field per schema arg, in the schema's order, missing or null values replaced by the schema's
default.  Ops read ``req.image``, ``req.force``...; a field the schema does not name does not exist
(AttributeError), and arguments the schema does not name are dropped (an older payload ignores a newer
controller's extra flags).
"""

import copy
from collections import namedtuple

from agent_payload import errors
from agent_payload.requests import REQUESTS, TYPE_MESSAGES

_TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str_list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "object": lambda v: isinstance(v, dict),
}

_RECORDS = {}


def _pick(self, keys):
    """{key: value} of some of the record's fields (e.g. the ones a runtime helper takes as keywords)."""
    return {key: getattr(self, key) for key in keys}


def record_type(op):
    """The request record class of ``op`` (built once from the schema)."""
    cls = _RECORDS.get(op)
    if cls is None:
        name = "".join(part.title() for part in op.split("_")) + "Request"
        base = namedtuple(name, tuple(REQUESTS[op]))
        cls = _RECORDS[op] = type(name, (base,), {"__slots__": (), "op": op, "pick": _pick})
    return cls


def check_value(op, key, value):
    """One arg's value checked against ``REQUESTS[op][key]`` (required, type, minimum), default applied.

    ``decode`` uses it for every arg the decode step owns; an op that must check an arg later itself (cp_in:
    inside the step that always removes its staging file) calls it for that arg.
    """
    arg = REQUESTS[op][key]
    if value is None:
        if arg.required:
            raise errors.InvalidArgument("missing argument: {}".format(key))
        return copy.deepcopy(arg.default)
    if not _TYPE_CHECKS[arg.type](value):
        raise errors.InvalidArgument(TYPE_MESSAGES[arg.type].format(key))
    if arg.minimum is not None and value < arg.minimum:
        raise errors.InvalidArgument("argument {} must be >= {}".format(key, arg.minimum))
    return value


def decode(op, args):
    """The typed request of ``op`` from its wire ``args``, checked once, before the op runs.

    In the schema's order: a required arg that is missing or null is "missing argument: X", a value of the
    wrong type "argument X must be a ...".  Args with a ``checked_by`` are passed through as sent (null: the
    default) for that module to check with its own wording.
    """
    values = {}
    for key, arg in REQUESTS[op].items():
        value = args.get(key)
        if arg.checked_by is None:
            values[key] = check_value(op, key, value)
        else:
            values[key] = copy.deepcopy(arg.default) if value is None else value
    return record_type(op)(**values)
