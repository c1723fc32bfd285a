"""The plan of a deploy: per host and service, what the desired state asks of what runs there now (pure).

Desired: the compose project rendered for the host (fleet/compose ServiceSpec: config hash, canonical spec) and
the image digest each tag resolved to once for the whole deploy.  Actual: the host's ``service_ls`` rows.  A
service is *in sync* on a host when its live container runs with the desired config hash and image digest.

Actions: ``create`` (no live container), ``recreate`` (a field or the digest differs, or it is not running;
the changed fields listed old -> new, values of secret-looking environment variables masked), ``unchanged``,
``remove`` (a container of the project whose service the file no longer gives this host, with
``--remove-orphans``) or ``orphan`` (the same, kept).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

#: environment variable names whose values a plan never prints
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)
MASK = "****"
CHANGING = ("create", "recreate", "remove", "rollback")


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any

    def text(self) -> str:
        return "{}: {} -> {}".format(self.field, _show(self.old), _show(self.new))


def _show(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


@dataclass
class Action:
    host: str
    service: str
    kind: str
    changes: list[Change] = field(default_factory=list)
    current: dict | None = None  # the host's service_ls row of the live container
    spec: Any = None  # fleet.compose ServiceSpec (None for remove/orphan)
    digest: str | None = None  # the pinned digest the service is deployed with

    @property
    def changing(self) -> bool:
        return self.kind in CHANGING

    def detail(self) -> str:
        if self.kind == "recreate":
            return "; ".join(c.text() for c in self.changes)
        if self.kind == "create":
            return "image {}".format(pinned(self.spec.image, self.digest) if self.spec else "")
        if self.kind == "orphan":
            return "not in the compose file for this host (kept; --remove-orphans removes it)"
        if self.kind == "remove":
            return "not in the compose file for this host"
        return ""

    def to_json(self) -> dict:
        cur = self.current or {}
        return {"host": self.host, "service": self.service, "action": self.kind,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
                "from": {"id": cur.get("id"), "config_hash": cur.get("config_hash"),
                         "image_digest": cur.get("image_digest")} if self.current else None,
                "to": {"config_hash": self.spec.config_hash, "image_digest": self.digest,
                       "image": self.spec.image} if self.spec is not None else None}


def pinned(image: str, digest: str | None) -> str:
    """``repo:tag`` pinned to ``digest`` as a reference the host pulls by (``repo@sha256:...``)."""
    if not digest:
        return image
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return "{}@{}".format(name, digest)


def _env_map(entries) -> dict:
    out = {}
    for entry in entries or []:
        key, _, value = str(entry).partition("=")
        out[key] = value
    return out


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten("{}.{}".format(prefix, key) if prefix else str(key), value[key], out)
    else:
        out[prefix] = value


def diff_specs(old: dict | None, new: dict) -> list[Change]:
    """The fields that differ between two canonical service specs, old -> new (secret env values masked).

    Environment variables are compared one by one (``env.DB_HOST``); every other field as a whole value at its
    dotted path (``create.publish``, ``deploy.update_config.order``).
    """
    old = dict(old or {})
    new = dict(new)
    flat_old, flat_new = {}, {}
    for spec, flat in ((old, flat_old), (new, flat_new)):
        create = dict(spec.get("create") or {})
        env = _env_map(create.pop("env", None))
        for key, value in env.items():
            flat["env." + key] = value
        _flatten("", dict(spec, create=create), flat)
    changes = []
    for key in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(key), flat_new.get(key)
        if a == b or (a in (None, {}, []) and b in (None, {}, [])):
            continue
        if key.startswith("env.") and SECRET_NAME.search(key[4:]):
            a, b = (None if a is None else MASK), (None if b is None else MASK)
        changes.append(Change(key, a, b))
    return changes


def _live(rows: list[dict], service: str) -> dict | None:
    """The service's live container: not retired; a running one first, then the newest."""
    mine = [r for r in rows if r.get("service") == service and not r.get("retired")]
    if not mine:
        return None
    mine.sort(key=lambda r: (r.get("state") == "running", r.get("created") or ""), reverse=True)
    return mine[0]


def one_shot(desired: dict) -> set:
    """The services another one depends on with ``condition: service_completed_successfully``: they run to
    completion (gated on exit code 0), and a completed run is their desired state."""
    return {dep for spec in desired.values() for dep, cond in (spec.depends_on or {}).items()
            if cond == "service_completed_successfully"}


def plan_host(host: str, desired: dict, digests: dict, rows: list[dict], remove_orphans: bool) -> list[Action]:
    """Actions for one host: ``desired`` {service: ServiceSpec} in deploy order, ``digests`` {image: digest},
    ``rows`` the host's service_ls rows of this project."""
    actions = []
    completes = one_shot(desired)
    for name, spec in desired.items():
        digest = digests.get(spec.image)
        cur = _live(rows, name)
        if cur is None:
            actions.append(Action(host, name, "create", spec=spec, digest=digest))
            continue
        changes = []
        if cur.get("config_hash") != spec.config_hash:
            changes = diff_specs(cur.get("spec"), json.loads(spec.spec_json))
            if not changes:
                changes = [Change("config-hash", cur.get("config_hash"), spec.config_hash)]
        if digest and cur.get("image_digest") != digest:
            changes.append(Change("image digest", cur.get("image_digest"), digest))
        completed = name in completes and cur.get("state") == "exited" and cur.get("exit_code") == 0
        if not changes and cur.get("state") != "running" and not completed:
            changes.append(Change("state", cur.get("state"), "completed" if name in completes else "running"))
        actions.append(Action(host, name, "recreate" if changes else "unchanged", changes, cur, spec, digest))
    for service in sorted({r.get("service") for r in rows if r.get("service") not in desired}):
        cur = _live(rows, service) or next(r for r in rows if r.get("service") == service)
        actions.append(Action(host, service, "remove" if remove_orphans else "orphan", current=cur))
    return actions
