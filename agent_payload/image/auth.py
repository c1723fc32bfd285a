"""Registry credentials in Docker's config.json ``auths`` format, so logins made with docker keep working.

File: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` of the user running the payload::

    {"auths": {"https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
               "registry.example:5000":       {"auth": "..."}},
     "credsStore": "...", "credHelpers": {"<registry>": "..."}, "<any other key>": ...}

docker.io is stored under ``https://index.docker.io/v1/`` as Docker does; other registries under
``host[:port]``.  On lookup, keys written by other tools (``http://host``, ``https://host/v2/``) match by their
host.  Writes keep every other key, happen under a flock on the directory, atomically, mode 0600 (dir 0700).
Credential helpers (``credsStore``/``credHelpers``) are not supported: when one holds the credentials of a
registry we refuse clearly instead of silently pulling anonymously or writing a plain-text password beside it.
"""

import base64
import binascii
import contextlib
import fcntl
import json
import os
import urllib.parse

from .. import errors
from ..state import store

HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def config_path():
    """Where the Docker client config lives for this process (``$DOCKER_CONFIG`` wins, as in the docker CLI)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def hostname(key):
    """Docker's ConvertToHostname: drop the scheme and any path; hub aliases become ``docker.io``."""
    key = (key or "").strip()
    if "://" in key:
        key = urllib.parse.urlsplit(key).netloc
    key = key.split("/", 1)[0].lower()
    return "docker.io" if key in _HUB_NAMES else key


def registry_key(registry):
    """The ``auths`` key Docker uses for ``registry`` (None or a hub name -> the hub's v1 URL)."""
    host = hostname(registry or "docker.io")
    if not host:
        raise errors.InvalidArgument("invalid registry name {!r}".format(registry))
    return HUB_KEY if host == "docker.io" else host


def _read(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise errors.from_oserror(exc)
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.FailedPrecondition("invalid JSON in {}: {}".format(path, exc))
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise errors.FailedPrecondition("{}: not a Docker config file (\"auths\" must be an object)".format(path))
    return data


def _matching_keys(auths, registry):
    """Every key of ``auths`` naming ``registry`` (exact Docker key first)."""
    host = hostname(registry_key(registry))
    exact = registry_key(registry)
    keys = [exact] if exact in auths else []
    return keys + [k for k in auths if k != exact and hostname(k) == host]


def _helper(data, registry, path):
    """Refuse when a credential helper is in charge of ``registry``'s credentials."""
    helpers = data.get("credHelpers") or {}
    host = hostname(registry_key(registry))
    names = [k for k in helpers if hostname(k) == host] if isinstance(helpers, dict) else []
    if names:
        return "credential helper {!r} (credHelpers in {})".format(helpers[names[0]], path)
    if data.get("credsStore"):
        return "credential store {!r} (credsStore in {})".format(data["credsStore"], path)
    return None


def _unsupported(what, registry):
    return errors.FailedPrecondition(
        "the credentials for {} are kept by the {}, which fleet does not support: remove it from the file or "
        "store the login in \"auths\"".format(hostname(registry_key(registry)), what))


def get(registry, path=None):
    """(user, password) stored for ``registry`` or None (never logged in)."""
    path = path or config_path()
    data = _read(path)
    auths = data.get("auths") or {}
    keys = _matching_keys(auths, registry)
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    if any(hostname(k) == hostname(registry_key(registry)) for k in helpers):
        raise _unsupported(_helper(data, registry, path), registry)
    if not keys:
        return None
    entry = auths[keys[0]] if isinstance(auths[keys[0]], dict) else {}
    creds = _decode(entry)
    if creds is None and data.get("credsStore"):
        # Docker leaves an empty marker in "auths" when the password went to the store.
        raise _unsupported(_helper(data, registry, path), registry)
    if creds is None and entry.get("identitytoken"):
        raise errors.FailedPrecondition("the login for {} in {} is an identity token, which fleet does not "
                                        "support: run `fleet login {}`".format(keys[0], path, keys[0]))
    return creds


def _decode(entry):
    """``{"auth": b64}`` or ``{"username", "password"}`` -> (user, password); None when absent or unusable."""
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=False).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            return None  # the message must not echo the value: it is a credential
        return (user, password) if sep and user else None
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    return None


@contextlib.contextmanager
def _locked(directory):
    """flock on the directory itself: the file is replaced by rename, so it cannot carry the lock."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path, data):
    store.write_bytes_atomic(path, (json.dumps(data, indent="\t") + "\n").encode(), mode=0o600)


def set(registry, username, password, path=None):  # noqa: A001 - the store's verbs are get/set/remove
    """Store (username, password) for ``registry`` in Docker's format; other keys and entries are kept."""
    if not username or ":" in username:
        raise errors.InvalidArgument("username must be non-empty and contain no ':'")
    if not password:
        raise errors.InvalidArgument("password must not be empty")
    path = path or config_path()
    with _locked(os.path.dirname(path)):
        data = _read(path)
        what = _helper(data, registry, path)
        if what:
            raise _unsupported(what, registry)
        auths = data.setdefault("auths", {})
        for key in _matching_keys(auths, registry):
            del auths[key]  # one entry per registry, under Docker's own key
        token = base64.b64encode("{}:{}".format(username, password).encode("utf-8")).decode()
        auths[registry_key(registry)] = {"auth": token}
        _write(path, data)


def remove(registry, path=None):
    """Forget ``registry``'s credentials; False when there were none."""
    path = path or config_path()
    if not os.path.exists(path):
        return False
    with _locked(os.path.dirname(path)):
        data = _read(path)
        helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
        if any(hostname(k) == hostname(registry_key(registry)) for k in helpers):
            raise _unsupported(_helper(data, registry, path), registry)
        auths = data.get("auths") or {}
        keys = _matching_keys(auths, registry)
        if not keys:
            return False
        for key in keys:
            del auths[key]
        _write(path, data)
        return True
