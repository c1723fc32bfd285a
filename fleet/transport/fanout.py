"""Run one payload op on many hosts in parallel: one connection per host, bounded by --forks, never raising.

A host that is unreachable or fails yields a HostResult with its error; the others always finish.  The
commands decide the exit status from the results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fleet.errors import FleetError, TransportError
from fleet.transport.payload import Payload, build

HostEventCallback = Callable[[object, str, dict], None]


@dataclass
class HostResult:
    """One host's outcome: result data, or the error that stopped it."""

    host: object
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


async def _on_host(host, sem, op, args, payload, opts, on_event) -> HostResult:
    from fleet.transport import invoke, ssh

    async with sem:
        res = HostResult(host)
        try:
            conn = await ssh.connect(host, opts.ssh or ssh.SSHOptions())
            async with conn:
                callback = (lambda name, data: on_event(host, name, data)) if on_event else None
                inv = await asyncio.wait_for(invoke.call(conn, host, payload, op, args, callback),
                                             opts.command_timeout)
            res.data, res.uploaded = inv.data, inv.uploaded
        except FleetError as exc:
            res.error = exc
        except (TimeoutError, asyncio.TimeoutError):
            res.error = TransportError("command timed out after {:g}s".format(opts.command_timeout))
        except Exception as exc:  # noqa: BLE001 - asyncssh channel errors and the like: report, don't stop others
            res.error = TransportError("{}: {}".format(type(exc).__name__, exc))
        return res


async def run_async(hosts, op, args, opts=None, on_event=None, payload: Payload | None = None,
                    args_for: Callable[[object], dict] | None = None):
    """Run ``op`` on every host; results come back in ``hosts`` order.

    Every host gets ``args``, unless ``args_for`` is given: then each host gets ``args_for(host)`` (per-host
    settings from the inventory, e.g. ``fleet configure``).
    """
    opts = opts or RunOptions()
    payload = payload or build()
    sem = asyncio.Semaphore(max(1, opts.forks))
    return await asyncio.gather(*(_on_host(h, sem, op, args_for(h) if args_for else args, payload, opts, on_event)
                                  for h in hosts))


def run(hosts, op, args, opts=None, on_event: HostEventCallback | None = None, payload=None,
        args_for: Callable[[object], dict] | None = None) -> list[HostResult]:
    """Synchronous wrapper around :func:`run_async`."""
    return asyncio.run(run_async(hosts, op, args, opts, on_event, payload, args_for))
