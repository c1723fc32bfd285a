"""Advisory file locks (flock) guarding read-modify-write of shared state.

A lock file may be deleted (a removed container's ``locks/container-<id>.lock``), but only by a process that
holds its exclusive lock (``locked(..., remove_if=...)``). Every acquirer checks, once it holds the flock, that
the path still names the very inode it locked, and starts over if not: a waiter that was queued on a file
someone unlinked would otherwise "hold" a lock on a dead inode while a third process creates a fresh file and
locks that one (two holders). With the check, unlinking a held lock file is safe at any time.

A flock is also the payload's "owner alive" test: the kernel drops it when its holder dies, whatever the PID
is reused for (``held``).
"""

import contextlib
import errno
import fcntl
import os
import re
import shutil


def same_file(fd, path):
    """True while ``path`` still names the file open as ``fd`` (not unlinked, not replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def acquire(path, shared=False, blocking=True):
    """An fd holding an exclusive (or shared) flock on ``path``, creating the file if needed; None when
    ``blocking`` is false and someone else holds it. Close the fd to release."""
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, mode)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and not blocking:
                    os.close(fd)
                    return None
                raise
            if same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the file was unlinked (or replaced) while we waited: lock the current one


def unlink_held(path, fd):
    """Delete the lock file ``path`` whose exclusive lock ``fd`` holds (waiters then start over on a new file)."""
    if same_file(fd, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def locked(path, shared=False, remove_if=None):
    """Hold an exclusive (or shared) flock on ``path`` for the duration of the block.

    ``remove_if`` (exclusive locks only): called at the end of the block, lock still held; if it returns true
    the lock file is deleted before the lock is released (the object it guarded is gone).
    """
    if remove_if is not None and shared:
        raise ValueError("only an exclusive lock holder may remove its lock file")
    fd = acquire(path, shared)
    try:
        yield fd
    finally:
        try:
            if remove_if is not None and remove_if():
                unlink_held(path, fd)
        finally:
            os.close(fd)


def reap(path, gone):
    """Delete the lock file ``path`` if nobody holds it and ``gone()`` (checked under the lock) says its object
    no longer exists; never waits. Returns True if it was deleted."""
    fd = acquire(path, blocking=False)
    if fd is None:
        return False
    try:
        if gone():
            unlink_held(path, fd)
            return True
        return False
    finally:
        os.close(fd)


def held(path):
    """True if some process holds a lock on ``path`` (a file or directory: the owner of what it guards is alive)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False


# ---------------------------------------------------------------- directories deleted by a process that may die

TRASH = ".trash-"


def remove_tree(path):
    """Delete directory ``path`` so that its name is free at once and nothing is ever seen half-deleted under it.

    The directory is flocked, renamed to a sibling ``.trash-<random>`` and deleted there; the flock marks the
    trash as owned until then. A kill midway leaves a ``.trash-*`` nobody holds: ``reap_dirs`` deletes it.
    Returns False if ``path`` was not there (or someone else removed it meanwhile).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not same_file(fd, path):
            return False  # removed (and maybe made anew) while we waited: not ours to delete
        trash = os.path.join(os.path.dirname(path), TRASH + os.urandom(8).hex())
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def reap_dirs(parent, prefixes=(TRASH,)):
    """Delete every directory in ``parent`` named ``<prefix>*`` whose owner is gone (nobody holds its flock).

    Only for names whose owner flocks them before they appear (``remove_tree``'s trash), or whose owners all
    hold a lock the caller holds now (then every such directory is a dead writer's). Returns the names deleted.
    """
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return []
    reaped = []
    for name in names:
        if not name.startswith(tuple(prefixes)):
            continue
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, OSError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its owner is alive and deleting it
        try:
            shutil.rmtree(path, ignore_errors=True)
            reaped.append(name)
        finally:
            os.close(fd)
    return reaped


_TEMP_FILE_RE = re.compile(r"^\.tmp-(\d+)-[0-9a-f]+$")


def reap_temp_files(directory):
    """Delete ``.tmp-<pid>-<hex>`` files (``store.write_bytes_atomic``'s) whose writer is dead.

    The writer names its temp file with its own PID and nothing in another PID namespace writes state, so a
    PID that no longer exists means a dead writer; a reused PID only delays the reaping. Returns the names.
    """
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    reaped = []
    for name in names:
        m = _TEMP_FILE_RE.match(name)
        if m and not os.path.exists("/proc/" + m.group(1)):
            try:
                os.unlink(os.path.join(directory, name))
                reaped.append(name)
            except (FileNotFoundError, IsADirectoryError):
                pass
    return reaped
