"""Protocol operations: each op takes its request, decoded once into a typed record (``ops/args.py``, from the
schema in ``agent_payload/requests.py``), and an ``emit`` callback, and returns result data.

Ops live in modules by domain and are imported only when called, so that ``ping`` stays a bare interpreter
start.  This is where the image side and the runtime meet (the runtime never imports ``image``): ``run``
resolves or pulls the image, turns its config and the user's overrides into a ContainerSpec, and starts it.
"""

import importlib
import os

from agent_payload import errors

# op name -> module under agent_payload.ops defining ``op_<name>``
OP_MODULES = {
    "ping": "host", "facts": "host", "boot": "host", "system_prune": "host", "version": "host", "info": "host",
    "pull": "registry", "push": "registry", "login": "registry", "logout": "registry", "configure": "registry",
    "images": "images", "rmi": "images", "tag": "images", "history": "images", "image_prune": "images",
    "image_inspect": "images", "system_df": "images",
    "run": "containers", "ps": "containers", "logs": "containers", "stop": "containers", "rm": "containers",
    "create": "lifecycle", "start": "lifecycle", "restart": "lifecycle", "kill": "lifecycle", "wait": "lifecycle",
    "rename": "lifecycle", "inspect": "lifecycle", "top": "lifecycle", "diff": "lifecycle", "export": "lifecycle",
    "container_prune": "lifecycle", "update": "lifecycle", "stats": "lifecycle", "pause": "lifecycle",
    "unpause": "lifecycle", "exec": "lifecycle", "attach": "lifecycle",
    "commit": "commit", "cp_in": "transfer", "cp_out": "transfer", "export_out": "transfer",
    "save": "archive", "load_probe": "archive", "load": "archive", "import": "archive",
    "network_create": "netvol", "network_ls": "netvol", "network_inspect": "netvol", "network_rm": "netvol",
    "network_prune": "netvol", "network_connect": "netvol", "network_disconnect": "netvol", "port": "netvol",
    "volume_create": "netvol", "volume_ls": "netvol", "volume_inspect": "netvol", "volume_rm": "netvol",
    "volume_prune": "netvol",
    "events": "events",
    "build": "build",
    "image_resolve": "deploy", "deploy_lock": "deploy", "service_ls": "deploy", "service_swap": "deploy",
    "service_rollback": "deploy", "service_down": "deploy", "deploy_journal": "deploy",
    "check": "check",
    "build_context": "buildctx",
}


class Context:
    """What every op needs: the state paths, the payload's own identity, and how to re-launch it."""

    def __init__(self, paths, payload_sha, launcher):
        self.paths = paths
        self.payload_sha = payload_sha
        self.launcher = launcher
        self.parent = os.getppid()  # who started this payload process (sshd over SSH): a later change = orphaned
        self.peer = None  # in a warm server's child (agent_payload/warm/): the pid on the socket's other end (sshd)

    def runtime(self):
        from agent_payload.runtime.containers import Runtime
        return Runtime(self.paths)

    def images(self):
        from agent_payload.image.images import ImageStore
        return ImageStore(self.paths)


def dispatch(ctx, op, args, emit):
    """Run ``op`` on its request decoded from ``args`` (ops/args.py, requests.py); unknown ops are InvalidArgument."""
    module = OP_MODULES.get(op) if isinstance(op, str) else None
    if module is None:
        raise errors.InvalidArgument("unknown op {!r}".format(op))
    if not isinstance(args, dict):
        raise errors.InvalidArgument("args must be an object")
    handler = getattr(importlib.import_module("agent_payload.ops." + module), "op_" + op, None)
    if handler is None:
        raise errors.InvalidArgument("op {!r} is not implemented by this payload".format(op))
    from agent_payload.ops.args import decode
    return handler(ctx, decode(op, args), emit)


def payload_identity(argv0):
    """Return (sha, path) of the running payload: the zipapp's name is its sha256; "dev" from source."""
    path = os.path.abspath(argv0)
    base = os.path.basename(path)
    if base.endswith(".pyz") and os.path.isfile(path):
        return base[:-4], path
    return "dev", None
