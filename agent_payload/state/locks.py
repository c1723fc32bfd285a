"""Advisory file locks (flock) guarding read-modify-write of shared state."""

import contextlib
import fcntl
import os


@contextlib.contextmanager
def locked(path, shared=False):
    """Hold an exclusive (or shared) flock on ``path`` for the duration of the block."""
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)
