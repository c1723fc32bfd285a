"""state/locks.py: flocks whose files may be deleted, and directories deleted by processes that may die."""

import fcntl
import os
import threading
import time

from agent_payload.state import locks


def _wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _blocked_on(path):
    """True once some thread waits on the flock of ``path`` (/proc/locks shows a blocked '->' entry)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[-3].endswith(":{}".format(ino)) for line in f)


def test_unlinking_a_held_lock_file_never_gives_two_holders(tmp_path):
    """A waiter queued on a lock file that its holder deletes must not end up holding the dead inode while a
    third process locks a fresh file: it starts over on the current file."""
    path = str(tmp_path / "locks" / "container-x.lock")
    got = {}
    with locks.locked(path):
        waiter_done = threading.Event()
        release_waiter = threading.Event()

        def waiter():
            with locks.locked(path) as fd:
                got["waiter"] = os.fstat(fd).st_ino
                waiter_done.set()
                release_waiter.wait(10)

        t = threading.Thread(target=waiter)
        t.start()
        assert _wait_until(lambda: _blocked_on(path))
        os.unlink(path)  # as the removal of a container does, while holding the lock
    assert waiter_done.wait(5)
    try:
        # a third comer must wait for the waiter: it locks the same (current) file
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                third_got_it = True
            except BlockingIOError:
                third_got_it = False
        finally:
            os.close(fd)
        assert not third_got_it, "two processes hold the same lock"
        assert os.stat(path).st_ino == got["waiter"]
    finally:
        release_waiter.set()
        t.join(5)


def test_remove_if_deletes_the_file_under_the_lock_and_reap_spares_held_ones(tmp_path):
    path = str(tmp_path / "l" / "obj.lock")
    with locks.locked(path, remove_if=lambda: False):
        pass
    assert os.path.exists(path)
    with locks.locked(path, remove_if=lambda: True):
        assert os.path.exists(path)
    assert not os.path.exists(path)
    with locks.locked(path):
        assert locks.held(path)
        assert locks.reap(path, lambda: True) is False  # in use: kept
    assert not locks.held(path)
    assert locks.reap(path, lambda: False) is False and os.path.exists(path)
    assert locks.reap(path, lambda: True) is True and not os.path.exists(path)
    assert not locks.held(path)


def test_remove_tree_and_reap_dirs(tmp_path):
    d = tmp_path / "obj"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    assert locks.remove_tree(str(d)) is True
    assert os.listdir(str(tmp_path)) == []
    assert locks.remove_tree(str(d)) is False
    # a remover killed midway left its trash; a live remover's trash is held and kept
    dead = tmp_path / ".trash-dead"
    (dead / "a").mkdir(parents=True)
    live = tmp_path / ".trash-live"
    live.mkdir()
    other = tmp_path / "keep"
    other.mkdir()
    fd = os.open(str(live), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert locks.reap_dirs(str(tmp_path)) == [".trash-dead"]
    finally:
        os.close(fd)
    assert sorted(os.listdir(str(tmp_path))) == [".trash-live", "keep"]
    assert locks.reap_dirs(str(tmp_path)) == [".trash-live"]


def test_reap_temp_files_of_dead_writers_only(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a PID that just ended
    for name in (".tmp-{}-0a1b".format(dead), ".tmp-{}-0a1b".format(os.getpid()), "state.json", ".tmp-x"):
        (tmp_path / name).write_text("{}")
    if not os.path.exists("/proc/" + dead):
        assert locks.reap_temp_files(str(tmp_path)) == [".tmp-{}-0a1b".format(dead)]
    assert sorted(os.listdir(str(tmp_path))) == sorted([".tmp-{}-0a1b".format(os.getpid()), "state.json", ".tmp-x"])
