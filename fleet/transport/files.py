"""Moving files to and from hosts over SFTP, next to a payload call on the same connection (``fleet cp``).

Bytes never travel in the JSON protocol: the controller puts a tar into a staging file under the host's
fleet root (``<fleet_root>/tmp/cp-<random>.tar``) or fetches one the payload wrote there, and the staging
file is removed afterwards whatever happened.  ``run_on_hosts`` is fanout's per-host loop for work that needs
the connection itself (one SSH connection per host, --forks bounded, errors recorded per host).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

from fleet.errors import FleetError, TransportError
from fleet.transport.fanout import HostResult, RunOptions
from fleet.transport.invoke import DEFAULT_ROOT
from fleet.transport.payload import Payload, build

STAGING_PREFIX = "cp-"


def staging_dir(host) -> str:
    return "{}/tmp".format(host.vars.get("fleet_root", DEFAULT_ROOT).rstrip("/"))


def new_staging_path(host) -> str:
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


Work = Callable[[object, object, Payload], Awaitable[dict]]


async def _on_host(host, sem, work: Work, payload: Payload, opts: RunOptions) -> HostResult:
    from fleet.transport import ssh

    async with sem:
        res = HostResult(host)
        try:
            conn = await ssh.connect(host, opts.ssh or ssh.SSHOptions())
            async with conn:
                res.data = await asyncio.wait_for(work(conn, host, payload), opts.command_timeout)
        except FleetError as exc:
            res.error = exc
        except (TimeoutError, asyncio.TimeoutError):
            res.error = TransportError("command timed out after {:g}s".format(opts.command_timeout))
        except OSError as exc:
            res.error = TransportError("{}: {}".format(type(exc).__name__, exc))
        except Exception as exc:  # noqa: BLE001 - asyncssh/SFTP errors: report for this host, don't stop others
            res.error = TransportError("{}: {}".format(type(exc).__name__, exc))
        return res


def run_on_hosts(hosts, work: Work, opts: RunOptions | None = None) -> list[HostResult]:
    """Run ``await work(conn, host, payload)`` on every host in parallel; results in ``hosts`` order."""
    opts = opts or RunOptions()
    payload = build()

    async def main():
        sem = asyncio.Semaphore(max(1, opts.forks))
        return await asyncio.gather(*(_on_host(h, sem, work, payload, opts) for h in hosts))
    return asyncio.run(main())
