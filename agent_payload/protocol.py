"""The one versioned wire protocol between the fleet controller and the payload.

This module is pure data and constants (stdlib only) and is the single source of truth for both sides:
``fleet`` may import it, and nothing else from ``agent_payload`` except the pure reference parser.

One invocation is one SSH exec of ``python3 <payload>.pyz --rpc``::

    controller                                   payload (on the host)
        |  stdin: ONE request object (JSON)          |
        |------------------------------------------->|
        |                                            |  dispatch by "op"
        |  stdout: zero or more event lines (JSONL)  |
        |<-------------------------------------------|  {"type": "event", "event": "progress", "data": {...}}
        |<-------------------------------------------|  {"type": "event", "event": "log", "data": {...}}
        |  stdout: exactly ONE final result line     |
        |<-------------------------------------------|  {"type": "result", "ok": true, "data": {...}}
        |                                            |  {"type": "result", "ok": false, "error": {...}}

Request::

    {"protocol": PROTOCOL_VERSION, "payload": "<sha256 of the .pyz>", "op": "<name>", "args": {...}}

The exit status is 0 whenever a result line was written.  Anything else (no result line, non-zero exit)
means the payload crashed and the controller reports the tail of stderr.

A request whose ``protocol`` or ``payload`` does not match the running payload is answered with a
``FailedPrecondition`` error; because the payload file is named by its own sha256, the controller never
runs an old payload by accident (the hash *is* the version).

Ops (``args`` -> ``data``); docker-compatible semantics:

``ping``    {} -> {"hostname", "payload", "python"}
``facts``   {} -> {"hostname", "kernel", "arch", "distro", "python", "cgroup", "overlay", "namespaces",
                    "disk_free", "root"}
``pull``    {"image": ref, "all_tags": bool, "platform": "os/arch[/variant]"|null}
            -> {"image", "id", "digest", "endpoint", "layers", "downloaded"}
               (all_tags: {"pulled": [the same object per tag]})
            events: progress {"layer", "status", "current", "total"}
``push``    {"image": ref} -> {"image", "digest", "size", "endpoint", "layers": [{"digest", "status"}]}
            (status: "Pushed" | "Layer already exists" | "Mounted from <repo>"); events: progress
``login``   {"registry": host|null (docker.io), "username", "password"} -> {"registry", "status"}
            (credentials are checked against the registry, then stored in Docker's config.json "auths"
            with mode 0600; the password never appears in any result, event or error)
``logout``  {"registry": host|null} -> {"registry", "removed": bool}
``configure`` {"daemon": {daemon.json keys to set; null removes a key}} -> {"changed": bool, "daemon": {...}}
            (validated first, then /etc/fleet/daemon.json is written atomically; unknown keys are kept)
``images``  {"all": bool, "digests": bool, "filters": ["dangling=true", "reference=nginx*", ...]}
            -> {"images": [{"repository", "tag", "id", "digest", "created", "size", "containers"}]}
``rmi``     {"images": [ref or id], "force": bool} -> {"untagged": [ref], "deleted": [id]}
``tag``     {"source": ref or id, "target": ref} -> {"id", "target"}
``history`` {"image": ref or id} -> {"history": [{"id", "created", "created_by", "size", "comment"}]}
``image_prune``   {"all": bool} -> {"deleted": [id], "untagged": [ref], "reclaimed": bytes}
``image_inspect`` {"images": [ref or id]} -> {"images": [docker's inspect object per image]}
``system_df``     {} -> {"images", "containers", "volumes", "build_cache"}: each
                  {"total", "active", "size", "reclaimable", "reclaimable_percent"} (docker's rows)
``run``     {"image", "name"|null, "detach", "rm", "env": [str], "command": [str]|null,
             "entrypoint": [str]|null, "workdir"|null, "hostname"|null}
            -> {"id", "name", "image", "exit_code"|null}
            without detach: log events while the container runs, then the result with its exit code.
``ps``      {"all": bool} -> {"containers": [{"id", "name", "image", "command", "created", "state",
                                                "status", "exit_code", "ports"}]}
``logs``    {"container", "tail": int|null, "follow": bool, "timestamps": bool}
            -> {} after log events {"stream", "line", "time"}
``stop``    {"containers": [str], "time": int} -> {"stopped": [id]}
``rm``      {"containers": [str], "force": bool} -> {"removed": [id]}
"""

PROTOCOL_VERSION = 1

# Exit status the remote launcher uses when the payload file for the requested hash is absent: the
# controller uploads the payload and runs the request again.  Chosen outside the ranges shells use.
EXIT_PAYLOAD_MISSING = 97

#: The fixed set of error kinds (after containerd's errdefs).  Anything unexpected is "Internal".
ERROR_KINDS = (
    "InvalidArgument",  # bad input: reference, flag value, unknown option
    "NotFound",  # no such container / image / file
    "AlreadyExists",  # name clash
    "FailedPrecondition",  # wrong state, protocol mismatch, missing kernel feature, permission
    "Conflict",  # in use / busy
    "Unavailable",  # registry or network down, timeout
    "Internal",  # a bug: details carry the traceback
)

def request(op, args, payload_sha):
    """Build a request object for ``op`` with ``args``."""
    return {"protocol": PROTOCOL_VERSION, "payload": payload_sha, "op": op, "args": dict(args or {})}


def event(name, data):
    """Build an event line object."""
    return {"type": "event", "event": name, "data": data}


def result_ok(data):
    """Build a successful final result object."""
    return {"type": "result", "ok": True, "data": data}


def result_error(kind, message, errno=None, details=None):
    """Build a failed final result object; ``kind`` must be one of ``ERROR_KINDS``."""
    if kind not in ERROR_KINDS:
        kind = "Internal"
    return {"type": "result", "ok": False,
            "error": {"kind": kind, "message": message, "errno": errno, "details": details}}
