"""Builds through the payload's ``build`` op for tests on this machine: a busybox base image made without a registry
(tests/helpers/images.py), a context tar written where the controller's upload puts it, the op's result and its
docker-style output text, and a container run to look at what a built image holds.
"""

import hashlib
import io
import os
import tarfile

from agent_payload.ops import dispatch
from tests.helpers.images import _container, _layer_with_links

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:\n"


def base_files():
    """The busybox base as {path: bytes} on top of _layer_with_links()."""
    return {"etc/passwd": PASSWD, "etc/group": GROUP, "tmp/.keep": b""}


def base(env):
    """busybox:latest in the fixture's store (busybox and its applet links, /etc/passwd, /etc/group, /tmp)."""
    return env.image(["busybox:latest"], [_layer_with_links(), base_files()])


def context_tar(files, dockerfile=None, mtime=1700000000):
    """A context tar (sorted names, as the controller writes it) of {name: bytes | (bytes, mode) | None (a
    directory) | ("link", target)} -> its bytes."""
    buf = io.BytesIO()
    entries = dict(files)
    if dockerfile is not None:
        entries["Dockerfile"] = dockerfile.encode()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            data = entries[name]
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = mtime
            if data is None or name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, tuple) and data[0] == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
            else:
                mode = 0o644
                if isinstance(data, tuple):
                    data, mode = data
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put_context(env, raw):
    """Store a context tar as the upload does -> its sha256."""
    sha = hashlib.sha256(raw).hexdigest()
    d = os.path.join(env.paths.root, "build", "contexts")
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, sha + ".tar"), "wb") as f:
        f.write(raw)
    return sha


def build(env, dockerfile, files=None, **args):
    """Run the build op -> (result, output text); RUN steps get --network none unless told."""
    sha = put_context(env, context_tar(files or {}, dockerfile))
    events = []
    args.setdefault("network", "none")
    result = dispatch(env.ctx, "build", dict(args, context=sha, dockerfile="Dockerfile"),
                      lambda name, data=None: events.append((name, data)))
    return result, "".join(d["stream"] for n, d in events if n == "build")


def run(env, image, script):
    """Run ``sh -c script`` (or an argv list) in a container of ``image`` -> its output (it must exit 0)."""
    cid = _container(env, image, script if isinstance(script, list) else ["/bin/sh", "-c", script])
    env.rt.start(cid)
    code = env.rt.wait(cid, timeout=30)
    out = "".join(line["line"] for line in env.rt.logs(cid))
    assert code == 0, out
    return out


def config(env, ref):
    return env.store.image_config(env.store.resolve(ref).id)
