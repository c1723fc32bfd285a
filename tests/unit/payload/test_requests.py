"""The request schema (agent_payload/requests.py) and the one decode step in ops.dispatch that checks it."""

import importlib
import inspect
import re

import pytest

from agent_payload import errors, requests
from agent_payload.ops import OP_MODULES, dispatch
from agent_payload.ops.args import _TYPE_CHECKS

KNOWN_TYPES = set(requests.TYPE_MESSAGES) | set(requests.OTHER_TYPES)


def test_every_routed_op_has_a_schema_entry_and_every_entry_an_op():
    assert set(requests.REQUESTS) == set(OP_MODULES)
    for op, module in OP_MODULES.items():
        assert callable(getattr(importlib.import_module("agent_payload.ops." + module), "op_" + op, None)), op


def test_every_arg_has_a_known_type_and_the_decoded_ones_a_message():
    for op, entry in requests.REQUESTS.items():
        for key, arg in entry.items():
            assert isinstance(arg, requests.Arg) and arg.type in KNOWN_TYPES, (op, key)
            if arg.checked_by is None:
                assert arg.type in requests.TYPE_MESSAGES and arg.type in _TYPE_CHECKS, (op, key)


# Where each op reads its request: the op function, plus the ops/ helpers it hands the request to.
_READERS = {"run": ["create_container", "stdio_flags"], "create": ["create_container", "stdio_flags"]}
_READ = re.compile(r"\breq\.(\w+)")
_RECORD_API = {"pick", "op"}
#: ops/ helpers that read one fixed field of the request they are given
_HELPERS = {"containers_of(req)": "containers"}


def _keys_read(op):
    from agent_payload.ops import containers, netvol
    module = importlib.import_module("agent_payload.ops." + OP_MODULES[op])
    sources = [inspect.getsource(getattr(module, "op_" + op))]
    sources += [inspect.getsource(getattr(containers, name)) for name in _READERS.get(op, [])]
    if op in ("run", "create"):
        sources.append(inspect.getsource(netvol.network_flags))
    keys = set()
    for source in sources:
        keys.update(set(_READ.findall(source)) - _RECORD_API)
        keys.update(key for helper, key in _HELPERS.items() if helper in source)
    return keys


def _undeclared(op):
    return _keys_read(op) - set(requests.REQUESTS[op])


@pytest.mark.parametrize("op", sorted(OP_MODULES))
def test_every_field_an_op_reads_is_in_its_schema(op):
    from agent_payload.runtime import health, spec
    if op in ("run", "create"):  # the runtime modules' lists of the keywords they take (req.pick(...))
        indirect = set(spec.ISOLATION_ARGS) | set(spec.LIMIT_ARGS) | set(health.FLAG_ARGS)
        assert indirect <= set(requests.REQUESTS[op])
    if op == "update":
        assert set(spec.LIMIT_ARGS) | {"restart"} <= set(requests.REQUESTS[op])
    assert _undeclared(op) == set()


def test_the_reads_check_catches_an_undeclared_arg(monkeypatch):
    monkeypatch.setitem(requests.REQUESTS, "tag", {"source": requests.REQUESTS["tag"]["source"]})
    assert _undeclared("tag") == {"target"}


def _bad_value(type_):
    return {"str": 7, "int": "7", "bool": "yes", "str_list": ["a", 1], "object": ["not", "an", "object"]}[type_]


_DECODED = [(op, key, arg) for op, entry in sorted(requests.REQUESTS.items()) for key, arg in entry.items()
            if arg.checked_by is None]


@pytest.mark.parametrize("op,key,arg", _DECODED, ids=["{}.{}".format(op, key) for op, key, _ in _DECODED])
def test_dispatch_refuses_a_wrong_type_before_the_op_runs(op, key, arg):
    good = {k: ("x" if a.type == "str" else []) for k, a in requests.REQUESTS[op].items() if a.required}
    with pytest.raises(errors.InvalidArgument) as exc:
        dispatch(None, op, dict(good, **{key: _bad_value(arg.type)}), None)  # ctx None: the op never runs
    assert exc.value.message == requests.TYPE_MESSAGES[arg.type].format(key)


_REQUIRED = [(op, key) for op, entry in sorted(requests.REQUESTS.items()) for key, arg in entry.items()
             if arg.required and arg.checked_by is None]


@pytest.mark.parametrize("op,key", _REQUIRED, ids=["{}.{}".format(op, key) for op, key in _REQUIRED])
def test_dispatch_refuses_a_missing_required_arg(op, key):
    for missing in ({}, {key: None}):
        args = {k: "x" for k, a in requests.REQUESTS[op].items() if a.required and a.type == "str" and k != key}
        args.update(missing)
        with pytest.raises(errors.InvalidArgument) as exc:
            dispatch(None, op, args, None)
        assert exc.value.message == "missing argument: {}".format(key)


def test_moved_checks_keep_their_messages():
    """The "argument X must be a ..." checks that lived in runtime/ and ops/ modules, now in the decode step."""
    cases = [("run", "rm", 1), ("run", "tty", "y"), ("create", "open_stdin", "y"), ("run", "detach", "y"),
             ("run", "health_cmd", ["x"]), ("create", "no_healthcheck", "y"), ("run", "log_driver", 1),
             ("create", "restart", 3), ("update", "restart", 3), ("rm", "volumes", "y"),
             ("network_create", "internal", "y"), ("run", "publish_all", "y"), ("volume_create", "options", "x"),
             ("pull", "all_tags", "y")]
    kinds = {"bool": "a boolean", "str": "a string", "object": "an object"}
    for op, key, value in cases:
        args = {"image": "busybox", "name": "n"}
        args[key] = value
        with pytest.raises(errors.InvalidArgument) as exc:
            dispatch(None, op, args, None)
        assert exc.value.message == "argument {} must be {}".format(key, kinds[requests.REQUESTS[op][key].type])


def test_unknown_args_are_ignored_as_before(monkeypatch):
    """A newer controller's extra arg does not make an older payload refuse the request: it is dropped."""
    from agent_payload.ops import host
    seen = []
    monkeypatch.setattr(host, "op_ping", lambda ctx, req, emit: seen.append(req) or {})
    dispatch(None, "ping", {"from_the_future": 1}, None)
    assert len(seen) == 1 and seen[0] == () and not hasattr(seen[0], "from_the_future")


def _minimal(op):
    return {k: ("x" if a.type == "str" else True if a.type == "bool" else [])
            for k, a in requests.REQUESTS[op].items() if a.required}


@pytest.mark.parametrize("op", sorted(requests.REQUESTS))
def test_decode_gives_a_record_of_the_schemas_fields_with_its_defaults(op):
    from agent_payload.ops.args import decode
    sent = _minimal(op)
    req = decode(op, sent)
    assert type(req).__name__ == "".join(p.title() for p in op.split("_")) + "Request" and req.op == op
    assert list(req._fields) == list(requests.REQUESTS[op])
    for key, arg in requests.REQUESTS[op].items():
        assert getattr(req, key) == (sent[key] if key in sent else arg.default), (op, key)
    with pytest.raises(AttributeError):
        req.image_typo
    with pytest.raises(AttributeError):
        req.image = "x"  # a record: read-only


def test_defaults_are_fresh_per_request_and_pick_gives_keywords():
    from agent_payload.ops.args import decode
    first = decode("run", {"image": "busybox"})
    first.env.append("A=1")
    first.labels["k"] = "v"
    second = decode("run", {"image": "busybox", "name": "w"})
    assert second.env == [] and second.labels == {} and requests.REQUESTS["run"]["env"].default == []
    assert second.pick(("name", "image")) == {"name": "w", "image": "busybox"}
    assert decode("run", {"image": "b", "network": None}).network is None  # null: the default network (daemon.json)
    assert decode("update", {"containers": ["c"]}).restart is None  # update: a null flag changes nothing


def test_minimum_and_check_value():
    from agent_payload.ops.args import check_value, decode
    for op, args in (("logs", {"container": "c", "tail": -1}), ("stop", {"containers": ["c"], "time": -1}),
                     ("restart", {"containers": ["c"], "time": -2})):
        key = "tail" if op == "logs" else "time"
        with pytest.raises(errors.InvalidArgument) as exc:
            decode(op, args)
        assert exc.value.message == "argument {} must be >= 0".format(key)
    assert decode("logs", {"container": "c", "tail": 0}).tail == 0
    # cp_in's own fields pass decode as sent and are checked by the op with the same rules
    req = decode("cp_in", {"staging": "/s"})
    assert req.container is None and req.is_dir is False
    with pytest.raises(errors.InvalidArgument, match="missing argument: container"):
        check_value("cp_in", "container", req.container)
    with pytest.raises(errors.InvalidArgument, match="argument is_dir must be a boolean"):
        check_value("cp_in", "is_dir", "yes")
