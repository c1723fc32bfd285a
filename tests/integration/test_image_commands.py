"""rmi / prune against real containers: in-use rules, and rmi -f never breaks a stopped container's layers (root)."""

import io
import os
import subprocess
import tarfile

import pytest

from agent_payload import errors
from agent_payload.image import gc
from agent_payload.ops import Context, dispatch
from agent_payload.runtime.containers import Runtime
from agent_payload.runtime.spec import ContainerSpec
from agent_payload.state.paths import Paths
from tests.integration.test_runtime_local import BUSYBOX, _cleanup, _overlay_mounts
from tests.unit.payload.test_image_store import Fixture

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and /usr/bin/busybox (busybox-static)")
pytestmark = [pytest.mark.integration, needs_root]


class _Ctx(Context):
    def __init__(self, paths):
        super().__init__(paths, "dev", None)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private FLEET_ROOT with a busybox image, and cleanup of every process and mount."""
    root, etc = tmp_path / "root", tmp_path / "etc"
    monkeypatch.setenv("FLEET_ROOT", str(root))
    monkeypatch.setenv("FLEET_CONFIG_DIR", str(etc))
    monkeypatch.setattr(gc, "GRACE", 0)
    paths = Paths(root=str(root), config_dir=str(etc))
    fx = Fixture(paths)
    fx.ctx = _Ctx(paths)
    fx.rt = Runtime(paths)
    try:
        yield fx
    finally:
        _cleanup(paths)
    assert not _overlay_mounts(str(tmp_path)), "overlay mount leaked onto the host"


def _layer_with_links():
    """busybox plus applet symlinks in one layer tar."""
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = open(BUSYBOX, "rb").read()
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for a in applets:
            if a == "busybox":
                continue
            link = tarfile.TarInfo("bin/" + a)
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


def _image(fx, refs):
    """A busybox image plus a small top layer, built through the same helper as the unit tests."""
    return fx.image(refs, [_layer_with_links(), {"etc/msg": b"hello from the image\n"}])


def _container(fx, image_ref, argv):
    rec = fx.store.resolve(image_ref)
    spec = ContainerSpec(image=image_ref, image_id=rec.id, lowerdirs=rec.layers, argv=argv, network="none")
    return fx.rt.create(spec)["id"]


def op(fx, name, **args):
    return dispatch(fx.ctx, name, args, lambda *a: None)


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
