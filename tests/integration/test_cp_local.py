"""``cp_in``/``cp_out`` at the payload level on this machine (root): running and stopped containers."""

import io
import os

import pytest

from agent_payload import archive, errors
from tests.helpers import images as fx
from tests.helpers.images import _container, _layer_with_links, op

env = fx.env  # the fixture: private FLEET_ROOT with a busybox image, cleanup of every process and mount


def _image(fx):
    return fx.image(["bb:1"], [_layer_with_links(), {"etc/msg": b"hello\n", "data/a": b"A\n", "data/sub/b": b"B\n"}])


def _stage(fx, src, base=None):
    """Tar a local path into a staging file as the controller would upload it -> (path, base, is_dir)."""
    base = base or archive.base_name(src)
    buf = io.BytesIO()
    info = archive.write_tree(buf, src, base)
    os.makedirs(fx.paths.tmp, exist_ok=True)
    path = os.path.join(fx.paths.tmp, "cp-test-{}.tar".format(len(os.listdir(fx.paths.tmp))))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path, base, info["type"] == "dir"


def cp_in(fx, container, src, dest, keep=False):
    staging, base, is_dir = _stage(fx, src)
    contents = archive.contents_only(src)
    try:
        return op(fx, "cp_in", container=container, path=dest, staging=staging, base=base, is_dir=is_dir,
                  contents=contents, archive=keep)
    finally:
        assert not os.path.exists(staging)


def cp_out(fx, container, src, dest, follow=False):
    out = op(fx, "cp_out", container=container, path=src, follow_link=follow)
    try:
        st = os.stat(dest) if os.path.exists(dest) else None
        where, new = archive.plan(out["type"] == "dir", out["base"], archive.contents_only(src), dest,
                                  archive.kind_of(st))
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with open(out["staging"], "rb") as f:
                archive.extract(f, fd, out["base"], new, owner=None, keep_owner=True)
        finally:
            os.close(fd)
    finally:
        os.unlink(out["staging"])
    return out


def _sh(fx, cid, script):
    res = op(fx, "exec", container=cid, command=["/bin/sh", "-c", script])
    return res["exit_code"]


@pytest.fixture
def local(tmp_path):
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "file.txt").write_text("local file\n")
    (src / "dir" / "one").write_text("1\n")
    (src / "dir" / "sub" / "two").write_text("2\n")
    os.chown(str(src / "file.txt"), 1234, 4321)
    os.chown(str(src / "dir" / "one"), 1234, 4321)
    return src


def test_cp_into_running_container_lands_in_merged_view(env, local):
    _image(env)
    cid = _container(env, "bb:1", ["/bin/sleep", "60"])
    env.rt.start(cid)
    try:
        cp_in(env, cid, str(local / "file.txt"), "/etc/")  # into a dir, keeps its name
        cp_in(env, cid, str(local / "file.txt"), "/tmp-renamed.txt")  # file to new file
        cp_in(env, cid, str(local / "dir"), "/data")  # dir into existing dir -> /data/dir
        cp_in(env, cid, str(local / "dir") + "/.", "/data/sub")  # contents only
        cp_in(env, cid, str(local / "dir"), "/newdir")  # missing dest -> created with the contents
        cp_in(env, cid, str(local / "dir" / "one"), "/data/a")  # file over file
        cp_in(env, cid, str(local / "file.txt"), "/kept.txt", keep=True)
        check = ("test \"$(cat /etc/file.txt)\" = 'local file' && test -f /tmp-renamed.txt && "
                 "test \"$(cat /data/dir/sub/two)\" = 2 && test \"$(cat /data/sub/one)\" = 1 && "
                 "test \"$(cat /data/sub/b)\" = B && test \"$(cat /newdir/sub/two)\" = 2 && test ! -e /newdir/dir && "
                 "test \"$(cat /data/a)\" = 1 && test \"$(stat -c %u:%g /etc/file.txt)\" = 0:0 && "
                 "test \"$(stat -c %u:%g /kept.txt)\" = 1234:4321 && test \"$(stat -c %u:%g /data/dir/one)\" = 0:0")
        assert _sh(env, cid, check) == 0
    finally:
        env.rt.stop([cid], time=1)


def test_cp_into_stopped_container_and_out(env, local, tmp_path):
    _image(env)
    (tmp_path / "host").mkdir()
    cid = _container(env, "bb:1", ["/bin/sh", "-c", "echo made > /made; ln -s /etc /etclink; ln -s / /rootlink; "
                                   "ln -s {} /hostlink".format(tmp_path / "host")])
    env.rt.start(cid)
    assert env.rt.wait(cid, timeout=30) == 0
    cp_in(env, cid, str(local / "dir"), "/data")
    upper = os.path.join(env.paths.container_dir(cid), "diff")
    assert open(os.path.join(upper, "data", "dir", "sub", "two")).read() == "2\n"
    # the overlay mount of the copy is gone with its namespace
    assert not any(" {} ".format(os.path.join(env.paths.container_dir(cid), "rootfs")) in line
                   for line in open("/proc/self/mountinfo"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cp_out(env, cid, "/made", str(out_dir))
    assert (out_dir / "made").read_text() == "made\n"
    cp_out(env, cid, "/data", str(out_dir / "copy"))
    assert (out_dir / "copy" / "dir" / "sub" / "two").read_text() == "2\n"
    assert (out_dir / "copy" / "a").read_text() == "A\n"
    cp_out(env, cid, "/etclink", str(out_dir))
    assert os.readlink(str(out_dir / "etclink")) == "/etc"
    cp_out(env, cid, "/etclink", str(out_dir / "followed"), follow=True)  # -L: the directory it points at
    assert (out_dir / "followed" / "msg").read_text() == "hello\n"
    cp_out(env, cid, "/etclink/msg", str(out_dir / "msg"))  # a symlink on the way resolves inside the container
    assert (out_dir / "msg").read_text() == "hello\n"
    # escapes stay inside the container root: /rootlink/.. and ../../ are the container's /
    cp_out(env, cid, "/rootlink/../../../etc/msg", str(out_dir / "msg2"))
    assert (out_dir / "msg2").read_text() == "hello\n"
    cp_in(env, cid, str(local / "file.txt"), "/rootlink/../../../../data/")
    assert open(os.path.join(upper, "data", "file.txt")).read() == "local file\n"
    # a container symlink to a host directory resolves inside the container: nothing reaches the host dir
    with pytest.raises(errors.NotFound, match="no such directory"):
        cp_in(env, cid, str(local / "file.txt"), "/hostlink/")
    with pytest.raises(errors.NotFound, match="Could not find the file"):
        cp_in(env, cid, str(local / "file.txt"), "/hostlink/x")
    assert os.listdir(str(tmp_path / "host")) == []


def test_cp_errors(env, local, tmp_path):
    _image(env)
    cid = _container(env, "bb:1", ["/bin/true"])
    with pytest.raises(errors.NotFound, match="Could not find the file /nope in container"):
        op(env, "cp_out", container=cid, path="/nope")
    with pytest.raises(errors.NotFound, match="No such container: ghost"):
        op(env, "cp_out", container="ghost", path="/etc")
    with pytest.raises(errors.NotFound, match="Could not find the file /no/such in container"):
        cp_in(env, cid, str(local / "file.txt"), "/no/such/x")
    with pytest.raises(errors.InvalidArgument, match="cannot copy directory"):
        cp_in(env, cid, str(local / "dir"), "/etc/msg")
    with pytest.raises(errors.NotFound, match="no such directory"):
        cp_in(env, cid, str(local / "file.txt"), "/missing/")
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        op(env, "cp_out", container=cid, path="/etc/msg/")
    with pytest.raises(errors.InvalidArgument, match="staging file"):
        op(env, "cp_in", container=cid, path="/", staging="/etc/passwd", base="x", is_dir=False)
    assert not [n for n in os.listdir(env.paths.tmp) if n.startswith("cp-")]
    # a staging file a dead controller left behind goes once it is a day old
    old = os.path.join(env.paths.tmp, "cp-left.tar")
    open(old, "w").close()
    os.utime(old, (1, 1))
    out = op(env, "cp_out", container=cid, path="/etc/msg")
    assert not os.path.exists(old) and os.path.exists(out["staging"])
    os.unlink(out["staging"])
