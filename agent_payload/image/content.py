"""Content-addressed blob store (containerd style): ingest to a locked, resumable file, verify, rename in."""

import fcntl
import io
import os
import re
import time

from .. import errors
from ..state import locks

_SHA256_RE = re.compile(r"^sha256:([a-f0-9]{64})$")

#: Read size for streaming copies; progress is reported far less often (see ``PROGRESS_BYTES``).
CHUNK = 64 * 1024
#: Report progress at most every this many bytes or ``PROGRESS_SECONDS``, whichever comes first.
PROGRESS_BYTES = 1024 * 1024
PROGRESS_SECONDS = 0.5
#: Suffix of a resumable in-flight download (``ingest/<hex>.partial``).
PARTIAL_SUFFIX = ".partial"
#: A free partial download older than this is not worth resuming.
STALE_SECONDS = 24 * 3600


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
    import hashlib  # lazily: a container start reads blobs without hashing (~5 ms of import)
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Ingest:
    """One blob being written under ``ingest/``: hashes and counts what is written, then verifies and
    publishes it by rename. Bytes already in a resumed file are hashed again through ``replay``.

    ``publish`` refuses a blob that ``verify`` has not passed since its last byte (containerd's ``Commit``
    checks size and digest before the rename too): nothing unverified ever enters ``blobs/``.
    """

    def __init__(self, store, digest, size, fd, path):
        self.store, self.digest, self.size = store, digest, size
        self.fd, self.path = fd, path
        import hashlib
        self.hash = hashlib.sha256()
        self.existing = os.fstat(fd).st_size  # bytes a dead writer left (resumable file only)
        if size is not None and self.existing > size:
            os.ftruncate(fd, 0)
            self.existing = 0
        self.offset = 0  # bytes hashed so far: replayed + written
        self.verified = False  # verify() passed, and nothing was written or replayed since
        self._closed = False

    def replay(self, n):
        """Next up to ``n`` already-present bytes (hashed as they go); b"" once the network must take over."""
        if self.offset >= self.existing:
            return b""
        data = os.pread(self.fd, min(n, self.existing - self.offset), self.offset)
        if not data:  # file shrank under us: continue from where it really ends
            self.existing = self.offset
            os.ftruncate(self.fd, self.offset)
            return b""
        self.hash.update(data)
        self.offset += len(data)
        self.verified = False
        return data

    def restart(self):
        """Forget the present bytes (the server ignored our Range request): write from zero again."""
        os.ftruncate(self.fd, 0)
        self.existing = self.offset = 0
        self.verified = False
        import hashlib
        self.hash = hashlib.sha256()

    def write(self, data):
        """Append ``data``; more than the expected size is a FailedPrecondition right away."""
        if self.size is not None and self.offset + len(data) > self.size:
            raise errors.FailedPrecondition("blob {}: got more than the expected {} bytes".format(
                self.digest, self.size))
        view = memoryview(data)
        pos = self.offset
        while view:
            n = os.pwrite(self.fd, view, pos)
            view, pos = view[n:], pos + n
        self.hash.update(data)
        self.offset += len(data)
        self.existing = max(self.existing, self.offset)
        self.verified = False

    def verify(self):
        """Size and digest check; FailedPrecondition on mismatch. The data is fsynced first."""
        if self.size is not None and self.offset != self.size:
            raise errors.FailedPrecondition("blob {}: unexpected size {} (expected {})".format(
                self.digest, self.offset, self.size))
        actual = "sha256:" + self.hash.hexdigest()
        if actual != self.digest:
            raise errors.FailedPrecondition("blob digest mismatch: expected {}, got {}".format(self.digest, actual))
        os.fsync(self.fd)
        self.verified = True

    def publish(self):
        """Rename the verified file into ``blobs/``; return the blob path. Internal unless ``verify`` passed
        since the last byte (the file is left in ``ingest/`` for ``discard``)."""
        if not self.verified:
            raise errors.Internal("blob {}: publish without a passed verify".format(self.digest))
        final = self.store.path(self.digest)
        os.fchmod(self.fd, 0o444)
        os.rename(self.path, final)
        self.close()
        _fsync_dir(self.store.paths.blobs)
        return final

    def discard(self):
        """Remove the file and release it (idempotent)."""
        if not self._closed:
            _unlink_quiet(self.path)
        self.close()

    def close(self):
        """Release the fd (and so the flock) without removing anything."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)


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
        final = self.path(digest)
        if os.path.isfile(final):
            return final
        w = self.begin(digest, size, resume=False)
        try:
            last_bytes, last_time = 0, time.monotonic()
            while True:
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                w.write(chunk)
                now = time.monotonic()
                if progress and (w.offset - last_bytes >= PROGRESS_BYTES or now - last_time >= PROGRESS_SECONDS):
                    progress(w.offset, size)
                    last_bytes, last_time = w.offset, now
            w.verify()
            w.publish()
        except BaseException:
            w.discard()
            raise
        if progress:
            progress(w.offset, size)
        return final

    def begin(self, digest, size, resume=True):
        """Start (or, with ``resume``, continue) writing blob ``digest``; returns an ``Ingest``.

        The resumable file is ``ingest/<hex>.partial`` held under an exclusive flock while in use: a
        second writer of the same blob (another pull) gets a private temp file instead, and a file whose
        lock is free was left by a dead process, so its bytes are ours to continue from.
        """
        hexd = digest_hex(digest)
        os.makedirs(self.paths.blobs, exist_ok=True)
        os.makedirs(self.paths.ingest, exist_ok=True)
        if resume:
            path = os.path.join(self.paths.ingest, hexd + PARTIAL_SUFFIX)
            fd = _open_locked(path, blocking=False)
            if fd is not None:
                return Ingest(self, digest, size, fd, path)
        import tempfile
        fd, path = tempfile.mkstemp(prefix=hexd[:12] + "-", dir=self.paths.ingest)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # so clean_ingest never takes it for a leftover
        return Ingest(self, digest, size, fd, path)

    def begin_shared(self, digest, size, on_wait=None):
        """The one download of blob ``digest`` on this host (containerd's ingest ref lock).

        Takes the flock of ``ingest/<hex>.partial``, waiting while another process (or thread) downloads
        the blob (``on_wait()`` is called once first); returns an ``Ingest`` to write (resuming the bytes a
        dead writer left), or None when the blob is in the store (the writer we waited for published it).
        The lock is released by the Ingest's ``publish``/``discard``/``close``; a waiter whose writer dies
        gets the lock at once and continues the download.
        """
        hexd = digest_hex(digest)
        os.makedirs(self.paths.blobs, exist_ok=True)
        os.makedirs(self.paths.ingest, exist_ok=True)
        path = os.path.join(self.paths.ingest, hexd + PARTIAL_SUFFIX)
        while True:
            if self.has(digest):
                return None
            fd = _open_locked(path, blocking=False)
            if fd is None:
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fd = _open_locked(path, blocking=True)
            if fd is None:
                continue  # the file we waited on was published or removed: look again
            if self.has(digest):
                _unlink_quiet(path)  # a leftover next to the published blob: ours to remove, we hold it
                os.close(fd)
                return None
            return Ingest(self, digest, size, fd, path)

    def clean_ingest(self, keep=()):
        """Remove ingest leftovers of dead writers; return the names removed.

        A file is left alone while its writer holds the flock. A free ``<hex>.partial`` is kept when
        ``hex`` is in ``keep`` (the caller will resume it) and is younger than ``STALE_SECONDS``; private
        temp files are never resumable and always go.
        """
        removed = []
        try:
            names = os.listdir(self.paths.ingest)
        except FileNotFoundError:
            return removed
        keep = set(keep)
        now = time.time()
        for name in names:
            path = os.path.join(self.paths.ingest, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue  # vanished meanwhile, or not ours to judge (a symlink someone planted)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                if not locks.same_file(fd, path):
                    continue  # unlinked or replaced since we opened it: the new file is someone else's
                hexd = name[:-len(PARTIAL_SUFFIX)] if name.endswith(PARTIAL_SUFFIX) else None
                fresh = now - os.fstat(fd).st_mtime < STALE_SECONDS
                if hexd in keep and fresh and not os.path.isfile(os.path.join(self.paths.blobs, hexd)):
                    continue
                _unlink_quiet(path)  # unlinked while we hold the lock: no writer can be mid-way
                removed.append(name)
            finally:
                os.close(fd)
        return removed

    def delete(self, digest):
        """Remove a blob if present (garbage collection hook)."""
        _unlink_quiet(self.path(digest))


def _open_locked(path, blocking):
    """An fd of ``path`` (created if missing) holding its exclusive flock, or None when it is busy (only
    without ``blocking``) or when ``path`` no longer names the file we locked (published or removed by the
    writer we waited for: look again)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        if locks.same_file(fd, path):
            return fd
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


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
