"""Atomic file writes (temp file, fsync, rename, fsync dir) and tolerant JSON reads."""

import json
import os


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path, data, mode=0o600, durable=True):
    """Write ``data`` to ``path`` so that readers see either the old or the whole new content.

    Private (0600) unless the caller says otherwise: config and state files carry secrets (a container's env).
    The only wider files under the state root are those bind-mounted into containers (state/perms.py).
    ``durable=False`` skips the two fsyncs (~0.3-1 ms each on ext4) for files every container start writes
    again before anything reads them (its /etc/hosts, resolv.conf): still atomic for readers, but a host crash
    may lose them, which the next start repairs.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    # A unique temp name without importing tempfile (~5 ms, paid by every payload command that writes state).
    tmp = os.path.join(directory, ".tmp-{}-{}".format(os.getpid(), os.urandom(6).hex()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(directory)


def write_json_atomic(path, obj, mode=0o600, durable=True):
    """Serialise ``obj`` as JSON and write it atomically (``durable``: see ``write_bytes_atomic``)."""
    data = json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n"
    write_bytes_atomic(path, data, mode, durable)


def read_json(path, default=None):
    """Read JSON from ``path``; return ``default`` if the file does not exist."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode())
    except FileNotFoundError:
        return default
