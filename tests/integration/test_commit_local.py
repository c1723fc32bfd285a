"""``commit`` at the payload level on this machine (root): a real layer from a container's upper dir."""

import gzip
import io
import json
import os
import tarfile

import pytest

from agent_payload import errors
from agent_payload.image import snapshots
from tests.helpers import images as fx
from tests.helpers.images import _container, _layer_with_links, op

env = fx.env  # the fixture: private FLEET_ROOT with a busybox image, cleanup of every process and mount

SCRIPT = ("echo new > /new && echo changed > /etc/msg && rm /etc/gone && rm -rf /data && mkdir /data && "
          "echo fresh > /data/fresh && ln /new /newlink && ln -s /etc/msg /msglink && mkfifo /fifo && "
          "chown 1000:1000 /new && chmod 4750 /new")


def _base(fx):
    return fx.image(["bb:1"], [_layer_with_links(), {"etc/msg": b"hello\n", "etc/gone": b"bye\n",
                                                     "data/old": b"old\n", "data/keep": b"k\n"}])


def _run(fx, image, argv):
    cid = _container(fx, image, argv)
    fx.rt.start(cid)
    assert fx.rt.wait(cid, timeout=30) == 0, [line["line"] for line in fx.rt.logs(cid)]
    return cid


def _layer_members(fx, image_id):
    cfg = fx.store.image_config(image_id)
    entry = fx.store._read_index()["images"][image_id]
    digest = entry["layers"][-1]["digest"]
    data = fx.store.content.read_bytes(digest)
    raw = gzip.decompress(data)
    assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == cfg["rootfs"]["diff_ids"][-1]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_commit_builds_a_runnable_layer_with_whiteouts(env):
    parent = _base(env)
    cid = _run(env, "bb:1", ["/bin/sh", "-c", SCRIPT])
    out = op(env, "commit", container=cid, repository="committed:v1", author="Ann <a@b>", message="first",
             changes=["CMD [\"cat\", \"/etc/msg\"]", "ENV FOO=bar BAZ=\"q x\"", "LABEL a=b", "EXPOSE 8080/udp",
                      "WORKDIR /data", "USER 1000"])
    image_id = out["id"]
    members = _layer_members(env, image_id)
    assert members["etc/.wh.gone"].isreg() and members["etc/.wh.gone"].size == 0
    assert members["data/.wh..wh..opq"].isreg()
    assert members["new"].uid == 1000 and members["new"].mode == 0o4750
    assert members["newlink"].islnk() and members["newlink"].linkname == "new"
    assert members["msglink"].issym() and members["msglink"].linkname == "/etc/msg"
    assert members["fifo"].isfifo()
    assert not any(n in members for n in ("etc/hostname", "etc/hosts", "etc/resolv.conf", "proc", "dev", "sys"))
    cfg = env.store.image_config(image_id)
    c = cfg["config"]
    assert c["Cmd"] == ["cat", "/etc/msg"] and "FOO=bar" in c["Env"] and "BAZ=q x" in c["Env"]
    assert c["Labels"] == {"a": "b"} and c["ExposedPorts"] == {"8080/udp": {}} and c["WorkingDir"] == "/data"
    assert c["User"] == "1000" and cfg["author"] == "Ann <a@b>" and cfg["container"] == cid
    assert cfg["history"][-1]["comment"] == "first" and cfg["history"][-1]["created_by"] == "/bin/sh -c " + SCRIPT
    parent_cfg = env.store.image_config(parent)
    assert cfg["rootfs"]["diff_ids"][:-1] == parent_cfg["rootfs"]["diff_ids"]
    # listed, with history newest first
    rows = op(env, "images")["images"]
    assert any(r["repository"] == "committed" and r["tag"] == "v1" and r["id"] == image_id for r in rows)
    hist = op(env, "history", image="committed:v1")["history"]
    assert hist[0]["id"] == image_id and hist[0]["comment"] == "first" and hist[0]["size"] > 0
    # the new image runs at once and sees the changes (a lower-layer deletion stays deleted)
    check = ("test \"$(cat /etc/msg)\" = changed && test ! -e /etc/gone && test ! -e /data/old && "
             "test ! -e /data/keep && test \"$(cat /data/fresh)\" = fresh && test \"$(cat /newlink)\" = new && "
             "test /new -ef /newlink && test -p /fifo && test \"$(readlink /msglink)\" = /etc/msg && "
             "test \"$(stat -c %u:%a /new)\" = 1000:4750")
    _run(env, "committed:v1", ["/bin/sh", "-c", check])
    # the snapshot chain is the parent's plus the new diff_id; manifest and layer types follow the parent (OCI)
    entry = env.store._read_index()["images"][image_id]
    assert entry["chain_ids"] == snapshots.chain_ids(cfg["rootfs"]["diff_ids"])
    manifest = json.loads(env.store.content.read_bytes(entry["manifest"]))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"][-1] == {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": out["layer"], "size": env.store.content.size(out["layer"])}
    assert op(env, "image_inspect", images=["committed:v1"])["images"][0]["Metadata"]["LastTagTime"] != \
        "0001-01-01T00:00:00Z"


def test_commit_untagged_and_empty_change(env):
    _base(env)
    cid = _run(env, "bb:1", ["/bin/true"])
    out = op(env, "commit", container=cid)
    assert out["layer"] is None
    cfg = env.store.image_config(out["id"])
    assert cfg["history"][-1]["empty_layer"] is True
    rows = [r for r in op(env, "images")["images"] if r["id"] == out["id"]]
    assert rows and rows[0]["repository"] == "<none>" and rows[0]["tag"] == "<none>"


def test_bad_change_and_target_write_nothing(env):
    _base(env)
    cid = _run(env, "bb:1", ["/bin/sh", "-c", "echo x > /x"])
    before = sorted(os.listdir(env.paths.blobs))
    with pytest.raises(errors.InvalidArgument, match="from is not a valid change command"):
        op(env, "commit", container=cid, changes=["CMD x", "FROM busybox"])
    with pytest.raises(errors.InvalidArgument, match="STOPSIGNAL|Invalid signal"):
        op(env, "commit", container=cid, changes=["STOPSIGNAL NOPE"])
    with pytest.raises(errors.InvalidArgument, match="digest"):
        op(env, "commit", container=cid, repository="x@sha256:" + "a" * 64)
    with pytest.raises(errors.InvalidArgument, match="invalid reference format"):
        op(env, "commit", container=cid, repository="Bad:Name")
    with pytest.raises(errors.NotFound, match="No such container: nope"):
        op(env, "commit", container="nope")
    assert sorted(os.listdir(env.paths.blobs)) == before


def test_commit_running_container_pauses_and_thaws(env, monkeypatch):
    _base(env)
    cid = _container(env, "bb:1", ["/bin/sh", "-c", "echo up > /up; sleep 60"])
    env.rt.start(cid)
    from agent_payload.runtime import resources
    seen = []
    real = resources.pause

    def spy(runtime, refs):
        seen.append(refs)
        return real(runtime, refs)
    monkeypatch.setattr(resources, "pause", spy)
    try:
        out = op(env, "commit", container=cid, repository="live:1", changes=["ENTRYPOINT [\"cat\"]"])
        assert seen == [[cid]]
        assert env.rt.lookup(cid).get("paused") is False
        cfg = env.store.image_config(out["id"])["config"]
        assert cfg["Entrypoint"] == ["cat"] and cfg["Cmd"] is None
        op(env, "commit", container=cid, pause=False)
        assert len(seen) == 1
    finally:
        env.rt.stop([cid], time=1)
    assert json.loads(json.dumps(out))["repository"] == "live:1"
