"""runtime/records.py: the per-container lock file's life, and what killed payloads leave in containers/."""

import fcntl
import os

from agent_payload.runtime import reaper, records
from agent_payload.runtime.containers import Runtime
from agent_payload.state import store
from agent_payload.state.paths import Paths

CID = "c" * 64
OTHER = "d" * 64


def _container(paths, cid, config=True):
    os.makedirs(paths.container_dir(cid))
    if config:
        store.write_json_atomic(records.Layout(paths, cid).config, {"id": cid, "name": "n" + cid[:4],
                                                                     "created": records.format_ns()})
        records.write_state(paths, cid, records.initial_state())


def test_the_lock_file_goes_with_the_container(tmp_path):
    paths = Paths(root=str(tmp_path / "root"))
    _container(paths, CID)
    with records.container_lock(paths, CID):
        pass
    assert os.listdir(paths.locks) == ["container-{}.lock".format(CID)]  # kept while the container exists
    with records.container_lock(paths, CID):
        records.remove_dir(paths, CID)
    assert os.listdir(paths.locks) == []
    # `wait`/`logs` of an auto-removed container look it up once more: no lock file comes back
    try:
        reaper.load(paths, CID)
    except records.errors.NotFound:
        pass
    assert os.listdir(paths.locks) == []


def test_listing_reaps_partial_dirs_dead_trash_and_orphan_locks(tmp_path):
    paths = Paths(root=str(tmp_path / "root"))
    _container(paths, CID)
    _container(paths, OTHER, config=False)  # create killed before config.json
    os.makedirs(os.path.join(paths.containers, ".trash-0011", "diff"))  # rm killed inside the rmtree
    os.makedirs(paths.locks, exist_ok=True)
    gone = "e" * 64
    for cid in (CID, gone):  # a removal killed after the rename, before the lock file went
        open(records.lock_path(paths, cid), "w").close()
    busy = "f" * 64  # a lock someone holds right now is never deleted under them
    fd = os.open(records.lock_path(paths, busy), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert [r["id"] for r in Runtime(paths).all_records()] == [CID]
    finally:
        os.close(fd)
    assert sorted(os.listdir(paths.containers)) == [CID]
    assert sorted(n for n in os.listdir(paths.locks) if n.startswith("container-")) == sorted(
        ["container-{}.lock".format(c) for c in (CID, busy)])


def test_a_create_in_progress_is_left_alone(tmp_path):
    """A dir without config.json while its creator holds the names lock is being made: not reaped."""
    paths = Paths(root=str(tmp_path / "root"))
    _container(paths, OTHER, config=False)
    with records.names_lock(paths):
        reaper.reap(paths)
        assert os.listdir(paths.containers) == [OTHER]
    reaper.reap(paths)
    assert os.listdir(paths.containers) == []


def test_listing_reaps_a_killed_writers_temp_file(tmp_path):
    import subprocess
    import sys
    paths = Paths(root=str(tmp_path / "root"))
    _container(paths, CID)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftover = os.path.join(paths.container_dir(CID), ".tmp-{}-00ff".format(dead))
    open(leftover, "w").close()  # `rm -f` killed inside the state write
    Runtime(paths).all_records()
    assert not os.path.exists(leftover)


def test_a_create_killed_after_making_its_volumes_leaves_none(tmp_path):
    """`run -v /anon -v new:/n` killed between making the volumes and writing config.json: the next listing
    removes the partial dir and those volumes (a named one only if no container uses it since)."""
    from agent_payload.runtime import rootfs, volumes
    from agent_payload.runtime.spec import ContainerSpec

    paths = Paths(root=str(tmp_path / "root"))
    layer = tmp_path / "layer"
    layer.mkdir()
    spec = ContainerSpec(image="busybox:test", image_id="sha256:" + "ab" * 32, lowerdirs=[str(layer)],
                         argv=["true"], network="none", mounts=volumes.plan(["/anon", "new:/n", "old:/o"]))
    volumes.Volumes(paths).create("old")
    pid = os.fork()
    if pid == 0:  # the payload, killed right after the volumes were made (no except clause, no finally runs)
        rootfs.prepare = lambda *a, **kw: os._exit(9)
        try:
            Runtime(paths).create(spec)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    assert len(os.listdir(paths.containers)) == 1  # the partial dir
    assert len(volumes.Volumes(paths).list()) == 3  # old, new and the anonymous one
    assert Runtime(paths).all_records() == []
    assert os.listdir(paths.containers) == []
    assert [v["Name"] for v in volumes.Volumes(paths).list()] == ["old"]


def test_rm_v_killed_midway_never_leaves_volumes_nothing_refers_to(tmp_path):
    """`rm -v` removes the anonymous volumes before the container: a kill in between leaves the container
    (the next rm finishes the job), never an anonymous volume no container refers to."""
    from agent_payload.runtime import volumes
    from agent_payload.runtime.spec import ContainerSpec

    paths = Paths(root=str(tmp_path / "root"))
    layer = tmp_path / "layer"
    layer.mkdir()
    spec = ContainerSpec(image="busybox:test", image_id="sha256:" + "ab" * 32, lowerdirs=[str(layer)],
                         argv=["true"], network="none", mounts=volumes.plan(["/anon"]))
    cid = Runtime(paths).create(spec)["id"]
    pid = os.fork()
    if pid == 0:  # killed at the step that removes the volumes
        volumes.Volumes.remove_anonymous = lambda *a, **kw: os._exit(9)
        try:
            Runtime(paths).remove([cid], volumes=True)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    try:
        Runtime(paths).remove([cid], volumes=True)  # the next rm
    except records.errors.NotFound:
        pass
    assert Runtime(paths).all_records() == [] and volumes.Volumes(paths).list() == []
