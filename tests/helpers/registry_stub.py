"""A registry stub on 127.0.0.1 for pull tests: hand-built OCI images, request counting, slow/stalled blobs.

It serves ``/v2/<repo>/manifests/<tag|digest>`` and ``/v2/<repo>/blobs/<digest>`` (with Range) and records
every request; a blob can be served slowly, trickled, held mid-body or not at all.
"""

import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
import time

import pytest

from agent_payload.image import images, registry
from agent_payload.image.pull import Puller
from agent_payload.state.paths import Paths

REPO = "test/app"
LAYER_MT = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(name, size, seed):
    """A gzip layer holding one file of ``size`` pseudo-random (incompressible) bytes -> (blob, diff_id)."""
    out, block = bytearray(), hashlib.sha256(seed).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 1700000000
        tar.addfile(info, io.BytesIO(bytes(out[:size])))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha(raw)


class Stub:
    """A registry on 127.0.0.1 serving ``images`` ({tag: [layer, ...]}) from ``blobs``; ``mode[digest]`` is
    None (normal, in 16 KiB pieces ``delay`` apart), "trickle" (1 byte per 50 ms), "silent" (headers, then
    nothing) or "hold" (half the body, then wait for ``release``)."""

    def __init__(self, delay=0.0):
        self.blobs, self.manifests, self.mode = {}, {}, {}
        self.requests = []  # (path, Range header)
        self.delay = delay
        self.release = threading.Event()
        self.held = threading.Event()
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with stub.lock:
                    stub.requests.append((self.path, self.headers.get("Range")))
                if self.path == "/v2/":
                    return self._send(200, b"{}", "application/json")
                prefix = "/v2/{}/".format(REPO)
                if self.path.startswith(prefix + "manifests/"):
                    ref = self.path[len(prefix + "manifests/"):]
                    body = stub.manifests.get(ref)
                    if body is None:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")
                    return self._send(200, body, "application/vnd.oci.image.manifest.v1+json",
                                      {"Docker-Content-Digest": sha(body)})
                if self.path.startswith(prefix + "blobs/"):
                    return self._blob(self.path[len(prefix + "blobs/"):])
                self._send(404, b"", "text/plain")

            def _send(self, code, body, ctype, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _blob(self, digest):
                data = stub.blobs.get(digest)
                if data is None:
                    return self._send(404, b"", "application/json")
                start, code = 0, 200
                rng = self.headers.get("Range")
                if rng:
                    start, code = int(rng.split("=")[1].rstrip("-")), 206
                body = data[start:]
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                if code == 206:
                    self.send_header("Content-Range", "bytes {}-{}/{}".format(start, len(data) - 1, len(data)))
                self.end_headers()
                mode = stub.mode.get(digest)
                try:
                    if mode == "trickle":
                        for i in range(len(body)):
                            if stub.release.wait(0.05):
                                return
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                    elif mode == "silent":
                        self.wfile.flush()
                        stub.release.wait(60)
                    elif mode == "hold":
                        self.wfile.write(body[:len(body) // 2])
                        self.wfile.flush()
                        stub.held.set()
                        stub.release.wait(60)
                    else:
                        for i in range(0, len(body), 16384):
                            self.wfile.write(body[i:i + 16384])
                            if stub.delay:
                                time.sleep(stub.delay)
                except OSError:
                    pass  # the client went away (killed, or left a stalled stream)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:{}".format(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_image(self, tag, layers):
        """Publish an image of ``layers`` [(blob, diff_id)] under ``tag``; returns its config digest."""
        cfg = json.dumps({"architecture": registry.host_platform()[1], "os": "linux",
                          "config": {"Cmd": ["sh"]},
                          "rootfs": {"type": "layers", "diff_ids": [d for _b, d in layers]}}).encode()
        self.blobs[sha(cfg)] = cfg
        descs = []
        for blob, _d in layers:
            self.blobs[sha(blob)] = blob
            descs.append({"mediaType": LAYER_MT, "digest": sha(blob), "size": len(blob)})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": sha(cfg), "size": len(cfg)},
                               "layers": descs}).encode()
        self.manifests[tag] = manifest
        self.manifests[sha(manifest)] = manifest
        return sha(cfg)

    def blob_gets(self, digest):
        """Requests for blob ``digest``: [Range header or None]."""
        with self.lock:
            return [r for p, r in self.requests if p.endswith("/blobs/" + digest)]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    made = []

    def make(delay=0.0):
        made.append(Stub(delay))
        return made[-1]
    try:
        yield make
    finally:
        for s in made:
            s.close()


@pytest.fixture
def paths(tmp_path):
    return Paths(root=str(tmp_path / "state"), config_dir=str(tmp_path / "cfg"))


def write_daemon_json(paths, data):
    os.makedirs(paths.config_dir, exist_ok=True)
    with open(paths.daemon_json, "w") as f:
        json.dump(data, f)


def pull(paths, ref, events=None):
    """One pull through a fresh ImageStore (as one payload command would), under its lease."""
    emit = (lambda name, data: events.append(data)) if events is not None else None
    store = images.ImageStore(paths)
    with store.lease():
        return Puller(store).pull(ref, emit)


def temp_entries(paths):
    """Names of extraction temp dirs/locks under snapshots/ and of files under ingest/."""
    snaps = [n for n in _listdir(paths.snapshots) if n.startswith(".tmp-")]
    return snaps, _listdir(paths.ingest)


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def run_threads(targets, timeout=60):
    """Run callables in threads started together; [(result, exception)], asserting none hangs (deadlock)."""
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def run(i, fn):
        barrier.wait()
        try:
            results[i] = (fn(), None)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = (None, exc)
    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "pulls still running after {}s (deadlock?)".format(timeout)
    return results


def wait_for(cond, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


