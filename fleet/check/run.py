"""One check run: every host at once, one connection each, within one global deadline.

Per host: connect (the ``reachable`` row: CRITICAL when the host cannot be reached), resolve the compose images'
digests once (on the first host that runs each), then the payload's ``check`` op with the host's desired
services, probes and thresholds; its rows come back as they are.  When the deadline passes, a host still
connecting is CRITICAL ("no answer"), one connected but still checking is UNKNOWN, and the run ends: slow hosts
never hold a cron job up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from fleet.check.model import CRITICAL, OK, UNKNOWN, HostReport, Perf, Report, Row
from fleet.errors import FleetError, PayloadCrash, TransportError


class _HostRun:
    def __init__(self, host, link, args: dict) -> None:
        self.host = host
        self.link = link
        self.args = args
        self.connected = False
        self.report = HostReport(host.name)
        self.started = time.monotonic()


def rows_of(host: str, data: dict) -> list:
    """The check op's rows as Rows (an unknown status from a newer payload counts as UNKNOWN)."""
    out = []
    for c in data.get("checks") or []:
        status = c.get("status") if c.get("status") in ("OK", "WARNING", "CRITICAL", "UNKNOWN") else UNKNOWN
        perf = []
        for p in c.get("perfdata") or []:
            try:
                perf.append(Perf.from_wire(p))
            except (TypeError, ValueError):
                continue
        out.append(Row(host, str(c.get("check", "?")), status, str(c.get("detail") or ""), perf))
    return out


async def run(hosts: list, args_for: Callable, link_for: Callable, deadline: float) -> Report:
    """Check ``hosts``: ``args_for(host)`` -> the check op's args, its services with their ``image`` (resolved
    here to the digest they should run), ``link_for(host)`` -> an unopened HostLink."""
    end = time.monotonic() + deadline
    runs = [_HostRun(h, link_for(h), args_for(h)) for h in hosts]
    report = Report(hosts=[r.report for r in runs])
    digests: dict = {}
    resolving: dict = {}

    async def resolve(run: _HostRun, image: str):
        if image not in resolving:  # the first host that runs the image asks its registry, once
            async def ask():
                try:
                    return (await run.link.call("image_resolve", {"image": image})).get("digest")
                except FleetError:
                    return None  # the drift check then compares the config hash alone
            resolving[image] = asyncio.ensure_future(ask())
        digests[image] = await resolving[image]

    async def one(run: _HostRun):
        try:
            await run.link.open()
        except FleetError as exc:
            run.report.rows.append(Row(run.host.name, "reachable", CRITICAL, "unreachable: {}".format(exc)))
            return
        run.connected = True
        run.report.up = True
        run.report.rows.append(Row(run.host.name, "reachable", OK, "ssh {}:{}".format(run.host.address,
                                                                                   run.host.port)))
        wanted = run.args.get("services") or []
        for image in dict.fromkeys(s["image"] for s in wanted if s.get("image")):
            await resolve(run, image)
        args = dict(run.args, services=[{"project": s["project"], "service": s["service"],
                                         "config_hash": s["config_hash"],
                                         "image_digest": digests.get(s.get("image"))} for s in wanted])
        try:
            data = await run.link.call("check", args)
        except PayloadCrash as exc:
            run.report.rows.append(Row(run.host.name, "payload", CRITICAL, str(exc)))
            return
        except FleetError as exc:
            what = "payload" if isinstance(exc, TransportError) else "check"
            run.report.rows.append(Row(run.host.name, what, UNKNOWN, "the check could not run: {}".format(exc)))
            return
        run.report.rows.extend(rows_of(run.host.name, data))
        run.report.metrics = data.get("metrics") or {}
        run.report.seconds = round(time.monotonic() - run.started, 3)

    tasks = {asyncio.ensure_future(one(r)): r for r in runs}
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, end - time.monotonic()))
    for task in pending:
        run = tasks[task]
        task.cancel()
        if not run.connected:
            run.report.rows.append(Row(run.host.name, "reachable", CRITICAL,
                                       "no answer within the {:g}s deadline".format(deadline)))
        else:
            run.report.rows.append(Row(run.host.name, "check", UNKNOWN,
                                       "the check did not finish within the {:g}s deadline".format(deadline)))
    for task in done:
        exc = task.exception()
        if exc is not None:  # a bug, not a host's failure: say so as an UNKNOWN row rather than crash the run
            run = tasks[task]
            run.report.rows.append(Row(run.host.name, "check", UNKNOWN, "{}: {}".format(type(exc).__name__, exc)))
    if pending:
        await asyncio.wait(pending, timeout=1.0)  # let the cancellations land; never wait for a stuck host
    closes = [asyncio.ensure_future(r.link.close()) for r in runs if r.connected]
    if closes:
        await asyncio.wait(closes, timeout=1.0)
    return report
