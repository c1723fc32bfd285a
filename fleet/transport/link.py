"""One SSH connection to one host held open across several payload calls.

A deploy keeps one link per host for its whole run: every call on a host goes over it (one connection, one exec
per call), and the host's deploy lock is tied to it (the payload records the sshd process that carries this
connection, so a controller that dies releases its locks with its connections).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fleet.transport.fanout import host_error

if TYPE_CHECKING:
    from fleet.inventory.models import Host
    from fleet.transport.invoke import EventCallback
    from fleet.transport.payload import Payload
    from fleet.transport.ssh import SSHOptions


class HostLink:
    """``await link.open()``, then ``await link.call(op, args)`` any number of times, then ``await link.close()``.

    Every failure is raised as a FleetError (fanout.host_error): a payload error as it is, anything else as a
    TransportError naming the host's problem.
    """

    def __init__(self, host: Host, payload: Payload, ssh_opts: SSHOptions | None = None) -> None:
        self.host = host
        self.payload = payload
        self.ssh_opts = ssh_opts
        self.conn = None
        self.uploaded = False

    async def open(self, timeout: float | None = None) -> None:
        from fleet.transport import ssh

        try:
            coro = ssh.connect(self.host, self.ssh_opts or ssh.SSHOptions())
            self.conn = await (coro if timeout is None else asyncio.wait_for(coro, timeout))
        except Exception as exc:  # noqa: BLE001 - becomes this host's error
            raise host_error(exc, timeout) from None

    async def call(self, op: str, args: dict, on_event: EventCallback | None = None,
                   timeout: float | None = None) -> dict:
        """Run ``op`` on this host; its result data (the payload is uploaded first if the host lacks it)."""
        from fleet.transport import invoke

        if self.conn is None:
            raise RuntimeError("HostLink.call before open")
        try:
            coro = invoke.call(self.conn, self.host, self.payload, op, args, on_event)
            inv = await (coro if timeout is None else asyncio.wait_for(coro, timeout))
        except Exception as exc:  # noqa: BLE001 - becomes this host's error
            raise host_error(exc, timeout) from None
        self.uploaded = self.uploaded or inv.uploaded
        return inv.data

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()
            try:
                await conn.wait_closed()
            except Exception:  # noqa: BLE001 - closing a broken connection: nothing left to do
                pass
