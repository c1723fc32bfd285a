"""Test helpers for registry tests on loopback: hand-built OCI layouts, skopeo, starting and stopping registries."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile

from agent_payload.image import registry

REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
OS_NAME, ARCH, _VARIANT = registry.host_platform()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(entries):
    """entries: (name, kind, data_or_linkname, mode) -> (gzip bytes, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, 1700000000
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                tar.addfile(ti)
            else:
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha(raw)


class Layout:
    """A hand-built OCI image layout directory."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.refs = []

    def blob(self, data, media_type):
        digest = sha(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers, arch=ARCH, cmd=("/bin/tool",)):
        """Add an image; return (manifest descriptor, config digest)."""
        descs = [self.blob(data, "application/vnd.oci.image.layer.v1.tar+gzip") for data, _ in layers]
        config = {"created": "2024-01-02T03:04:05Z", "architecture": arch, "os": "linux",
                  "config": {"Env": ["PATH=/bin"], "Cmd": list(cmd), "WorkingDir": "/"},
                  "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
                  "history": [{"created_by": "hand"} for _ in layers]}
        cfg = self.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cfg, "layers": descs}
        return self.blob(json.dumps(manifest).encode(), manifest["mediaType"]), cfg["digest"]

    def index(self, manifests):
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        return self.blob(json.dumps(doc).encode(), doc["mediaType"])

    def tag(self, name, desc):
        self.refs.append(dict(desc, annotations={"org.opencontainers.image.ref.name": name}))
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.refs}, f)


def skopeo_copy(src, dest, *extra):
    subprocess.run([SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", *extra, src, dest],
                   check=True, capture_output=True, timeout=120)


def stop(proc, log=None):
    """Stop a process we started (by its Popen handle): SIGTERM, then SIGKILL after 10 s; close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if log is not None:
        log.close()


def no_stray_requests(monkeypatch):
    """Safety net: any accidental non-loopback HTTP request goes to a dead loopback proxy, never out."""
    dead = "http://127.0.0.1:{}".format(free_port())
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, dead)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def start_registry(work, timeout=20):
    """Start docker-registry on a free 127.0.0.1 port with its storage under ``work`` -> (Popen, "host:port",
    open log file); stop it with ``stop(proc, log)``."""
    import time
    import urllib.request
    port = free_port()
    conf = os.path.join(work, "config.yml")
    with open(conf, "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n"
                "http:\n  addr: 127.0.0.1:{}\n".format(os.path.join(work, "storage"), port))
    log = open(os.path.join(work, "registry.log"), "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", conf], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                "http://127.0.0.1:{}/v2/".format(port), timeout=1).close()
            return proc, "127.0.0.1:{}".format(port), log
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc, log)
                raise RuntimeError("registry did not start: " + open(log.name).read())
            time.sleep(0.1)
