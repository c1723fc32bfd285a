"""Images without a registry, for tests: ``Fixture`` builds images (layers through unpack and the snapshot store, then
the index) and container records; ``env`` is that fixture on this machine's real runtime (root), with ``op`` to call
payload ops and ``_container`` to create a container from an image.

Test modules take the ``env`` fixture by assignment (``env = images.env``).
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from agent_payload.image import gc, images, snapshots, unpack
from agent_payload.ops import Context, dispatch
from agent_payload.runtime import records
from agent_payload.runtime.containers import Runtime
from agent_payload.runtime.spec import ContainerSpec
from agent_payload.state import store
from agent_payload.state.paths import Paths
from tests.helpers.runtime import BUSYBOX, _cleanup, _overlay_mounts


def layer_tar(files):
    """An uncompressed layer tar of {path: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Fixture:
    """Builds images without a registry: layers through unpack + SnapshotStore.ensure, then index_add."""

    def __init__(self, paths):
        self.paths = paths
        self.store = images.ImageStore(paths, config={})

    def image(self, refs, layers, created="2024-01-01T00:00:00Z", labels=None, history=None):
        """Create an image from ``layers`` ({path: bytes} or a ready tar); ``refs`` are tags like "nginx:latest"."""
        tars = [files if isinstance(files, bytes) else layer_tar(files) for files in layers]
        diff_ids = [sha(t) for t in tars]
        chains = snapshots.chain_ids(diff_ids)
        descs = []
        for i, t in enumerate(tars):
            self.store.content.write_bytes(sha(t), t)
            self.store.snapshots.ensure(chains[i], chains[i - 1] if i else None, diff_ids[i],
                                        lambda fs, t=t, d=diff_ids[i]: unpack.apply_layer(io.BytesIO(t), fs, "", d))
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(t), "size": len(t)})
        if history is None:
            history = [{"created": created, "created_by": "ADD layer{} /".format(i)} for i in range(len(tars))]
        cfg = {"architecture": "amd64", "os": "linux", "created": created, "author": "tests",
               "config": {"Cmd": ["sh"], "Labels": labels or {}}, "history": history,
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        cfg_bytes = json.dumps(cfg).encode()
        image_id = sha(cfg_bytes)
        self.store.content.write_bytes(image_id, cfg_bytes)
        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": image_id, "size": len(cfg_bytes)},
                               "layers": descs}).encode()
        mdigest = sha(manifest)
        self.store.content.write_bytes(mdigest, manifest)
        entry = {"manifest": mdigest, "digest": mdigest, "layers": descs, "chain_ids": chains,
                 "size": sum(len(t) for t in tars), "created": created, "endpoint": "test"}
        keys = []
        for ref in refs:
            r = images.reference.parse(ref)
            keys += [r.string(), r.with_digest(mdigest).string()]
        self.store.index_add(keys, image_id, entry, {"id": image_id, "digest": mdigest})
        return image_id

    def container(self, image_id, running=False):
        """A container record using ``image_id`` (running = its 'shim' is this test process)."""
        cid = records.new_id()
        lay = records.Layout(self.paths, cid)
        os.makedirs(lay.diff)
        with open(os.path.join(lay.diff, "written"), "wb") as f:
            f.write(b"x" * 100)
        entry = self.store._read_index()["images"].get(image_id)
        lowerdirs = self.store.snapshots.mounts(entry["chain_ids"]) if entry else []
        store.write_json_atomic(lay.config, {"id": cid, "name": "c" + cid[:6], "image": "x", "image_id": image_id,
                                             "lowerdirs": lowerdirs, "argv": ["sh"], "created": records.format_ns()})
        state = records.initial_state()
        if running:
            state.update(status="running", shim_pid=os.getpid(), shim_start=records.proc_starttime(os.getpid()))
        else:
            state.update(status="exited", exit_code=0)
        records.write_state(self.paths, cid, state)
        return cid

    def op(self, name, **args):
        return dispatch(Context(self.paths, "dev", ["true"]), name, args, lambda *a: None)

    def index(self):
        return self.store._read_index()


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


def _container(fx, image_ref, argv):
    rec = fx.store.resolve(image_ref)
    spec = ContainerSpec(image=image_ref, image_id=rec.id, lowerdirs=rec.layers, argv=argv, network="none")
    return fx.rt.create(spec)["id"]


def op(fx, name, **args):
    return dispatch(fx.ctx, name, args, lambda *a: None)


def docker_archive(tags=("app:1",), tamper=False):
    """A one-image docker-archive of a one-file layer -> (its bytes, the layer's diff_id); ``tamper``: the
    layer.tar inside changed after the fact (its digest no longer matches)."""
    from agent_payload.image import archive_formats

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    out = io.BytesIO()
    archive_formats.write_docker_archive(out, [{"id": "sha256:" + hashlib.sha256(config).hexdigest(),
                                                "config": config, "tags": list(tags)}],
                                         lambda d: io.BytesIO(layer.getvalue()))
    if not tamper:
        return out.getvalue(), diff_id
    src, bad = tarfile.open(fileobj=io.BytesIO(out.getvalue())), io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read() if m.isreg() else None
            if m.name.endswith("/layer.tar"):
                body = body.replace(b"x", b"y")
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    return bad.getvalue(), diff_id
