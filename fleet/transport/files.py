"""Moving files to and from hosts over SFTP, next to a payload call on the same connection (``fleet cp``).

Bytes never travel in the JSON protocol: the controller puts a tar into a staging file under the host's
fleet root (``<fleet_root>/tmp/cp-<random>.tar``) or fetches one the payload wrote there, and the staging
file is removed afterwards whatever happened.  ``run_on_hosts`` runs work that needs the connection itself
through fanout's per-host runner (one SSH connection per host, --forks bounded, errors recorded per host).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from fleet.transport.fanout import HostResult, RunOptions, on_hosts
from fleet.transport.invoke import DEFAULT_ROOT, Invocation
from fleet.transport.payload import Payload
from fleet.transport.pyzcache import current as build

if TYPE_CHECKING:
    from fleet.inventory.models import Host

STAGING_PREFIX = "cp-"


def staging_dir(host: Host) -> str:
    return "{}/tmp".format(host.vars.get("fleet_root", DEFAULT_ROOT).rstrip("/"))


def new_staging_path(host: Host) -> str:
    return "{}/{}{}.tar".format(staging_dir(host), STAGING_PREFIX, secrets.token_hex(8))


async def put_file(conn, local_path: str, remote_path: str) -> None:
    """Upload ``local_path`` to ``remote_path`` (its directory is created 0700 if missing)."""
    async with conn.start_sftp_client() as sftp:
        directory = remote_path.rsplit("/", 1)[0]
        if not await sftp.exists(directory):
            await sftp.makedirs(directory, exist_ok=True)
            await sftp.chmod(directory, 0o700)
        await sftp.put(local_path, remote_path)


async def get_file(conn, remote_path: str, local_path: str) -> None:
    """Download ``remote_path`` into ``local_path``."""
    async with conn.start_sftp_client() as sftp:
        await sftp.get(remote_path, local_path)


async def remove_quietly(conn, remote_path: str) -> None:
    """Delete a staging file; a missing one (the payload removed it already) or a dead connection is fine."""
    try:
        async with conn.start_sftp_client() as sftp:
            await sftp.remove(remote_path)
    except Exception:  # noqa: BLE001 - best effort cleanup: the payload deletes uploads itself too
        pass


Work = Callable[[object, "Host", Payload], Awaitable[dict]]


def run_on_hosts(hosts: Sequence[Host], work: Work, opts: RunOptions | None = None) -> list[HostResult]:
    """Run ``await work(conn, host, payload)`` on every host in parallel; results in ``hosts`` order."""
    payload = build()

    def job(host):
        async def on_conn(conn):
            return Invocation(await work(conn, host, payload))
        return host, on_conn
    return asyncio.run(on_hosts([job(h) for h in hosts], opts))
