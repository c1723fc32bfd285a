"""What a project runs on this host: its containers (live and retired), and taking them all down."""

import json
import time

from agent_payload import errors
from agent_payload.runtime import status as statusmod

from . import CONFIG_HASH, DIGEST, PROJECT, SERVICE, SPEC, live_name, retired


def of_project(runtime, project=None):
    """Every container record with compose labels (of ``project`` when given), newest first."""
    out = []
    for rec in runtime.all_records():
        labels = rec.get("labels") or {}
        if PROJECT in labels and SERVICE in labels and (project is None or labels[PROJECT] == project):
            out.append(rec)
    return out


def version(rec):
    """{"id", "config_hash", "image_digest"} of a container record (the journal's from/to)."""
    if rec is None:
        return None
    labels = rec.get("labels") or {}
    return {"id": rec["id"], "config_hash": labels.get(CONFIG_HASH), "image_digest": labels.get(DIGEST)}


def live(runtime, project, service):
    """The live container of the service (named ``{project}-{service}-1`` with its labels), or None."""
    try:
        rec = runtime.lookup(live_name(project, service))
    except errors.NotFound:
        return None
    labels = rec.get("labels") or {}
    if labels.get(PROJECT) != project or labels.get(SERVICE) != service or rec["name"] != live_name(project, service):
        raise errors.Conflict("container {} is not the service's: its labels name project {!r} service {!r}".format(
            rec["name"], labels.get(PROJECT), labels.get(SERVICE)))
    return rec


def retired_of(runtime, paths, project, service):
    """[(since, record)] of the service's retired containers, the most recently retired first."""
    marks = retired.read(paths, project)
    out = []
    for cid, mark in marks.items():
        if mark.get("service") != service:
            continue
        try:
            rec = runtime.lookup(cid)
        except errors.NotFound:
            continue
        out.append((mark.get("since") or "", rec))
    out.sort(key=lambda pair: pair[0], reverse=True)
    return out


def row(rec, retired_since, now_ns=None):
    """service_ls's row of one container record."""
    labels = rec.get("labels") or {}
    try:
        spec = json.loads(labels[SPEC]) if labels.get(SPEC) else None
    except ValueError:
        spec = None
    health = rec.get("health") if rec["status"] in ("running", "restarting", "paused") else None
    return {"id": rec["id"], "name": rec["name"], "project": labels.get(PROJECT), "service": labels.get(SERVICE),
            "config_hash": labels.get(CONFIG_HASH), "image": rec.get("image"), "image_digest": labels.get(DIGEST),
            "spec": spec, "status": statusmod.status_text(rec, now_ns), "state": rec["status"],
            "health": (health or {}).get("Status"), "restart_count": rec.get("restart_count") or 0,
            "started_at": rec.get("started_at"), "created": rec.get("created"), "retired": retired_since,
            "exit_code": rec.get("exit_code") if rec["status"] == "exited" else None}


def listing(runtime, paths, project=None):
    """service_ls: one row per container with compose labels."""
    recs = of_project(runtime, project)
    marks = {}
    for name in sorted({(r.get("labels") or {})[PROJECT] for r in recs}):
        marks.update(retired.read(paths, name))
    now = time.time_ns()
    return [row(rec, (marks.get(rec["id"]) or {}).get("since"), now) for rec in recs]


def down(runtime, paths, project, volumes=False):
    """Remove every container of ``project`` (live and retired; with ``volumes`` their anonymous volumes);
    returns their names."""
    removed = []
    for rec in of_project(runtime, project):
        try:
            runtime.remove([rec["id"]], force=True, volumes=volumes)
        except errors.NotFound:
            continue
        removed.append(rec["name"])
    retired.update(paths, project, exists=lambda cid: False)
    return removed
