"""The reference check's machinery (tests/integration/test_build_dockerd_local.py): the same context directory built
by a real dockerd's classic builder and by fleet (its context builder, the payload's build op), each image's config,
history after the base's and file tree from a real export of a container of it (``docker export``, the payload's
``export`` op).  ``dockerd`` and ``registry`` are module fixtures: a test module takes them by assignment.
"""

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
import urllib.request

import pytest

from fleet.build import context
from tests.helpers import builds
from tests.helpers import images as fx
from tests.helpers.dockerd import require_binaries, running
from tests.helpers.images import _layer_with_links
from tests.helpers.registries import REGISTRY_BIN, free_port, stop


CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "Healthcheck",
               "StopSignal", "OnBuild", "Shell")
#: what docker's export adds for the container itself (its init layer), not part of the image
INIT = {".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc/hostname", "etc/hosts", "etc/mtab",
        "etc/resolv.conf", "proc", "sys"}

def extra_files():
    """Archives every context holds: a plain and a gzipped tar (for ADD's extraction)."""
    return {"pkg.tar": pkg_tar(), "pkg.tar.gz": gzip.compress(pkg_tar(), mtime=0)}


def pkg_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode, ids in (("pkg/", None, 0o750, (1000, 50)), ("pkg/f", b"in tar\n", 0o640, (1000, 50))):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = mode, ids[0], ids[1], 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    require_binaries()
    with running(tmp_path_factory.mktemp("dockerd-build")) as daemon:
        ctx = tmp_path_factory.mktemp("base-ctx")
        (ctx / "Dockerfile").write_text(BASE_DOCKERFILE)
        (ctx / "base.tar").write_bytes(base_tar())
        daemon.check("build", "-q", "-t", "bb:base", str(ctx), timeout=300)
        yield daemon


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A docker-registry on a loopback port (insecure for both dockerd and fleet by default); stopped by PID."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("no docker-registry at " + REGISTRY_BIN)
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    (work / "config.yml").write_text("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                                     "    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{}\n".format(work / "data", port))
    log = open(str(work / "registry.log"), "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(work / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:{}/v2/".format(port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "docker-registry did not start"
                time.sleep(0.05)
        yield "127.0.0.1:{}".format(port)
    finally:
        stop(proc, log)


#: the base, built by each builder from the same rootfs tar (docker: bb:base, fleet: busybox)
BASE_DOCKERFILE = 'FROM scratch\nADD base.tar /\nCMD ["sh"]\n'


def fleet_base(env):
    builds.build(env, BASE_DOCKERFILE, {"base.tar": base_tar()}, tags=["busybox:latest", "bb:base"])


def base_tar():
    """fleet's busybox base (tests/helpers/builds.py) as one rootfs tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        with tarfile.open(fileobj=io.BytesIO(_layer_with_links())) as src:
            for m in src:
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        for name, mode in (("etc", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            dst.addfile(info)
        for name, data in builds.base_files().items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def export_tree(raw):
    """{path: (type, mode, uid, gid, link target, sha256 of contents)} of an export tar, init layer left out."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar:
            name = (m.name[2:] if m.name.startswith("./") else m.name).lstrip("/").rstrip("/")
            if not name or name in INIT or name.startswith(("dev/", "proc/", "sys/")):
                continue
            data = tar.extractfile(m).read() if m.isreg() else b""
            link = m.linkname if (m.issym() or m.islnk()) else ""
            # (docker's export writes a symlink's mode with its type bits, as Go's archive/tar: permissions only)
            out[name] = (m.type.decode(), oct(m.mode & 0o7777), m.uid, m.gid, link, hashlib.sha256(data).hexdigest())
    return out


def normal_history(rows):
    out = []
    for r in rows:
        text = re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", r.get("created_by", ""))
        text = re.sub(r'^(.*HEALTHCHECK &\{\[.*\] "[^"]*" "[^"]*" "[^"]*") "[^"]*"', r"\1", text)  # StartInterval
        out.append((text, bool(r.get("empty_layer"))))
    return out


def context_dir(tmp_path, name, dockerfile, files):
    """The context both builders get: one directory (a user's ``docker build DIR`` / ``fleet build DIR``)."""
    ctx = tmp_path / ("ctx-" + name)
    ctx.mkdir()
    raw = builds.context_tar(dict(files, **extra_files()), dockerfile)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(str(ctx))  # our own tar, written just above
    return ctx


def docker_side(dockerd, ctx, name, opts, tag=None):
    tag = tag or "ref-" + name.replace("_", "-")
    base = "bb:base"
    if opts.get("base") == "id":
        base = json.loads(dockerd.check("image", "inspect", base).stdout)[0]["Id"]
    elif opts.get("base") == "digest":  # the push records the repo digest: FROM finds it locally
        dockerd.check("tag", base, opts["registry"] + "/bb:base")
        dockerd.check("push", opts["registry"] + "/bb:base", timeout=300)
        (base,) = json.loads(dockerd.check("image", "inspect", base).stdout)[0]["RepoDigests"]
    argv = ["--build-arg", "BASE=" + base]
    for key, value in sorted(opts.get("args", {}).items()):
        argv += ["--build-arg", "{}={}".format(key, value)]
    dockerd.check("build", "--network", "none", "-q", *argv, "-t", tag, str(ctx), timeout=300)
    (obj,) = json.loads(dockerd.check("image", "inspect", tag).stdout)
    cfg = saved_config(dockerd, tag)
    cid = dockerd.check("create", tag, "unused").stdout.decode().strip()  # the base has no CMD
    try:
        tree = export_tree(dockerd.check("export", cid).stdout)
    finally:
        dockerd.check("rm", cid)
    base_rows = len(saved_config(dockerd, "bb:base")["history"])
    return obj["Config"], cfg["history"][base_rows:], tree


def saved_config(dockerd, tag):
    """The image's config JSON as docker save writes it (history with empty_layer)."""
    raw = dockerd.check("image", "save", tag).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        return json.loads(tar.extractfile(manifest[0]["Config"]).read())


def fleet_side(env, ctx, name, opts, tag=None):
    """Build from the directory as ``fleet build DIR`` does (fleet/build/context.py makes the tar, .dockerignore
    applied), then ``fleet export`` a container of the image (the payload's export op)."""
    base = env.store.resolve("busybox").id if opts.get("base") == "id" else "busybox"
    if opts.get("base") == "digest":
        env.store.tag(env.store.resolve("busybox").id, opts["registry"] + "/fl:base")
        fx.op(env, "push", image=opts["registry"] + "/fl:base")
        base = "{}/fl@{}".format(opts["registry"], env.store.resolve(opts["registry"] + "/fl:base").digest)
    with context.from_directory(str(ctx), None) as bctx:
        with open(bctx.tar_path, "rb") as f:
            sha = builds.put_context(env, f.read())
        result = fx.op(env, "build", context=sha, dockerfile=bctx.dockerfile, network="none",
                       build_args=dict(opts.get("args", {}), BASE=base),
                       tags=[tag or "fl-" + name.replace("_", "-") + ":1"])
    cfg = env.store.image_config(result["id"])
    base_rows = len(env.store.image_config(env.store.resolve("busybox").id)["history"])
    cid = fx._container(env, result["id"], ["unused"])
    out = os.path.join(str(ctx) + ".export.tar")
    try:
        fx.op(env, "export", container=cid, output=out)
        with open(out, "rb") as f:
            tree = export_tree(f.read())
    finally:
        env.rt.remove([cid])
    os.unlink(out)
    return cfg["config"], cfg["history"][base_rows:], tree
