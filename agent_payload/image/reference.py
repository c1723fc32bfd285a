"""Docker image reference parsing and normalisation, following distribution/reference (pure: no I/O)."""

import re

from .. import errors
from ..record import REQUIRED, Record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference/regexp.go, transcribed.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE = re.compile(r"^" + _DOMAIN + r"$")
_REMAINDER_RE = re.compile(
    r"^(" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$")
_ANCHORED_ID_RE = re.compile(r"^[a-f0-9]{64}$")

#: Registered digest algorithms and the length of their lowercase hex encoding (opencontainers/go-digest).
DIGEST_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def _invalid(s, why):
    return errors.InvalidArgument('invalid reference format: "{}": {}'.format(s, why))


def validate_digest(digest):
    """Check ``algorithm:hex`` like go-digest's Validate; return it unchanged or raise InvalidArgument."""
    if not isinstance(digest, str) or ":" not in digest:
        raise errors.InvalidArgument("invalid digest format: {!r}".format(digest))
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in DIGEST_ALGORITHMS:
        raise errors.InvalidArgument("unsupported digest algorithm: {!r}".format(digest))
    if len(encoded) != DIGEST_ALGORITHMS[algorithm] or not re.match(r"^[a-f0-9]+$", encoded):
        raise errors.InvalidArgument("invalid checksum digest format: {!r}".format(digest))
    return digest


class Reference(Record):
    """A normalised reference: ``domain/path[:tag][@digest]``; ``tag`` is "latest" unless a digest was given."""

    FIELDS = (("domain", REQUIRED), ("path", REQUIRED), ("tag", None), ("digest", None))
    FROZEN = True

    @property
    def name(self):
        """The fully qualified repository name, e.g. ``docker.io/library/nginx``."""
        return self.domain + "/" + self.path

    def string(self):
        """The full normalised form, e.g. ``docker.io/library/nginx:latest``."""
        return self.name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def familiar_name(self):
        """The short repository name Docker shows: ``nginx``, ``user/app`` or ``10.0.0.2:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            rest = self.path
            if rest.startswith(OFFICIAL_REPO_PREFIX) and "/" not in rest[len(OFFICIAL_REPO_PREFIX):]:
                rest = rest[len(OFFICIAL_REPO_PREFIX):]
            return rest
        return self.name

    def familiar(self):
        """The short form with tag and digest, e.g. ``nginx:latest``."""
        return (self.familiar_name() + (":" + self.tag if self.tag else "")
                + ("@" + self.digest if self.digest else ""))

    def with_digest(self, digest):
        """The same repository pinned to ``digest`` with no tag (how Docker records repo digests)."""
        return Reference(self.domain, self.path, None, validate_digest(digest))

    def __str__(self):
        return self.string()


def _split_docker_domain(name):
    """distribution/reference splitDockerDomain: decide whether the first component is a registry."""
    first, sep, rest = name.partition("/")
    if not sep:
        # A single element ("familiar" name) never has a domain.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        # localhost, anything that looks like a host or IP (".", ":"), or an uppercase first element
        # (namespaces cannot be uppercase, so Docker assumes it is a domain name).
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(s):
    """Parse and normalise a reference like ``docker reference.ParseNormalizedNamed`` + ``TagNameOnly``.

    Raises InvalidArgument('invalid reference format: "<s>": <why>') for anything Docker would reject.
    """
    if not isinstance(s, str) or not s:
        raise _invalid(s if isinstance(s, str) else repr(s), "repository name must have at least one component")
    if _ANCHORED_ID_RE.match(s):
        raise _invalid(s, "cannot specify 64-byte hexadecimal strings as a repository name")
    if s != s.strip():
        raise _invalid(s, "leading or trailing whitespace")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid(s, "repository name ({}) must be lowercase".format(remote))
    if not _DOMAIN_RE.match(domain):
        raise _invalid(s, "invalid registry domain {!r}".format(domain))
    m = _REMAINDER_RE.match(remainder)
    if not m:
        raise _invalid(s, "not a valid [registry/]repository[:tag][@digest]")
    path, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(s, "repository name must not be more than {} characters".format(NAME_TOTAL_LENGTH_MAX))
    if digest is not None:
        try:
            validate_digest(digest)
        except errors.InvalidArgument as exc:
            raise _invalid(s, exc.message)
    elif tag is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_valid(s):
    """True when ``s`` parses as a reference."""
    try:
        parse(s)
    except errors.InvalidArgument:
        return False
    return True
