"""Registry HTTP API v2 client (urllib): ping, bearer/basic auth, manifests and indexes, blobs, mirrors.

Auth dance (distribution token spec)::

    GET /v2/<name>/manifests/<ref>            -> 401  WWW-Authenticate: Bearer realm=R,service=S,scope=...
    GET R?service=S&scope=repository:<name>:pull   (Basic auth if credentials) -> {"token": T}
    GET /v2/<name>/manifests/<ref>  Authorization: Bearer T   -> 200
"""

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .. import errors

HUB_DOMAIN = "docker.io"
HUB_ORIGIN = "https://registry-1.docker.io"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_ACCEPT = ", ".join([MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX])
INDEX_TYPES = (MT_DOCKER_LIST, MT_OCI_INDEX)
MANIFEST_TYPES = (MT_DOCKER_MANIFEST, MT_OCI_MANIFEST)

#: Manifests are small; refuse anything bigger (Docker/containerd cap them at 4 MiB).
MAX_MANIFEST = 4 * 1024 * 1024
TIMEOUT = 30
USER_AGENT = "fleet-payload/1"

_ARCH = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
         "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", ""),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


def host_platform():
    """``(os, architecture, variant)`` in OCI terms for this host, from ``uname -m``."""
    machine = os.uname().machine
    arch, variant = _ARCH.get(machine, (machine, ""))
    return "linux", arch, variant


@dataclass
class Endpoint:
    """One place to pull from: ``url`` is the base (scheme://host[/prefix]) without trailing slash."""

    url: str
    insecure: bool = False  # TLS unverified (https) or plain http allowed
    mirror: bool = False


def endpoints_for(domain, config):
    """Pull endpoints in the order dockerd tries them.

    docker.io: every ``registry-mirrors`` entry, then the origin last. Other registries: https first, then
    http only if the registry is insecure (explicitly, by CIDR, or loopback by default).
    """
    if domain == HUB_DOMAIN:
        out = []
        for mirror in config.registry_mirrors:
            host = urllib.parse.urlsplit(mirror).netloc
            out.append(Endpoint(mirror, insecure=config.is_insecure(host), mirror=True))
        out.append(Endpoint(HUB_ORIGIN))
        return out
    insecure = config.is_insecure(domain)
    out = [Endpoint("https://" + domain, insecure=insecure)]
    if insecure:
        out.append(Endpoint("http://" + domain, insecure=True))
    return out


class _AuthRedirectHandler(urllib.request.HTTPRedirectHandler):
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


def _parse_challenge(header):
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = dict((k.lower(), v) for k, v in re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """Client for one repository on one endpoint; ``credentials`` is (user, password) or None."""

    def __init__(self, endpoint, repository, credentials=None, timeout=TIMEOUT):
        self.endpoint = endpoint
        self.repository = repository
        self.credentials = credentials
        self.timeout = timeout
        self._auth = None  # the Authorization header value once a challenge was answered
        ctx = ssl.create_default_context()
        if endpoint.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _AuthRedirectHandler())

    def _url(self, path):
        return self.endpoint.url + path

    def _open(self, url, headers=None, method="GET"):
        """One request with auth retry on 401. Maps failures to AgentError kinds (HTTPError is re-raised)."""
        for attempt in (0, 1):
            req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
            req.add_header("User-Agent", USER_AGENT)
            if self._auth:
                req.add_unredirected_header("Authorization", self._auth)
            try:
                return self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0 and self._answer(exc.headers.get("WWW-Authenticate")):
                    exc.close()
                    continue
                if exc.code in (401, 403):
                    exc.close()
                    raise errors.FailedPrecondition("authentication required: {} ({} {})".format(
                        url, exc.code, exc.reason))
                raise
            except (urllib.error.URLError, OSError, socket.timeout, ssl.SSLError) as exc:
                reason = getattr(exc, "reason", exc)
                raise errors.Unavailable("cannot reach {}: {}".format(url, reason))
        raise errors.FailedPrecondition("authentication required: {}".format(url))

    def _answer(self, challenge):
        """Answer a WWW-Authenticate challenge; return True if a retry makes sense."""
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                return False
            self._auth = "Basic " + base64.b64encode("{}:{}".format(*self.credentials).encode()).decode()
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        query = {"scope": "repository:{}:pull".format(self.repository)}
        if params.get("service"):
            query["service"] = params["service"]
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if self.credentials:
            req.add_unredirected_header(
                "Authorization", "Basic " + base64.b64encode("{}:{}".format(*self.credentials).encode()).decode())
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read(MAX_MANIFEST).decode())
        except urllib.error.HTTPError as exc:
            raise errors.FailedPrecondition("authentication required: token request to {} failed ({})".format(
                params["realm"], exc.code))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise errors.Unavailable("cannot get a token from {}: {}".format(params["realm"], exc))
        token = body.get("token") or body.get("access_token")
        if not token:
            raise errors.FailedPrecondition("authentication required: no token from {}".format(params["realm"]))
        self._auth = "Bearer " + token
        return True

    def ping(self):
        """GET /v2/: reachable and speaking API v2 (a 401 counts as alive: auth happens per repository)."""
        try:
            with self._open(self._url("/v2/")):
                return True
        except errors.FailedPrecondition:
            return True
        except urllib.error.HTTPError as exc:
            raise errors.Unavailable("{} is not a v2 registry ({})".format(self._url("/v2/"), exc.code))

    def get_manifest(self, ref, display=None):
        """Fetch a manifest by tag or digest -> (bytes, media type, digest); the digest is verified."""
        url = self._url("/v2/{}/manifests/{}".format(self.repository, ref))
        try:
            resp = self._open(url, {"Accept": MANIFEST_ACCEPT})
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise errors.NotFound("manifest unknown: {}".format(display or ref))
            raise errors.Unavailable("{}: HTTP {} {}".format(url, exc.code, exc.reason))
        with resp:
            body = resp.read(MAX_MANIFEST + 1)
            media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest")
        if len(body) > MAX_MANIFEST:
            raise errors.FailedPrecondition("manifest {} is larger than {} bytes".format(url, MAX_MANIFEST))
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = ref if ref.startswith("sha256:") else header_digest
        if expected and expected.startswith("sha256:") and expected != digest:
            raise errors.FailedPrecondition("manifest digest mismatch for {}: expected {}, got {}".format(
                url, expected, digest))
        try:
            doc = json.loads(body.decode())
        except ValueError:
            raise errors.FailedPrecondition("manifest {} is not JSON".format(url))
        media_type = doc.get("mediaType") or media_type
        if not media_type and "manifests" in doc:
            media_type = MT_OCI_INDEX
        elif not media_type and "layers" in doc:
            media_type = MT_OCI_MANIFEST
        return body, media_type, digest

    def open_blob(self, digest):
        """Open a blob stream (redirects followed without credentials off-host); caller closes it."""
        url = self._url("/v2/{}/blobs/{}".format(self.repository, digest))
        try:
            return self._open(url)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise errors.NotFound("blob unknown: {} at {}".format(digest, url))
            raise errors.Unavailable("{}: HTTP {} {}".format(url, exc.code, exc.reason))


def select_platform(index_doc, platform=None):
    """Pick the descriptor for ``platform`` (default: this host) from a manifest list / OCI index."""
    want_os, want_arch, want_variant = platform or host_platform()
    candidates = []
    for desc in index_doc.get("manifests") or []:
        plat = desc.get("platform") or {}
        if plat.get("os") == want_os and plat.get("architecture") == want_arch:
            candidates.append(desc)
    if not candidates:
        raise errors.NotFound("no matching manifest for {}/{}{} in the manifest list entries".format(
            want_os, want_arch, "/" + want_variant if want_variant else ""))
    for desc in candidates:
        if (desc.get("platform") or {}).get("variant", "") == want_variant:
            return desc
    return candidates[0]


def resolve_manifest(client, ref_str, display, platform=None):
    """Fetch ``ref_str`` and, for an index, the platform manifest.

    Returns (top_digest, [(digest, media_type, bytes), ...]) where the last item is the image manifest and
    the first is the top-level document (they are the same when there is no index).
    """
    body, media_type, digest = client.get_manifest(ref_str, display)
    docs = [(digest, media_type, body)]
    if media_type in INDEX_TYPES:
        desc = select_platform(json.loads(body.decode()), platform)
        body2, mt2, digest2 = client.get_manifest(desc["digest"], display)
        docs.append((digest2, mt2, body2))
        media_type = mt2
    if media_type == MT_DOCKER_V1_SIGNED or media_type.startswith("application/vnd.docker.distribution.manifest.v1"):
        raise errors.FailedPrecondition("{}: Docker image manifest schema 1 is not supported".format(display))
    if media_type not in MANIFEST_TYPES:
        raise errors.FailedPrecondition("{}: unsupported manifest media type {!r}".format(display, media_type))
    return digest, docs
