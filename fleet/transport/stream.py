"""The interactive remote call: like invoke.call, but the channel's stdin stays open for frames after the request.

::

    exec  ping (invoke.call: uploads the payload if the host lacks it; the interactive exec cannot, because
          the launcher's "payload missing" branch drains stdin until EOF)
    exec  payload --rpc; stdin: request line, then protocol frames (stdin data, eof, resize) from ``frames``
          stdout: events (``output`` with raw bytes) and one result line, as for every op

``frames`` is an asyncio.Queue of frame objects (protocol.stdin_frame/stdin_eof/resize_frame); None in the
queue means "no more frames" (the channel's stdin is then closed).  The non-interactive path (invoke.call)
is untouched: one exec per host.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from agent_payload import protocol
from fleet.errors import PayloadCrash, from_wire
from fleet.transport import fanout, invoke
from fleet.transport.fanout import HostResult

if TYPE_CHECKING:
    from fleet.inventory.models import Host


async def _pump_frames(proc, frames: asyncio.Queue) -> None:
    while True:
        frame = await frames.get()
        if frame is None:
            break
        proc.stdin.write(json.dumps(frame, separators=(",", ":")) + "\n")
        await proc.stdin.drain()
    proc.stdin.write_eof()


async def call(conn, host, payload, op: str, args: dict, frames: asyncio.Queue, on_event=None) -> dict:
    """Run an interactive ``op`` on ``host``; returns the result data (raises FleetError like invoke.call)."""
    await invoke.call(conn, host, payload, "ping", {})
    request = protocol.request(op, args, payload.sha256)
    proc = await conn.create_process(invoke.remote_command(host, payload), encoding="utf-8", errors="replace")
    pump = None
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        pump = asyncio.ensure_future(_pump_frames(proc, frames))
        result = await invoke.read_result(proc, on_event)
        stderr = await proc.stderr.read()
        completed = await proc.wait()
    finally:
        if pump is not None:
            pump.cancel()
        proc.close()
    if result is None:
        raise PayloadCrash("payload exited with status {} without a result: {}".format(
            completed.exit_status, stderr[-2000:].strip() or "(no stderr)"))
    if not result.get("ok"):
        raise from_wire(result.get("error") or {})
    return result.get("data") or {}


async def on_host(host: Host, payload, ssh_opts, op: str, args: dict, frames: asyncio.Queue,
                  on_event=None) -> HostResult:
    """One host's interactive call as a HostResult through fanout's runner (never raises; no time limit)."""
    callback = (lambda name, data: on_event(host, name, data)) if on_event else None

    async def work(conn):
        return invoke.Invocation(await call(conn, host, payload, op, args, frames, callback))
    return await fanout.on_host(host, work, ssh_opts)
