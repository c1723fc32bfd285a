"""The payload's pull streams: memory stays bounded whatever the layer's size (issue 15, part 4).

A 200 MiB layer (random bytes, so it is that big compressed and unpacked) is pulled by the payload's CLI,
as on a host, in a process whose address space is capped at 112 MiB with RLIMIT_AS: a pull that held a layer
(or a large part of one) in memory fails with MemoryError; a streaming one succeeds and unpacks it intact.
"""

import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest

from tests.helpers.registries import ARCH, REGISTRY_BIN, SKOPEO, Layout, skopeo_copy, start_registry, stop

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20
LAYER_MIB = 200
CAP = 112 * MiB  # address space of the payload process: well under the layer (the pull needs 40-52 MiB)


class _Tee:
    """Hashes and counts what is written through it."""

    def __init__(self, inner):
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.inner.write(data)


class _Random(io.RawIOBase):
    """``size`` random bytes, read in pieces (never all in memory); their sha256 once read."""

    def __init__(self, size):
        self.left, self.sha = size, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left, MiB)
        data = os.urandom(n)
        self.sha.update(data)
        b[:n] = data
        self.left -= n
        return n


def _big_image(lay):
    """A one-layer image whose layer is one LAYER_MIB file of random data, gzip level 0 (stored blocks: as big
    compressed as unpacked, and cheap to make) written straight to the layout -> (tag ref, file sha256)."""
    tmp = os.path.join(lay.path, "layer.tmp")
    with open(tmp, "wb") as raw:
        outer = _Tee(raw)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0, compresslevel=0)
        inner = _Tee(gz)
        src = _Random(LAYER_MIB * MiB)
        with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            ti = tarfile.TarInfo("data/big.bin")
            ti.size, ti.mode, ti.mtime = LAYER_MIB * MiB, 0o644, 1700000000
            tar.addfile(ti, io.BufferedReader(src, MiB))
        gz.close()
    digest = "sha256:" + outer.sha.hexdigest()
    os.rename(tmp, os.path.join(lay.path, "blobs", "sha256", digest[7:]))
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": outer.size}
    config = {"architecture": ARCH, "os": "linux", "rootfs": {"type": "layers",
                                                                 "diff_ids": ["sha256:" + inner.sha.hexdigest()]},
              "config": {"Cmd": ["/bin/sh"]}}
    cfg = lay.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg,
                "layers": [desc]}
    lay.tag("big", lay.blob(json.dumps(manifest).encode(), manifest["mediaType"]))
    return src.sha.hexdigest()


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


@pytest.fixture
def big_registry():
    if not os.access(REGISTRY_BIN, os.X_OK) or not os.access(SKOPEO, os.X_OK):
        pytest.skip("docker-registry or skopeo not installed")
    work = tempfile.mkdtemp(prefix="fleet-pullmem-")
    proc = log = None
    try:
        proc, host, log = start_registry(work)
        lay = Layout(os.path.join(work, "oci"))
        file_sha = _big_image(lay)
        skopeo_copy("oci:{}:big".format(lay.path), "docker://{}/test/big:v1".format(host))
        shutil.rmtree(lay.path)  # the registry has its own copy now: keep the disk use down
        yield work, host, file_sha
    finally:
        if proc is not None:
            stop(proc, log)
        shutil.rmtree(work, ignore_errors=True)


def test_pull_of_a_layer_bigger_than_the_memory_cap(big_registry):
    work, host, file_sha = big_registry
    root, cfg = os.path.join(work, "root"), os.path.join(work, "etc")
    os.mkdir(cfg)
    with open(os.path.join(cfg, "daemon.json"), "w") as f:
        json.dump({"insecure-registries": [host]}, f)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    # glibc reserves 64 MiB of address space per thread arena; one arena makes the cap measure what the payload
    # allocates, not how many threads happened to touch malloc.
    env.update(FLEET_ROOT=root, FLEET_CONFIG_DIR=cfg, MALLOC_ARENA_MAX="1")
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-S", "-E", "-m", "agent_payload", "pull",
                                 "{}/test/big:v1".format(host)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_capped)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert usage.ru_maxrss * 1024 < CAP  # and the resident peak, by construction below the cap
    snaps = os.path.join(root, "snapshots")
    found = [os.path.join(d, "big.bin") for d, _s, files in os.walk(snaps) if "big.bin" in files]
    assert len(found) == 1
    h = hashlib.sha256()
    with open(found[0], "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    assert os.path.getsize(found[0]) == LAYER_MIB * MiB and h.hexdigest() == file_sha
