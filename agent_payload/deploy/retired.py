"""Which containers of a project are retired (kept, stopped, for a rollback) and since when.

Docker labels cannot change after create, so the "retired" mark lives in ``deploys/<project>.json`` (0600,
written atomically under the flock ``locks/deploy-state-<project>.lock``): ``{"retired": {id: {"service",
"since"}}}``.  Entries of containers that no longer exist are ignored by readers and dropped by writers.
"""

import os

from agent_payload.state import locks, store
from agent_payload.timestamps import format_ns

from . import deploys_dir


def _file(paths, project):
    return os.path.join(deploys_dir(paths), project + ".json")


def read(paths, project):
    """{container id: {"service", "since"}} of ``project``."""
    data = store.read_json(_file(paths, project)) or {}
    return dict(data.get("retired") or {})


def update(paths, project, add=None, remove=(), exists=None):
    """Mark ``add`` ({id: service}) retired now, unmark ``remove`` ids; ``exists(id)`` drops vanished ones."""
    with locks.locked(paths.lock_file("deploy-state-" + project)):
        data = store.read_json(_file(paths, project)) or {}
        retired = dict(data.get("retired") or {})
        for cid in remove:
            retired.pop(cid, None)
        for cid, service in (add or {}).items():
            retired[cid] = {"service": service, "since": format_ns()}
        if exists is not None:
            retired = {cid: v for cid, v in retired.items() if exists(cid)}
        if retired:
            store.write_json_atomic(_file(paths, project), {"retired": retired})
        else:
            try:
                os.unlink(_file(paths, project))
            except FileNotFoundError:
                pass
        return retired
