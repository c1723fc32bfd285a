"""Several names in one request, as docker handles them: each name is its own operation."""

from agent_payload import errors


def per_name(names, act, key):
    """Docker's way with several names: each is its own operation, a failure stops only that name.

    ``act(name)`` acts on one name and returns its ID (or a list with one ID, or None when there was
    nothing to do). Returns {key: [IDs that succeeded], "results": [{"name", "id", "ok", "error": {"kind",
    "message"} or None}]} in the given order.
    One name alone is one operation: {key: [ID]} without "results", its error raised (the host's error).
    """
    done, results = [], []
    for name in names:
        try:
            out = act(name)
        except errors.AgentError as exc:
            if len(names) == 1:
                raise
            results.append({"name": name, "id": None, "ok": False,
                            "error": {"kind": exc.kind, "message": exc.message}})
            continue
        cid = out[0] if isinstance(out, list) else out
        if cid is not None:  # None: nothing to do, and that is fine (volume rm -f of a missing volume)
            done.append(cid)
        results.append({"name": name, "id": cid, "ok": True, "error": None})
    if len(names) == 1:
        return {key: done}  # one name, one operation: the answer it always had
    return {key: done, "results": results}


def inspect_each(refs, inspect_one, key):
    """docker's inspect of several names: the objects found, in the names' order, and an error per name that
    failed -> {key: [object], "errors": [{"name", "kind", "message"}]} (no "errors" when all were found); the
    first error raised when none was found (the host's error, as one name alone)."""
    found, failures = [], []
    for ref in refs:
        try:
            found.append(inspect_one(ref))
        except errors.AgentError as exc:
            if not failures:
                first = exc
            failures.append({"name": ref, "kind": exc.kind, "message": exc.message})
    if failures and not found:
        raise first
    out = {key: found}
    if failures:
        out["errors"] = failures
    return out
