"""save/load/import on image stores in temp roots: the docker-archive and OCI writers, the archive reader and its
checks, load's probe and all-or-nothing staging, import's config (ops called through dispatch, as over SSH)."""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from agent_payload import errors
from agent_payload.image import archive_formats, gc
from agent_payload.runtime.copy import STAGING_PREFIX
from agent_payload.state.paths import Paths
from tests.helpers.images import Fixture, layer_tar, sha

BASE = {"bin/sh": b"#!" + b"s" * 998}
TOP = {"etc/app.conf": b"c" * 500}
OTHER = {"etc/other": b"o" * 10}


@pytest.fixture
def two(tmp_path, monkeypatch):
    """Two hosts' stores: ``a`` with images, ``b`` empty."""
    monkeypatch.setattr(gc, "GRACE", 0)
    a = Fixture(Paths(root=str(tmp_path / "a"), config_dir=str(tmp_path / "ae")))
    b = Fixture(Paths(root=str(tmp_path / "b"), config_dir=str(tmp_path / "be")))
    return a, b


def _save(fx, refs, fmt="docker"):
    """What fleet save does: the host's plan, then the archive written from its blobs (here read in place)."""
    plan = fx.op("save", images=refs)
    paths = {lay["digest"]: lay["path"] for img in plan["images"] for lay in img["layers"]}
    buf = io.BytesIO()
    archive_formats.write_plan(buf, plan["images"], fmt, lambda d: open(paths[d], "rb"))
    return {"images": [{"id": i["id"], "tags": [fam for _f, fam in i["tags"]]} for i in plan["images"]]}, \
        buf.getvalue()


def _archive(data, name="a.tar"):
    return archive_formats.open_archive(io.BytesIO(data), name)


def _stage(fx, data):
    os.makedirs(fx.paths.tmp, exist_ok=True)
    path = os.path.join(fx.paths.tmp, STAGING_PREFIX + hashlib.sha256(data).hexdigest()[:12] + ".tar")
    with open(path, "wb") as f:
        f.write(data)
    return path


def _load_request(fx, arch, present=()):
    """What fleet load sends: each layer not ``present`` staged from the archive."""
    images = []
    for img in arch.images:
        layers = []
        for name, d in zip(img.layers, img.diff_ids):
            staging = None if d in present else _stage(fx, arch.open(name).read())
            layers.append({"diff_id": d, "staging": staging})
        images.append({"config": img.config_bytes.decode(), "tags": img.tags, "layers": layers})
    return images


def _state(fx):
    blobs = sorted(os.listdir(fx.paths.blobs)) if os.path.isdir(fx.paths.blobs) else []
    return json.dumps(fx.index(), sort_keys=True), blobs, sorted(fx.store.snapshots.walk())


def test_docker_archive_layout_and_round_trip(two):
    a, b = two
    image_id = a.image(["app:1", "app:2"], [BASE, TOP])
    a.image(["other:1"], [OTHER, TOP])  # TOP's diff_id on another chain
    out, data = _save(a, ["app", "other:1"])
    assert [i["tags"] for i in out["images"]] == [["app:1", "app:2"], ["other:1"]]
    tar = tarfile.open(fileobj=io.BytesIO(data))
    names = tar.getnames()
    assert names == sorted(names) and "manifest.json" in names and "repositories" in names
    manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest[0]["Config"] == image_id.split(":")[1] + ".json"
    assert manifest[0]["RepoTags"] == ["app:1", "app:2"]
    top_v1 = manifest[0]["Layers"][-1].split("/")[0]
    assert json.loads(tar.extractfile("repositories").read()) == {"app": {"1": top_v1, "2": top_v1},
                                                                   "other": {"1": manifest[1]["Layers"][-1][:64]}}
    # every layer.tar is the uncompressed layer (its sha256 is the diff_id); the second TOP is a symlink
    first = tar.getmember(manifest[0]["Layers"][1])
    second = tar.getmember(manifest[1]["Layers"][1])
    assert first.isreg() and second.issym() and second.linkname == "../" + manifest[0]["Layers"][1]
    assert sha(tar.extractfile(first).read()) == sha(layer_tar(TOP))
    assert {n.split("/")[1] for n in names if "/" in n} == {"", "VERSION", "json", "layer.tar"} - {""}
    arch = _archive(data)
    assert arch.format == "docker-archive" and arch.images[0].id == image_id
    arch.verify()
    res = b.op("load", images=_load_request(b, arch))
    assert [(i["id"], i["tags"]) for i in res["loaded"]] == [(image_id, ["app:1", "app:2"]),
                                                             (arch.images[1].id, ["other:1"])]
    assert res["layers_loaded"] == 3 and not os.listdir(b.paths.tmp)  # staging files are deleted
    inspect = b.op("image_inspect", images=["app:2"])["images"][0]
    assert inspect["Id"] == image_id and inspect["RepoTags"] == ["app:1", "app:2"]
    # b saves the same image to the same archive bytes (the v1 IDs and times are deterministic)
    assert _save(b, ["app"])[1] == _save(a, ["app"])[1]


def test_second_load_stages_nothing_and_moves_tags(two):
    a, b = two
    a.image(["app:1"], [BASE, TOP])
    arch = _archive(_save(a, ["app:1"])[1])
    b.op("load", images=_load_request(b, arch))
    present = b.op("load_probe", diff_ids=arch.images[0].diff_ids + ["sha256:" + "0" * 64])["present"]
    assert present == arch.images[0].diff_ids
    res = b.op("load", images=_load_request(b, arch, present))
    assert res["layers_loaded"] == 0 and res["loaded"][0]["renamed"] == []
    # a different image under the same tag: docker's rename message
    a2 = Fixture(Paths(root=a.paths.root + "2", config_dir=a.paths.config_dir + "2"))
    new_id = a2.image(["app:1"], [BASE])
    res = b.op("load", images=_load_request(b, _archive(_save(a2, ["app:1"])[1])))
    assert res["loaded"][0]["renamed"] == [{"tag": "app:1", "old": arch.images[0].id}]
    assert b.op("image_inspect", images=["app:1"])["images"][0]["Id"] == new_id


def test_layer_digest_mismatch_stores_nothing(two):
    a, b = two
    b.image(["keep:1"], [OTHER])
    a.image(["app:1"], [BASE, TOP])
    arch = _archive(_save(a, ["app:1"])[1])
    req = _load_request(b, arch)
    with open(req[0]["layers"][1]["staging"], "wb") as f:
        f.write(layer_tar({"etc/app.conf": b"evil"}))
    before = _state(b)
    with pytest.raises(errors.InvalidArgument, match="does not match its digest"):
        b.op("load", images=req)
    assert _state(b) == before and not os.listdir(b.paths.tmp) and not os.listdir(b.paths.ingest)


def test_reader_refuses_what_is_not_an_archive_and_bad_layers(two):
    a, _b = two
    with pytest.raises(errors.InvalidArgument, match="x.tar: not a tar archive"):
        _archive(b"hello, not a tar" * 100, "x.tar")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(errors.InvalidArgument, match="not an image archive"):
        _archive(buf.getvalue())
    a.image(["app:1"], [BASE, TOP])
    data = _save(a, ["app:1"])[1]
    src = tarfile.open(fileobj=io.BytesIO(data))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read() if m.isreg() else None
            if m.name.endswith("layer.tar") and body == layer_tar(TOP):
                body = layer_tar({"etc/app.conf": b"x" * 500})
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    arch = _archive(out.getvalue())
    with pytest.raises(errors.InvalidArgument, match="does not match its digest"):
        arch.verify()


def test_oci_archive_index_and_gzip_layers(two):
    a, b = two
    image_id = a.image(["reg.example:5000/app:1"], [BASE, TOP])
    _out, data = _save(a, ["reg.example:5000/app:1"], fmt="oci")
    tar = tarfile.open(fileobj=io.BytesIO(data))
    assert json.loads(tar.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(tar.extractfile("index.json").read())
    (desc,) = index["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "reg.example:5000/app:1",
                                   "org.opencontainers.image.ref.name": "1"}
    man = json.loads(tar.extractfile("blobs/sha256/" + desc["digest"][7:]).read())
    assert man["mediaType"] == archive_formats.MT_OCI_MANIFEST and man["config"]["digest"] == image_id
    for name in tar.getnames():  # every blob is named by its digest
        if name.startswith("blobs/sha256/") and tar.getmember(name).isreg():
            assert hashlib.sha256(tar.extractfile(name).read()).hexdigest() == name.rsplit("/", 1)[1]
    # read through index.json (without the docker-compatible manifest.json) with gzip layers
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in tar.getmembers():
            if m.name == "manifest.json":
                continue
            body = tar.extractfile(m).read() if m.isreg() else None
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    arch = _archive(out.getvalue())
    assert arch.format == "oci-archive" and arch.images[0].tags == ["reg.example:5000/app:1"]
    arch.verify()
    gz = _archive(data)
    assert gz.format == "docker-archive"  # manifest.json wins, as in docker load
    req = _load_request(b, arch)
    req[0]["layers"][0]["staging"] = _stage(b, gzip.compress(arch.open(arch.images[0].layers[0]).read()))
    res = b.op("load", images=req)
    assert res["loaded"][0]["id"] == image_id


def test_import_makes_a_one_layer_image_with_changes(two):
    _a, b = two
    tar = layer_tar({"hello": b"world"})
    out = b.op("import", staging=_stage(b, gzip.compress(tar)), repository="imp:1", message="from a tarball",
               changes=['CMD ["/hello"]', "ENV A=1", "EXPOSE 80"])
    assert out["tags"] == ["imp:1"] and not os.listdir(b.paths.tmp)
    obj = b.op("image_inspect", images=["imp:1"])["images"][0]
    assert obj["Id"] == out["id"] and obj["RootFS"]["Layers"] == [sha(tar)] and obj["Comment"] == "from a tarball"
    assert obj["Config"]["Cmd"] == ["/hello"] and obj["Config"]["Env"] == ["A=1"]
    assert obj["Config"]["ExposedPorts"] == {"80/tcp": {}} and obj["Config"]["Hostname"] == ""
    cfg = json.loads(b.store.content.read_bytes(out["id"]))
    assert cfg["history"] == [{"created": cfg["created"], "comment": "from a tarball"}]
    before = _state(b)
    with pytest.raises(errors.InvalidArgument, match="not a valid change command"):
        b.op("import", staging=_stage(b, tar), changes=["RUN true"])
    with pytest.raises(errors.InvalidArgument, match="corrupt layer"):
        b.op("import", staging=_stage(b, b"not a tar at all" * 64))
    assert _state(b) == before and not os.listdir(b.paths.tmp)


def test_save_names_follow_docker(two):
    a, _b = two
    image_id = a.image(["app:1", "app:2", "zzz:9"], [BASE])
    assert [i["tags"] for i in a.op("save", images=["app:2"])["images"]] == [[["docker.io/library/app:2", "app:2"]]]
    assert [i["tags"] for i in a.op("save", images=[image_id[7:19]])["images"]] == [[]]
    assert [i["tags"] for i in _save(a, ["app", "zzz:9"])[0]["images"]] == [["app:1", "app:2", "zzz:9"]]
    with pytest.raises(errors.NotFound):
        a.op("save", images=["app:1", "nope:1"])


def _escape_layers(outside):
    """Layers that try to write outside the root: a ``..`` name, and a file through a symlink to ``outside``."""
    out = []
    for members in ([("../evil", tarfile.REGTYPE, "")],
                    [("link", tarfile.SYMTYPE, str(outside)), ("link/pwned", tarfile.REGTYPE, "")]):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, kind, target in members:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, target
                info.size = 3 if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(b"bad") if kind == tarfile.REGTYPE else None)
        out.append(buf.getvalue())
    return out


def test_unsafe_layers_are_refused_and_leave_nothing(two, tmp_path):
    _a, b = two
    outside = tmp_path / "outside"
    outside.mkdir()
    b.image(["keep:1"], [OTHER])
    for bad in _escape_layers(outside):
        tars = [layer_tar(BASE), bad]  # the first layer is fine and new to b: undone when the second fails
        config = json.dumps({"os": "linux", "rootfs": {"type": "layers",
                                                       "diff_ids": [sha(t) for t in tars]}}).encode()
        buf = io.BytesIO()
        archive_formats.write_docker_archive(buf, [{"id": sha(config), "config": config, "tags": ["bad:1"]}],
                                             lambda d: io.BytesIO(next(t for t in tars if sha(t) == d)))
        arch = _archive(buf.getvalue())
        arch.verify()  # the digests are right: only the applier can refuse these
        before = _state(b)
        with pytest.raises(errors.InvalidArgument, match="refusing layer entry"):
            b.op("load", images=_load_request(b, arch))
        assert _state(b) == before and not os.listdir(b.paths.tmp)
        with pytest.raises(errors.InvalidArgument, match="refusing layer entry"):
            b.op("import", staging=_stage(b, bad), repository="bad:2")
        assert _state(b) == before and not os.listdir(b.paths.tmp)
    assert os.listdir(outside) == [] and not (tmp_path / "evil").exists()


def test_decompressors_bound_their_output_and_take_every_compression():
    import bz2
    import lzma

    from agent_payload.image import loadsave

    big = b"\0" * (64 << 20)
    for packed in (gzip.compress(big[:1 << 20]) + gzip.compress(big), bz2.compress(big), lzma.compress(big)):
        z = loadsave._Decompress(io.BytesIO(packed), "x")
        total, most = 0, 0
        while True:
            data = z.read()
            if not data:
                break
            total, most = total + len(data), max(most, len(data))
        assert most <= loadsave.CHUNK and total == len(big) + (1 << 20 if packed[:2] == b"\x1f\x8b" else 0)
    z = archive_formats.Gunzip(io.BytesIO(gzip.compress(big)))
    sizes = []
    while True:
        data = z.read(archive_formats.CHUNK)
        if not data:
            break
        sizes.append(len(data))
    assert sum(sizes) == len(big) and max(sizes) <= archive_formats.CHUNK
    with pytest.raises(errors.InvalidArgument, match="ended early"):
        z = loadsave._Decompress(io.BytesIO(gzip.compress(big)[:5000]), "x")
        while z.read():
            pass
