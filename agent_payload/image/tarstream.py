"""A layer's tar stream read once, forward only: decompressed in large steps, hashed (the diff_id) as it is
produced, served to ``tarfile`` as a file that seeks forward only, and copied to files without extra copies.

``tarfile``'s own stream mode (``"r|"``) copies the rest of its buffer on every read (each 512-byte header
of a small file cost a copy of up to the whole buffer) and ``gzip.GzipFile`` decompresses 8 KiB at a time;
here every byte is decompressed, hashed and written exactly once, and the GIL is released for every big step
(zlib and hashlib release it). Memory stays bounded whatever the layer's size: one ``STEP`` of compressed
input and at most ``STEP`` of output (plus one tar header) are held at a time.
"""

import hashlib
import os
import tarfile
import zlib

from .. import errors

STEP = 1 << 20  # compressed bytes read per step; at most this many uncompressed bytes produced per step

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class TarSource:
    """The uncompressed tar stream of ``raw`` (anything with ``read(n)``) for ``tarfile.open(mode="r:")``.

    ``read``/``tell``/``seek`` (forward only: a backward seek is a ``tarfile.StreamError``); ``copy_to(fd, n)``
    writes the next ``n`` bytes to a file descriptor straight from the decompressed buffers; ``drain()`` reads
    to the end. ``digest()`` is the sha256 of every uncompressed byte produced, end-of-archive padding and
    anything after it included once drained. A gzip stream that ends early raises EOFError (as GzipFile);
    concatenated gzip members are decoded in turn, as gzip(1) does.
    """

    def __init__(self, raw, media_type=""):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.buf, self.off, self.pos = b"", 0, 0  # current chunk, read offset in it, absolute stream position
        self.eof = False
        head = b""
        while len(head) < 4:  # a network stream may hand out fewer bytes than asked
            more = raw.read(4 - len(head))
            if not more:
                break
            head += more
        if head.startswith(_ZSTD_MAGIC) or "zstd" in (media_type or ""):
            raise errors.FailedPrecondition(
                "zstd-compressed layers are not supported (media type {!r}): the payload is stdlib-only".format(
                    media_type))
        self.pending = head  # raw bytes read but not consumed yet
        self.z = zlib.decompressobj(_GZIP_WBITS) if head.startswith(_GZIP_MAGIC) else None

    # -- producing

    def _chunk(self):
        """The next piece of the uncompressed stream (hashed), b"" at its end."""
        while not self.eof:
            data = self._inflate() if self.z is not None else self._plain()
            if data:
                self.hash.update(data)
                return data
        return b""

    def _plain(self):
        data, self.pending = self.pending + self.raw.read(STEP), b""
        if not data:
            self.eof = True
        return data

    def _inflate(self):
        z = self.z
        if z.unconsumed_tail:
            return z.decompress(z.unconsumed_tail, STEP)
        if z.eof:
            rest = z.unused_data or self.pending or self.raw.read(STEP)
            self.pending = b""
            if not rest:
                self.eof = True
                return b""
            self.z = zlib.decompressobj(_GZIP_WBITS)  # another gzip member follows
            return self.z.decompress(rest, STEP)
        chunk = self.pending or self.raw.read(STEP)
        self.pending = b""
        if not chunk:
            raise EOFError("compressed layer ended before the end-of-stream marker was reached")
        return z.decompress(chunk, STEP)

    # -- file interface for tarfile

    def read(self, n=-1):
        """Exactly ``n`` bytes unless the stream ends first (``n`` < 0: the rest)."""
        if n is None or n < 0:
            parts = [self.buf[self.off:]]
            while True:
                chunk = self._chunk()
                if not chunk:
                    break
                parts.append(chunk)
            self.buf, self.off = b"", 0
            data = b"".join(parts)
            self.pos += len(data)
            return data
        end = self.off + n
        if end <= len(self.buf):
            data = self.buf[self.off:end]
            self.off = end
            self.pos += n
            return data
        parts, need = [self.buf[self.off:]], n - (len(self.buf) - self.off)
        self.buf, self.off = b"", 0
        while need > 0:
            chunk = self._chunk()
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self.buf, self.off = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def tell(self):
        return self.pos

    def seekable(self):
        return False

    def seek(self, pos, whence=0):
        if whence == 1:
            pos += self.pos
        elif whence != 0:
            raise tarfile.StreamError("seeking from the end is not allowed in a layer stream")
        if pos < self.pos:
            raise tarfile.StreamError("seeking backwards is not allowed in a layer stream")
        self.skip(pos - self.pos)
        return self.pos

    def _available(self):
        """How many buffered bytes are left, after refilling the buffer when it is used up; EOFError at the end."""
        if self.off == len(self.buf):
            self.buf, self.off = self._chunk(), 0
            if not self.buf:
                raise EOFError("unexpected end of layer data")
        return len(self.buf) - self.off

    def skip(self, n):
        """Consume ``n`` bytes without keeping them; EOFError if the stream ends first."""
        while n > 0:
            k = min(n, self._available())
            self.off += k
            self.pos += k
            n -= k

    def copy_to(self, fd, n):
        """Write the next ``n`` bytes to ``fd`` (from the decompressed buffers, no extra copy); EOFError when the
        stream ends first."""
        while n > 0:
            k = min(n, self._available())
            view = memoryview(self.buf)[self.off:self.off + k]
            while view:
                view = view[os.write(fd, view):]
            self.off += k
            self.pos += k
            n -= k

    def drain(self):
        """Read to the end of the stream (the diff_id covers every byte)."""
        self.pos += len(self.buf) - self.off
        self.buf, self.off = b"", 0
        while True:
            chunk = self._chunk()
            if not chunk:
                return
            self.pos += len(chunk)

    def digest(self):
        return "sha256:" + self.hash.hexdigest()
