"""One service's switch to a new container (``service_swap``) or back to its last retired one
(``service_rollback``), gated, reverted on failure; the body of the detached worker (worker.py).

stop-first (what Swarm does): the new container is created as ``{name}.next``; the old one is stopped (its stop
signal, ``stop_grace_period`` s before SIGKILL) and renamed to its retired name; the new one takes the live name,
starts and is gated.  start-first: the new container is created with its published ports staged (part B's
``publish_staged``), started and gated while the old one serves; then ``Runtime.handover_ports`` moves the host
ports in one firewall transaction, the names are switched and the old one drains: its stop signal waits (at most
``stop_grace_period`` s) until the connections it accepted before the handover are done, then it stops with the
same grace period before SIGKILL.

A failed gate (or start): the new container's last log lines are kept for the result, the new container is
removed (a rollback's target goes back to being retired instead), and the old one serves again (stop-first: it
takes its name back and is started again; start-first: it never stopped).  The old container stays, stopped, as
a retired version; only ``keep`` retired versions per service are kept (older ones are removed with their
anonymous volumes).  The whole switch runs under the service's flock, so two workers never interleave on one
service (a taken-over deploy's new worker waits for the previous one to finish).
"""

from agent_payload import errors
from agent_payload.state import locks
from agent_payload.timestamps import format_ns

from . import PROJECT, SERVICE, drain, gate, journal, live_name, next_name, retired, retired_name, services

LOG_LINES = 20


class Job:
    """What the worker does; built by the op from its request (``action``: "swap" or "rollback")."""

    def __init__(self, ctx, req, action):
        self.ctx, self.req, self.action = ctx, req, action
        self.project, self.service = req.project, req.service
        self.warnings = []

    # -- helpers

    def _rt(self):
        return self.ctx.runtime()

    def _rename(self, rt, cid, name):
        if rt.lookup(cid)["name"] != name:
            rt.rename(cid, name)

    def _mark(self, add=None, remove=()):
        rt = self._rt()

        def exists(cid):
            try:
                rt.lookup(cid)
                return True
            except errors.NotFound:
                return False
        retired.update(self.ctx.paths, self.project, add=add, remove=remove, exists=exists)

    def _logs(self, rt, cid):
        try:
            return [ev["line"].rstrip("\n") for ev in rt.logs(cid, tail=LOG_LINES)]
        except errors.AgentError:
            return []

    def _create(self, progress, staged):
        from agent_payload.ops.args import decode
        from agent_payload.ops.containers import create_container

        args = dict(self.req.create, name=next_name(self.project, self.service), detach=True)
        if staged:
            args["publish_staged"] = True
        created = create_container(self.ctx, decode("create", args), progress.event)
        rt = self._rt()
        try:
            for name, aliases in self.req.extra_networks or []:
                rt.connect(created["id"], name, aliases=list(aliases or []))
        except BaseException:
            rt.remove([created["id"]], force=True, volumes=True)
            raise
        return rt.lookup(created["id"])

    def _prune(self, rt):
        """Keep the ``keep`` most recently retired containers of the service; remove the others."""
        kept = services.retired_of(rt, self.ctx.paths, self.project, self.service)
        gone = []
        for _since, rec in kept[self.req.keep:]:
            try:
                rt.remove([rec["id"]], force=True, volumes=True)
            except errors.NotFound:
                pass
            gone.append(rec["id"])
        if gone:
            self._mark(remove=gone)
        return [rec["name"] for _s, rec in kept[self.req.keep:]]

    # -- the switch

    def __call__(self, progress):
        lock = self.ctx.paths.lock_file("deploy-service-{}-{}".format(self.project, self.service))
        with locks.locked(lock):
            return self._switch(progress)

    def _switch(self, progress):
        rt = self._rt()
        old = services.live(rt, self.project, self.service)
        old_running = old is not None and old["status"] in ("running", "restarting", "paused")
        if self.action == "rollback":
            candidates = services.retired_of(rt, self.ctx.paths, self.project, self.service)
            if not candidates:
                raise errors.NotFound("no previous version of service {}".format(self.service))
            new = candidates[0][1]
            if new["status"] in ("running", "restarting"):
                rt.stop([new["id"]])
        else:
            try:  # what a worker killed before its switch left behind
                rt.remove([next_name(self.project, self.service)], force=True, volumes=True)
            except errors.NotFound:
                pass
            new = None
        order = self.req.order
        publishes = bool((new or {}).get("ports") if new is not None else
                         (self.req.create.get("publish") or self.req.create.get("publish_all")))
        staged = order == "start-first" and old_running and publishes
        state = {"old": old, "old_running": old_running, "renamed_old": False, "new": new, "switched": False,
                 "staged": staged}
        try:
            if new is None:
                progress.phase("creating")
                new = state["new"] = self._create(progress, staged)
            elif staged:  # a rollback's target (retired, stopped) starts again with its ports staged
                rt.stage_ports(new["id"])
            if order == "stop-first":
                self._stop_old(rt, progress, state)
                self._take_name(rt, state)
                progress.phase("starting", id=new["id"])
                rt.start(new["id"])
                progress.phase("waiting", id=new["id"])
                reason = self._gate(rt, new["id"])
            else:
                progress.phase("starting", id=new["id"])
                rt.start(new["id"])
                progress.phase("waiting", id=new["id"])
                reason = self._gate(rt, new["id"])
                if reason is None:
                    progress.phase("switching", id=new["id"])
                    if staged:
                        rt.handover_ports(old["id"], new["id"])
                        state["switched"] = True
                    self._retire_old(rt, state)
                    self._take_name(rt, state)
                    if old_running:
                        progress.phase("draining", id=old["id"])
                        if staged:  # the connections it accepted before the handover finish first
                            drain.wait(rt.lookup(old["id"]), self.req.stop_grace_period)
                        rt.stop([old["id"]], time=self.req.stop_grace_period)
        except errors.AgentError as exc:
            if state["new"] is None:
                raise  # nothing changed yet (a bad create request, a missing image): the op's error
            reason = exc.message
        except BaseException as exc:
            if state["new"] is None:
                raise
            reason = "{}: {}".format(exc.__class__.__name__, exc)
        if reason is None:
            return self._done(rt, progress, state)
        return self._revert(rt, progress, state, reason)

    def _gate(self, rt, cid):
        """None when the started container passed its gate, else why not (a one-shot service must complete)."""
        if self.req.complete:
            return gate.wait_completed(rt, cid, self.req.timeout)
        return gate.wait(rt, cid, self.req.monitor, self.req.probe, self.req.timeout)

    def _stop_old(self, rt, progress, state):
        old = state["old"]
        if old is None:
            return
        progress.phase("switching", id=old["id"])
        if state["old_running"]:
            rt.stop([old["id"]], time=self.req.stop_grace_period)
        self._retire_old(rt, state)

    def _retire_old(self, rt, state):
        old = state["old"]
        if old is None:
            return
        self._rename(rt, old["id"], retired_name(self.project, self.service, old["id"]))
        state["renamed_old"] = True
        self._mark(add={old["id"]: self.service})

    def _take_name(self, rt, state):
        new = state["new"]
        self._rename(rt, new["id"], live_name(self.project, self.service))
        if self.action == "rollback":
            self._mark(remove=[new["id"]])

    def _result(self, rt, state, result, live_id, reason=None, logs=None):
        rec = rt.lookup(live_id) if live_id else None
        return {"result": result, "id": live_id, "name": rec["name"] if rec else None,
                "from": services.version(state["old"]), "to": services.version(state["new"]),
                "reason": reason, "logs": logs or [], "warnings": self.warnings, "action": self.action}

    def _journal(self, out):
        entry = dict(self.req.journal or {})

        def strip(v):
            return None if v is None else {"config_hash": v["config_hash"], "image_digest": v["image_digest"]}
        journal.append(self.ctx.paths, {
            "time": format_ns(), "controller": entry.get("controller"), "deploy_id": self.req.deploy_id,
            "project": self.project, "service": self.service, "from": strip(out["from"]), "to": strip(out["to"]),
            "result": out["result"], "action": self.action, "reason": out["reason"]})

    def _done(self, rt, progress, state):
        new = state["new"]
        out = self._result(rt, state, "updated", new["id"])
        out["pruned"] = self._prune(rt)
        self._journal(out)
        progress.phase("done", id=new["id"])
        return out

    def _revert(self, rt, progress, state, reason):
        new, old = state["new"], state["old"]
        progress.phase("rolling-back", id=new["id"], reason=reason)
        logs = self._logs(rt, new["id"])
        if state["switched"]:
            rt.handover_ports(new["id"], old["id"])
        if self.action == "rollback":  # the target goes back to being a retired version
            try:
                rt.stop([new["id"]], time=self.req.stop_grace_period)
            except errors.NotFound:
                pass
            self._rename(rt, new["id"], retired_name(self.project, self.service, new["id"]))
            self._mark(add={new["id"]: self.service})
            if state["staged"] and not state["switched"]:
                rt.stage_ports(new["id"], staged=False)  # as it was: a later start publishes its ports
        else:
            rt.remove([new["id"]], force=True, volumes=True)
        if old is not None:
            if state["renamed_old"]:
                self._rename(rt, old["id"], live_name(self.project, self.service))
                self._mark(remove=[old["id"]])
            if state["old_running"] and rt.lookup(old["id"])["status"] not in ("running", "restarting"):
                rt.start(old["id"])
        out = self._result(rt, state, "rolled_back", old["id"] if old else None, reason, logs)
        self._journal(out)
        progress.phase("rolled-back", id=old["id"] if old else None, reason=reason)
        return out


def check_labels(create, project, service):
    """The create args' labels with the project's and service's (InvalidArgument when they name others)."""
    labels = dict(create.get("labels") or {})
    for key, want in ((PROJECT, project), (SERVICE, service)):
        if labels.setdefault(key, want) != want:
            raise errors.InvalidArgument("create label {}={!r} does not match {} {!r}".format(
                key, labels[key], "project" if key == PROJECT else "service", want))
    return dict(create, labels=labels)


def check_request(req):
    """The swap/rollback request's own checks (before any worker starts)."""
    if req.order not in ("stop-first", "start-first"):
        raise errors.InvalidArgument('argument order must be "stop-first" or "start-first", not {!r}'.format(
            req.order))
    for key in ("monitor", "timeout", "stop_grace_period"):
        value = getattr(req, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise errors.InvalidArgument("argument {} must be a number of seconds >= 0".format(key))
    if req.probe:
        gate.parse_probe(req.probe)
