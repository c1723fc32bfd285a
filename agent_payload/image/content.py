"""Content-addressed blob store (containerd style): ingest to a temp file, verify size and sha256, rename in."""

import hashlib
import io
import os
import re
import tempfile
import time

from .. import errors

_SHA256_RE = re.compile(r"^sha256:([a-f0-9]{64})$")

#: Read size for streaming copies; progress is reported far less often (see ``PROGRESS_BYTES``).
CHUNK = 64 * 1024
#: Report progress at most every this many bytes or ``PROGRESS_SECONDS``, whichever comes first.
PROGRESS_BYTES = 1024 * 1024
PROGRESS_SECONDS = 0.5


def digest_hex(digest):
    """Return the hex of a ``sha256:<64 hex>`` digest; anything else is InvalidArgument.

    Digests come from remote manifests, so this strict check is what keeps them from naming paths.
    """
    m = _SHA256_RE.match(digest or "") if isinstance(digest, str) else None
    if not m:
        raise errors.InvalidArgument("unsupported or malformed digest {!r} (only sha256 is supported)".format(digest))
    return m.group(1)


def sha256_digest(data):
    """``sha256:<hex>`` of a bytes object."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ContentStore:
    """Blobs under ``paths.blobs/<hex>``, in-flight downloads under ``paths.ingest``.

    A blob present in ``blobs/`` has always been verified: data only gets there by ``os.rename`` after
    its size and digest matched.
    """

    def __init__(self, paths):
        self.paths = paths

    def path(self, digest):
        """Filesystem path of the blob ``digest`` (whether or not it exists)."""
        return os.path.join(self.paths.blobs, digest_hex(digest))

    def has(self, digest):
        """True if the verified blob is present."""
        return os.path.isfile(self.path(digest))

    def size(self, digest):
        """Size in bytes of a present blob."""
        return os.stat(self.path(digest)).st_size

    def open(self, digest):
        """Open a present blob for reading (binary); NotFound if absent."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise errors.NotFound("content {} not found".format(digest))

    def read_bytes(self, digest):
        """Whole content of a present blob."""
        with self.open(digest) as f:
            return f.read()

    def write_bytes(self, digest, data):
        """Store an in-memory blob (manifest, config) after checking it against ``digest``."""
        return self.ingest(digest, len(data), io.BytesIO(data))

    def ingest(self, digest, size, reader, progress=None):
        """Stream ``reader`` into the store as blob ``digest``; return its path.

        ``size`` (or None when unknown) and ``digest`` are both checked before the rename, and the data
        is fsynced first. On any failure the temp file is removed and nothing enters the store
        (FailedPrecondition for a size or digest mismatch, as containerd's ``Writer.Commit``).
        ``progress(current, total)`` is called every ``PROGRESS_BYTES``/``PROGRESS_SECONDS`` and at the end.
        A blob that is already present is not downloaded again (``reader`` is left unread).
        """
        hexd = digest_hex(digest)
        final = os.path.join(self.paths.blobs, hexd)
        if os.path.isfile(final):
            return final
        os.makedirs(self.paths.blobs, exist_ok=True)
        os.makedirs(self.paths.ingest, exist_ok=True)
        # One temp file per writer: concurrent pulls of the same blob each verify their own copy and
        # the rename makes whichever finishes last a harmless overwrite with identical bytes.
        fd, tmp = tempfile.mkstemp(prefix=hexd[:12] + "-", dir=self.paths.ingest)
        try:
            h = hashlib.sha256()
            current = 0
            last_bytes, last_time = 0, time.monotonic()
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    current += len(chunk)
                    if size is not None and current > size:
                        raise errors.FailedPrecondition("blob {}: got more than the expected {} bytes".format(
                            digest, size))
                    h.update(chunk)
                    out.write(chunk)
                    now = time.monotonic()
                    if progress and (current - last_bytes >= PROGRESS_BYTES or now - last_time >= PROGRESS_SECONDS):
                        progress(current, size)
                        last_bytes, last_time = current, now
                out.flush()
                os.fsync(out.fileno())
            if size is not None and current != size:
                raise errors.FailedPrecondition("blob {}: unexpected size {} (expected {})".format(
                    digest, current, size))
            actual = "sha256:" + h.hexdigest()
            if actual != digest:
                raise errors.FailedPrecondition("blob digest mismatch: expected {}, got {}".format(digest, actual))
            os.chmod(tmp, 0o444)
            os.rename(tmp, final)
        except BaseException:
            _unlink_quiet(tmp)
            raise
        _fsync_dir(self.paths.blobs)
        if progress:
            progress(current, size)
        return final

    def delete(self, digest):
        """Remove a blob if present (garbage collection hook)."""
        _unlink_quiet(self.path(digest))


def _unlink_quiet(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
