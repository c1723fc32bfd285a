"""rmi / prune against real containers: in-use rules, and rmi -f never breaks a stopped container's layers (root)."""

import os

import pytest

from agent_payload import errors
from tests.helpers import images
from tests.helpers.images import _container, _layer_with_links, op
from tests.helpers.runtime import BUSYBOX

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and /usr/bin/busybox (busybox-static)")
pytestmark = [pytest.mark.integration, needs_root]

env = images.env  # the fixture: private FLEET_ROOT with a busybox image, cleanup of every process and mount


def _image(fx, refs):
    """A busybox image plus a small top layer, built through the same helper as the unit tests."""
    return fx.image(refs, [_layer_with_links(), {"etc/msg": b"hello from the image\n"}])


def test_running_container_blocks_removal_and_force_only_untags(env):
    image_id = _image(env, ["bb:1"])
    cid = _container(env, "bb:1", ["/bin/sleep", "60"])
    env.rt.start(cid)
    with pytest.raises(errors.Conflict, match="container {} is using its referenced image".format(cid[:12])):
        op(env, "rmi", images=["bb:1"])
    with pytest.raises(errors.Conflict, match="cannot be forced.*running container {}".format(cid[:12])):
        op(env, "rmi", images=[image_id], force=True)
    assert op(env, "image_prune", all=True)["deleted"] == []
    out = op(env, "rmi", images=["bb:1"], force=True)
    assert out == {"untagged": out["untagged"], "deleted": []} and out["untagged"][0] == "bb:1"
    assert op(env, "images")["images"][0]["containers"] == 1
    df = op(env, "system_df")
    assert df["images"]["active"] == 1 and df["containers"]["active"] == 1
    env.rt.stop([cid], time=1)


def test_rmi_force_keeps_stopped_container_runnable(env):
    image_id = _image(env, ["bb:1"])
    cid = _container(env, "bb:1", ["/bin/cat", "/etc/msg"])
    env.rt.start(cid)
    assert env.rt.wait(cid, timeout=20) == 0
    with pytest.raises(errors.Conflict, match="must force"):
        op(env, "rmi", images=["bb:1"])
    out = op(env, "rmi", images=["bb:1"], force=True)
    assert out["deleted"] == [image_id]
    assert op(env, "images")["images"] == []
    op(env, "image_prune", all=True)
    # The stopped container still starts: its lowerdirs were kept by the sweep.
    env.rt.start(cid)
    assert env.rt.wait(cid, timeout=20) == 0
    logs = [line["line"].strip() for line in env.rt.logs(cid)]
    assert logs.count("hello from the image") == 2
    lowers = env.rt.lookup(cid)["lowerdirs"]
    env.rt.remove([cid])
    assert op(env, "image_prune")["reclaimed"] > 0
    assert not any(os.path.exists(d) for d in lowers)
