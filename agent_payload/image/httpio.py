"""HTTP plumbing of the registry client (registry.py): redirects that keep credentials on their host, auth
challenges, the stall guard on response bodies, shared TLS contexts, rewindable request bodies."""

import base64
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request

from .. import errors

#: A body must bring at least this many bytes per ``timeout``-second window: a peer that trickles (1 byte/s
#: never trips a per-``recv`` socket timeout) is stalled too. 32 KiB per 30 s is ~1 KiB/s.
STALL_MIN_BYTES = 32 * 1024

class AuthRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects, re-adding Authorization only when the redirect stays on the same scheme+host.

    The header is set with ``add_unredirected_header`` so urllib itself never copies it; blob redirects to
    S3/CDN hosts therefore carry no registry credentials (PITFALLS 3.3).
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth:
            old, nxt = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(new.full_url)
            if (old.scheme, old.netloc) == (nxt.scheme, nxt.netloc):
                new.add_unredirected_header("Authorization", auth)
        return new


_CHALLENGE_PARAM = re.compile(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header):
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"}); quoted or bare values."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {}
    for key, quoted, bare in _CHALLENGE_PARAM.findall(rest):
        params[key.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted else bare
    return scheme.lower(), params


class Stalled(errors.Unavailable):
    """A response body stopped making progress (see ``StallGuard``)."""


class StallGuard:
    """Reads a response body chunk by chunk (``read1``: what arrived, without waiting to fill ``n``) and
    raises Stalled when the peer sends nothing for ``timeout`` seconds (the socket timeout) or fewer than
    ``min_bytes`` over a ``timeout``-second window (a trickle). ``what`` names the transfer in the error."""

    def __init__(self, resp, timeout, what, url, min_bytes=None):
        self.resp, self.timeout, self.what = resp, timeout, what
        self.host = urllib.parse.urlsplit(url).netloc or url
        self.min_bytes = STALL_MIN_BYTES if min_bytes is None else min_bytes
        self.total = 0
        self._start, self._start_bytes = time.monotonic(), 0

    def read(self, n):
        """Up to ``n`` bytes, b"" at the end; Stalled when the window rule above is broken."""
        try:
            data = self.resp.read1(n)
        except socket.timeout:
            raise Stalled("registry {} sent no data for {}s while fetching {}".format(
                self.host, _secs(self.timeout), self.what))
        self.total += len(data)
        now = time.monotonic()
        if data and now - self._start >= self.timeout:
            got = self.total - self._start_bytes
            if got < self.min_bytes:
                raise Stalled("registry {} sent only {} bytes in {}s while fetching {} (stalled: less than {} "
                              "bytes per {}s)".format(self.host, got, _secs(now - self._start), self.what,
                                                      self.min_bytes, _secs(self.timeout)))
            self._start, self._start_bytes = now, self.total
        return data

    def read_all(self, limit):
        """The whole body, at most ``limit`` + 1 bytes (so the caller can tell it is too big)."""
        chunks, size = [], 0
        while size <= limit:
            data = self.read(min(64 * 1024, limit + 1 - size))
            if not data:
                break
            chunks.append(data)
            size += len(data)
        return b"".join(chunks)


def _secs(value):
    """30 -> "30", 1.5 -> "1.5" (for messages)."""
    return "{:g}".format(round(value, 1))


def basic_auth(credentials):
    return "Basic " + base64.b64encode("{}:{}".format(*credentials).encode()).decode()


def rewind(data, start):
    """Make a request body sendable again; False when it cannot be (a stream without seek)."""
    if data is None or isinstance(data, (bytes, bytearray)):
        return True
    if start is None:
        return False
    data.seek(start)
    return True


_TLS_CONTEXTS = {}
_TLS_LOCK = threading.Lock()


def tls_context(verify):
    """One TLS context per verification mode for the whole process: loading the CA store costs ~45 ms."""
    with _TLS_LOCK:
        ctx = _TLS_CONTEXTS.get(verify)
        if ctx is None:
            ctx = ssl.create_default_context()
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            _TLS_CONTEXTS[verify] = ctx
        return ctx
