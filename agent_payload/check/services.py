"""``service:<project>/<service>`` and ``container:<name>`` rows: desired services running as asked, container
health, restarts and OOM kills since the last check (counters.py), and the containers' metrics.

A service's containers are those with its compose labels named as compose names replicas
(``{project}-{service}-N``: fleet deploy's live container is ``-1``); its retired versions and a swap's ``.next``
container are not.
"""

import re
import time

from agent_payload.deploy import CONFIG_HASH, DIGEST, PROJECT, SERVICE, live_name
from agent_payload.deploy import services as deployed

from . import CRITICAL, OK, UNKNOWN, WARNING, counters, row, worst


def _short(value):
    if not value:
        return "none"
    algo, sep, rest = value.partition(":")
    return "{}:{}".format(algo, rest[:12]) if sep else value[:12]


def replicas(records, project, service):
    """The service's containers among ``records`` (named ``{project}-{service}-N`` with its labels)."""
    name = re.compile(re.escape("{}-{}-".format(project, service)) + r"[0-9]+$")
    return [rec for rec in records if name.match(rec["name"]) and (rec.get("labels") or {}).get(PROJECT) == project
            and rec["labels"].get(SERVICE) == service]


def _health_output(rec):
    log = (rec.get("health") or {}).get("Log") or []
    out = (log[-1].get("Output") or "").strip().splitlines() if log else []
    return out[0] if out else ""


def news(rec, seen):
    """Findings [(status, text)] every container gets: unhealthy, restarted or OOM-killed since the last check."""
    found = []
    r = deployed.row(rec, None)
    if r["health"] == "unhealthy":
        out = _health_output(rec)
        found.append((CRITICAL, "unhealthy" + (": " + out if out else "")))
    _entry, new_restarts, new_oom = seen.get(rec["id"], (None, 0, 0))
    if new_restarts:
        found.append((WARNING, "restarted {} time{} since the last check (restart count {})".format(
            new_restarts, "" if new_restarts == 1 else "s", r["restart_count"])))
    if new_oom:
        found.append((WARNING, "{} OOM kill{} since the last check".format(new_oom, "" if new_oom == 1 else "s")))
    return found


def _state(rec, now):
    r = deployed.row(rec, None, now)
    if r["state"] == "running":
        return [(WARNING, "paused")] if rec.get("paused") else []
    if r["state"] == "restarting":
        return [(WARNING, r["status"].lower())]
    return [(CRITICAL, r["status"].lower() if r["state"] != "created" else "created, never started")]


def _drift(rec, want, digest_of):
    labels = rec.get("labels") or {}
    found = []
    if want["config_hash"] is not None and labels.get(CONFIG_HASH) != want["config_hash"]:
        found.append("config_hash {} (want {})".format(_short(labels.get(CONFIG_HASH)), _short(want["config_hash"])))
    if want["image_digest"] is not None:
        have = labels.get(DIGEST) or digest_of(rec.get("image_id"))
        if have != want["image_digest"]:
            found.append("image_digest {} (want {})".format(_short(have), _short(want["image_digest"])))
    return [(WARNING, "drifted: " + ", ".join(found))] if found else []


def _service_row(records, want, seen, now, digest_of):
    project, service = want["project"], want["service"]
    name = "service:{}/{}".format(project, service)
    live = [r for r in records if r["name"] == live_name(project, service)]
    if live and live[0] not in replicas(live, project, service):
        labels = live[0].get("labels") or {}
        return row(name, CRITICAL, "container {} is not the service's: its labels name project {!r} service "
                                   "{!r}".format(live[0]["name"], labels.get(PROJECT), labels.get(SERVICE))), []
    reps = sorted(replicas(records, project, service), key=lambda r: r["name"])
    if not reps:
        return row(name, CRITICAL, "missing: no container {}".format(live_name(project, service))), []
    statuses, texts, ok_texts = [], [], []
    for rec in reps:
        found = _state(rec, now) + _drift(rec, want, digest_of) + news(rec, seen)
        prefix = rec["name"] + ": " if len(reps) > 1 else ""
        if found:
            statuses += [s for s, _ in found]
            texts.append(prefix + "; ".join(t for _, t in found))
        else:
            r = deployed.row(rec, None, now)
            ok_texts.append(prefix + "{}, config_hash {}".format(r["status"].lower(), _short(r["config_hash"])))
    status = worst(statuses)
    texts = texts if status != OK else ok_texts  # not OK: the replicas with something to say
    return row(name, status, "; ".join(texts)), [r["id"] for r in reps]


def _digests(ctx):
    cache = {}

    def digest_of(image_id):
        if not image_id:
            return None
        if image_id not in cache:
            try:
                cache[image_id] = ctx.images().resolve(image_id).digest
            except Exception:  # noqa: BLE001 - an image gone or unreadable: no digest to compare
                cache[image_id] = None
        return cache[image_id]
    return digest_of


def _hierarchy():
    from agent_payload.runtime import cgroups
    try:
        return cgroups.detect()
    except OSError:
        return None


def _observe(paths, records, keep, now, hierarchy):
    """{id: (entry, restarts since, OOM kills since)}; with ``keep`` the entries are stored (OSError if not)."""
    seen = {}
    with counters.session(paths, keep) as stored:
        last = stored.get("containers") or {}
        last_time = stored.get("time") if isinstance(stored.get("time"), int) else None
        for rec in records:
            alive = rec["status"] in ("running", "paused")
            cg = counters.cgroup_oom_kills(rec["id"], hierarchy) if alive else 0
            prev = last.get(rec["id"]) if isinstance(last.get(rec["id"]), dict) else None
            seen[rec["id"]] = counters.observe(rec, prev, last_time, cg)
        if keep:
            counters.save(paths, {"time": now, "containers": {cid: v[0] for cid, v in seen.items()}})
    return seen


def evaluate(ctx, records, desired, keep=True):
    """(rows, container metrics, problem|None): the service and container rows; with ``keep`` the counters are
    stored for the next check (``problem`` says why they could not be)."""
    now = time.time_ns()
    hierarchy = _hierarchy()
    problem = None
    try:
        seen = _observe(ctx.paths, records, keep, now, hierarchy)
    except OSError as exc:  # a full disk, a read-only root: the checks still run, the payload row says so
        problem = "cannot keep the check counters: {}".format(exc)
        seen = _observe(ctx.paths, records, False, now, hierarchy)
    rows, claimed = [], set()
    digest_of = _digests(ctx)
    for want in desired:
        try:
            r, ids = _service_row(records, want, seen, now, digest_of)
        except Exception as exc:  # noqa: BLE001 - one service that cannot be checked is UNKNOWN, not the host
            r, ids = row("service:{}/{}".format(want["project"], want["service"]), UNKNOWN,
                         "cannot check: {}".format(exc)), []
        rows.append(r)
        claimed.update(ids)
    for rec in sorted(records, key=lambda r: r["name"]):
        if rec["id"] in claimed:
            continue
        found = news(rec, seen)
        if found:
            rows.append(row("container:" + rec["name"], worst(s for s, _ in found), "; ".join(t for _, t in found)))
    metrics = []
    for rec in records:
        labels = rec.get("labels") or {}
        r = deployed.row(rec, None, now)
        metrics.append({"name": rec["name"], "project": labels.get(PROJECT), "service": labels.get(SERVICE),
                        "restarts": r["restart_count"], "oom_kills": seen[rec["id"]][0]["oom_kills"],
                        "health": r["health"], "state": "paused" if rec.get("paused") and r["state"] == "running"
                        else r["state"]})
    return rows, metrics, problem
