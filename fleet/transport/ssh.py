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


async def connect(host, opts: SSHOptions):
    """Open one SSH connection to ``host`` (an inventory Host); raise TransportError on any failure."""
    kh = _known_hosts_path(host)
    if not kh.exists() and not opts.accept_new_host_keys:
        raise TransportError("no known_hosts file {}: host keys cannot be verified; add the host's key or "
                             "pass --accept-new-host-keys to trust it on first use".format(kh))
    kwargs: dict = {
        "port": host.port,
        "connect_timeout": opts.connect_timeout,
        # An empty trust tuple (not None, which disables checking) keeps validation on when the file is absent.
        "known_hosts": str(kh) if kh.exists() else ([], [], []),
    }
    if host.user:
        kwargs["username"] = host.user
    keys = [os.path.expanduser(k) for k in ([host.ssh_key] if host.ssh_key else []) + opts.identity_files]
    if keys:
        kwargs["client_keys"] = keys
    if opts.accept_new_host_keys:
        kwargs["client_factory"] = lambda: _TrustOnFirstUse(kh, host.address, host.port)
    try:
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
