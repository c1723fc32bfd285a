"""Round trip against a real registry on loopback: skopeo pushes a hand-made OCI image, ImageStore pulls it."""

import json
import os
import shutil
import stat
import tempfile

import pytest

from agent_payload import errors
from agent_payload.image import images, pull, registry
from agent_payload.state.paths import Paths
from tests.helpers.registries import (ARCH, REGISTRY_BIN, SKOPEO, Layout, free_port, layer, start_registry,
                                          no_stray_requests, sha, skopeo_copy, stop)

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def reg():
    """A docker-registry on 127.0.0.1:<random> with test images pushed; killed by PID on teardown."""
    if not os.access(REGISTRY_BIN, os.X_OK) or not os.access(SKOPEO, os.X_OK):
        pytest.skip("docker-registry or skopeo not installed")
    work = tempfile.mkdtemp(prefix="fleet-reg-")
    proc, host, log = start_registry(work)
    port = int(host.rsplit(":", 1)[1])
    try:
        lay = Layout(os.path.join(work, "oci"))
        l1 = layer([("bin/", "dir", None, 0o755), ("bin/tool", "file", b"#!/bin/sh\necho hi\n", 0o4755),
                    ("etc/", "dir", None, 0o755), ("etc/hello", "file", b"hello\n", 0o644),
                    ("data/", "dir", None, 0o750), ("data/old.txt", "file", b"old", 0o600),
                    ("bin/sh", "sym", "/bin/tool", 0o777)])
        l2 = layer([("data/.wh.old.txt", "file", b"", 0o644), ("etc/hello2", "file", b"second\n", 0o644)])
        amd, amd_cfg = lay.image([l1, l2])
        lay.tag("v1", amd)
        other, _ = lay.image([l2], arch="s390x" if ARCH != "s390x" else "amd64", cmd=("/other",))
        multi = lay.index([dict(amd, platform={"os": "linux", "architecture": ARCH}),
                           dict(other, platform={"os": "linux",
                                                 "architecture": "s390x" if ARCH != "s390x" else "amd64"})])
        lay.tag("multi", multi)
        skopeo_copy("oci:{}:v1".format(lay.path), "docker://{}/test/img:v1".format(host))
        skopeo_copy("oci:{}:v1".format(lay.path), "docker://{}/test/v2s2:v1".format(host), "--format", "v2s2")
        skopeo_copy("oci:{}:multi".format(lay.path), "docker://{}/test/multi:v1".format(host), "--all")
        skopeo_copy("oci:{}:v1".format(lay.path), "docker://{}/library/mirrortest:v1".format(host))
        yield {"host": host, "port": port, "manifest": amd["digest"], "config": amd_cfg,
               "index": multi["digest"], "diff_ids": [l1[1], l2[1]], "layer_sizes": [len(l1[0]), len(l2[0])]}
    finally:
        stop(proc, log)
        shutil.rmtree(work, ignore_errors=True)


def _pull(store, ref, emit=None):
    """Pull as the pull op does: the puller under the store's lease."""
    with store.lease():
        return pull.Puller(store).pull(ref, emit)


@pytest.fixture
def make_store(tmp_path, monkeypatch):
    """ImageStore factory on a private state root; daemon.json from the given dict."""
    no_stray_requests(monkeypatch)

    def make(daemon=None, name="state"):
        root, cfg = tmp_path / name, tmp_path / (name + "-cfg")
        cfg.mkdir()
        monkeypatch.setenv("FLEET_ROOT", str(root))
        monkeypatch.setenv("FLEET_CONFIG_DIR", str(cfg))
        if daemon is not None:
            (cfg / "daemon.json").write_text(json.dumps(daemon))
        return images.ImageStore(Paths())
    return make


def test_pull_oci_then_repull_and_by_digest(reg, make_store):
    store = make_store({"insecure-registries": [reg["host"]]})
    events = []
    ref = "{}/test/img:v1".format(reg["host"])
    rec, info = _pull(store, ref, emit=lambda name, data: events.append((name, data)))
    assert info == {"endpoint": "http://" + reg["host"], "downloaded": 2, "layers": 2}
    assert rec.id == reg["config"] and rec.digest == reg["manifest"]
    assert (rec.reference, rec.repository, rec.tag) == ("{}/test/img:v1".format(reg["host"]),
                                                        "{}/test/img".format(reg["host"]), "v1")
    assert rec.config["rootfs"]["diff_ids"] == reg["diff_ids"] and rec.config["config"]["Cmd"] == ["/bin/tool"]
    assert rec.size == sum(reg["layer_sizes"]) and rec.created == "2024-01-02T03:04:05Z"
    low, top = rec.layers
    assert open(os.path.join(low, "etc/hello"), "rb").read() == b"hello\n"
    assert stat.S_IMODE(os.lstat(os.path.join(low, "bin/tool")).st_mode) == 0o4755
    assert os.readlink(os.path.join(low, "bin/sh")) == "/bin/tool"
    wh = os.lstat(os.path.join(top, "data/old.txt"))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not os.path.exists(os.path.join(top, "data/.wh.old.txt"))
    assert len(os.path.basename(os.path.dirname(top))) <= 12  # short snapshot dir names
    statuses = {d["status"] for n, d in events if n == "progress"}
    assert {"Downloading", "Verifying", "Extracting", "Pull complete"} <= statuses
    assert all(len(d["layer"]) == 12 for _, d in events)
    # Content store holds verified blobs under their digests.
    for digest in [reg["manifest"], reg["config"]]:
        assert store.content.has(digest)
    index = json.load(open(os.path.join(store.paths.images, "index.json")))
    assert index["refs"][rec.reference] == {"id": rec.id, "digest": rec.digest}
    assert index["images"][rec.id]["chain_ids"][0] == reg["diff_ids"][0]

    events.clear()
    rec2, info2 = _pull(store, ref, emit=lambda name, data: events.append((name, data)))
    assert info2["downloaded"] == 0 and rec2.layers == rec.layers and rec2.id == rec.id
    assert [d["status"] for _, d in events] == ["Already exists", "Already exists"]

    by_digest = "{}/test/img@{}".format(reg["host"], reg["manifest"])
    rec3, info3 = _pull(store, by_digest)
    assert rec3.id == rec.id and rec3.tag == "<none>" and info3["downloaded"] == 0

    # Local lookups: reference, digest reference, full ID, short ID prefix.
    for key in (ref, by_digest, rec.id, rec.id[7:19]):
        assert store.resolve(key).id == rec.id
    assert store.resolve(ref).layers == rec.layers
    with pytest.raises(errors.NotFound, match="No such image"):
        store.resolve("{}/test/img:nope".format(reg["host"]))
    rows = store.list()
    assert [(r["repository"], r["tag"], r["id"]) for r in rows] == [("{}/test/img".format(reg["host"]), "v1", rec.id)]


def test_pull_docker_v2s2_fresh(reg, make_store):
    store = make_store({"insecure-registries": [reg["host"]]})
    rec, info = _pull(store, "{}/test/v2s2:v1".format(reg["host"]))
    manifest = json.loads(store.content.read_bytes(rec.digest))
    assert manifest["mediaType"] == registry.MT_DOCKER_MANIFEST
    assert info["downloaded"] == 2 and rec.config["rootfs"]["diff_ids"] == reg["diff_ids"]
    assert open(os.path.join(rec.layers[1], "etc/hello2"), "rb").read() == b"second\n"


def test_pull_index_selects_host_platform(reg, make_store):
    store = make_store()  # no daemon.json: 127.0.0.1 is insecure by default, as in dockerd
    rec, info = _pull(store, "{}/test/multi:v1".format(reg["host"]))
    assert rec.digest == reg["index"]  # the repo digest is the top-level index, as Docker records it
    assert rec.id == reg["config"] and rec.config["architecture"] == ARCH and info["layers"] == 2


def test_mirror_falls_through_dead_mirror(reg, make_store):
    dead = "http://127.0.0.1:{}".format(free_port())
    live = "http://" + reg["host"]
    store = make_store({"registry-mirrors": [dead, live + "/"]})
    rec, info = _pull(store, "mirrortest:v1")
    assert info["endpoint"] == live
    assert rec.reference == "docker.io/library/mirrortest:v1"
    assert (rec.repository, rec.tag) == ("mirrortest", "v1") and rec.id == reg["config"]
    assert store.resolve("mirrortest:v1").id == rec.id
    with pytest.raises(errors.NotFound):
        store.resolve("mirrortest")  # means :latest, which was never pulled


def test_errors(reg, make_store):
    store = make_store({"insecure-registries": [reg["host"]]})
    with pytest.raises(errors.NotFound, match="manifest unknown"):
        _pull(store, "{}/test/img:missing".format(reg["host"]))
    dead_host = "127.0.0.1:{}".format(free_port())
    with pytest.raises(errors.Unavailable, match=dead_host):
        _pull(store, "{}/test/img:v1".format(dead_host))
    with pytest.raises(errors.InvalidArgument, match="invalid reference format"):
        _pull(store, "Bad/Ref:!")


def test_bearer_token_and_redirect_drops_authorization(tmp_path):
    """Token dance against a fake registry; its blob redirect to another host must not carry Authorization."""
    import http.server
    import threading

    blob = b"layer bytes"
    digest = sha(blob)
    seen = {"token_query": None, "cdn_auth": "unset", "reg_auth": []}

    class CDN(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["cdn_auth"] = self.headers.get("Authorization")
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *args):
            pass

    cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CDN)

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            host = "127.0.0.1:{}".format(self.server.server_address[1])
            if self.path.startswith("/token"):
                seen["token_query"] = self.path
                body = json.dumps({"token": "T0K"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            seen["reg_auth"].append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != "Bearer T0K":
                self.send_response(401)
                self.send_header("WWW-Authenticate",
                                 'Bearer realm="http://{}/token",service="fake",scope="x"'.format(host))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:{}/blob".format(cdn.server_address[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    reg_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (cdn, reg_srv)]
    for t in threads:
        t.start()
    try:
        ep = registry.Endpoint("http://127.0.0.1:{}".format(reg_srv.server_address[1]), insecure=True)
        client = registry.RegistryClient(ep, "ns/app")
        from agent_payload.image import content
        store = content.ContentStore(Paths(root=str(tmp_path), config_dir=str(tmp_path / "cfg")))
        with client.open_blob(digest) as resp:
            store.ingest(digest, len(blob), resp)
        assert store.read_bytes(digest) == blob
        assert "scope=repository%3Ans%2Fapp%3Apull" in seen["token_query"] and "service=fake" in seen["token_query"]
        assert seen["reg_auth"] == [None, "Bearer T0K"]
        assert seen["cdn_auth"] is None  # the credential stayed on the registry host
    finally:
        for s in (cdn, reg_srv):
            s.shutdown()
            s.server_close()
