"""agent_payload/fs.py: the one no-symlink directory walk and the one hard-link-aware tree size."""

import errno
import os

import pytest

from agent_payload import fs


@pytest.fixture
def root(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("/etc", str(tmp_path / "a" / "link"))
    fd = os.open(str(tmp_path), os.O_PATH | os.O_DIRECTORY)
    yield tmp_path, fd
    os.close(fd)


def test_walks_to_a_directory_and_creates_only_when_asked(root):
    path, fd = root
    sub = fs.open_beneath(fd, ["a", "b"])
    try:
        assert os.path.samestat(os.fstat(sub), os.stat(str(path / "a" / "b")))
    finally:
        os.close(sub)
    with pytest.raises(FileNotFoundError):
        fs.open_beneath(fd, ["a", "new"])
    os.close(fs.open_beneath(fd, ["a", "new", "deeper"], os.O_RDONLY, mode=0o750))
    assert oct(os.stat(str(path / "a" / "new" / "deeper")).st_mode & 0o777) == oct(0o750 & ~_umask())


def test_never_follows_a_symlink_and_names_the_component(root):
    _path, fd = root
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as info:
        fs.open_beneath(fd, ["a", "link", "ssl"], mode=0o755)
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR) and info.value.filename == "link"
    assert not os.path.exists("/etc/ssl/x") and set(os.listdir("/proc/self/fd")) <= before  # no fd leaked


def test_tree_size_counts_hard_links_once_and_symlinks_by_their_own_size(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 1000)
    os.link(str(tmp_path / "d" / "f"), str(tmp_path / "g"))
    os.symlink("d/f", str(tmp_path / "s"))  # 3 bytes of its own
    os.symlink("d", str(tmp_path / "sd"))  # a symlink to a directory is not walked into
    assert fs.tree_size(str(tmp_path)) == 1000 + 3 + 1
    assert fs.tree_size(str(tmp_path / "missing")) == 0


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
