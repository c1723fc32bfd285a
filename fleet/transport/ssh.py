"""SSH connections with asyncssh: identities, ~/.ssh/config, and strict host-key checking (or explicit TOFU)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from fleet.errors import TransportError

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


@dataclass
class SSHOptions:
    """How to reach hosts; per-host values from the inventory override none of these but add to them."""

    connect_timeout: float = 10.0
    accept_new_host_keys: bool = False
    identity_files: list[str] = field(default_factory=list)


def _known_hosts_path(host) -> Path:
    return Path(os.path.expanduser(str(host.known_hosts or DEFAULT_KNOWN_HOSTS)))


class _TrustOnFirstUse(asyncssh.SSHClient):
    """Accept a host key only if known_hosts has no entry at all for the host, and record it.

    asyncssh calls ``validate_host_public_key`` only for keys known_hosts does not already trust; a host that
    *is* listed with another key is a changed key and stays rejected.
    """

    def __init__(self, path: Path, host: str, port: int):
        self._path, self._host, self._port = path, host, port

    def validate_host_public_key(self, host, addr, port, key):
        if self._path.exists():
            trusted, trusted_ca, revoked, *_ = asyncssh.read_known_hosts(str(self._path)).match(host, addr, port)
            if trusted or trusted_ca or revoked:
                return False
        name = self._host if self._port == 22 else "[{}]:{}".format(self._host, self._port)
        line = "{} {}\n".format(name, key.export_public_key("openssh").decode().strip())
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._path, "a") as f:
            f.write(line)
        return True


# Parsed once and shared by every host that names the same file, as long as the file is unchanged (the key is
# its stat: a long-running process sees edits): with 100 hosts, asyncssh would otherwise parse the known_hosts
# file and load the same private key(s) again for each connection.  Not with --accept-new-host-keys: trust on
# first use appends to the file during the run, so each connection reads it.
_parsed: dict = {}


def _identity(path: str) -> tuple:
    st = os.stat(path)
    return path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _parsed_known_hosts(path: Path):
    key = ("known_hosts", _identity(str(path)))
    if key not in _parsed:
        _parsed[key] = asyncssh.read_known_hosts(str(path))
    return _parsed[key]


def _loaded_keys(paths: list):
    try:
        certs = [p + "-cert.pub" for p in paths]  # load_keypairs also reads a key's certificate, if any
        key = ("keys",) + tuple(_identity(p) for p in paths) + tuple(
            _identity(c) if os.path.exists(c) else c for c in certs)
    except OSError:
        return paths  # asyncssh reports the missing file as before
    if key not in _parsed:
        _parsed[key] = asyncssh.load_keypairs(list(paths))
    return _parsed[key]


async def connect(host, opts: SSHOptions):
    """Open one SSH connection to ``host`` (an inventory Host); raise TransportError on any failure."""
    kh = _known_hosts_path(host)
    exists = kh.exists()
    if not exists and not opts.accept_new_host_keys:
        raise TransportError("no known_hosts file {}: host keys cannot be verified; add the host's key or "
                             "pass --accept-new-host-keys to trust it on first use".format(kh))
    kwargs: dict = {
        "port": host.port,
        "connect_timeout": opts.connect_timeout,
    }
    if host.user:
        kwargs["username"] = host.user
    keys = [os.path.expanduser(k) for k in ([host.ssh_key] if host.ssh_key else []) + opts.identity_files]
    if opts.accept_new_host_keys:
        kwargs["client_factory"] = lambda: _TrustOnFirstUse(kh, host.address, host.port)
    try:
        if not exists:
            # An empty trust tuple (not None, which disables checking) keeps validation on when the file is absent.
            kwargs["known_hosts"] = ([], [], [])
        else:
            kwargs["known_hosts"] = str(kh) if opts.accept_new_host_keys else _parsed_known_hosts(kh)
        if keys:
            kwargs["client_keys"] = _loaded_keys(keys)
        return await asyncssh.connect(host.address, **kwargs)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise TransportError("host key verification failed for {} ({}): {}; if the host is new, pass "
                             "--accept-new-host-keys".format(host.address, kh, exc.reason)) from None
    except asyncssh.PermissionDenied as exc:
        raise TransportError("authentication failed as {}@{}: {}".format(host.user or "(default user)",
                                                                         host.address, exc.reason)) from None
    except asyncssh.Error as exc:
        raise TransportError("ssh {}:{}: {}".format(host.address, host.port, exc.reason)) from None
    except TimeoutError:
        raise TransportError("ssh {}:{}: connection timed out after {:g}s".format(
            host.address, host.port, opts.connect_timeout)) from None
    except OSError as exc:
        # asyncio words a refused connect as "Connect call failed (addr, port)"; the errno says it plainly
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise TransportError("ssh {}:{}: {}".format(host.address, host.port, reason)) from None
