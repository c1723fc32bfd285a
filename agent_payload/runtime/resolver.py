"""Finding a container by reference (full ID, name, unique ID prefix) and reading its reconciled records.

Below ``containers.Runtime`` (whose ``_resolve``/``_load``/``lookup`` are these), so that the shim, the health
monitor and exec find containers without importing the top-level runtime.
"""

from .. import errors
from ..state import store
from . import reaper, records


def resolve(paths, ref):
    """Full ID for a full ID, a name, or a unique ID prefix (Docker's order)."""
    if not isinstance(ref, str) or not ref:
        raise errors.InvalidArgument("empty container reference")
    ids = records.list_ids(paths)
    if ref in ids:
        return ref
    name = ref.lstrip("/")
    for cid in ids:
        cfg = store.read_json(records.Layout(paths, cid).config) or {}
        if cfg.get("name") == name:
            return cid
    matches = [cid for cid in ids if cid.startswith(ref.lower())] if records.ID_RE.match(
        ref.lower().ljust(64, "0")) else []
    if len(matches) > 1:
        raise errors.InvalidArgument("multiple IDs found with provided prefix: {}".format(ref))
    if not matches:
        raise errors.NotFound("No such container: {}".format(ref))
    return matches[0]


def load(paths, cid, ref):
    """(config, reconciled state) of container ``cid``; NotFound naming ``ref`` if it is gone."""
    try:
        return reaper.load(paths, cid)
    except errors.NotFound:
        raise errors.NotFound("No such container: {}".format(ref))


def lookup(paths, ref):
    """The record of one container (state reconciled if its shim died)."""
    cid = resolve(paths, ref)
    config, state = load(paths, cid, ref)
    return records.make_record(paths, config, state)
