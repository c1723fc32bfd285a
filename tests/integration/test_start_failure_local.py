"""A start that fails on the host (fleet issue 9 item 8): never "bad input", and --rm leaves nothing behind."""

import os

import pytest

from agent_payload import errors
from agent_payload.runtime import records, volumes
from agent_payload.runtime.spec import ContainerSpec
from tests.helpers import runtime as local

pytestmark = local.integration
env = local.env  # fixtures by assignment (ruff flags imported fixtures as unused)
layers = local.layers


def _create(rt, layers, **kw):
    kw.setdefault("network", "none")
    return rt.create(ContainerSpec(image="busybox:test", image_id=local.IMAGE_ID, lowerdirs=layers, argv=["true"],
                                   mounts=volumes.plan(["/anon"], ["type=volume,src=named,dst=/named"]), **kw))


@pytest.mark.parametrize("kw,match", [
    ({"user": "ghost"}, "unable to find user ghost"),
    ({"workdir": "/etc/layer"}, "File exists"),  # -w on a file
])
def test_rm_container_whose_start_fails_is_removed_with_its_anonymous_volumes(env, layers, kw, match):
    rec = _create(env, layers, auto_remove=True, **kw)
    anon = [m["source"] for m in rec["mounts"] if m.get("anonymous")]
    with pytest.raises(errors.AgentError, match=match) as exc:
        env.start(rec["id"])
    assert exc.value.kind != "InvalidArgument"  # the controller's "bad input, nothing changed" (exit 2)
    assert rec["id"] not in records.list_ids(env.paths)
    with pytest.raises(errors.NotFound):
        env.lookup(rec["id"])
    assert not os.path.exists(volumes.Volumes(env.paths).data_dir(anon[0]))  # docker: --rm's RemoveVolume
    assert volumes.Volumes(env.paths).get("named")  # named volumes stay


def test_without_rm_the_created_container_stays_as_docker_leaves_it(env, layers):
    rec = _create(env, layers, user="ghost")
    with pytest.raises(errors.FailedPrecondition, match="unable to find user ghost"):
        env.start(rec["id"])
    after = env.lookup(rec["id"])
    assert after["status"] == "created" and after["exit_code"] == 128 and "ghost" in after["error"]
