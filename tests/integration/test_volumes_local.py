"""Volumes, binds and tmpfs mounts through the payload's runtime on this machine (root, real mount namespaces)."""

import os
import shutil

import pytest

from agent_payload import errors
from agent_payload.ops import Context, dispatch
from agent_payload.runtime import records, volumes
from agent_payload.runtime.spec import ContainerSpec
from agent_payload.state import store
from tests.helpers import runtime as local

pytestmark = local.integration
env = local.env  # fixtures by assignment (ruff flags imported fixtures as unused)


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """busybox at the bottom; on top /srv/data (content to copy up, with a hard link) and symlinks out of the root."""
    base = tmp_path_factory.mktemp("vol-layers")
    bottom, top = str(base / "bottom"), str(base / "top")
    local._busybox_layer(bottom)
    data = os.path.join(top, "srv", "data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "hello"), "w") as f:
        f.write("from the image\n")
    os.link(os.path.join(data, "hello"), os.path.join(data, "sub", "hello-link"))
    os.chmod(data, 0o750)
    outside = str(base / "outside")  # a host directory the image's symlinks point at
    os.makedirs(outside)
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("host secret\n")
    os.symlink(outside, os.path.join(top, "leak"))  # absolute: resolved inside the root, not on the host
    elsewhere = str(base / "elsewhere")
    os.makedirs(elsewhere)
    with open(os.path.join(elsewhere, "secret2"), "w") as f:
        f.write("host secret\n")
    os.symlink("../../../../../../../.." + elsewhere, os.path.join(top, "srv", "up"))  # ".." stops at the root
    yield {"lowerdirs": [bottom, top], "outside": outside, "elsewhere": elsewhere}
    shutil.rmtree(str(base), ignore_errors=True)


def _create(rt, layers, argv, volume_flags=(), mount_flags=(), image_volumes=(), **kw):
    kw.setdefault("network", "none")  # no bridge on this machine's own network namespace
    mounts = volumes.plan(list(volume_flags), list(mount_flags), list(image_volumes))
    return rt.create(ContainerSpec(image="busybox:test", image_id=local.IMAGE_ID, lowerdirs=layers["lowerdirs"],
                                   argv=argv, mounts=mounts, **kw))


def _run(rt, layers, argv, **kw):
    rec = _create(rt, layers, argv, **kw)
    rt.start(rec["id"])
    code = rt.wait(rec["id"], timeout=20)
    return rec, code, local._output(rt, rec["id"])


def _vols(rt):
    return volumes.Volumes(rt.paths)


def _ctx(rt):
    return Context(rt.paths, "dev", None)


def test_named_volume_outlives_its_containers(env, layers):
    rec, code, out = _run(env, layers, ["sh", "-c", "echo kept > /data/f"], volume_flags=["data:/data"])
    assert code == 0, out
    env.remove([rec["id"]], volumes=True)  # named volumes survive even rm -v
    assert open(os.path.join(_vols(env).data_dir("data"), "f")).read() == "kept\n"
    rec, code, out = _run(env, layers, ["cat", "/data/f"], mount_flags=["type=volume,src=data,dst=/data"])
    assert (code, out) == (0, "kept\n")
    config = store.read_json(records.Layout(env.paths, rec["id"]).config)
    assert config["mounts"][0]["host_path"] == _vols(env).data_dir("data") and not config["mounts"][0]["anonymous"]


def test_copy_up_fills_an_empty_volume_once(env, layers):
    rec, code, out = _run(env, layers, ["sh", "-c", "cat /srv/data/hello; stat -c %a /srv/data; "
                                                    "stat -c %h /srv/data/hello"], volume_flags=["cu:/srv/data"])
    assert (code, out) == (0, "from the image\n750\n2\n")  # content, mode and the hard link copied
    data = _vols(env).data_dir("cu")
    assert sorted(os.listdir(data)) == ["hello", "sub"]
    os.unlink(os.path.join(data, "hello"))
    os.unlink(os.path.join(data, "sub", "hello-link"))
    with open(os.path.join(data, "mine"), "w") as f:
        f.write("mine\n")
    _, code, out = _run(env, layers, ["ls", "/srv/data"], volume_flags=["cu:/srv/data"])
    assert (code, out.split()) == (0, ["mine", "sub"])  # not empty: never overwritten
    _, code, out = _run(env, layers, ["ls", "-A", "/srv/data"], volume_flags=["nc:/srv/data:nocopy"])
    assert (code, out) == (0, "")
    assert os.listdir(_vols(env).data_dir("nc")) == []


def test_image_volume_is_anonymous_and_copied(env, layers):
    rec, code, out = _run(env, layers, ["cat", "/srv/data/hello"], image_volumes=["/srv/data"])
    assert (code, out) == (0, "from the image\n")
    (mount,) = store.read_json(records.Layout(env.paths, rec["id"]).config)["mounts"]
    assert mount["anonymous"] and len(mount["source"]) == 64
    assert os.path.exists(os.path.join(_vols(env).data_dir(mount["source"]), "hello"))


def test_bind_readonly_and_created_source(env, layers):
    host = env.tmp_path / "bind-ro"
    host.mkdir()
    (host / "in").write_text("from host\n")
    _, code, out = _run(env, layers, ["sh", "-c", "cat /mnt/in; touch /mnt/x; echo rc=$?"],
                        volume_flags=["{}:/mnt:ro".format(host)])
    assert code == 0 and out.startswith("from host\n") and "Read-only file system" in out and "rc=1" in out, out
    assert not (host / "x").exists()
    missing = env.tmp_path / "made" / "by-v"
    _, code, out = _run(env, layers, ["sh", "-c", "echo w > /b/f"], volume_flags=["{}:/b".format(missing)])
    assert code == 0, out
    assert (missing / "f").read_text() == "w\n"  # -v created the missing source at start
    with pytest.raises(errors.InvalidArgument, match="bind source path does not exist"):
        _create(env, layers, ["true"], mount_flags=["type=bind,src={},dst=/b".format(env.tmp_path / "nope")])
    assert not (env.tmp_path / "nope").exists()


def test_bind_of_a_file_and_readonly_volume(env, layers):
    host = env.tmp_path / "one-file"
    host.write_text("file bind\n")
    _, code, out = _run(env, layers, ["sh", "-c", "cat /etc/motd.d/x; echo more >> /etc/motd.d/x; echo rc=$?"],
                        mount_flags=["type=bind,source={},target=/etc/motd.d/x,readonly".format(host)])
    assert code == 0 and out.startswith("file bind\n") and "rc=1" in out, out
    _, code, out = _run(env, layers, ["sh", "-c", "touch /v/x; echo rc=$?"], volume_flags=["rov:/v:ro"])
    assert "rc=1" in out and os.listdir(_vols(env).data_dir("rov")) == []


def test_tmpfs(env, layers):
    _, code, out = _run(env, layers, ["sh", "-c", "grep ' /t ' /proc/mounts; stat -c %a /t; echo x > /t/f && "
                                                  "cat /t/f"],
                        mount_flags=["type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770"])
    assert code == 0, out
    line, mode, content = out.splitlines()
    fields = line.split()
    assert fields[2] == "tmpfs" and "size=1024k" in fields[3] and "nosuid" in fields[3] and "nodev" in fields[3]
    assert (mode, content) == ("1770", "x")


def test_symlinked_target_stays_inside_the_root(env, layers):
    """/leak -> <host dir> in the image: the volume lands at <root>/<host dir>, and the host's files are not copied."""
    rec, code, out = _run(env, layers, ["sh", "-c", "ls -A /leak/; echo x > /leak/f; ls -A /srv/up/"],
                          volume_flags=["leaky:/leak", "{}:/srv/up:ro".format(env.tmp_path / "upsrc")])
    assert code == 0, out
    assert out == ""  # neither the host's secret (no copy-up from outside) nor anything at /srv/up (a new bind)
    assert os.listdir(_vols(env).data_dir("leaky")) == ["f"]
    assert sorted(os.listdir(layers["outside"])) == ["secret"]
    upper = records.Layout(env.paths, rec["id"]).diff
    assert os.path.isdir(upper + layers["outside"])  # the mount points were made inside the container's root
    assert os.path.isdir(upper + layers["elsewhere"])
    assert os.listdir(layers["elsewhere"]) == ["secret2"]


def test_rm_v_and_auto_remove_take_anonymous_volumes_only(env, layers):
    rec = _create(env, layers, ["true"], volume_flags=["/anon", "named:/named"])
    config = store.read_json(records.Layout(env.paths, rec["id"]).config)
    anon = [m["source"] for m in config["mounts"] if m["anonymous"]][0]
    other = _create(env, layers, ["true"], volume_flags=["/anon2"])
    anon2 = store.read_json(records.Layout(env.paths, other["id"]).config)["mounts"][0]["source"]
    env.remove([other["id"]])  # without -v: the anonymous volume stays (docker)
    assert os.path.isdir(_vols(env).data_dir(anon2))
    env.remove([rec["id"]], volumes=True)
    assert not os.path.exists(os.path.join(env.paths.root, "volumes", anon))
    assert os.path.isdir(_vols(env).data_dir("named"))

    rec, code, _ = _run(env, layers, ["true"], volume_flags=["/anon3", "named:/named"], auto_remove=True)
    assert code == 0
    anon3 = [n["Name"] for n in _vols(env).list() if n["Name"] not in (anon2, "named")]
    assert local._wait_for(lambda: not _vols(env).list() or [n["Name"] for n in _vols(env).list()] == sorted(
        [anon2, "named"]))
    assert sorted(n["Name"] for n in _vols(env).list()) == sorted([anon2, "named"]), anon3


def test_volume_ops_and_in_use(env, layers):
    ctx, events = _ctx(env), []
    emit = lambda *a: events.append(a)  # noqa: E731
    made = dispatch(ctx, "volume_create", {"name": "busy", "labels": {"k": "v"}}, emit)
    assert made["Name"] == "busy" and made["Labels"] == {"k": "v"} and made["Mountpoint"].endswith("/busy/_data")
    rec = _create(env, layers, ["true"], volume_flags=["busy:/b"])  # created, never started: still "in use"
    with pytest.raises(errors.Conflict, match="volume is in use - \\[{}\\]".format(rec["id"])):
        dispatch(ctx, "volume_rm", {"volumes": ["busy"]}, emit)
    assert dispatch(ctx, "volume_inspect", {"volumes": ["busy"]}, emit)["volumes"][0]["Name"] == "busy"
    rows = dispatch(ctx, "volume_ls", {"filters": ["dangling=false"]}, emit)["volumes"]
    assert [r["name"] for r in rows] == ["busy"] and rows[0]["in_use"]
    assert dispatch(ctx, "volume_prune", {"all": True}, emit) == {"removed": [], "reclaimed": 0}
    assert dispatch(ctx, "ps", {"all": True, "filters": ["volume=busy"]}, emit)["containers"][0]["id"] == rec["id"]
    assert dispatch(ctx, "ps", {"all": True, "filters": ["volume=/b"]}, emit)["containers"][0]["id"] == rec["id"]
    assert dispatch(ctx, "ps", {"all": True, "filters": ["volume=other"]}, emit)["containers"] == []
    with open(os.path.join(made["Mountpoint"], "f"), "w") as f:
        f.write("x" * 1000)
    df = dispatch(ctx, "system_df", {}, emit)["volumes"]
    assert (df["total"], df["active"], df["size"], df["reclaimable"]) == (1, 1, 1000, 0)
    inspected = env.inspect([rec["id"]])[0]
    assert inspected["Mounts"] == [{"Type": "volume", "Name": "busy", "Source": made["Mountpoint"],
                                    "Destination": "/b", "Driver": "local", "Mode": "", "RW": True,
                                    "Propagation": ""}]
    assert inspected["HostConfig"]["Binds"] == ["busy:/b"]
    env.remove([rec["id"]])
    assert dispatch(ctx, "volume_rm", {"volumes": ["busy"]}, emit) == {"removed": ["busy"]}
    with pytest.raises(errors.NotFound):
        dispatch(ctx, "volume_rm", {"volumes": ["busy"]}, emit)
    assert dispatch(ctx, "volume_rm", {"volumes": ["busy"], "force": True}, emit) == {"removed": []}


def test_a_mount_that_resolves_into_proc_is_refused_at_start(env, layers):
    """runc checks the resolved destination too: an image symlink or VOLUME cannot put a mount over procfs."""
    evil = env.tmp_path / "evil-layer"
    evil.mkdir()
    os.symlink("/proc", str(evil / "sneaky"))  # absolute: resolved inside the container's root, to its /proc
    host = env.tmp_path / "over-proc"
    host.mkdir()
    sneaky = dict(layers, lowerdirs=layers["lowerdirs"] + [str(evil)])
    for kw in ({"volume_flags": ["{}:/sneaky".format(host)]}, {"mount_flags": ["type=tmpfs,dst=/sneaky/sys"]}):
        rec = _create(env, sneaky, ["true"], **kw)
        with pytest.raises(errors.FailedPrecondition, match="cannot be mounted because it is"):
            env.start(rec["id"])
        assert env.lookup(rec["id"])["status"] == "created"
    with pytest.raises(errors.InvalidArgument, match="the image's VOLUME /proc/sys: .* inside /proc"):
        _create(env, layers, ["true"], image_volumes=["/proc/sys"])
    # what runc lets through: a file lxcfs emulates, and the rest of /proc is still procfs
    meminfo = env.tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 42 kB\n")
    _, code, out = _run(env, layers, ["sh", "-c", "cat /proc/meminfo; grep -c ^proc /proc/mounts"],
                        volume_flags=["{}:/proc/meminfo:ro".format(meminfo)])
    assert (code, out.splitlines()[0]) == (0, "MemTotal: 42 kB"), out
    assert int(out.splitlines()[1]) >= 1


def test_a_user_mount_over_sys_stays_masked_as_runc_masks_after_mounts(env, layers):
    """docker accepts -v /sys:/sys (the user's mount replaces the default one); runc still masks /sys/firmware."""
    if not os.listdir("/sys/firmware"):
        pytest.skip("this host's /sys/firmware is empty: nothing to see masked")
    link = env.tmp_path / "link-layer"
    link.mkdir()
    os.symlink("/sys", str(link / "s"))
    linked = dict(layers, lowerdirs=layers["lowerdirs"] + [str(link)])
    for lay, kw, path in ((layers, {"volume_flags": ["/sys:/sys:ro"]}, "/sys/firmware"),
                          (layers, {"mount_flags": ["type=bind,src=/sys/firmware,dst=/sys/firmware"]},
                           "/sys/firmware"),
                          (linked, {"volume_flags": ["/sys:/s"]}, "/sys/firmware")):
        _, code, out = _run(env, lay, ["sh", "-c", "ls -A {}; echo end".format(path)], **kw)
        assert (code, out) == (0, "end\n"), (kw, out)
