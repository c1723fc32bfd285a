"""Registry HTTP API v2 client (urllib): endpoints and mirrors, bearer/basic auth, manifests, blobs, tags.

Auth dance (distribution token spec); tokens are cached per scope for the client's lifetime::

    GET /v2/<name>/manifests/<ref>            -> 401  WWW-Authenticate: Bearer realm=R,service=S,scope=...
    GET R?service=S&scope=repository:<name>:pull[,push]   (Basic user:password, to R only) -> {"token": T}
    GET /v2/<name>/manifests/<ref>  Authorization: Bearer T   -> 200
    (a ``Basic`` challenge: the request is retried with Basic credentials instead)

Credentials come from Docker's config.json (auth.py) unless given; 401 -> Unauthorized ("run `fleet login`"),
403 -> Denied.  No credential or token ever appears in an error, its details, or a log line.
"""

import hashlib
import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .. import errors
from ..record import REQUIRED, Record
from . import httpio
from .httpio import STALL_MIN_BYTES, Stalled, StallGuard, parse_challenge  # noqa: F401  (registry.X: callers' spelling)

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
#: Seconds without progress after which a transfer is stalled (daemon.json ``fleet-stall-timeout``); also
#: the socket timeout of every request, so a silent peer trips it on the first ``recv`` that waits that long.
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


class Endpoint(Record):
    """One place to talk to: ``url`` is the base (scheme://host[/prefix]) without trailing slash.

    ``registry`` is the registry the endpoint stands for when it is that registry's origin (credentials are
    looked up under it); a mirror's credentials are looked up under its own host, so a registry's password
    never travels to a mirror.  ``content_mirrors`` are pull-only mirrors tried first for content addressed
    by digest (manifests by digest, blobs) before this endpoint; they are never asked to resolve a tag.
    """

    FIELDS = (("url", REQUIRED),
              ("insecure", False),  # TLS unverified (https) or plain http allowed
              ("mirror", False), ("registry", ""), ("capabilities", ("pull", "resolve")), ("content_mirrors", list))

    @property
    def auth_key(self):
        """The name credentials are stored under for this endpoint (see auth.py)."""
        return self.registry or urllib.parse.urlsplit(self.url).netloc


def _mirror_endpoint(host, config):
    """An Endpoint for a configured mirror (config.MirrorHost)."""
    netloc = urllib.parse.urlsplit(host.url).netloc
    return Endpoint(host.url, insecure=host.skip_verify or config.is_insecure(netloc), mirror=True,
                    capabilities=tuple(host.capabilities))


def origin_endpoints(domain, config):
    """The registry itself: docker.io's API host, else https then (insecure registries only) plain http."""
    if domain == HUB_DOMAIN:
        return [Endpoint(HUB_ORIGIN, registry=domain)]
    insecure = config.is_insecure(domain)
    out = [Endpoint("https://" + domain, insecure=insecure, registry=domain)]
    if insecure:
        out.append(Endpoint("http://" + domain, insecure=True, registry=domain))
    return out


def endpoints_for(domain, config, need="resolve"):
    """Endpoints for ``domain`` in the order they are tried, origin last (unless the config disables it).

    ``need="resolve"`` (a tag or digest reference is looked up): only hosts with the ``resolve`` capability;
    each carries the pull-only mirrors listed before it as ``content_mirrors``.  ``need="pull"`` (content by
    digest): every host, pull-only mirrors included.  The host list comes from ``config.hosts_for`` (the
    ``registries`` entry or ``default``, then docker.io's ``registry-mirrors``).
    """
    if need not in ("resolve", "pull"):
        raise ValueError("need must be 'resolve' or 'pull'")
    mirrors, use_origin = config.hosts_for(domain)
    hosts = [_mirror_endpoint(m, config) for m in mirrors]
    if use_origin:
        hosts.extend(origin_endpoints(domain, config))
    if need == "pull":
        return hosts
    out, pull_only = [], []
    for ep in hosts:
        if "resolve" in ep.capabilities:
            ep.content_mirrors = list(pull_only)
            out.append(ep)
        else:
            pull_only.append(ep)
    if not out:
        raise errors.FailedPrecondition(
            "{}: no host may resolve references for {} (origin is disabled and no mirror has the "
            "\"resolve\" capability)".format(config.source or "daemon.json", domain))
    return out


class Unauthorized(errors.FailedPrecondition):
    """The registry refused our (or no) credentials: 401 from the registry or its token server."""


class Denied(errors.FailedPrecondition):
    """The registry knows who we are and refuses the action (403)."""


class RegistryClient:
    """Client for one repository on one endpoint.

    ``credentials``: (user, password); None looks them up in the Docker config (auth.py) when a registry
    first asks; False forces anonymous access.  Tokens are cached per scope for the client's lifetime.
    No credential or token is ever put in an error message, its details, or a log line.
    """

    def __init__(self, endpoint, repository, credentials=None, timeout=TIMEOUT):
        self.endpoint = endpoint
        self.repository = repository
        self.credentials = credentials
        self.timeout = timeout
        self._tokens = {}  # scope tuple -> Authorization header value
        self._challenge = None  # (scheme, params) of the last 401 from the registry
        self._content = None  # clients for the endpoint's pull-only mirrors, made on first use
        handlers = [httpio.AuthRedirectHandler()]
        if endpoint.url.startswith("https:"):  # plain-HTTP registries never pay for a TLS context
            handlers.insert(0, urllib.request.HTTPSHandler(context=httpio.tls_context(not endpoint.insecure)))
        self._opener = urllib.request.build_opener(*handlers)

    def _url(self, path):
        return self.endpoint.url + path

    # -- authentication -----------------------------------------------------------------------------------

    def _creds(self):
        """(user, password) or None; looked up once, lazily, so anonymous registries never read the file."""
        if self.credentials is None:
            from . import auth
            self.credentials = auth.get(self.endpoint.auth_key) or False
        return self.credentials or None

    def _scopes(self, actions, extra=()):
        return ("repository:{}:{}".format(self.repository, ",".join(actions)),) + tuple(extra)

    def unauthorized(self):
        """The error for a 401: advice to log in, naming the registry (never the credentials)."""
        key = self.endpoint.auth_key
        return Unauthorized("unauthorized: authentication required — run `fleet login {}`".format(key),
                            details={"registry": key, "repository": self.repository,
                                     "credentials": bool(self._creds())})

    def _denied(self):
        return Denied("denied: requested access to the resource is denied ({} {})".format(
            self.endpoint.auth_key, self.repository), details={"registry": self.endpoint.auth_key,
                                                                "repository": self.repository})

    def _authorization(self, scopes):
        """The Authorization header for ``scopes``, answering the known challenge if needed (or None)."""
        if scopes in self._tokens:
            return self._tokens[scopes]
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        value = None
        if scheme == "basic" and self._creds():
            value = httpio.basic_auth(self._creds())
        elif scheme == "bearer" and params.get("realm"):
            value = "Bearer " + self._fetch_token(params, scopes)
        if value:
            self._tokens[scopes] = value
        return value

    def _fetch_token(self, params, scopes, extra_query=None):
        """GET realm?service=&scope=... (Basic credentials to the token server only) -> token."""
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        query += list((extra_query or {}).items())
        realm = params["realm"]
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise errors.Unavailable("registry {} sent an invalid token realm".format(self.endpoint.auth_key))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if self._creds():
            req.add_unredirected_header("Authorization", httpio.basic_auth(self._creds()))
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read(MAX_MANIFEST).decode())
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 401:
                raise self.unauthorized()
            if exc.code == 403:
                raise self._denied()
            raise errors.Unavailable("token server {} answered HTTP {}".format(realm, exc.code))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise errors.Unavailable("cannot get a token from {}: {}".format(realm, getattr(exc, "reason", exc)))
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            raise errors.Unavailable("token server {} returned no token".format(realm))
        return token

    def _learn_challenge(self):
        """GET /v2/ once to learn how the registry authenticates (before sending a body we cannot resend)."""
        try:
            self._open(self._url("/v2/"), authorize=False).close()
        except urllib.error.HTTPError as exc:
            exc.close()
            pass

    # -- requests -----------------------------------------------------------------------------------------

    def _open(self, url, headers=None, method="GET", data=None, scopes=None, authorize=True, retry=True):
        """One request, answering a 401 challenge once. 401/403 raise; other HTTP errors raise HTTPError.

        ``scopes`` defaults to pull on this repository.  ``authorize`` False sends no Authorization and only
        records the challenge (reading ``/v2/``); ``retry`` False turns the first 401 into Unauthorized.
        """
        scopes = scopes or self._scopes(("pull",))
        start = data.tell() if hasattr(data, "seek") and hasattr(data, "tell") else None
        authorize = authorize and _same_origin(url, self.endpoint.url)
        for attempt in (0, 1):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            req.add_header("User-Agent", USER_AGENT)
            auth = self._authorization(scopes) if authorize else None
            if auth:
                req.add_unredirected_header("Authorization", auth)
            try:
                return self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and _same_origin(url, self.endpoint.url):
                    challenge = parse_challenge(exc.headers.get("WWW-Authenticate"))
                    if not authorize:
                        self._challenge = challenge
                        raise
                    exc.close()
                    usable = (challenge[0] == "bearer" and challenge[1].get("realm")) or (
                        challenge[0] == "basic" and self._creds())
                    if retry and attempt == 0 and usable and httpio.rewind(data, start):
                        self._challenge = challenge
                        self._tokens.pop(scopes, None)
                        continue
                    raise self.unauthorized()
                if exc.code == 403 and authorize:
                    exc.close()
                    raise self._denied()
                raise
            except (urllib.error.URLError, OSError, socket.timeout, ssl.SSLError) as exc:
                reason = getattr(exc, "reason", exc)
                raise errors.Unavailable("cannot reach {}: {}".format(url, reason))
        raise self.unauthorized()

    def request(self, method, path_or_url, headers=None, data=None, scope_actions=("pull",), extra_scopes=()):
        """Send any request to this repository's registry and return the response; the caller closes it.

        ``path_or_url``: a path ("/v2/<name>/blobs/uploads/") appended to the endpoint, or an absolute URL
        (an upload ``Location``).  Authorization goes only to the endpoint's own scheme+host.  ``scope_actions``
        ("pull",) or ("pull", "push") picks the token scope ``repository:<name>:<actions>``; ``extra_scopes``
        adds full scope strings (e.g. ``repository:<other>:pull`` for a cross-repository mount).  ``data`` is
        bytes or a file object (seekable, or it cannot be resent after a 401: the challenge is therefore
        learnt first).  Non-2xx answers other than 401/403 are returned as the HTTPError (use ``.code`` /
        ``getcode()``, ``.headers``); 401 raises Unauthorized, 403 Denied, network failures Unavailable.
        """
        if path_or_url.startswith("/"):
            url = self._url(path_or_url)
        else:
            url = urllib.parse.urljoin(self.endpoint.url + "/", path_or_url)
        scopes = self._scopes(tuple(scope_actions), extra_scopes)
        if (data is not None and not isinstance(data, (bytes, bytearray)) and scopes not in self._tokens
                and self._challenge is None):
            self._learn_challenge()
        try:
            return self._open(url, headers, method.upper(), data, scopes)
        except urllib.error.HTTPError as exc:
            return exc

    def ping(self):
        """GET /v2/: reachable and speaking API v2 (a 401 counts as alive: auth happens per repository)."""
        try:
            with self._open(self._url("/v2/"), authorize=False):
                return True
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 401:
                return True
            raise errors.Unavailable("{} is not a v2 registry ({})".format(self._url("/v2/"), exc.code))

    def check_login(self):
        """Verify our credentials the way ``docker login`` does: answer /v2/'s challenge, then GET /v2/.

        Bearer: a token for the registry's service (``account=<user>``, no repository scope) must be issued
        and accepted by /v2/; Basic: /v2/ must accept the credentials.  Raises Unauthorized when refused.
        """
        url = self._url("/v2/")
        try:
            self._open(url, authorize=False).close()
            return  # the registry needs no authentication at all: docker login succeeds too
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 401:
                raise errors.Unavailable("{} is not a v2 registry ({})".format(url, exc.code))
        scheme, params = self._challenge or ("", {})
        if scheme == "basic":
            header = httpio.basic_auth(self._creds()) if self._creds() else None
        elif scheme == "bearer" and params.get("realm"):
            query = {"account": self._creds()[0]} if self._creds() else {}
            header = "Bearer " + self._fetch_token(params, (), query)
        else:
            raise errors.Unavailable("registry {} asked for an unsupported authentication scheme {!r}".format(
                self.endpoint.auth_key, scheme))
        if header is None:
            raise self.unauthorized()
        self._tokens[("login",)] = header
        try:
            self._open(url, scopes=("login",), retry=False).close()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise errors.Unavailable("{}: HTTP {}".format(url, exc.code))

    # -- content ------------------------------------------------------------------------------------------

    def _content_clients(self):
        if self._content is None:
            creds = False if self.credentials is False else None  # a mirror uses its own stored credentials
            self._content = [RegistryClient(m, self.repository, creds, self.timeout)
                             for m in self.endpoint.content_mirrors]
        return self._content

    def _from_mirrors(self, fetch):
        """Try ``fetch(client)`` on each pull-only mirror; None when none served (they fall through on error)."""
        for client in self._content_clients():
            try:
                return fetch(client)
            except errors.AgentError:
                continue
        return None

    def get_manifest(self, ref, display=None):
        """Fetch a manifest by tag or digest -> (bytes, media type, digest); the digest is verified.

        By digest, pull-only mirrors are asked first (the digest check makes any mirror safe for that).
        """
        if ref.startswith("sha256:") and self.endpoint.content_mirrors:
            got = self._from_mirrors(lambda c: c.get_manifest(ref, display))
            if got is not None:
                return got
        url = self._url("/v2/{}/manifests/{}".format(self.repository, ref))
        try:
            resp = self._open(url, {"Accept": MANIFEST_ACCEPT})
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise errors.NotFound("manifest unknown: {}".format(display or ref))
            raise errors.Unavailable("{}: HTTP {} {}".format(url, exc.code, exc.reason))
        with resp:
            body = StallGuard(resp, self.timeout, "manifest {}".format(display or ref), url).read_all(MAX_MANIFEST)
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
        """Open a blob stream (pull-only mirrors first; redirects followed without credentials off-host)."""
        if self.endpoint.content_mirrors:
            got = self._from_mirrors(lambda c: c.open_blob(digest))
            if got is not None:
                return got
        url = self._url("/v2/{}/blobs/{}".format(self.repository, digest))
        try:
            return self._open(url)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise errors.NotFound("blob unknown: {} at {}".format(digest, url))
            raise errors.Unavailable("{}: HTTP {} {}".format(url, exc.code, exc.reason))

    def list_tags(self, page_size=None):
        """Every tag of the repository, following ``Link: <...>; rel="next"`` pages (same host only)."""
        url = self._url("/v2/{}/tags/list".format(self.repository))
        if page_size:
            url += "?n={}".format(int(page_size))
        tags, seen = [], set()
        while url:
            if url in seen or len(seen) >= MAX_TAG_PAGES:
                raise errors.Unavailable("{}: tag list pagination does not end".format(self.endpoint.auth_key))
            seen.add(url)
            try:
                resp = self._open(url, {"Accept": "application/json"})
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 404:
                    raise errors.NotFound("repository {} not found: name unknown".format(self.repository))
                raise errors.Unavailable("{}: HTTP {} {}".format(url, exc.code, exc.reason))
            with resp:
                try:
                    body = json.loads(resp.read(MAX_MANIFEST).decode())
                except ValueError:
                    raise errors.Unavailable("{}: tag list is not JSON".format(url))
                link = resp.headers.get("Link")
            for tag in (body.get("tags") if isinstance(body, dict) else None) or []:
                if isinstance(tag, str) and tag not in tags:
                    tags.append(tag)
            url = _next_link(link, url)
            if url and not _same_origin(url, self.endpoint.url):
                raise errors.Unavailable("{}: tag list pagination points to another host".format(
                    self.endpoint.auth_key))
        return tags


MAX_TAG_PAGES = 10000


def _same_origin(url, base):
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _next_link(header, current):
    """The absolute URL of ``rel="next"`` in a Link header, or None."""
    for part in (header or "").split(","):
        m = re.match(r'\s*<([^>]*)>\s*;(.*)', part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return urllib.parse.urljoin(current, m.group(1))
    return None


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
