"""The rollout engine (fleet/deploy): batches, plan, failure policy, locks and pre-pulls, against fake hosts."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from fleet.deploy import batches
from fleet.deploy.plan import MASK, diff_specs, pinned, plan_host
from fleet.deploy.rollout import Options, Rollout, policy_of
from fleet.errors import RemoteError, UsageError

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def update(**kw):
    base = dict(parallelism=1, delay=0.0, failure_action="pause", monitor=0.0, max_failure_ratio=0.0,
                order="stop-first")
    base.update(kw)
    return SimpleNamespace(**base)


def spec(service="web", image="reg:5000/app:1", env=("A=1",), cfg_hash=None, **kw):
    create = {"image": image, "env": list(env), "labels": {"com.docker.compose.service": service}}
    spec_json = json.dumps({"image": image, "create": {"env": list(env)}}, sort_keys=True)
    return SimpleNamespace(service=service, image=image, create_args=create, extra_networks=[], named_volumes=[],
                           config_hash=cfg_hash or str(abs(hash(spec_json))), spec_json=spec_json,
                           has_healthcheck=False, probe=None, update=kw.get("update", update()),
                           rollback=kw.get("rollback", update()), depends_on={}, stop_grace_period=1.0,
                           secret_env_names=[])


class Project:
    def __init__(self, services, name="shop"):
        self.name, self.file = name, "compose.yaml"
        self._services = services  # host -> {service: spec}
        self.services = sorted({s for per in services.values() for s in per})
        self.networks, self.volumes = {}, {}

    def for_host(self, host):
        return dict(self._services.get(host, {}))


class FakeHost:
    """A host's payload as the rollout sees it: records every call; answers from its containers."""

    def __init__(self, name, log, rows=(), fail_swap=False, locked_by=None, digest=D1):
        self.name, self.log, self.rows = name, log, list(rows)
        self.fail_swap, self.locked_by, self.digest = fail_swap, locked_by, digest
        self.host = SimpleNamespace(name=name, vars={})

    def link(self):
        host = self

        class Link:
            async def open(self):
                host.log.append((host.name, "open"))

            async def call(self, op, args, on_event=None, timeout=None):
                host.log.append((host.name, op))
                await asyncio.sleep(0)
                if op == "deploy_lock" and args["action"] == "acquire" and host.locked_by:
                    raise RemoteError("Conflict", "project shop on this host is being deployed by {} since "
                                      "2026-12-04T10:00:00Z (d-1)".format(host.locked_by))
                if op == "service_ls":
                    return {"services": host.rows}
                if op == "image_resolve":
                    return {"reference": args["image"], "digest": host.digest}
                if op in ("service_swap", "service_rollback"):
                    if on_event:
                        on_event("phase", {"phase": "waiting"})
                    if host.fail_swap and op == "service_swap":
                        return {"result": "rolled_back", "reason": "exited with code 1", "logs": ["boom"],
                                "from": {"id": "old"}, "to": None}
                    return {"result": "updated", "from": {"id": "old"} if host.rows else None, "to": {"id": "new"}}
                return {}

            async def close(self):
                host.log.append((host.name, "close"))
        return Link()


def rollout(hosts, project, **kw):
    opts = Options(project=project.name, deploy_id="d-2", controller="me@ctl", **kw)
    by_name = {h.name: h for h in hosts}
    r = Rollout(project, [h.host for h in hosts], opts, lambda host: by_name[host.name].link())
    return asyncio.run(r.run())


def row(service="web", cfg_hash="h1", digest=D1, state="running", **kw):
    return dict({"id": "c" + service, "name": "shop-{}-1".format(service), "project": "shop", "service": service,
                 "config_hash": cfg_hash, "image_digest": digest, "image": "reg:5000/app:1", "state": state,
                 "spec": None, "retired": None}, **kw)


# ---------------------------------------------------------------- batches

def test_parallelism_steps_and_batches():
    hosts = list(range(10))
    assert batches.split(hosts, batches.parse_parallelism("1,5,25%")) == [[0], [1, 2, 3, 4, 5], [6, 7], [8, 9]]
    assert batches.split(hosts, batches.parse_parallelism("3")) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert batches.split(hosts, batches.parse_parallelism("50%")) == [hosts[:5], hosts[5:]]
    assert batches.split(hosts[:3], batches.parse_parallelism("10%")) == [[0], [1], [2]]  # at least 1
    assert batches.split(hosts, batches.from_compose(0)) == [hosts]  # compose: 0 = all at once
    for bad in ("0", "1,0", "-1", "x", "150%", "", "1,,2"):
        with pytest.raises(UsageError, match="--parallelism"):
            batches.parse_parallelism(bad)


# ---------------------------------------------------------------- plan

def test_diff_masks_secret_values_and_lists_changed_fields():
    old = {"image": "app:1", "create": {"env": ["DB_PASSWORD=old", "MODE=a", "GONE=1"], "publish": ["80:80"]}}
    new = {"image": "app:2", "create": {"env": ["DB_PASSWORD=new", "MODE=b"], "publish": ["80:80"]}}
    changes = {c.field: (c.old, c.new) for c in diff_specs(old, new)}
    assert changes == {"env.DB_PASSWORD": (MASK, MASK), "env.MODE": ("a", "b"), "env.GONE": ("1", None),
                       "image": ("app:1", "app:2")}
    assert "old" not in json.dumps([c.text() for c in diff_specs(old, new)])


def test_plan_actions():
    s = spec(cfg_hash="h1")
    assert plan_host("h", {"web": s}, {s.image: D1}, [], False)[0].kind == "create"
    assert plan_host("h", {"web": s}, {s.image: D1}, [row()], False)[0].kind == "unchanged"
    moved = plan_host("h", {"web": s}, {s.image: D2}, [row()], False)[0]
    assert moved.kind == "recreate" and [c.field for c in moved.changes] == ["image digest"]
    assert plan_host("h", {"web": s}, {s.image: D1}, [row(state="exited")], False)[0].kind == "recreate"
    assert plan_host("h", {"web": s}, {s.image: D1}, [row(retired="t")], False)[0].kind == "create"
    orphans = plan_host("h", {"web": s}, {s.image: D1}, [row(), row("old")], False)
    assert [(a.service, a.kind) for a in orphans] == [("web", "unchanged"), ("old", "orphan")]
    assert plan_host("h", {}, {}, [row("old")], True)[0].kind == "remove"


def test_a_completed_one_shot_service_is_in_sync():
    migrate, web = spec("migrate", cfg_hash="m1"), spec("web", cfg_hash="h1")
    web.depends_on = {"migrate": "service_completed_successfully"}
    desired = {"migrate": migrate, "web": web}
    digests = {migrate.image: D1}
    done = [row("migrate", cfg_hash="m1", state="exited", exit_code=0), row()]
    assert [a.kind for a in plan_host("h", desired, digests, done, False)] == ["unchanged", "unchanged"]
    failed = [row("migrate", cfg_hash="m1", state="exited", exit_code=1), row()]
    (again, _) = plan_host("h", desired, digests, failed, False)
    assert again.kind == "recreate" and again.changes[0].new == "completed"
    assert plan_host("h", {"web": web}, digests, [row(state="exited", exit_code=0)], False)[0].kind == "recreate"


def test_swap_args_gate_one_shot_services_on_completion():
    from fleet.deploy.plan import Action
    migrate, web = spec("migrate"), spec("web")
    web.depends_on = {"migrate": "service_completed_successfully"}
    project = Project({"h": {"migrate": migrate, "web": web}})
    r = Rollout(project, [], Options(project="shop", deploy_id="d", controller="me@ctl"), None)
    args = {name: r._swap_args(Action("h", name, "create", spec=sp, digest=D1), sp.update)
            for name, sp in (("migrate", migrate), ("web", web))}
    assert args["migrate"]["complete"] is True and args["web"]["complete"] is False
    assert args["web"]["create"]["image"] == "reg:5000/app@" + D1
    assert args["web"]["create"]["labels"]["fleet.deploy.image-digest"] == D1


def test_pinned_reference():
    assert pinned("reg:5000/app:1.4", D1) == "reg:5000/app@" + D1
    assert pinned("nginx", D1) == "nginx@" + D1
    assert pinned("reg:5000/app@" + D2, D1) == "reg:5000/app@" + D1
    assert pinned("app:1", None) == "app:1"


def test_policy_takes_the_most_careful_of_the_services():
    a = spec(update=update(parallelism=3, delay=1.0, failure_action="continue", max_failure_ratio=0.5))
    b = spec(update=update(parallelism=0, delay=2.0, failure_action="rollback", max_failure_ratio=0.2))
    p = policy_of([a, b], None)
    assert (p.steps, p.delay, p.failure_action, p.max_failure_ratio) == (
        [batches.Step(3)], 2.0, "rollback", 0.2)
    assert policy_of([a], batches.parse_parallelism("1,50%")).steps == [batches.Step(1), batches.Step(50, True)]


# ---------------------------------------------------------------- rollouts against fake hosts

def _hosts(log, n=4, per=None):
    return [FakeHost("web{}".format(i), log, **(per or {}).get(i, {})) for i in range(1, n + 1)]


def _project(hosts, **kw):
    return Project({h.name: {"web": spec(cfg_hash="h2", **kw)} for h in hosts})


def test_dry_run_reads_only_and_takes_no_lock():
    log = []
    hosts = _hosts(log, 2, {1: {"rows": [row()]}})
    report = rollout(hosts, _project(hosts), dry_run=True)
    assert {op for _, op in log} <= {"open", "close", "service_ls", "image_resolve"}
    assert [(a.host, a.kind) for a in report.plan] == [("web1", "recreate"), ("web2", "create")]


def test_a_host_failing_in_the_first_batch_pauses_the_rest():
    log = []
    hosts = _hosts(log, 4, {1: {"fail_swap": True}})
    report = rollout(hosts, _project(hosts))
    swaps = [h for h, op in log if op == "service_swap"]
    assert swaps == ["web1"]
    results = {o.host: o.result for o in report.outcomes}
    assert results == {"web1": "rolled back", "web2": "skipped", "web3": "skipped", "web4": "skipped"}
    assert report.paused and report.status == 1
    assert next(o for o in report.outcomes if o.host == "web1").logs == ["boom"]
    # every lock taken is released
    assert sorted(h for h, op in log if op == "deploy_lock") == sorted(["web1", "web2", "web3", "web4"] * 2)


def test_failure_action_rollback_restores_earlier_batches_newest_first():
    log = []
    per = {i: {"rows": [row()]} for i in (1, 2, 4)}
    per[3] = {"rows": [row()], "fail_swap": True}
    hosts = _hosts(log, 4, per)
    report = rollout(hosts, _project(hosts, update=update(failure_action="rollback")))
    assert [h for h, op in log if op == "service_rollback"] == ["web2", "web1"]
    assert {o.host: o.result for o in report.outcomes} == {"web1": "rolled back", "web2": "rolled back",
                                                           "web3": "rolled back", "web4": "skipped"}
    assert report.rolled_back and report.status == 1
    log.clear()  # a service this deploy created (no previous version) is removed
    hosts = _hosts(log, 2, {2: {"fail_swap": True}})
    report = rollout(hosts, _project(hosts, update=update(failure_action="rollback")))
    assert [(h, op) for h, op in log if op in ("rm", "service_rollback")] == [("web1", "rm")]
    assert {o.host: o.result for o in report.outcomes} == {"web1": "rolled back", "web2": "rolled back"}


def test_continue_and_max_failure_ratio():
    log = []
    hosts = _hosts(log, 4, {1: {"fail_swap": True}})
    report = rollout(hosts, _project(hosts, update=update(failure_action="continue")))
    assert [h for h, op in log if op == "service_swap"] == ["web1", "web2", "web3", "web4"]
    assert report.status == 1
    log.clear()
    hosts = _hosts(log, 4, {1: {"fail_swap": True}})
    report = rollout(hosts, _project(hosts, update=update(max_failure_ratio=0.25)))  # 1/4 is tolerated
    assert [h for h, op in log if op == "service_swap"] == ["web1", "web2", "web3", "web4"]


def test_next_batch_pulls_while_the_current_one_is_gated():
    log = []
    hosts = _hosts(log, 3)
    rollout(hosts, _project(hosts))
    order = [(h, op) for h, op in log if op in ("pull", "service_swap")]
    assert order.index(("web2", "pull")) < order.index(("web1", "service_swap"))
    assert order.index(("web3", "pull")) > order.index(("web1", "service_swap"))


def test_a_live_lock_anywhere_changes_nothing():
    log = []
    hosts = _hosts(log, 3, {2: {"locked_by": "ops@laptop"}})
    report = rollout(hosts, _project(hosts))
    assert not [op for _, op in log if op in ("service_swap", "pull", "service_ls")]
    assert "ops@laptop" in report.errors["web2"] and report.status == 1
    released = [h for h, op in log if op == "deploy_lock"]
    assert released.count("web1") == 2 and released.count("web3") == 2 and released.count("web2") == 1


def test_unchanged_hosts_are_not_touched():
    log = []
    hosts = _hosts(log, 2, {1: {"rows": [row(cfg_hash="h2")]}, 2: {"rows": [row(cfg_hash="h2")]}})
    report = rollout(hosts, _project(hosts))
    assert not [op for _, op in log if op in ("service_swap", "pull")]
    assert {o.result for o in report.outcomes} == {"unchanged"} and report.status == 0


def test_explicit_parallelism_overrides_the_file():
    log = []
    hosts = _hosts(log, 4)
    rollout(hosts, _project(hosts), parallelism=batches.parse_parallelism("1,3"))
    swaps = [h for h, op in log if op == "service_swap"]
    assert swaps[0] == "web1" and sorted(swaps[1:]) == ["web2", "web3", "web4"]


# ---------------------------------------------------------------- what the user sees

def test_view_plain_lines_and_tty_frames():
    import io

    from fleet.deploy.view import DeployView

    out = io.StringIO()
    view = DeployView(["web1", "web2"], stream=out, tty=False)
    view.start()
    view.phase("web1", "web", "pulling")
    view.phase("web1", "web", "pulling")  # no change: no line
    view.phase("web1", "web", "waiting")
    view.phase("web2", "web", "rolled-back")
    assert out.getvalue().splitlines() == ["web1: web: pulling", "web1: web: waiting for health",
                                           "web2: web: rolled back"]
    tty = io.StringIO()
    clock = iter(range(100))
    view = DeployView(["web1", "db1"], stream=tty, tty=True, clock=lambda: next(clock))
    view.start()
    view.phase("db1", "worker", "starting")
    frames = tty.getvalue().split("\x1b[2A")  # each redraw moves up over the block it drew
    assert len(frames) == 2
    last = [line.split("\r", 1)[1] for line in frames[1].split("\n") if line]
    assert last[0].split() == ["web1", "pending"] and last[1].split()[:3] == ["db1", "worker", "starting"]


def test_services_row_states():
    from fleet.commands.deploy import _service_row
    from fleet.deploy.plan import Action, Change

    cur = row(health="healthy", restart_count=2, status="Up 3 minutes", started_at="2026-12-04T10:00:00Z")
    assert _service_row("web1", cur, Action("web1", "web", "unchanged"))["state"] == "in sync"
    drift = Action("web1", "web", "recreate", [Change("env.MODE", "a", "b"), Change("image digest", D1, D2)])
    r = _service_row("web1", cur, drift)
    assert r["state"] == "drifted: env.MODE, image digest"
    assert r["image"] == "reg:5000/app:1 (111111111111)" and r["health"] == "healthy" and r["restarts"] == 2
    assert _service_row("web1", row(retired="t"), None)["state"] == "previous version"
    assert _service_row("web1", row(), Action("web1", "web", "orphan"))["state"] == "orphan"
