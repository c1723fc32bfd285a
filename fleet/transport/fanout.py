"""Run one payload op on many hosts in parallel: one connection per host, bounded by --forks, never raising.

A host that is unreachable or fails yields a HostResult with its error; the others always finish.  The
commands decide the exit status from the results.  ``on_host`` is the one per-host runner (connect, work,
errors as data) that ``run``, ``files.run_on_hosts`` and ``stream.on_host`` share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError, TransportError
from fleet.transport.payload import Payload
from fleet.transport.pyzcache import current as build

if TYPE_CHECKING:  # pydantic and asyncssh stay unimported until a command runs
    from fleet.inventory.models import Host
    from fleet.transport.invoke import Invocation
    from fleet.transport.ssh import SSHOptions

HostEventCallback = Callable[["Host", str, dict], None]
#: What runs on one host's open connection: a coroutine giving the result data and whether it uploaded.
HostWork = Callable[[Any], Awaitable["Invocation"]]


@dataclass
class HostResult:
    """One host's outcome: result data, or the error that stopped it."""

    host: Host
    data: dict | None = None
    error: FleetError | None = None
    uploaded: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunOptions:
    """Fan-out settings: parallelism, timeouts and SSH options."""

    forks: int = 50
    command_timeout: float | None = 600.0
    ssh: object = None


async def on_host(host: Host, work: HostWork, ssh_opts: SSHOptions | None = None,
                  timeout: float | None = None) -> HostResult:
    """Connect to ``host``, ``await work(conn)`` (within ``timeout`` seconds, if any), close; never raises.

    Every failure becomes the HostResult's error: a FleetError as it is (a payload error, a refused SSH
    login), a timeout as "command timed out", anything else (an asyncssh channel or SFTP error) as a
    TransportError naming its type, so one host never stops the others.
    """
    from fleet.transport import ssh

    res = HostResult(host)
    try:
        conn = await ssh.connect(host, ssh_opts or ssh.SSHOptions())
        async with conn:
            inv = await (work(conn) if timeout is None else asyncio.wait_for(work(conn), timeout))
        res.data, res.uploaded = inv.data, inv.uploaded
    except Exception as exc:  # noqa: BLE001 - asyncssh channel errors and the like: report, don't stop others
        res.error = host_error(exc, timeout)
    return res


def host_error(exc: Exception, timeout: float | None = None) -> FleetError:
    """What went wrong on one host, as a FleetError: a FleetError as it is (a payload error, a refused SSH login),
    a timeout as "command timed out", anything else (an asyncssh channel or SFTP error) as a TransportError
    naming its type."""
    if isinstance(exc, FleetError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return TransportError("command timed out after {:g}s".format(timeout) if timeout is not None
                              else "{}: {}".format(type(exc).__name__, exc))
    return TransportError("{}: {}".format(type(exc).__name__, exc))


async def on_hosts(jobs: Sequence[tuple[Host, HostWork]], opts: RunOptions | None = None) -> list[HostResult]:
    """``on_host`` for every (host, work), at most ``opts.forks`` at a time, with the command timeout; results
    in ``jobs`` order."""
    opts = opts or RunOptions()
    sem = asyncio.Semaphore(max(1, opts.forks))

    async def one(host, work):
        async with sem:
            return await on_host(host, work, opts.ssh, opts.command_timeout)
    return await asyncio.gather(*(one(host, work) for host, work in jobs))


async def run_async(hosts: Sequence[Host], op, args, opts=None, on_event=None, payload: Payload | None = None,
                    args_for: Callable[[Host], dict] | None = None):
    """Run ``op`` on every host; results come back in ``hosts`` order.

    Every host gets ``args``, unless ``args_for`` is given: then each host gets ``args_for(host)`` (per-host
    settings from the inventory, e.g. ``fleet configure``).
    """
    from fleet.transport import invoke

    payload = payload or build()

    def work(host, host_args):
        callback = (lambda name, data: on_event(host, name, data)) if on_event else None
        return lambda conn: invoke.call(conn, host, payload, op, host_args, callback)
    return await on_hosts([(h, work(h, args_for(h) if args_for else args)) for h in hosts], opts)


def run(hosts: Sequence[Host], op, args, opts=None, on_event: HostEventCallback | None = None, payload=None,
        args_for: Callable[[Host], dict] | None = None) -> list[HostResult]:
    """Synchronous wrapper around :func:`run_async`."""
    return asyncio.run(run_async(hosts, op, args, opts, on_event, payload, args_for))
