"""Safety and fidelity tests for the layer applier (agent_payload.image.unpack), with hand-made tars."""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from agent_payload import errors
from agent_payload.image import snapshots, unpack
from agent_payload.state.paths import Paths
from tests.helpers.tarlayers import MTIME, apply, dev, dirent, hard, make_tar, reg, sym


@pytest.fixture
def tree(tmp_path):
    """A target dir plus a sibling "outside" dir that must stay empty."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


def test_regular_files_modes_owners_times(tree):
    root, _ = tree
    apply(root, [dirent("usr/", 0o755), dirent("usr/bin/", 0o750, 7, 8),
                 reg("usr/bin/su", b"#!su", 0o4755), reg("usr/bin/wall", b"w", 0o2755, 0, 5),
                 reg("etc/motd", b"hello\n", 0o600, 1000, 1001)], gz=True)
    su = os.lstat(root / "usr/bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_mtime == MTIME
    assert stat.S_IMODE(os.lstat(root / "usr/bin/wall").st_mode) == 0o2755
    motd = os.lstat(root / "etc/motd")
    assert (motd.st_uid, motd.st_gid, stat.S_IMODE(motd.st_mode)) == (1000, 1001, 0o600)
    assert (root / "etc/motd").read_bytes() == b"hello\n"
    bindir = os.lstat(root / "usr/bin")
    assert (bindir.st_uid, bindir.st_gid, stat.S_IMODE(bindir.st_mode)) == (7, 8, 0o750)
    assert bindir.st_mtime == MTIME  # stamped after its children were created
    assert stat.S_IMODE(os.lstat(root / "etc").st_mode) == 0o755  # implicit parent


def test_leading_slash_and_dot_slash_are_stripped(tree):
    root, outside = tree
    apply(root, [reg("/abs/file", b"a"), reg("./rel/file", b"r"), reg(".//x", b"x")])
    assert (root / "abs/file").read_bytes() == b"a"
    assert (root / "rel/file").read_bytes() == b"r"
    assert (root / "x").read_bytes() == b"x"
    assert list(outside.iterdir()) == []


# vfs_cap_data revision 2, effective, permitted = CAP_NET_RAW (13): binary with NULs, as ping ships it.
CAP_NET_RAW = b"\x01\x00\x00\x02" + b"\x00\x20\x00\x00" + b"\x00" * 12


def test_symlinks_verbatim_hardlinks_devices_fifo_xattrs(tree):
    root, _ = tree
    apply(root, [reg("bin/busybox", b"BB", 0o755, pax={"SCHILY.xattr.security.capability": CAP_NET_RAW.decode(),
                                                      "SCHILY.xattr.user.note": "hi"}),
                 sym("bin/sh", "/bin/busybox"), sym("lib", "usr/lib"),
                 hard("bin/ls", "bin/busybox"), hard("/bin/cat", "/bin/busybox"),
                 dev("dev/null", tarfile.CHRTYPE, 1, 3), dev("dev/loop0", tarfile.BLKTYPE, 7, 0, 0o660),
                 dev("run/fifo", tarfile.FIFOTYPE, 0, 0, 0o620)])
    assert os.readlink(root / "bin/sh") == "/bin/busybox"  # absolute target kept, never followed here
    assert os.readlink(root / "lib") == "usr/lib"
    bb = os.lstat(root / "bin/busybox")
    assert os.lstat(root / "bin/ls").st_ino == bb.st_ino == os.lstat(root / "bin/cat").st_ino
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(root / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and os.major(loop.st_rdev) == 7
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert os.getxattr(root / "bin/busybox", "security.capability") == CAP_NET_RAW


def test_forged_overlay_xattrs_are_dropped(tree):
    root, _ = tree
    apply(root, [dirent("d/"), reg("d/f", b"", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})])
    assert "trusted.overlay.opaque" not in os.listxattr(root / "d/f")


def test_whiteout_and_opaque(tree):
    root, _ = tree
    apply(root, [dirent("etc/"), reg("etc/.wh.passwd"), dirent("var/"), dirent("var/cache/"),
                 reg("var/cache/.wh..wh..opq"), reg("var/cache/new", b"n"), reg(".wh..wh.plnk")])
    wh = os.lstat(root / "etc/passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert os.getxattr(root / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (root / "var/cache/new").read_bytes() == b"n"
    names = [n for _, dirs, files in os.walk(root) for n in dirs + files]
    assert not [n for n in names if n.startswith(".wh.")]


def test_whiteout_does_not_hide_same_layer_entry(tree):
    root, _ = tree
    apply(root, [reg("a", b"keep"), reg(".wh.a")])
    assert (root / "a").read_bytes() == b"keep"


def test_directory_replaces_file_and_file_replaces_directory(tree):
    root, _ = tree
    apply(root, [reg("x", b"file"), dirent("x/"), reg("x/in", b"i"), dirent("y/"), reg("y/z", b""), reg("y", b"F")])
    assert (root / "x/in").read_bytes() == b"i"
    assert (root / "y").read_bytes() == b"F"


ESCAPES = {
    "dotdot": [reg("../x", b"evil")],
    "dotdot_nested": [reg("a/../../x", b"evil")],
    "abs_dotdot": [reg("/../x", b"evil")],
    "symlink_then_file_through_it": [sym("link", "OUTSIDE"), reg("link/x", b"evil")],
    "relative_symlink_then_file": [sym("link", "../outside"), reg("link/x", b"evil")],
    "hardlink_outside_dotdot": [hard("h", "../outside/target")],
    "hardlink_absolute_not_extracted": [hard("h", "OUTSIDE/target")],
    "hardlink_to_symlink": [sym("s", "OUTSIDE/target"), hard("h", "s")],
    "dir_replaced_by_symlink_then_file": [dirent("d/"), reg("d/f", b"ok"), sym("d", "OUTSIDE"), reg("d/x", b"evil")],
    "dir_replaced_by_symlink_then_hardlink": [dirent("d/"), reg("d/f", b"ok"), sym("d", "OUTSIDE"),
                                              hard("h", "d/f")],
    "hardlink_into_symlinked_dir": [reg("f", b"ok"), sym("d", "OUTSIDE"), hard("d/h", "f")],
    # the applier caches resolved parent dirs: replacing an ancestor must drop the cached descendants too
    "ancestor_replaced_by_symlink_then_deep_file": [dirent("d/"), dirent("d/e/"), reg("d/e/f", b"ok"),
                                                    sym("d", "OUTSIDE"), reg("d/e/x", b"evil")],
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escapes_refused_nothing_outside(tree, case):
    root, outside = tree
    (outside / "target").write_bytes(b"original")
    entries = []
    for ti, data in ESCAPES[case]:
        ti.linkname = ti.linkname.replace("OUTSIDE", str(outside))
        entries.append((ti, data))
    with pytest.raises(errors.InvalidArgument, match="refusing layer entry"):
        apply(root, entries, expected=False)
    assert sorted(p.name for p in outside.iterdir()) == ["target"]
    assert (outside / "target").read_bytes() == b"original"
    assert not (root.parent / "x").exists()


def test_symlink_replaced_by_dir_trick_stays_inside(tree):
    """A symlink to outside, then a directory of the same name, then a file in it: the symlink is replaced."""
    root, outside = tree
    apply(root, [sym("d", str(outside)), dirent("d/"), reg("d/x", b"inside")])
    assert not os.path.islink(root / "d")
    assert (root / "d/x").read_bytes() == b"inside"
    assert list(outside.iterdir()) == []


def test_diff_id_mismatch_refused(tree):
    root, _ = tree
    data, _ = make_tar([reg("f", b"x")])
    with pytest.raises(errors.FailedPrecondition, match="diff_id mismatch"):
        unpack.apply_layer(io.BytesIO(data), str(root), "", "sha256:" + "0" * 64)


def test_diff_id_mismatch_leaves_no_snapshot(tmp_path):
    paths = Paths(root=str(tmp_path / "state"), config_dir=str(tmp_path / "cfg"))
    snaps = snapshots.SnapshotStore(paths)
    data, real = make_tar([reg("f", b"x")], gz=True)
    bad = "sha256:" + "1" * 64

    def apply_fn(fs):
        unpack.apply_layer(io.BytesIO(data), fs, "", bad)

    with pytest.raises(errors.FailedPrecondition):
        snaps.ensure(bad, None, bad, apply_fn)
    assert snaps.lookup(bad) is None
    assert [n for n in os.listdir(paths.snapshots) if n != "index.json"] == []
    # The right diff_id commits under a short directory name, once.
    fs, created = snaps.ensure(real, None, real, lambda fs: unpack.apply_layer(io.BytesIO(data), fs, "", real))
    assert created and fs == os.path.join(paths.snapshots, "1", "fs")
    assert snaps.ensure(real, None, real, None) == (fs, False)


def test_chain_ids():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256((a + " " + b).encode()).hexdigest()
    assert snapshots.chain_ids([a, b]) == [a, expected]


def test_zstd_is_a_clear_error(tree):
    root, _ = tree
    with pytest.raises(errors.FailedPrecondition, match="zstd"):
        unpack.apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 64), str(root))


def test_corrupt_gzip_is_invalid(tree):
    root, _ = tree
    data, _ = make_tar([reg("f", b"x" * 1000)], gz=True)
    with pytest.raises(errors.InvalidArgument, match="corrupt layer"):
        unpack.apply_layer(io.BytesIO(data[:40]), str(root))
