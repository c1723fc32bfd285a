"""The rollout of a compose project across hosts: survey, plan, batches gated on health, failure policy.

One ``HostLink`` per host for the whole run (fleet/transport/link.py): the host's deploy lock is tied to it.
Order of work:

1. connect to every host, take each host's deploy lock for the project (a live holder anywhere: nothing is
   changed, the holder is named, exit 1);
2. survey: ``service_ls`` per host; resolve each image tag to its digest once (``image_resolve`` on the first
   host that runs it), so every host runs the same bytes even if the tag moves meanwhile;
3. plan (plan.py) — ``--dry-run`` stops here;
4. hosts with changes go in batches (batches.py); the next batch pre-pulls while the current one is gated;
   on each host the changed services are swapped in dependency order by the payload's ``service_swap`` (a
   detached worker on the host that finishes or reverts by itself: pull, swap per ``order``, gate, revert on
   failure); a host whose swap failed is back on its previous container and counts against
   ``max_failure_ratio``; past it ``failure_action`` says: ``pause`` (remaining hosts untouched), ``rollback``
   (every host this deploy updated goes back too, newest first) or ``continue``; ``delay`` between batches;
5. release the locks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from fleet.deploy import batches
from fleet.deploy.plan import Action, one_shot, pinned, plan_host
from fleet.errors import FleetError, RemoteError

#: the most conservative failure_action of the services being updated wins
_ACTION_RANK = {"continue": 0, "pause": 1, "rollback": 2}


@dataclass
class Options:
    project: str
    deploy_id: str
    controller: str  # user@host of this controller, for the lock and the journal
    parallelism: list | None = None  # batches.Step list from --parallelism (None: the compose file's)
    timeout: float = 300.0  # per host and service: swap + gate
    keep: int = 2
    remove_orphans: bool = False
    dry_run: bool = False
    forks: int = 50


@dataclass
class Policy:
    steps: list
    delay: float
    failure_action: str
    max_failure_ratio: float


def policy_of(specs: list, parallelism: list | None, which: str = "update") -> Policy:
    """The batch policy of a rollout from the services it changes: the smallest parallelism, the longest delay,
    the most conservative failure_action, the lowest max_failure_ratio (``--parallelism`` overrides)."""
    configs = [getattr(s, which) for s in specs] or []
    if parallelism is not None:
        steps = parallelism
    elif configs:
        steps = batches.from_compose(min(configs, key=lambda c: c.parallelism or 10 ** 9).parallelism)
    else:
        steps = batches.from_compose(1)
    return Policy(steps=steps, delay=max((c.delay for c in configs), default=0.0),
                  failure_action=max((c.failure_action for c in configs), key=_ACTION_RANK.get, default="pause"),
                  max_failure_ratio=min((c.max_failure_ratio for c in configs), default=0.0))


@dataclass
class Outcome:
    """One row of the final table."""

    host: str
    service: str
    result: str  # created, updated, unchanged, removed, rolled back, failed, skipped
    from_: str = ""
    to: str = ""
    seconds: float | None = None
    reason: str = ""
    logs: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"host": self.host, "service": self.service, "result": self.result, "from": self.from_ or None,
                "to": self.to or None, "seconds": self.seconds, "reason": self.reason or None, "logs": self.logs}


@dataclass
class HostRun:
    host: Any  # inventory Host
    link: Any = None
    locked: bool = False
    lock_conflict: bool = False
    error: str | None = None  # the host could not be reached, locked or surveyed
    rows: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    pull: asyncio.Task | None = None
    failed: bool = False
    updated: list = field(default_factory=list)  # actions this deploy changed on the host, in order

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def changing(self) -> list:
        return [a for a in self.actions if a.changing]


@dataclass
class Report:
    plan: list = field(default_factory=list)  # every Action
    rows: dict = field(default_factory=dict)  # host -> its service_ls rows of the project
    outcomes: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)  # host -> why it took no part
    paused: bool = False
    rolled_back: bool = False
    interrupted: bool = False

    @property
    def status(self) -> int:
        bad = ("failed", "rolled back", "skipped")
        return 1 if self.errors or any(o.result in bad for o in self.outcomes) else 0


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def _version(image: str, digest: str | None) -> str:
    return "{} ({})".format(image, _short(digest)) if digest else image


class Rollout:
    """``await Rollout(...).run()`` -> Report.  ``link_for(host)`` gives an unopened HostLink-like object."""

    def __init__(self, project, hosts: list, opts: Options, link_for: Callable, view=None,
                 rollback_service: str | None = None) -> None:
        self.project = project
        self.rollback_service = rollback_service
        self.opts = opts
        self.link_for = link_for
        self.view = view
        self.runs = [HostRun(h) for h in hosts]
        self.report = Report()
        self.digests: dict = {}

    # ------------------------------------------------------------------ helpers

    def _phase(self, run: HostRun, service: str, phase: str) -> None:
        if self.view is not None:
            self.view.phase(run.name, service, phase)

    async def _each(self, runs, fn) -> None:
        sem = asyncio.Semaphore(max(1, self.opts.forks))

        async def one(run):
            async with sem:
                await fn(run)
        await asyncio.gather(*(one(r) for r in runs))

    def _live(self) -> list:
        return [r for r in self.runs if r.error is None]

    # ------------------------------------------------------------------ phases

    async def _connect(self, run: HostRun) -> None:
        run.link = self.link_for(run.host)
        try:
            await run.link.open()
        except FleetError as exc:
            run.error = "unreachable: {}".format(exc)

    async def _lock(self, run: HostRun) -> None:
        try:
            await run.link.call("deploy_lock", {"project": self.opts.project, "deploy_id": self.opts.deploy_id,
                                                "holder": self.opts.controller, "action": "acquire"})
            run.locked = True
        except FleetError as exc:
            run.error = str(exc)
            run.lock_conflict = isinstance(exc, RemoteError) and exc.kind == "Conflict"

    async def _unlock(self, run: HostRun) -> None:
        if run.locked:
            try:
                await run.link.call("deploy_lock", {"project": self.opts.project, "deploy_id": self.opts.deploy_id,
                                                    "holder": self.opts.controller, "action": "release"})
            except FleetError:
                pass  # the lock goes stale with this connection anyway
            run.locked = False

    async def _survey(self, run: HostRun) -> None:
        try:
            data = await run.link.call("service_ls", {"project": self.opts.project})
            run.rows = [r for r in data.get("services", []) if r.get("project") == self.opts.project]
        except FleetError as exc:
            run.error = str(exc)

    async def _resolve(self) -> None:
        """Each image reference resolved once (on the first host that runs it) to the digest every host pulls."""
        users: dict = {}
        for run in self._live():
            for spec in self.project.for_host(run.name).values():
                users.setdefault(spec.image, []).append(run)
        for image, runs in users.items():
            last = None
            for run in runs:
                try:
                    self.digests[image] = (await run.link.call("image_resolve", {"image": image}))["digest"]
                    break
                except FleetError as exc:
                    last = exc
                    if isinstance(exc, RemoteError) and exc.kind in ("NotFound", "InvalidArgument"):
                        break  # the registry's answer: no other host will get another one
            else:
                last = last or FleetError("no host to resolve it on")
            if image not in self.digests:
                for run in runs:
                    run.error = "image {}: {}".format(image, last)

    def _plan(self) -> None:
        for run in self.runs:
            if run.error is not None:
                continue
            self.report.rows[run.name] = run.rows
            run.actions = plan_host(run.name, self.project.for_host(run.name), self.digests, run.rows,
                                    self.opts.remove_orphans)
            self.report.plan.extend(run.actions)

    def _plan_rollback(self) -> None:
        """``fleet rollback``: every host that runs the service goes back one version (its newest retired one)."""
        name = self.rollback_service
        for run in self.runs:
            if run.error is not None:
                continue
            mine = [r for r in run.rows if r.get("service") == name]
            if not mine:
                continue
            live = [r for r in mine if not r.get("retired")]
            spec = self.project.for_host(run.name).get(name) if self.project is not None else None
            action = Action(run.name, name, "rollback", current=live[0] if live else None, spec=spec)
            if not any(r.get("retired") for r in mine):
                run.error = "no previous version of service {} on this host".format(name)
                continue
            run.actions = [action]
            self.report.plan.append(action)

    # ------------------------------------------------------------------ per host

    async def _pull(self, run: HostRun) -> None:
        for image in dict.fromkeys(pinned(a.spec.image, a.digest) for a in run.changing
                                   if a.kind in ("create", "recreate")):
            self._phase(run, "", "pulling")
            await run.link.call("pull", {"image": image})

    async def _ensure_objects(self, run: HostRun) -> None:
        """The project's networks and volumes the host's changing services use (compose creates them on up)."""
        used_nets, used_vols = set(), set()
        for a in run.changing:
            if a.kind not in ("create", "recreate"):
                continue
            used_nets.add(a.spec.create_args.get("network"))
            used_nets.update(name for name, _aliases in a.spec.extra_networks)
            used_vols.update(a.spec.named_volumes)
        for net in self.project.networks.values():
            if net.name_on_host in used_nets and not net.external:
                try:
                    await run.link.call("network_create", {"name": net.name_on_host, "driver": net.driver,
                                                           "internal": net.internal, "labels": net.labels})
                except RemoteError as exc:
                    if exc.kind != "Conflict":  # it exists already
                        raise
        for vol in self.project.volumes.values():
            if vol.name_on_host in used_vols and not vol.external:
                await run.link.call("volume_create", {"name": vol.name_on_host, "driver": vol.driver,
                                                      "labels": vol.labels})

    def _completes(self, host: str, service: str) -> bool:
        return service in one_shot(self.project.for_host(host))

    def _swap_args(self, action: Action, config) -> dict:
        spec = action.spec
        labels = dict(spec.create_args.get("labels") or {})
        if action.digest:
            labels["fleet.deploy.image-digest"] = action.digest
        create = dict(spec.create_args, image=pinned(spec.image, action.digest), labels=labels)
        return {"project": self.opts.project, "service": action.service, "deploy_id": self.opts.deploy_id,
                "create": create, "extra_networks": [[n, list(a)] for n, a in spec.extra_networks],
                "order": config.order, "monitor": config.monitor, "probe": spec.probe,
                "timeout": self.opts.timeout, "stop_grace_period": spec.stop_grace_period, "keep": self.opts.keep,
                "journal": {"controller": self.opts.controller},
                "complete": self._completes(action.host, action.service)}

    def _gate_args(self, action: Action, config) -> dict:
        spec = action.spec
        return {"project": self.opts.project, "service": action.service, "deploy_id": self.opts.deploy_id,
                "order": config.order, "monitor": config.monitor, "probe": spec.probe if spec else None,
                "timeout": self.opts.timeout, "stop_grace_period": spec.stop_grace_period if spec else 10.0,
                "keep": self.opts.keep, "journal": {"controller": self.opts.controller},
                "complete": self.project is not None and self._completes(action.host, action.service)}

    async def _call_swap(self, run: HostRun, action: Action, op: str, args: dict) -> Outcome:
        started = time.monotonic()
        cur = action.current or {}
        out = Outcome(run.name, action.service, "failed",
                      from_=_version(cur.get("image", ""), cur.get("image_digest")) if cur else "",
                      to=_version(action.spec.image, action.digest) if action.spec else "")

        def on_event(name, data):
            if name == "phase":
                self._phase(run, action.service, str(data.get("phase", "")))
        try:
            res = await run.link.call(op, args, on_event, timeout=self.opts.timeout * 2 + 120)
        except FleetError as exc:
            out.reason = str(exc)
            self._phase(run, action.service, "failed")
        else:
            if res.get("result") == "updated":
                out.result = "created" if not res.get("from") else "updated"
            else:
                out.result = "rolled back"
                out.reason = res.get("reason") or ""
                out.logs = list(res.get("logs") or [])
            self._phase(run, action.service, "done ({})".format(out.result))
        out.seconds = round(time.monotonic() - started, 1)
        return out

    async def _host(self, run: HostRun) -> None:
        """Pull (pre-pulled), then each changing service in order; the first failure stops the host."""
        try:
            await run.pull
        except FleetError as exc:
            run.failed = True
            for a in run.changing:
                self.report.outcomes.append(Outcome(run.name, a.service, "failed", reason="pull: {}".format(exc)))
            self._phase(run, "", "failed")
            return
        try:
            await self._ensure_objects(run)
        except FleetError as exc:
            run.failed = True
            for a in run.changing:
                self.report.outcomes.append(Outcome(run.name, a.service, "failed", reason=str(exc)))
            return
        for action in run.changing:
            if run.failed:
                self.report.outcomes.append(Outcome(run.name, action.service, "skipped",
                                                    reason="an earlier service failed on this host"))
                continue
            if action.kind == "remove":
                names = [r["name"] for r in run.rows if r.get("service") == action.service]
                try:
                    data = await run.link.call("rm", {"containers": names, "force": True})
                    # several names: each is its own operation, its failure in its result (issue 13)
                    failed = ["{}: {}".format(r.get("name"), (r.get("error") or {}).get("message"))
                              for r in data.get("results") or [] if not r.get("ok")]
                    if failed:
                        raise FleetError("; ".join(failed))
                    self.report.outcomes.append(Outcome(run.name, action.service, "removed"))
                except FleetError as exc:
                    run.failed = True
                    self.report.outcomes.append(Outcome(run.name, action.service, "failed", reason=str(exc)))
                continue
            if action.kind == "rollback":
                out = await self._call_swap(run, action, "service_rollback",
                                            self._gate_args(action, self._config(action, "rollback")))
            else:
                out = await self._call_swap(run, action, "service_swap",
                                            self._swap_args(action, action.spec.update))
            self.report.outcomes.append(out)
            if out.result in ("created", "updated"):
                run.updated.append((action, out))
            else:
                run.failed = True

    # ------------------------------------------------------------------ the run

    async def run(self) -> Report:
        try:
            await self._each(self.runs, self._connect)
            if not self.opts.dry_run:
                await self._each(self._live(), self._lock)
                # another deploy of this project is running: change nothing anywhere
                if any(r.lock_conflict for r in self.runs):
                    for r in self.runs:
                        if r.error is not None:
                            self.report.errors[r.name] = r.error
                    return self.report
            await self._each(self._live(), self._survey)
            if self.rollback_service is not None:
                self._plan_rollback()
            else:
                await self._resolve()
                self._plan()
            for run in self.runs:
                if run.error is not None:
                    self.report.errors[run.name] = run.error
            if not self.opts.dry_run:
                await self._rollout()
            return self.report
        except asyncio.CancelledError:
            self.report.interrupted = True
            raise
        finally:
            await asyncio.shield(self._close())

    async def _close(self) -> None:
        await self._each([r for r in self.runs if r.link is not None], self._unlock)
        for run in self.runs:
            if run.link is not None:
                await run.link.close()

    async def _rollout(self) -> None:
        runs = [r for r in self.runs if r.error is None and r.changing]
        for r in self.runs:
            if r.error is None:
                for a in r.actions:
                    if a.kind == "unchanged":
                        cur = a.current or {}
                        self.report.outcomes.append(Outcome(r.name, a.service, "unchanged",
                                                            from_=_version(cur.get("image", ""),
                                                                           cur.get("image_digest"))))
        if not runs:
            return
        specs = [a.spec for r in runs for a in r.changing if a.spec is not None]
        policy = policy_of(specs, self.opts.parallelism,
                           "rollback" if self.rollback_service is not None else "update")
        groups = batches.split(runs, policy.steps)
        for run in groups[0]:
            run.pull = asyncio.ensure_future(self._pull(run))
        failed = 0
        for i, group in enumerate(groups):
            if i + 1 < len(groups):  # pulling is not a risk: the next batch pulls while this one is gated
                for run in groups[i + 1]:
                    run.pull = asyncio.ensure_future(self._pull(run))
            await asyncio.gather(*(self._host(run) for run in group))
            failed += sum(1 for run in group if run.failed)
            if failed and failed / len(runs) > policy.max_failure_ratio and policy.failure_action != "continue":
                rest = [run for g in groups[i + 1:] for run in g]
                for run in rest:
                    if run.pull is not None:
                        run.pull.cancel()
                    for a in run.changing:
                        self.report.outcomes.append(Outcome(run.name, a.service, "skipped", reason=(
                            "deploy stopped: {} of {} hosts failed (failure_action {})".format(
                                failed, len(runs), policy.failure_action))))
                if policy.failure_action == "rollback":
                    await self._roll_back([run for g in groups[:i + 1] for run in g])
                else:
                    self.report.paused = True
                return
            if policy.delay and i + 1 < len(groups):
                await asyncio.sleep(policy.delay)

    def _config(self, action: Action, which: str):
        """The service's update_config or rollback_config (compose defaults without a compose file)."""
        if action.spec is not None:
            return getattr(action.spec, which)
        from fleet.compose import UpdateConfig
        return UpdateConfig()

    async def _roll_back(self, runs: list) -> None:
        """failure_action rollback: every service this deploy updated goes back, newest first (one it created
        is removed)."""
        self.report.rolled_back = True
        for run in reversed(runs):
            for action, out in reversed(run.updated):
                if action.kind == "create":
                    try:
                        await run.link.call("rm", {"containers": ["{}-{}-1".format(self.opts.project, action.service)],
                                                   "force": True})
                        out.result, out.reason = "rolled back", "failure_action rollback: removed"
                    except FleetError as exc:
                        out.reason = "failure_action rollback failed: {}".format(exc)
                    continue
                back = await self._call_swap(run, action, "service_rollback",
                                             self._gate_args(action, self._config(action, "rollback")))
                if back.result in ("created", "updated"):
                    out.result = "rolled back"
                    out.reason = "failure_action rollback: back on the previous version"
                else:
                    out.reason = "failure_action rollback failed: {}".format(back.reason or back.result)
