"""The local image store ops (images, tag, rmi, history, prune, inspect, system df) follow Docker's rules."""

import io
import os

import pytest

from agent_payload import errors
from agent_payload.image import content, gc, images, unpack
from agent_payload.runtime import records
from agent_payload.state.paths import Paths
from tests.helpers.images import Fixture, layer_tar, sha


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("FLEET_CONFIG_DIR", str(tmp_path / "etc"))
    monkeypatch.setattr(gc, "GRACE", 0)  # tests create and sweep within seconds
    return Fixture(Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc")))


BASE = {"bin/sh": b"#!" + b"s" * 998}          # 1000 bytes
TOP = {"etc/app.conf": b"c" * 500}


def rows(fx, **args):
    return [(r["repository"], r["tag"]) for r in fx.op("images", **args)["images"]]


# -- images ----------------------------------------------------------------------------------------------

def test_images_rows_sizes_and_containers(fx):
    a = fx.image(["nginx:latest", "nginx:1.25"], [BASE, TOP], created="2024-02-01T00:00:00Z")
    fx.image(["busybox"], [BASE], created="2024-01-01T00:00:00Z")
    fx.container(a)
    out = fx.op("images")["images"]
    assert [(r["repository"], r["tag"]) for r in out] == [("nginx", "latest"), ("nginx", "1.25"), ("busybox", "latest")]
    assert out[0]["id"] == a and out[0]["size"] == 1500 and out[0]["containers"] == 1
    assert out[2]["size"] == 1000 and out[2]["containers"] == 0
    assert out[0]["digest"].startswith("sha256:")


def test_images_filters(fx):
    fx.image(["nginx:latest"], [BASE, TOP], labels={"tier": "web"})
    fx.image(["redis:7", "localhost:5000/team/redis:7"], [BASE, {"r": b"r"}], created="2024-03-01T00:00:00Z")
    dang = fx.image([], [{"d": b"d"}], created="2023-01-01T00:00:00Z")
    assert ("<none>", "<none>") in rows(fx)
    assert rows(fx, filters=["dangling=true"]) == [("<none>", "<none>")]
    assert ("<none>", "<none>") not in rows(fx, filters=["dangling=false"])
    assert rows(fx, filters=["reference=nginx"]) == [("nginx", "latest")]
    assert rows(fx, filters=["reference=ngi*:lat*"]) == [("nginx", "latest")]
    # "*" does not cross "/": only the familiar repo names without a slash match
    assert rows(fx, filters=["reference=*"]) == [("redis", "7"), ("nginx", "latest")]
    assert rows(fx, filters=["reference=localhost:5000/*/*"]) == [("localhost:5000/team/redis", "7")]
    # the same key ORs, different keys AND
    assert sorted(rows(fx, filters=["reference=nginx", "reference=redis"])) == [("nginx", "latest"), ("redis", "7")]
    assert rows(fx, filters=["reference=nginx", "dangling=true"]) == []
    assert rows(fx, filters=["label=tier=web"]) == [("nginx", "latest")]
    assert rows(fx, filters=["label=tier"]) == [("nginx", "latest")]
    assert rows(fx, filters=["before=nginx"]) == [("<none>", "<none>")]
    assert ("<none>", "<none>") not in rows(fx, filters=["since=" + dang])


@pytest.mark.parametrize("spec,message", [
    ("colour=red", "invalid filter 'colour'"),
    ("dangling=maybe", "invalid filter 'dangling=[maybe]'"),
    ("dangling", "bad format of filter (expected name=value)"),
    ("reference=[", "syntax error in pattern"),
])
def test_images_bad_filters(fx, spec, message):
    with pytest.raises(errors.InvalidArgument) as exc:
        fx.op("images", filters=[spec])
    assert exc.value.message == message


def test_dangling_both_values_is_invalid(fx):
    with pytest.raises(errors.InvalidArgument, match=r"invalid filter 'dangling=\[false true\]'"):
        fx.op("images", filters=["dangling=true", "dangling=false"])


def test_images_digests_rows(fx):
    a = fx.image(["nginx:latest"], [BASE])
    mdigest = fx.index()["images"][a]["digest"]
    out = fx.op("images", digests=True)["images"]
    assert [(r["repository"], r["tag"], r["digest"]) for r in out] == [("nginx", "latest", mdigest)]
    fx.op("tag", source="nginx", target="mine:v1")
    out = {(r["repository"], r["tag"]): r["digest"] for r in fx.op("images", digests=True)["images"]}
    assert out == {("nginx", "latest"): mdigest, ("mine", "v1"): "<none>"}
    fx.op("rmi", images=["nginx:latest"])  # the repo's digest ref goes with its last tag
    assert rows(fx) == [("mine", "v1")]


# -- tag ---------------------------------------------------------------------------------------------------

def test_tag_by_ref_and_id_and_move(fx):
    a = fx.image(["nginx:latest"], [BASE])
    b = fx.image(["redis:latest"], [TOP])
    assert fx.op("tag", source="nginx", target="example.com/x/y:v1") == {"id": a, "target": "example.com/x/y:v1"}
    assert fx.op("tag", source=b[7:19], target="app") == {"id": b, "target": "app:latest"}
    assert fx.index()["refs"]["docker.io/library/app:latest"]["id"] == b
    fx.op("tag", source="nginx", target="app:latest")  # moving a tag
    assert fx.index()["refs"]["docker.io/library/app:latest"]["id"] == a
    assert fx.op("image_inspect", images=["app"])["images"][0]["Metadata"]["LastTagTime"] != images.ZERO_TIME
    fx.op("tag", source="nginx", target="redis:latest")
    assert b in [r["id"] for r in fx.op("images", filters=["dangling=true"])["images"]]  # old image dangles


def test_tag_rejects_digest_and_bad_refs(fx):
    fx.image(["nginx:latest"], [BASE])
    with pytest.raises(errors.InvalidArgument, match="refusing to create a tag with a digest reference"):
        fx.op("tag", source="nginx", target="x@sha256:" + "a" * 64)
    with pytest.raises(errors.InvalidArgument, match="invalid reference format"):
        fx.op("tag", source="nginx", target="UPPER")
    with pytest.raises(errors.NotFound, match="No such image: nope:latest"):
        fx.op("tag", source="nope", target="x")


# -- rmi ---------------------------------------------------------------------------------------------------

def _blob_names(fx):
    return set(os.listdir(fx.paths.blobs))


def test_rmi_untag_then_delete_with_content(fx):
    keep = fx.image(["busybox"], [BASE])
    a = fx.image(["nginx:latest", "nginx:1.25"], [BASE, TOP])
    before = _blob_names(fx)
    assert fx.op("rmi", images=["nginx:1.25"]) == {"untagged": ["nginx:1.25"], "deleted": []}
    mdigest = fx.index()["images"][a]["digest"]
    out = fx.op("rmi", images=["nginx"])
    assert out == {"untagged": ["nginx:latest", "nginx@" + mdigest], "deleted": [a]}
    gone = before - _blob_names(fx)
    assert a[7:] in gone and len(gone) == 3  # config, manifest and the top layer; the shared base layer stays
    chains = fx.index()["images"][keep]["chain_ids"]
    assert list(fx.store.snapshots.walk()) == chains  # the top snapshot went, the shared one stayed
    with pytest.raises(errors.NotFound, match="No such image: nginx:latest"):
        fx.op("rmi", images=["nginx"])


def test_rmi_by_id_multiple_repositories(fx):
    a = fx.image(["nginx:latest", "web:1"], [BASE])
    with pytest.raises(errors.Conflict) as exc:
        fx.op("rmi", images=[a[7:19]])
    assert exc.value.message == ("conflict: unable to delete {} (must be forced) - image is referenced in multiple "
                                 "repositories".format(a[7:19]))
    assert len(rows(fx)) == 2
    out = fx.op("rmi", images=[a[7:19]], force=True)
    assert sorted(u.split("@")[0] for u in out["untagged"]) == ["nginx", "nginx:latest", "web", "web:1"]
    assert out["deleted"] == [a] and fx.index()["images"] == {}


def test_rmi_by_id_single_repository_untags_all(fx):
    a = fx.image(["nginx:latest"], [BASE])
    fx.op("tag", source="nginx", target="nginx:alias")  # two tags, one repo: not a "single reference"
    with pytest.raises(errors.Conflict, match="referenced in multiple repositories"):
        fx.op("rmi", images=[a])
    fx.op("rmi", images=["nginx:alias"])
    out = fx.op("rmi", images=["sha256:" + a[7:]])
    assert out["deleted"] == [a] and out["untagged"][0] == "nginx:latest"


def test_rmi_in_use_by_stopped_container(fx):
    a = fx.image(["nginx:latest"], [BASE, TOP])
    cid = fx.container(a)
    with pytest.raises(errors.Conflict) as exc:
        fx.op("rmi", images=["nginx"])
    assert exc.value.message == ('conflict: unable to remove repository reference "nginx" (must force) - container '
                                 '{} is using its referenced image {}'.format(cid[:12], a[7:19]))
    with pytest.raises(errors.Conflict) as exc:
        fx.op("rmi", images=[a[7:19]])
    assert exc.value.message == ("conflict: unable to delete {} (must be forced) - image is being used by stopped "
                                 "container {}".format(a[7:19], cid[:12]))
    lowers = records.read_config(fx.paths, cid)["lowerdirs"]
    # Docker: a forced removal of an image a stopped container uses deletes the image...
    out = fx.op("rmi", images=["nginx"], force=True)
    assert out["untagged"][0] == "nginx:latest" and out["deleted"] == [a]
    # ...but the container's layers survive until the container goes
    assert all(os.path.isfile(os.path.join(d, p)) for d, p in zip(lowers, ["bin/sh", "etc/app.conf"]))
    fx.op("image_prune")
    assert all(os.path.isdir(d) for d in lowers)
    records.remove_dir(fx.paths, cid)
    reclaimed = fx.op("image_prune")["reclaimed"]
    assert reclaimed == 1500 and not any(os.path.exists(d) for d in lowers)


def test_rmi_in_use_by_running_container(fx):
    a = fx.image(["nginx:latest"], [BASE])
    cid = fx.container(a, running=True)
    with pytest.raises(errors.Conflict, match="container {} is using".format(cid[:12])):
        fx.op("rmi", images=["nginx"])
    with pytest.raises(errors.Conflict) as exc:
        fx.op("rmi", images=[a[7:19]], force=True)
    assert exc.value.message == ("conflict: unable to delete {} (cannot be forced) - image is being used by running "
                                 "container {}".format(a[7:19], cid[:12]))
    # by name with force: Docker untags and keeps the image (dangling) for the running container
    out = fx.op("rmi", images=["nginx"], force=True)
    assert out["deleted"] == [] and out["untagged"][0] == "nginx:latest"
    assert a in fx.index()["images"]
    assert fx.op("images")["images"][0]["containers"] == 1


def test_rmi_second_tag_is_free_even_when_in_use(fx):
    a = fx.image(["nginx:latest", "web:1"], [BASE])
    fx.container(a)
    assert fx.op("rmi", images=["web:1"])["untagged"][0] == "web:1"


def test_rmi_several_images_reports_per_image(fx):
    fx.image(["nginx:latest"], [BASE])
    out = fx.op("rmi", images=["nope", "nginx"])
    assert out["deleted"] and out["errors"] == [{"image": "nope", "kind": "NotFound",
                                                 "message": "No such image: nope:latest"}]
    assert [(n["name"], n["ok"]) for n in out["results"]] == [("nope", False), ("nginx", True)]
    assert out["results"][1]["deleted"] == out["deleted"]
    # issue 13: docker reports every missing name (it used to raise the first one's error only)
    out = fx.op("rmi", images=["nope", "alsono"])
    assert [n["error"]["message"] for n in out["results"]] == ["No such image: nope:latest",
                                                                "No such image: alsono:latest"]
    with pytest.raises(errors.NotFound):
        fx.op("rmi", images=["nope"])
    with pytest.raises(errors.InvalidArgument):
        fx.op("rmi", images=[])


# -- history / inspect -----------------------------------------------------------------------------------

def test_history(fx):
    hist = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD base /"},
            {"created": "2024-01-02T00:00:00Z", "created_by": "ENV A=1", "empty_layer": True},
            {"created": "2024-01-03T00:00:00Z", "created_by": "COPY app /", "comment": "buildkit"}]
    a = fx.image(["app:1"], [BASE, TOP], history=hist)
    out = fx.op("history", image="app:1")["history"]
    assert [(h["id"], h["created_by"], h["size"], h["comment"]) for h in out] == [
        (a, "COPY app /", 500, "buildkit"), ("<missing>", "ENV A=1", 0, ""), ("<missing>", "ADD base /", 1000, "")]
    with pytest.raises(errors.NotFound):
        fx.op("history", image="nope")


def test_inspect(fx):
    a = fx.image(["app:1"], [BASE, TOP])
    out = fx.op("image_inspect", images=["app:1"])["images"][0]
    chains = fx.index()["images"][a]["chain_ids"]
    dirs = fx.store.snapshots.mounts(chains)
    assert out["Id"] == a and out["RepoTags"] == ["app:1"]
    assert out["RepoDigests"] == ["app@" + fx.index()["images"][a]["digest"]]
    assert out["Size"] == 1500 and out["Os"] == "linux" and out["Architecture"] == "amd64"
    assert out["Config"]["Cmd"] == ["sh"] and out["Parent"] == "" and out["Author"] == "tests"
    assert out["RootFS"]["Layers"] == fx.store.image_config(a)["rootfs"]["diff_ids"]
    assert out["GraphDriver"]["Name"] == "overlay2"
    assert out["GraphDriver"]["Data"]["UpperDir"] == dirs[1] and out["GraphDriver"]["Data"]["LowerDir"] == dirs[0]
    assert out["Metadata"]["LastTagTime"] == images.ZERO_TIME
    with pytest.raises(errors.NotFound, match="No such image: nope:latest"):
        fx.op("image_inspect", images=["nope"])
    mixed = fx.op("image_inspect", images=["nope", a])
    assert len(mixed["images"]) == 1 and mixed["errors"][0]["kind"] == "NotFound"


# -- prune / df ------------------------------------------------------------------------------------------

def test_prune_dangling_and_all(fx):
    used = fx.image(["used:1"], [BASE])
    fx.container(used)
    tagged = fx.image(["tagged:1"], [{"t": b"t" * 10}])
    dang = fx.image([], [{"d": b"d" * 20}])
    out = fx.op("image_prune")
    assert out == {"deleted": [dang], "untagged": [], "reclaimed": out["reclaimed"]}
    assert out["reclaimed"] >= 20  # the 20-byte layer plus its blobs
    out = fx.op("image_prune", all=True)
    assert out["deleted"] == [tagged] and out["untagged"][0] == "tagged:1"
    assert list(fx.index()["images"]) == [used]


def test_system_df(fx):
    a = fx.image(["a:1"], [BASE, TOP])
    fx.image(["b:1"], [BASE, {"b": b"b" * 250}])
    fx.container(a, running=True)
    fx.container(a)
    out = fx.op("system_df")
    assert out["images"] == {"total": 2, "active": 1, "size": 1750, "reclaimable": 250, "reclaimable_percent": 14}
    assert out["containers"] == {"total": 2, "active": 1, "size": 200, "reclaimable": 100,
                                 "reclaimable_percent": 50}
    assert out["volumes"]["size"] == 0 and out["build_cache"]["total"] == 0


# -- concurrency guards ----------------------------------------------------------------------------------

def test_sweep_skipped_while_a_lease_is_held(fx):
    a = fx.image(["a:1"], [{"x": b"x"}])
    with fx.store.lease():
        assert fx.op("rmi", images=["a:1"])["deleted"] == [a]
        assert fx.store.content.has(a)  # content stays while a pull may be using it
    assert fx.op("image_prune")["reclaimed"] > 0
    assert not fx.store.content.has(a)


def test_fresh_unclaimed_content_survives_grace(fx, monkeypatch):
    monkeypatch.setattr(gc, "GRACE", 600)
    t = layer_tar({"n": b"new"})
    diff = sha(t)
    fx.store.snapshots.ensure(diff, None, diff, lambda fs: unpack.apply_layer(io.BytesIO(t), fs, "", diff))
    fx.store.content.write_bytes(sha(t), t)
    fx.op("image_prune")  # an in-flight pull without a lease: its fresh snapshot and blob are kept
    assert fx.store.snapshots.lookup(diff) and fx.store.content.has(sha(t))


def test_index_add_refuses_swept_content(fx):
    entry = {"chain_ids": ["sha256:" + "1" * 64], "digest": "d", "layers": []}
    cfg = b"{}"
    fx.store.content.write_bytes(content.sha256_digest(cfg), cfg)
    with pytest.raises(errors.FailedPrecondition, match="concurrent rmi/prune"):
        fx.store.index_add(["docker.io/library/x:1"], content.sha256_digest(cfg), entry, {})


def test_index_writes_reap_the_temp_files_of_killed_writers(fx):
    """A pull killed inside an atomic index write leaves .tmp-<pid>-<hex>; the next write of that index reaps it
    (a live writer's file stays)."""
    fx.image(["busybox:latest"], [BASE])
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    planted = {}
    for directory in (fx.paths.images, fx.paths.snapshots):
        planted[directory] = [os.path.join(directory, ".tmp-{}-ab12".format(pid)) for pid in (dead, os.getpid())]
        for path in planted[directory]:
            with open(path, "wb") as f:
                f.write(b"{")
    fx.image(["app:latest"], [BASE, TOP])  # a new snapshot and a new image: both indexes written
    for directory, (stale, live) in planted.items():
        assert not os.path.exists(stale), directory
        assert os.path.exists(live), directory
