"""The layer applier's fast paths keep the result identical: modes under any umask, owners under setgid
directories, names given twice in a layer, and the forward-only tar stream (tarstream.TarSource) across
chunk boundaries, concatenated gzip members and trailing bytes."""

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest

from agent_payload import errors
from agent_payload.image import tarstream, unpack
from tests.helpers.tarlayers import MTIME, apply, dirent, hard, make_tar, reg, sym

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to another group)")


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "root"
    d.mkdir()
    return d


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_modes_exact_under_a_restrictive_umask(root):
    old = os.umask(0o077)
    try:
        apply(root, [dirent("d/", 0o755), reg("d/f", b"f", 0o644), reg("d/w", b"w", 0o666),
                     dirent("open/", 0o777), reg("implicit/deep/g", b"g", 0o640), dirent("t/", 0o1777)])
    finally:
        os.umask(old)
    assert _mode(root / "d") == 0o755 and _mode(root / "d/f") == 0o644 and _mode(root / "d/w") == 0o666
    assert _mode(root / "open") == 0o777 and _mode(root / "t") == 0o1777
    assert _mode(root / "implicit") == _mode(root / "implicit/deep") == 0o755
    assert _mode(root / "implicit/deep/g") == 0o640
    assert os.lstat(root / "d/f").st_mtime == os.lstat(root / "d").st_mtime == MTIME


@root_only
def test_setgid_directory_children_get_the_layer_owner_not_the_inherited_group(root):
    apply(root, [dirent("s/", 0o2775, 0, 5), reg("s/f", b"x", 0o644, 0, 0), dirent("s/sub/", 0o755, 0, 0),
                 reg("s/sub/g", b"y", 0o644, 0, 0), sym("s/link", "f"), reg("s/imp/h", b"z", 0o644, 0, 0)])
    s = os.lstat(root / "s")
    assert (s.st_gid, _mode(root / "s")) == (5, 0o2775)
    for name in ("s/f", "s/sub", "s/sub/g", "s/link", "s/imp/h"):
        assert os.lstat(root / name).st_gid == 0, name
    assert _mode(root / "s/sub") == 0o755  # no setgid bit inherited from the parent
    assert _mode(root / "s/imp") == 0o755  # an implicit parent is 0755 too (its group is the inherited one)


@root_only
def test_setgid_directory_already_in_the_target(root):
    (root / "pre").mkdir()
    os.chown(root / "pre", 0, 5)
    os.chmod(root / "pre", 0o2775)
    apply(root, [reg("pre/f", b"x", 0o644, 0, 0), dirent("pre/d/", 0o755, 0, 0)])
    assert os.lstat(root / "pre/f").st_gid == 0 and os.lstat(root / "pre/d").st_gid == 0
    assert _mode(root / "pre/d") == 0o755


def test_names_given_twice_in_one_layer(root):
    apply(root, [reg("a", b"1"), reg("a", b"2", 0o600), dirent("d/", 0o700), dirent("d/", 0o750),
                 reg("t", b"target"), reg("h", b"old"), hard("h", "t"), sym("s", "one"), sym("s", "two"),
                 dirent("x/"), reg("x/in", b"i"), sym("x", "elsewhere"), dirent("x/", 0o711), reg("x/again", b"a")])
    assert (root / "a").read_bytes() == b"2" and _mode(root / "a") == 0o600
    assert _mode(root / "d") == 0o750 and os.lstat(root / "d").st_mtime == MTIME
    assert os.lstat(root / "h").st_ino == os.lstat(root / "t").st_ino and (root / "h").read_bytes() == b"target"
    assert os.readlink(root / "s") == "two"
    assert not os.path.islink(root / "x") and _mode(root / "x") == 0o711
    assert sorted(os.listdir(root / "x")) == ["again"] and os.lstat(root / "x").st_mtime == MTIME


def _entries():
    big = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of 512
    return [dirent("a/"), reg("a/big", big, 0o755), reg("a/empty"), reg("a/small", b"s" * 513),
            sym("a/l", "big"), hard("a/h", "a/big"), dirent("b/"), reg("b/c", b"c" * 100000)]


def _tree(path):
    out = {}
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else os.readlink(p) if os.path.islink(p) else ""
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_mtime, st.st_nlink, data)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_tiny_steps_give_the_same_tree_and_diff_id(tmp_path, monkeypatch, gz):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    data, diff_id = make_tar(_entries(), gz)
    assert unpack.apply_layer(io.BytesIO(data), str(a)) == diff_id
    monkeypatch.setattr(tarstream, "STEP", 7)  # every header and file crosses chunk boundaries
    assert unpack.apply_layer(io.BytesIO(data), str(b)) == diff_id
    assert _tree(a) == _tree(b) and len(_tree(a)) == 8


def test_concatenated_gzip_members_and_trailing_bytes_are_hashed(root):
    raw, _ = make_tar(_entries())
    raw += b"\0" * 4096  # past the end-of-archive marker: still part of the diff_id
    cut = len(raw) // 3
    data = gzip.compress(raw[:cut]) + gzip.compress(raw[cut:])
    assert unpack.apply_layer(io.BytesIO(data), str(root)) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (root / "b/c").read_bytes() == b"c" * 100000


def test_truncated_plain_tar_is_corrupt(root):
    data, _ = make_tar(_entries())
    with pytest.raises(errors.InvalidArgument, match="corrupt layer"):
        unpack.apply_layer(io.BytesIO(data[:5000]), str(root))


def test_source_reads_forward_only():
    data, _ = make_tar(_entries())
    src = tarstream.TarSource(io.BytesIO(data))
    assert src.read(3) == data[:3] and src.tell() == 3
    src.seek(600)
    assert src.read(10) == data[600:610]
    with pytest.raises(tarfile.StreamError):
        src.seek(5)
    src.drain()
    assert src.tell() == len(data) and src.read(1) == b""
    assert src.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
