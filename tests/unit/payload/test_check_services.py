"""service:/container: rows and the last-seen counters across runs, over container records made up here
(no runtime): missing, exited, drifted, unhealthy, restarts and OOM kills since the last check."""

import json
import os
import stat

import pytest

from agent_payload.check import CRITICAL, OK, UNKNOWN, WARNING, counters, services
from agent_payload.state.paths import Paths
from agent_payload.timestamps import format_ns

H1, H2 = "a" * 64, "b" * 64
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


class _Ctx:
    def __init__(self, paths):
        self.paths = paths

    def images(self):
        raise AssertionError("no image store here: the digests come from the labels")


def rec(name, project=None, service=None, status="running", config_hash=H1, digest=D1, restarts=0, health=None,
        oom=False, created=None, started="2026-12-04T10:00:00.000000000Z", cid=None):
    labels = {}
    if project:
        labels = {"com.docker.compose.project": project, "com.docker.compose.service": service,
                  "com.docker.compose.config-hash": config_hash, "fleet.deploy.image-digest": digest}
    return {"id": cid or (name.encode().hex() * 64)[:64], "name": name, "labels": labels, "status": status,
            "restart_count": restarts, "started_at": started, "created": created or "2026-12-04T09:00:00Z",
            "finished_at": "2026-12-04T11:00:00.000000000Z" if status != "running" else None,
            "exit_code": 1 if status == "exited" else None, "oom_killed": oom, "image_id": "sha256:" + "9" * 64,
            "health": health, "log_path": "/nonexistent"}


def want(project="shop", service="web", config_hash=H1, digest=D1):
    return {"project": project, "service": service, "config_hash": config_hash, "image_digest": digest}


@pytest.fixture
def ctx(tmp_path):
    return _Ctx(Paths(root=str(tmp_path / "root")))


@pytest.fixture
def oom(monkeypatch):
    """{container id: the OOM kills its cgroup counts now}."""
    counts = {}
    monkeypatch.setattr(counters, "cgroup_oom_kills", lambda cid, hierarchy: counts.get(cid, 0))
    return counts


def _rows(ctx, records, desired=(), keep=True):
    rows, metrics, problem = services.evaluate(ctx, records, list(desired), keep=keep)
    assert problem is None
    return {r["check"]: (r["status"], r["detail"]) for r in rows}, {m["name"]: m for m in metrics}


def test_a_running_service_as_asked_is_ok(ctx, oom):
    rows, metrics = _rows(ctx, [rec("shop-web-1", "shop", "web")], [want()])
    status, detail = rows["service:shop/web"]
    assert status == OK and detail.startswith("up ") and "config_hash aaaaaaaaaaaa" in detail
    assert metrics["shop-web-1"] == {"name": "shop-web-1", "project": "shop", "service": "web", "restarts": 0,
                                     "oom_kills": 0, "health": None, "state": "running"}


def test_missing_exited_drifted_unhealthy(ctx, oom):
    records = [rec("shop-web-1", "shop", "web", config_hash=H2),
               rec("shop-api-1", "shop", "api", status="exited"),
               rec("shop-db-1", "shop", "db", digest=D2),
               rec("shop-q-1", "shop", "q", health={"Status": "unhealthy", "Log": [{"Output": "nope\nmore"}]}),
               rec("shop-old-1.0123456789ab", "shop", "old", status="exited"),  # a retired one: not the service
               rec("shop-cron-1", "shop", "cron", status="restarting"),
               rec("shop-web-1.next", "shop", "web"),
               dict(rec("shop-pause-1", "shop", "pause"), paused=True)]
    desired = [want(), want(service="api"), want(service="db"), want(service="q"), want(service="old"),
               want(service="cron"), want(service="nohash", config_hash=None, digest=None), want(service="pause")]
    rows, metrics = _rows(ctx, records, desired)
    assert rows["service:shop/pause"] == (WARNING, "paused") and metrics["shop-pause-1"]["state"] == "paused"
    assert rows["service:shop/web"] == (WARNING, "drifted: config_hash bbbbbbbbbbbb (want aaaaaaaaaaaa)")
    assert rows["service:shop/api"][0] == CRITICAL and rows["service:shop/api"][1].startswith("exited (1)")
    assert rows["service:shop/db"] == (WARNING, "drifted: image_digest sha256:222222222222 "
                                                "(want sha256:111111111111)")
    assert rows["service:shop/q"] == (CRITICAL, "unhealthy: nope")
    assert rows["service:shop/old"] == (CRITICAL, "missing: no container shop-old-1")
    assert rows["service:shop/cron"][0] == WARNING and rows["service:shop/cron"][1].startswith("restarting")
    assert rows["service:shop/nohash"] == (CRITICAL, "missing: no container shop-nohash-1")
    assert not [k for k in rows if k.startswith("container:")]  # nothing else to say about the others


def test_drift_and_unhealthy_together_name_both(ctx, oom):
    records = [rec("shop-web-1", "shop", "web", config_hash=H2, digest=D2, health={"Status": "unhealthy"})]
    status, detail = _rows(ctx, records, [want()])[0]["service:shop/web"]
    assert status == CRITICAL
    assert detail == ("drifted: config_hash bbbbbbbbbbbb (want aaaaaaaaaaaa), image_digest sha256:222222222222 "
                      "(want sha256:111111111111); unhealthy")


def test_a_live_name_held_by_another_project(ctx, oom):
    rows, _ = _rows(ctx, [rec("shop-web-1", "other", "web")], [want()])
    assert rows["service:shop/web"][0] == CRITICAL and "is not the service's" in rows["service:shop/web"][1]


def test_restarts_grown_since_the_last_check_warn_once(ctx, oom):
    desired = [want()]
    rows, _ = _rows(ctx, [rec("shop-web-1", "shop", "web", restarts=3), rec("loop", restarts=5)], desired)
    assert rows["service:shop/web"][0] == OK and "container:loop" not in rows  # the first check: a baseline
    path = os.path.join(ctx.paths.root, "checks", "counters.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    rows, metrics = _rows(ctx, [rec("shop-web-1", "shop", "web", restarts=4), rec("loop", restarts=7)], desired)
    assert rows["service:shop/web"] == (WARNING, "restarted 1 time since the last check (restart count 4)")
    assert rows["container:loop"] == (WARNING, "restarted 2 times since the last check (restart count 7)")
    assert metrics["loop"]["restarts"] == 7
    stored = json.load(open(path))["containers"]
    assert {v["name"]: v["restarts"] for v in stored.values()} == {"shop-web-1": 4, "loop": 7}
    rows, _ = _rows(ctx, [rec("shop-web-1", "shop", "web", restarts=4), rec("loop", restarts=7)], desired)
    assert rows["service:shop/web"][0] == OK and "container:loop" not in rows


def test_a_dry_look_keeps_nothing(ctx, oom):
    _rows(ctx, [rec("loop", restarts=1)])
    before = open(os.path.join(ctx.paths.root, "checks", "counters.json")).read()
    for _ in range(2):  # the same news both times: nothing stored
        rows, _ = _rows(ctx, [rec("loop", restarts=3)], keep=False)
        assert rows["container:loop"][0] == WARNING
    assert open(os.path.join(ctx.paths.root, "checks", "counters.json")).read() == before


def test_a_restart_count_reset_by_a_start_counts_from_zero(ctx, oom):
    _rows(ctx, [rec("loop", restarts=9)])
    rows, _ = _rows(ctx, [rec("loop", restarts=2, started="2026-12-04T12:00:00Z")])
    assert "restarted 2 times" in rows["container:loop"][1]


def test_a_container_created_since_the_last_check_has_all_it_did_counted(ctx, oom):
    _rows(ctx, [])
    rows, _ = _rows(ctx, [rec("new", restarts=2, created=format_ns())])
    assert "restarted 2 times" in rows["container:new"][1]
    os.unlink(os.path.join(ctx.paths.root, "checks", "counters.json"))
    rows, _ = _rows(ctx, [rec("other", restarts=2, created=format_ns())])
    assert rows == {}  # no check kept counters before: a baseline


def test_oom_kills_from_the_cgroup_and_from_the_shims_record(ctx, oom):
    c = rec("hog")
    _rows(ctx, [c])
    oom[c["id"]] = 2  # two processes of the running container killed
    rows, metrics = _rows(ctx, [c])
    assert rows["container:hog"] == (WARNING, "2 OOM kills since the last check") and metrics["hog"]["oom_kills"] == 2
    rows, _ = _rows(ctx, [c])
    assert rows == {}
    oom[c["id"]] = 0
    dead = rec("hog", status="exited", oom=True, cid=c["id"])  # then the init itself: the shim recorded it
    rows, metrics = _rows(ctx, [dead])
    assert rows["container:hog"] == (WARNING, "1 OOM kill since the last check") and metrics["hog"]["oom_kills"] == 3
    assert _rows(ctx, [dead])[0] == {}
    # a new run (restart) whose fresh cgroup counts one kill
    again = rec("hog", started="2026-12-04T13:00:00Z", cid=c["id"], restarts=1)
    oom[c["id"]] = 1
    rows, metrics = _rows(ctx, [again])
    assert rows["container:hog"][0] == WARNING and "1 OOM kill since" in rows["container:hog"][1]
    assert "restarted 1 time" in rows["container:hog"][1] and metrics["hog"]["oom_kills"] == 4


def test_an_oom_killed_desired_service_warns(ctx, oom):
    c = rec("shop-web-1", "shop", "web")
    _rows(ctx, [c], [want()])
    oom[c["id"]] = 1
    assert _rows(ctx, [c], [want()])[0]["service:shop/web"] == (WARNING, "1 OOM kill since the last check")


def test_unreadable_counters_are_a_fresh_start_and_vanished_containers_dropped(ctx, oom):
    os.makedirs(os.path.join(ctx.paths.root, "checks"))
    with open(os.path.join(ctx.paths.root, "checks", "counters.json"), "w") as f:
        f.write("{torn")
    assert _rows(ctx, [rec("a", restarts=4)])[0] == {}
    _rows(ctx, [])
    data = json.load(open(os.path.join(ctx.paths.root, "checks", "counters.json")))
    assert data["containers"] == {} and isinstance(data["time"], int)


def test_a_service_that_cannot_be_checked_is_unknown(ctx, oom, monkeypatch):
    monkeypatch.setattr(services, "_state", lambda rec, now: 1 / 0)
    rows, _ = _rows(ctx, [rec("shop-web-1", "shop", "web")], [want()])
    assert rows["service:shop/web"][0] == UNKNOWN and "division by zero" in rows["service:shop/web"][1]


def test_counters_that_cannot_be_kept_leave_the_checks_running_and_say_so(ctx, oom, monkeypatch):
    def full(paths, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(counters, "save", full)
    rows, _metrics, problem = services.evaluate(ctx, [rec("loop", restarts=1)], [want()])
    assert problem == "cannot keep the check counters: [Errno 28] No space left on device"
    assert [r["check"] for r in rows] == ["service:shop/web"]
    # the whole op: the payload row says it
    from agent_payload.check import runner
    from agent_payload.ops.args import decode

    class Runtime:
        def all_records(self):
            return [rec("loop", restarts=1)]
    ctx.payload_sha, ctx.runtime = "dev", Runtime
    os.makedirs(ctx.paths.root, exist_ok=True)
    out = runner.run(ctx, decode("check", {}))
    assert out["checks"][0]["check"] == "payload" and out["checks"][0]["status"] == WARNING
    assert out["checks"][0]["detail"].endswith("; cannot keep the check counters: [Errno 28] No space left on device")
