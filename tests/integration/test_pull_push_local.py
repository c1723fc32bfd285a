"""Streaming pull, push and failure atomicity against a real docker-registry on loopback (plus a tampering proxy)."""

import hashlib
import http.client
import http.server
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading

import pytest

from agent_payload import errors
from agent_payload.image import images, pull, push, unpack
from agent_payload.state.paths import Paths
from tests.helpers.registries import (REGISTRY_BIN, SKOPEO, Layout, layer, no_stray_requests, start_registry,
                                          skopeo_copy, stop)

pytestmark = pytest.mark.integration


class Proxy:
    """A loopback HTTP proxy in front of the registry: counts requests and can tamper with blob bodies."""

    def __init__(self, upstream_port):
        self.mode = None  # None | "flip" | "truncate"
        self.requests = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests.append((self.command, self.path))
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                # The original Host goes along, so upload Locations the registry builds point back at us.
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                tamper = proxy.mode and self.command == "GET" and "/blobs/sha256:" in self.path \
                    and len(data) > 4096
                if tamper and proxy.mode == "flip":
                    mid = len(data) // 2
                    data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if tamper and proxy.mode == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = "127.0.0.1:{}".format(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _random_layer(name, size, seed):
    data = hashlib.sha256(seed).digest() * 1
    out = bytearray()
    while len(out) < size:
        data = hashlib.sha256(data).digest()
        out += data
    return layer([("big/", "dir", None, 0o755), ("big/" + name, "file", bytes(out[:size]), 0o644)])


@pytest.fixture(scope="module")
def reg():
    """docker-registry on a random loopback port with small and bigger test images; killed by PID."""
    if not os.access(REGISTRY_BIN, os.X_OK) or not os.access(SKOPEO, os.X_OK):
        pytest.skip("docker-registry or skopeo not installed")
    work = tempfile.mkdtemp(prefix="fleet-r2-")
    proc, host, log = start_registry(work)
    proxy = None
    try:
        lay = Layout(os.path.join(work, "oci"))
        l1 = layer([("bin/", "dir", None, 0o755), ("bin/tool", "file", b"#!/bin/sh\necho hi\n", 0o4755),
                    ("data/", "dir", None, 0o750), ("data/old.txt", "file", b"old", 0o600),
                    ("data/keep/", "dir", None, 0o700), ("data/keep/x", "file", b"x", 0o640),
                    ("bin/sh", "sym", "/bin/tool", 0o777)])
        l2 = layer([("data/.wh.old.txt", "file", b"", 0o644), ("data/keep/.wh..wh..opq", "file", b"", 0o644),
                    ("etc/", "dir", None, 0o755), ("etc/hello2", "file", b"second\n", 0o644)])
        small, _ = lay.image([l1, l2])
        lay.tag("small", small)
        big, _ = lay.image([_random_layer("a", 3 * 1024 * 1024, b"a"), _random_layer("b", 200 * 1024, b"b")])
        lay.tag("big", big)
        skopeo_copy("oci:{}:small".format(lay.path), "docker://{}/test/small:v1".format(host))
        skopeo_copy("oci:{}:big".format(lay.path), "docker://{}/test/big:v1".format(host))
        proxy = Proxy(int(host.rsplit(":", 1)[1]))
        yield {"host": host, "proxy": proxy, "small": small["digest"], "big": big["digest"], "work": work}
    finally:
        if proxy is not None:
            proxy.close()
        stop(proc, log)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def make_store(tmp_path, monkeypatch):
    """ImageStore factory on a private root (``root`` overrides it); daemon.json lists the hosts as insecure."""
    no_stray_requests(monkeypatch)

    def make(hosts, root=None):
        cfg = tmp_path / "cfg"
        cfg.mkdir(exist_ok=True)
        (cfg / "daemon.json").write_text(json.dumps({"insecure-registries": hosts}))
        monkeypatch.setenv("FLEET_ROOT", str(root or tmp_path / "state"))
        monkeypatch.setenv("FLEET_CONFIG_DIR", str(cfg))
        return images.ImageStore(Paths())
    return make


def listing(root):
    """Everything under the state root except locks/ and events/ (the event journal records every pull, as
    docker's events do): path -> (type, mode, size, sha256 of content)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.split("/", 1)[0] in ("locks", "events"):
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, digest)
    out.pop("locks", None)
    return out


def tree(root):
    """A comparable description of an unpacked layer tree (types, modes, content, links, devices, opaque)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            # Implicit parents and whiteout nodes are stamped "now": their mtimes cannot be compared.
            item = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid]
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                item.append(st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                item.append(open(p, "rb").read())
            elif stat.S_ISLNK(st.st_mode):
                item.append(os.readlink(p))
            elif stat.S_ISCHR(st.st_mode):
                item.append(st.st_rdev)
            elif stat.S_ISDIR(st.st_mode):
                item.append(os.getxattr(p, unpack.OPAQUE_XATTR, follow_symlinks=False)
                            if unpack.OPAQUE_XATTR in os.listxattr(p, follow_symlinks=False) else None)
            out[os.path.relpath(p, root)] = item
    return out


def test_streaming_pull_matches_file_apply_and_repull_is_one_request(reg, make_store, tmp_path):
    proxy = reg["proxy"]
    store = make_store([proxy.host])
    ref = "{}/test/small:v1".format(proxy.host)
    events = []
    rec, info = pull.Puller(store).pull(ref, lambda n, d: events.append(d))
    assert info["downloaded"] == 2 and rec.digest == reg["small"]
    low, top = rec.layers
    assert stat.S_IMODE(os.lstat(os.path.join(low, "bin/tool")).st_mode) == 0o4755
    assert os.readlink(os.path.join(low, "bin/sh")) == "/bin/tool"
    wh = os.lstat(os.path.join(top, "data/old.txt"))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(os.path.join(top, "data/keep"), unpack.OPAQUE_XATTR) == b"y"
    # The streamed snapshot equals what the applier makes from the stored blob read back from disk.
    for desc, snap in zip(json.loads(store.content.read_bytes(rec.digest))["layers"], rec.layers):
        ref_dir = tmp_path / ("ref-" + desc["digest"][7:19])
        ref_dir.mkdir()
        with store.content.open(desc["digest"]) as f:
            unpack.apply_layer(f, str(ref_dir), desc["mediaType"])
        assert tree(snap) == tree(str(ref_dir))
    assert os.listdir(store.paths.ingest) == []
    assert not [n for n in os.listdir(store.paths.snapshots) if n.startswith(".tmp-")]
    statuses = [d["status"] for d in events]
    assert {"Downloading", "Verifying", "Download complete", "Pull complete"} <= set(statuses)
    assert len(events) < 40  # throttled, not per chunk

    del proxy.requests[:]
    before = listing(store.paths.root)
    rec2, info2 = pull.Puller(store).pull(ref)
    assert rec2.id == rec.id and info2["downloaded"] == 0
    assert proxy.requests == [("GET", "/v2/test/small/manifests/v1")]
    assert listing(store.paths.root) == before


def _skopeo_json(*args):
    out = subprocess.run([SKOPEO, *args], check=True, capture_output=True, timeout=60).stdout
    return json.loads(out)


def test_push_mount_exists_chunked_and_skopeo_roundtrip(reg, make_store, tmp_path):
    proxy = reg["proxy"]
    host = reg["host"]
    store = make_store([host, proxy.host])
    rec, _ = pull.Puller(store).pull("{}/test/small:v1".format(host))
    # Re-tag into another repository on the same registry (what `tag` will do), then push: blobs mount.
    store.index_add(["{}/other/copy:v2".format(host)], rec.id, store._read_index()["images"][rec.id],
                    {"id": rec.id, "digest": rec.digest})
    events = []
    res = push.Pusher(store).push("{}/other/copy:v2".format(host), lambda n, d: events.append(d))
    assert res["digest"] == rec.digest and res["endpoint"] == "http://" + host
    assert [lay["status"] for lay in res["layers"]] == ["Mounted from test/small"] * 2
    assert res["size"] == len(store.content.read_bytes(rec.digest))
    info = _skopeo_json("inspect", "--tls-verify=false", "docker://{}/other/copy:v2".format(host))
    assert info["Digest"] == rec.digest
    out = tmp_path / "oci-out"
    subprocess.run([SKOPEO, "copy", "--quiet", "--src-tls-verify=false", "docker://{}/other/copy:v2".format(host),
                    "oci:{}:x".format(out)], check=True, capture_output=True, timeout=60)
    manifest = json.loads(store.content.read_bytes(rec.digest))
    for desc in manifest["layers"] + [manifest["config"]]:
        assert (out / "blobs" / "sha256" / desc["digest"][7:]).read_bytes() == store.content.read_bytes(desc["digest"])
    res2 = push.Pusher(store).push("{}/other/copy:v2".format(host))
    assert [lay["status"] for lay in res2["layers"]] == ["Layer already exists"] * 2

    # Through the proxy the registry looks like another host: no mount, a real upload, chunked when forced.
    target = "{}/chunked/img:v1".format(proxy.host)
    store.index_add([target], rec.id, store._read_index()["images"][rec.id], {"id": rec.id, "digest": rec.digest})
    del proxy.requests[:]
    res3 = push.Pusher(store, chunk_threshold=64, chunk_size=100).push(target)
    assert [lay["status"] for lay in res3["layers"]] == ["Pushed"] * 2
    patches = [p for m, p in proxy.requests if m == "PATCH"]
    sizes = [d["size"] for d in manifest["layers"] + [manifest["config"]]]
    assert len(patches) == sum(-(-s // 100) for s in sizes)
    assert not any("mount=" in p for _, p in proxy.requests)
    assert _skopeo_json("inspect", "--tls-verify=false", "docker://{}/chunked/img:v1".format(host))["Digest"] \
        == rec.digest
    with pytest.raises(errors.NotFound):
        push.Pusher(store).push("{}/never/pulled:v1".format(host))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted for the test, unmounted (lazily if busy) in teardown."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount tmpfs: " + r.stderr.decode())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


@pytest.mark.parametrize("case", ["flip", "truncate", "unknown", "enospc"])
def test_failed_pull_leaves_store_unchanged(reg, make_store, small_tmpfs, case):
    proxy = reg["proxy"]
    root = str(small_tmpfs / "state") if case == "enospc" else None
    store = make_store([proxy.host], root=root)
    pull.Puller(store).pull("{}/test/small:v1".format(proxy.host))
    before = listing(store.paths.root)
    assert before
    ref = "{}/test/{}:v1".format(proxy.host, "nope" if case == "unknown" else "big")
    expected = {"flip": (errors.FailedPrecondition, "digest mismatch"),
                "truncate": (errors.Unavailable, "connection closed after"),
                "unknown": (errors.NotFound, "manifest unknown"),
                "enospc": (errors.FailedPrecondition, "no space left on device")}[case]
    proxy.mode = case if case in ("flip", "truncate") else None
    try:
        with pytest.raises(expected[0], match=expected[1]):
            pull.Puller(store).pull(ref)
    finally:
        proxy.mode = None
    assert listing(store.paths.root) == before
    # And the same pull succeeds afterwards when nothing is in the way (no leftover blocks it).
    if case in ("flip", "truncate"):
        rec, info = pull.Puller(store).pull(ref)
        assert info["downloaded"] == 2 and rec.digest == reg["big"]


def test_op_pull_platform_validation_and_all_tags(reg, make_store, monkeypatch):
    from agent_payload.ops import dispatch

    store = make_store([reg["host"]])

    class Ctx:
        def images(self):
            return store

    for bad in ("linux", "linux/", "/amd64", "linux/amd64/v8/x", 5):
        with pytest.raises(errors.InvalidArgument):
            dispatch(Ctx(), "pull", {"image": "{}/test/small".format(reg["host"]), "platform": bad}, None)
    with pytest.raises(errors.InvalidArgument):
        dispatch(Ctx(), "pull", {"image": "{}/test/small:v1".format(reg["host"]), "all_tags": True}, None)
    res = dispatch(Ctx(), "pull", {"image": "{}/test/small".format(reg["host"]), "all_tags": True}, None)
    assert [p["image"] for p in res["pulled"]] == ["{}/test/small:v1".format(reg["host"])]
    assert res["pulled"][0]["digest"] == reg["small"] and res["pulled"][0]["downloaded"] == 2
