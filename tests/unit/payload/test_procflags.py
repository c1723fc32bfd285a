"""create_container's labels, stop signal/timeout and --init (daemon.json default), with a fake store and runtime."""

import contextlib
import json
from types import SimpleNamespace

import pytest

from agent_payload.state.paths import Paths

from agent_payload import config as daemon_config
from agent_payload import errors
from agent_payload.ops.args import decode
from agent_payload.ops.containers import create_container as _create_container
from agent_payload.runtime.spec import ContainerSpec


class FakeCtx:
    def __init__(self, image_cfg, daemon=None):
        self.created = []
        self.paths = Paths(root="/nonexistent/fleet-root", config_dir="/nonexistent/fleet-etc")  # no daemon.json
        self.launcher = None
        rec = SimpleNamespace(id="sha256:" + "a" * 64, layers=["/l"], config={"config": image_cfg})
        self.store = SimpleNamespace(resolve=lambda ref: rec, lease=contextlib.nullcontext,
                                     config=daemon_config.from_dict(daemon or {}),
                                     pull=lambda *a: pytest.fail("must not pull"))

    def images(self):
        return self.store

    def runtime(self):
        return SimpleNamespace(create=lambda spec, extra=None: self.created.append(spec) or {"id": "x"})


def create_container(ctx, args, emit):
    return _create_container(ctx, decode("create", args), emit)  # as ops.dispatch does


IMAGE = {"Cmd": ["sh"], "Labels": {"maintainer": "img", "tier": "image"}, "StopSignal": "SIGQUIT"}


def test_labels_merge_over_the_images_and_flags_reach_the_spec():
    ctx = FakeCtx(IMAGE)
    create_container(ctx, {"image": "busybox", "labels": {"tier": "web", "new": ""}, "stop_signal": "USR1",
                           "stop_timeout": 3, "init": True}, None)
    spec = ctx.created[-1]
    assert spec.labels == {"maintainer": "img", "tier": "web", "new": ""}
    assert (spec.stop_signal, spec.stop_timeout, spec.init) == ("USR1", 3, True)
    create_container(ctx, {"image": "busybox"}, None)
    spec = ctx.created[-1]
    assert spec.labels == IMAGE["Labels"] and spec.stop_signal == "SIGQUIT"  # the image's STOPSIGNAL
    assert spec.stop_timeout is None and spec.init is False


def test_daemon_json_init_default():
    ctx = FakeCtx(IMAGE, daemon={"init": True})
    create_container(ctx, {"image": "busybox"}, None)
    assert ctx.created[-1].init is True
    create_container(ctx, {"image": "busybox", "init": False}, None)  # --init=false beats the daemon
    assert ctx.created[-1].init is False
    with pytest.raises(errors.InvalidArgument, match="init must be a boolean"):
        daemon_config.from_dict({"init": "yes"})


@pytest.mark.parametrize("args,needle", [
    ({"labels": {"": "x"}}, "labels must map"),
    ({"labels": ["a=b"]}, "labels must map"),
    ({"stop_signal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"stop_timeout": -1}, "--stop-timeout"),
    ({"stop_timeout": "5"}, "--stop-timeout"),
    ({"init": "yes"}, "init must be a boolean"),
])
def test_bad_args_change_nothing(args, needle):
    ctx = FakeCtx(IMAGE)
    with pytest.raises(errors.InvalidArgument, match=needle):
        create_container(ctx, dict({"image": "busybox"}, **args), None)
    assert ctx.created == []


def test_spec_round_trip_keeps_the_new_fields():
    spec = ContainerSpec(image="b", image_id="sha256:" + "b" * 64, lowerdirs=["/l"], argv=["sh"], stop_timeout=7,
                         init=True, labels={"a": "1"})
    back = ContainerSpec.from_dict(json.loads(json.dumps(spec.validate().to_dict())))
    assert back.stop_timeout == 7 and back.init is True
    with pytest.raises(errors.InvalidArgument, match="--stop-timeout"):
        ContainerSpec(image="b", image_id="sha256:" + "b" * 64, lowerdirs=["/l"], argv=["sh"],
                      stop_timeout=True).validate()
