"""docker's -v/--mount grammar, VOLUME entries, the local volume store and copy-up."""

import os

import pytest

from agent_payload import errors
from agent_payload.runtime import volumes
from agent_payload.state.paths import Paths


@pytest.mark.parametrize("text,want", [
    ("/data", {"type": "volume", "source": None, "target": "/data", "readonly": False, "copy": True}),
    ("db:/var/lib/db", {"type": "volume", "source": "db", "target": "/var/lib/db", "readonly": False,
                        "copy": True}),
    ("db:/d:ro,nocopy", {"type": "volume", "source": "db", "target": "/d", "readonly": True, "copy": False}),
    ("/srv/www/:/usr/share/nginx/html:ro", {"type": "bind", "source": "/srv/www", "target": "/usr/share/nginx/html",
                                            "readonly": True, "create": True}),
])
def test_volume_flag(text, want):
    assert volumes.parse_volume_flag(text) == want


@pytest.mark.parametrize("text,match", [
    ("", "specification"), ("a:b:c:d", "specification"), ("db:relative", "absolute"), ("db:/", "'/'"),
    ("d b:/x", "invalid characters"), ("db:/x:rx", "invalid mode"), ("db:/x:ro,rw", "invalid mode"),
])
def test_volume_flag_errors(text, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        volumes.parse_volume_flag(text)


@pytest.mark.parametrize("text,match", [
    (":/x", "invalid spec: :/x: empty section between colons"), ("::/x", "empty section"),
    ("/h::ro", "empty section"), ("/h:/x:", "empty section"), ("v:", "empty section"),
    ("/h:/proc", '"/proc" cannot be mounted because it is not of type proc'), ("/proc", "not of type proc"),
    ("v:/proc/", "not of type proc"), ("/h://proc", "not of type proc"), ("/h:/x/../proc", "not of type proc"),
    ("/h:/proc/sys", '"/proc/sys" cannot be mounted because it is inside /proc'), ("/proc/1/root", "inside /proc"),
])
def test_volume_flag_refused_as_docker_and_runc_refuse(text, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        volumes.parse_volume_flag(text)


@pytest.mark.parametrize("text", ["type=tmpfs,dst=/proc", "type=bind,src=/etc,dst=/proc/sys/kernel",
                                  "type=volume,target=/proc", "src=v,dst=//proc/self"])
def test_mount_flag_refuses_proc(text):
    with pytest.raises(errors.InvalidArgument, match="cannot be mounted because it is"):
        volumes.parse_mount_flag(text)


def test_destinations_docker_lets_a_user_mount_replace_stay_allowed():
    assert volumes.parse_volume_flag("/var/lib/lxcfs/proc/meminfo:/proc/meminfo:ro")["target"] == "/proc/meminfo"
    for target in ("/sys", "/dev", "/dev/pts", "/dev/shm", "/procfs", "/x/proc"):
        assert volumes.parse_volume_flag("/h:" + target)["target"] == target
    assert volumes.parse_mount_flag("type=tmpfs,dst=/dev/shm,tmpfs-size=1g")["target"] == "/dev/shm"
    assert volumes.refused_destination("/proc/net/dev") is None
    assert volumes.refused_destination("/proc/net") is not None


def test_mount_flag_forms():
    assert volumes.parse_mount_flag("type=bind,source=/etc,target=/h,readonly") == {
        "type": "bind", "source": "/etc", "target": "/h", "readonly": True, "create": False}
    assert volumes.parse_mount_flag("src=v1,dst=/d,volume-nocopy") == {
        "type": "volume", "source": "v1", "target": "/d", "readonly": False, "copy": False}
    assert volumes.parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777") == {
        "type": "tmpfs", "source": None, "target": "/t", "readonly": False, "size": "64m", "mode": "1777"}
    for text, match in (("type=bind,target=/x", "absolute"), ("type=nfs,target=/x", "mount type"),
                        ("type=volume,source=v", "target is required"), ("type=tmpfs,target=/t,src=x", "source"),
                        ("type=volume,target=/x,color=red", "unexpected key"), ("target", "key=value")):
        with pytest.raises(errors.InvalidArgument, match=match):
            volumes.parse_mount_flag(text)


def test_plan_missing_bind_source_duplicates_and_image_volumes(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(errors.InvalidArgument, match="bind source path does not exist"):
        volumes.plan(mount_flags=["type=bind,source={},target=/x".format(missing)])
    assert volumes.plan(volume_flags=[missing + ":/x"])[0]["create"] is True  # -v creates it at start
    with pytest.raises(errors.InvalidArgument, match="Duplicate mount point"):
        volumes.plan(volume_flags=["aa:/x", "bb:/x/"])
    got = volumes.plan(volume_flags=["aa:/data"], image_volumes=["/data", "/logs", "relative"])
    assert [(m["source"], m["target"]) for m in got] == [("aa", "/data"), (None, "/logs")]


def test_store_create_idempotent_in_use_and_prune(tmp_path):
    vols = volumes.Volumes(Paths(root=str(tmp_path / "root")))
    rec = vols.create("data", labels={"k": "v"})
    assert rec["Mountpoint"].endswith("/volumes/data/_data") and os.path.isdir(rec["Mountpoint"])
    assert vols.create("data")["CreatedAt"] == rec["CreatedAt"]
    anon = vols.create()
    assert anon["Anonymous"] and len(anon["Name"]) == 64
    with pytest.raises(errors.InvalidArgument):
        vols.create("no/slash")
    configs = {"c1": {"mounts": [{"type": "volume", "source": "data", "target": "/d"}]}}
    with pytest.raises(errors.Conflict, match="volume is in use - \\[c1\\]"):
        vols.remove("data", configs)
    with open(os.path.join(anon["Mountpoint"], "f"), "w") as f:
        f.write("x" * 100)
    names, reclaimed = vols.prune(configs)
    assert names == [anon["Name"]] and reclaimed >= 100
    assert vols.prune(configs, all=True) == ([], 0)  # data is in use
    assert vols.remove("data", {}) == "data"
    with pytest.raises(errors.NotFound):
        vols.get("data")


def test_copy_up_keeps_links_modes_and_owners(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("hello")
    os.chmod(str(src / "sub" / "f"), 0o640)
    os.chown(str(src / "sub" / "f"), 33, 33)
    os.symlink("sub/f", str(src / "link"))
    os.symlink("/etc", str(src / "dirlink"))
    dst.mkdir()
    volumes.copy_up(str(src), str(dst))
    assert (dst / "sub" / "f").read_text() == "hello"
    st = os.lstat(str(dst / "sub" / "f"))
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 33)
    assert os.readlink(str(dst / "link")) == "sub/f" and os.readlink(str(dst / "dirlink")) == "/etc"


def test_resolve_names_anonymous_volumes_and_discards_on_failure(tmp_path):
    vols = volumes.Volumes(Paths(root=str(tmp_path / "root")))
    vols.create("old")
    mounts = volumes.plan(["/anon", "old:/o", "new:/n", str(tmp_path) + ":/b:ro"])
    resolved, made = vols.resolve(mounts)
    anon = resolved[0]["source"]
    assert volumes.ANON_RE.match(anon) and resolved[0]["anonymous"] and not resolved[1]["anonymous"]
    assert sorted(made) == sorted([anon, "new"])  # "old" existed before
    assert resolved[1]["host_path"] == vols.data_dir("old") and resolved[3]["host_path"] == str(tmp_path)
    assert volumes.check_mounts(resolved) is resolved
    vols.discard(made)
    assert [v["Name"] for v in vols.list()] == ["old"]
    points, binds, host_mounts = volumes.docker_mounts(resolved + [dict(volumes.parse_mount_flag(
        "type=tmpfs,dst=/t"), flag="mount")])
    assert [p["Type"] for p in points] == ["volume", "volume", "volume", "bind", "tmpfs"]
    assert points[3] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "ro", "RW": False,
                         "Propagation": "rprivate"}
    assert binds == ["old:/o", "new:/n", str(tmp_path) + ":/b:ro"]  # anonymous -v /path is not a bind
    assert host_mounts == [{"Type": "tmpfs", "Source": "", "Target": "/t"}]
    # rm -v: anonymous volumes only, and only when no other container uses them
    resolved, made = vols.resolve(mounts)
    anon = resolved[0]["source"]
    assert vols.remove_anonymous(resolved, {"other": {"mounts": [resolved[0]]}}) == []
    assert vols.remove_anonymous(resolved, {}) == [anon]
    assert sorted(v["Name"] for v in vols.list()) == ["new", "old"]


@pytest.mark.parametrize("mounts,match", [
    ("x", "list"), ([{"type": "nfs", "target": "/x"}], "type"), ([{"type": "bind", "source": "rel", "target": "/x"}],
                                                                 "absolute"),
    ([{"type": "volume", "source": "a b", "target": "/x"}], "volume name"),
    ([{"type": "tmpfs", "target": "/x"}, {"type": "tmpfs", "target": "/x/"}], "Duplicate"),
])
def test_check_mounts_errors(mounts, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        volumes.check_mounts(mounts)


def test_resolve_in_root_keeps_symlinks_inside(tmp_path):
    from agent_payload.runtime import rootfs

    root = tmp_path / "root"
    (root / "real" / "sub").mkdir(parents=True)
    os.symlink("/real", str(root / "abs"))
    os.symlink("../../../../../real/sub", str(root / "real" / "rel"))
    os.symlink(str(tmp_path), str(root / "host"))  # a host path: taken as a path inside the root
    os.symlink("loop", str(root / "loop"))
    fd = os.open(str(root), os.O_PATH | os.O_DIRECTORY)
    try:
        assert rootfs.resolve_in_root(fd, "/abs/sub") == "real/sub"
        assert rootfs.resolve_in_root(fd, "/real/rel/x/y") == "real/sub/x/y"
        assert rootfs.resolve_in_root(fd, "/host/z") == str(tmp_path).lstrip("/") + "/z"
        assert rootfs.resolve_in_root(fd, "/../../etc") == "etc"
        with pytest.raises(OSError, match="symbolic links"):
            rootfs.resolve_in_root(fd, "/loop/x")
    finally:
        os.close(fd)


def test_a_killed_create_or_rm_never_blocks_a_name_and_listings_reap_leftovers(tmp_path):
    """What a payload killed inside ``volume create``/``rm`` leaves (older payloads: a name dir without
    volume.json; now: ``.tmp-*``/``.trash-*``) is reaped by the next listing, create or rm under the lock."""
    paths = Paths(root=str(tmp_path / "root"))
    vols = volumes.Volumes(paths)
    root = os.path.join(str(tmp_path / "root"), "volumes")
    os.makedirs(os.path.join(root, "blocked", "_data"))  # killed between mkdir and the metadata write
    os.makedirs(os.path.join(root, "a" * 64, "_data"))  # the same for an anonymous volume of a `run -v /x`
    os.makedirs(os.path.join(root, ".tmp-0123", "_data"))  # killed inside today's create
    os.makedirs(os.path.join(root, ".trash-4567", "_data", "x"))  # killed inside today's rm
    os.makedirs(os.path.join(root, "kept", "_data"))  # data without metadata (a killed rmtree): kept, visible
    with open(os.path.join(root, "kept", "_data", "f"), "w") as f:
        f.write("data")
    rec = vols.create("blocked")  # was: "File exists" for ever
    assert rec["Name"] == "blocked" and os.path.isdir(rec["Mountpoint"])
    assert sorted(v["Name"] for v in vols.list()) == ["blocked", "kept"]
    assert sorted(os.listdir(root)) == ["blocked", "kept"]
    assert vols.remove("kept", {}) == "kept" and vols.remove("blocked", {}) == "blocked"
    assert os.listdir(root) == []


def test_create_makes_the_volume_whole_or_not_at_all(tmp_path, monkeypatch):
    vols = volumes.Volumes(Paths(root=str(tmp_path / "root")))
    real = volumes.store.write_json_atomic

    def dies(path, obj, mode=0o644):
        raise KeyboardInterrupt  # a kill right before the metadata is written

    monkeypatch.setattr(volumes.store, "write_json_atomic", dies)
    with pytest.raises(KeyboardInterrupt):
        vols.create("v1")
    monkeypatch.setattr(volumes.store, "write_json_atomic", real)
    assert not os.path.exists(os.path.join(vols.root, "v1"))  # the name is free
    assert vols.create("v1")["Name"] == "v1"
