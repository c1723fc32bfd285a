"""The state root is private: 0710, state files 0600, checked with one stat per command, repaired once."""

import os
import stat
import subprocess
import sys

import pytest

from agent_payload.state import locks, perms, store
from agent_payload.state.paths import Paths

CID = "a" * 64
OLD = "b" * 64


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


def _paths(tmp_path):
    return Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc"), run=str(tmp_path / "run"))


def test_a_fresh_root_is_0710_with_private_dirs_whatever_the_umask(tmp_path, umask0):
    paths = _paths(tmp_path)
    assert perms.ensure_root(paths)
    assert _mode(paths.root) == 0o710 and os.stat(paths.root).st_uid == os.geteuid()
    for name, mode in perms.TOP_DIRS:
        if name != "payload":  # the upload's
            assert _mode(os.path.join(paths.root, name)) == mode, name
    assert not perms.ensure_root(paths)  # set up: nothing more to do


def test_state_files_are_0600_by_default_and_lock_dirs_0700(tmp_path, umask0):
    store.write_json_atomic(str(tmp_path / "d" / "config.json"), {"env": ["SECRET=x"]})
    assert _mode(tmp_path / "d" / "config.json") == 0o600
    store.write_bytes_atomic(str(tmp_path / "d" / "hosts"), b"127.0.0.1 localhost\n", mode=0o644)
    assert _mode(tmp_path / "d" / "hosts") == 0o644
    with locks.locked(str(tmp_path / "locks" / "x.lock")):
        pass
    assert _mode(tmp_path / "locks") == 0o700 and _mode(tmp_path / "locks" / "x.lock") == 0o600


def test_the_warm_check_is_one_stat_and_no_walk(tmp_path, monkeypatch):
    paths = _paths(tmp_path)
    perms.ensure_root(paths)
    calls = []
    for name in ("stat", "lstat", "listdir", "scandir", "chmod", "walk"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    assert not perms.ensure_root(paths)
    assert calls == ["stat"]


def _old_layout(paths, umask0):
    """What older versions left: everything 0755/0644 (0777/0666 at umask 000)."""
    mode_d, mode_f = (0o777, 0o666) if umask0 else (0o755, 0o644)

    def d(*parts):
        p = os.path.join(paths.root, *parts)
        os.makedirs(p, exist_ok=True)
        for i in range(len(parts) + 1):
            os.chmod(os.path.join(paths.root, *parts[:i]), mode_d)
        return p

    def f(*parts, data="{}"):
        p = os.path.join(paths.root, *parts)
        with open(p, "w") as fh:
            fh.write(data)
        os.chmod(p, mode_f)
        return p

    d()
    d("containers", CID)
    for name in ("config.json", "state.json", CID + "-json.log", "shim.pid", "hosts", "resolv.conf", "hostname"):
        f("containers", CID, name, data='{"env": ["SECRET=hunter2"]}')
    d("containers", CID, "rootfs", "etc")
    f("containers", CID, "rootfs", "etc", "passwd")  # container content: untouched
    d("containers", ".removed", OLD)
    for name in ("config.json", "state.json", OLD + "-json.log"):
        f("containers", ".removed", OLD, name, data='{"env": ["SECRET=hunter2"]}')
    d("volumes", "v1", "_data")
    f("volumes", "v1", "volume.json")
    f("volumes", "v1", "_data", "index.html")  # volume data: untouched
    d("networks", "n1", "ipam")
    f("networks", "n1", "network.json")
    f("networks", "n1", "ipam", "10.0.0.2")
    d("images")
    f("images", "index.json")
    d("snapshots", "c1", "fs", "bin")
    f("snapshots", "index.json")
    f("snapshots", "c1", "fs", "bin", "sh")  # layer content: untouched
    d("content", "blobs", "sha256")
    d("content", "ingest")
    f("content", "ingest", "partial")
    d("locks")
    f("locks", "containers.lock")
    d("tmp")
    f("tmp", "cp-1.tar")
    d("deploys", "work")
    f("deploys", "journal.jsonl")  # the deploy journal (who deployed what) and a swap's progress
    f("deploys", "work", "progress")
    d("payload")
    os.makedirs(paths.run + "/netns", exist_ok=True)
    os.chmod(paths.run, mode_d)


@pytest.mark.parametrize("umask0_layout", [False, True])
def test_a_root_from_an_older_version_is_repaired_once(tmp_path, umask0_layout):
    paths = _paths(tmp_path)
    _old_layout(paths, umask0_layout)
    data = 0o777 if umask0_layout else 0o755
    data_f = 0o666 if umask0_layout else 0o644
    assert perms.ensure_root(paths)
    r = paths.root
    assert _mode(r) == 0o710
    for name, mode in perms.TOP_DIRS:
        assert _mode(os.path.join(r, name)) == mode, name
    c = os.path.join(r, "containers", CID)
    assert _mode(c) == 0o710
    for name in ("config.json", "state.json", CID + "-json.log", "shim.pid"):
        assert _mode(os.path.join(c, name)) == 0o600, name
    for name in perms.SHARED_FILES:  # bind-mounted into the container: readable there by any user
        assert _mode(os.path.join(c, name)) == 0o644, name
    tomb = os.path.join(r, "containers", ".removed")
    assert _mode(tomb) == 0o700 and _mode(os.path.join(tomb, OLD)) == 0o700
    for name in os.listdir(os.path.join(tomb, OLD)):
        assert _mode(os.path.join(tomb, OLD, name)) == 0o600, name
    assert _mode(os.path.join(r, "volumes", "v1", "volume.json")) == 0o600
    for p in ("networks/n1", "networks/n1/ipam"):
        assert _mode(os.path.join(r, p)) == 0o700, p
    for p in ("networks/n1/network.json", "networks/n1/ipam/10.0.0.2", "images/index.json", "snapshots/index.json",
              "content/ingest/partial", "locks/containers.lock", "tmp/cp-1.tar", "deploys/journal.jsonl",
              "deploys/work/progress"):
        assert _mode(os.path.join(r, p)) == 0o600, p
    assert _mode(paths.run) == 0o700
    # data that belongs to containers and images keeps its own modes
    for p in ("containers/{}/rootfs/etc/passwd".format(CID), "volumes/v1/_data/index.html", "snapshots/c1/fs/bin/sh"):
        assert _mode(os.path.join(r, p)) == data_f, p
    for p in ("volumes/v1/_data", "snapshots/c1/fs/bin", "containers/{}/rootfs".format(CID)):
        assert _mode(os.path.join(r, p)) == data, p
    assert not perms.ensure_root(paths)


def test_the_event_journal_is_private_and_an_open_one_is_repaired(tmp_path, umask0):
    paths = _paths(tmp_path)
    from agent_payload import events
    events.record(paths, "container", "create", CID, {"name": "web", "secret-label": "x"})
    assert _mode(os.path.join(paths.root, "events")) == 0o700
    assert _mode(events.journal_path(paths)) == 0o600
    os.chmod(os.path.join(paths.root, "events"), 0o755)  # an older version's, or a hand-made one
    os.chmod(events.journal_path(paths), 0o644)
    os.chmod(paths.root, 0o755)
    assert perms.ensure_root(paths)
    assert _mode(os.path.join(paths.root, "events")) == 0o700
    assert _mode(events.journal_path(paths)) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_root_owned_by_someone_else_is_refused_not_chowned(tmp_path):
    paths = _paths(tmp_path)
    os.makedirs(paths.root)
    os.chown(paths.root, 65534, 65534)
    with pytest.raises(perms.StateRootError, match="owned by uid 65534"):
        perms.ensure_root(paths)
    assert os.stat(paths.root).st_uid == 65534 and _mode(paths.root) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_root_with_another_group_is_taken_back(tmp_path):
    paths = _paths(tmp_path)
    os.makedirs(paths.root, 0o710)
    os.chmod(paths.root, 0o710)
    os.chown(paths.root, 0, 65534)  # 0710 would let that group in
    assert perms.ensure_root(paths)
    st = os.stat(paths.root)
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (os.getegid(), 0o710)


def test_every_command_checks_the_root_and_the_error_names_it(tmp_path):
    """By hand and over --rpc, the payload's entry sets the root up (and reports a root it refuses)."""
    root = tmp_path / "root"
    env = dict(os.environ, FLEET_ROOT=str(root), FLEET_CONFIG_DIR=str(tmp_path / "etc"))
    src = os.path.dirname(os.path.dirname(os.path.abspath(perms.__file__)))
    cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, {!r}); from agent_payload.cli import main; "
           "sys.exit(main())".format(os.path.dirname(src))]
    root.mkdir(mode=0o755)
    subprocess.run(cmd + ["ps", "-a"], env=env, check=True, capture_output=True, umask=0)
    assert _mode(root) == 0o710
    if os.geteuid() == 0:
        os.chown(root, 65534, 65534)
        proc = subprocess.run(cmd + ["--rpc"], env=env, capture_output=True, text=True,
                              input='{"protocol": 1, "payload": "dev", "op": "ping"}')
        assert '"FailedPrecondition"' in proc.stdout and str(root) in proc.stdout, proc.stdout + proc.stderr


def test_a_root_from_an_older_version_gets_a_private_checks_dir(tmp_path):
    """checks/ (the check op's last-seen counters): 0700, its files 0600, like deploys/."""
    paths = _paths(tmp_path)
    os.makedirs(os.path.join(paths.root, "checks"), 0o755)
    for p in (paths.root, os.path.join(paths.root, "checks")):
        os.chmod(p, 0o755)
    counters = os.path.join(paths.root, "checks", "counters.json")
    with open(counters, "w") as f:
        f.write("{}")
    os.chmod(counters, 0o644)
    assert perms.ensure_root(paths)
    assert _mode(os.path.join(paths.root, "checks")) == 0o700 and _mode(counters) == 0o600
