"""Registry auth end to end: htpasswd (Basic) and token (Bearer) registries on loopback, login/logout, pull-only
mirrors, configure.  Real docker-registry processes; the token registry is a Python front for one of them."""

import base64
import http.server
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from agent_payload import errors
from agent_payload.image import images, pull, registry
from agent_payload.ops import Context
from agent_payload.ops import dispatch as ops_call
from agent_payload.state.paths import Paths
from tests.helpers.registries import REGISTRY_BIN, SKOPEO, Layout, free_port, layer, no_stray_requests, stop


def _pull(store, ref, emit=None):
    """Pull as the pull op does: the puller under the store's lease."""
    with store.lease():
        return pull.Puller(store).pull(ref, emit)

pytestmark = pytest.mark.integration

USER, PASSWORD = "fleetuser", "Pa55-w0rd:with-colon"
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"


def start_registry(work, name, auth_yaml=""):
    """docker-registry on 127.0.0.1:<free port>; returns (host, Popen, log file)."""
    port = free_port()
    conf = os.path.join(work, name + ".yml")
    with open(conf, "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n"
                "  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n{}".format(
                    os.path.join(work, name), port, auth_yaml))
    log = open(os.path.join(work, name + ".log"), "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", conf], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:{}/v2/".format(port), timeout=1).close()
            break
        except urllib.error.HTTPError:
            break  # 401: up, and asking for credentials
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("registry did not start: " + open(log.name).read())
            time.sleep(0.1)
    return "127.0.0.1:{}".format(port), proc, log


class Front(http.server.BaseHTTPRequestHandler):
    """Forwards GET/HEAD to ``server.backend``; records every request; ``server.gate`` may answer first."""

    def _handle(self):
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        gate = getattr(self.server, "gate", None)
        if gate and gate(self):
            return
        headers = {k: v for k, v in self.headers.items() if k in ("Accept", "Range")}
        req = urllib.request.Request(self.server.backend + self.path, method=self.command, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as exc:
            resp = exc
        body = resp.read()
        self.send_response(resp.getcode())
        for k, v in resp.headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        resp.close()

    do_GET = do_HEAD = _handle

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(backend, gate=None):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    srv.backend, srv.seen, srv.gate, srv.daemon_threads = backend, [], gate, True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def token_gate(state):
    """A distribution-spec token server plus registry front: Basic creds at /token, scoped Bearer at /v2/."""

    def gate(h):
        host = "127.0.0.1:{}".format(h.server.server_address[1])
        if h.path.startswith("/token"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
            state["token_requests"].append({"query": q, "auth": h.headers.get("Authorization")})
            good = "Basic " + base64.b64encode("{}:{}".format(USER, PASSWORD).encode()).decode()
            if h.headers.get("Authorization") != good:
                h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return True
            token = uuid.uuid4().hex
            state["tokens"][token] = q.get("scope", [])
            h.reply(200, json.dumps({"token": token}).encode())
            return True
        auth = h.headers.get("Authorization") or ""
        scopes = state["tokens"].get(auth[7:]) if auth.startswith("Bearer ") else None
        path = urllib.parse.urlsplit(h.path).path
        allowed = scopes is not None and (path == "/v2/" or any(
            path.startswith("/v2/{}/".format(s.split(":")[1])) and "pull" in s.split(":")[2].split(",")
            for s in scopes if s.startswith("repository:")))
        if not allowed:
            challenge = 'Bearer realm="http://{}/token",service="fake-registry"'.format(host)
            h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", challenge)])
            return True
        return False
    return gate


@pytest.fixture(scope="module")
def regs():
    """Two docker-registry processes (htpasswd-protected and open) with a test image, plus a token front."""
    for tool in (REGISTRY_BIN, SKOPEO, HTPASSWD):
        if not os.access(tool, os.X_OK):
            pytest.skip("{} not installed".format(tool))
    work = tempfile.mkdtemp(prefix="fleet-regauth-")
    procs, servers = [], []
    try:
        htpasswd = os.path.join(work, "htpasswd")
        out = subprocess.run([HTPASSWD, "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
        with open(htpasswd, "wb") as f:
            f.write(out)
        auth_host, proc, log = start_registry(
            work, "auth", "auth:\n  htpasswd:\n    realm: fleet-test\n    path: {}\n".format(htpasswd))
        procs.append((proc, log))
        open_host, proc, log = start_registry(work, "open")
        procs.append((proc, log))
        lay = Layout(os.path.join(work, "oci"))
        amd, cfg = lay.image([layer([("etc/", "dir", None, 0o755), ("etc/hi", "file", b"hi\n", 0o644)])])
        lay.tag("v1", amd)
        src = "oci:{}:v1".format(lay.path)
        for tag in ("v1", "v2", "v3"):
            subprocess.run([SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                            "{}:{}".format(USER, PASSWORD), src, "docker://{}/test/img:{}".format(auth_host, tag)],
                           check=True, capture_output=True, timeout=120)
        subprocess.run([SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", src,
                        "docker://{}/test/img:v1".format(open_host)], check=True, capture_output=True, timeout=120)
        state = {"token_requests": [], "tokens": {}}
        tok = serve("http://" + open_host, token_gate(state))
        servers.append(tok)
        yield {"auth": auth_host, "open": open_host, "token": "127.0.0.1:{}".format(tok.server_address[1]),
               "token_state": state, "token_server": tok, "manifest": amd["digest"], "config": cfg}
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        for proc, log in procs:
            stop(proc, log)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Private state root, config dir and DOCKER_CONFIG; any stray non-loopback request hits a dead proxy."""
    no_stray_requests(monkeypatch)
    monkeypatch.setenv("FLEET_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("FLEET_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ctx = Context(Paths(), "dev", None)
    ctx.docker_json = tmp_path / "docker" / "config.json"
    return ctx


def assert_no_secret(exc):
    """No error text or detail may carry the password, the basic-auth blob, or a token."""
    text = json.dumps({"m": exc.message, "d": exc.details}, default=str) + str(exc)
    assert PASSWORD not in text and base64.b64encode("{}:{}".format(USER, PASSWORD).encode()).decode() not in text
    assert "Bearer" not in text and "Basic " not in text


@pytest.mark.parametrize("kind", ["auth", "token"])
def test_login_pull_logout(regs, env, kind):
    host = regs[kind]
    ref = "{}/test/img:v1".format(host)
    with pytest.raises(errors.FailedPrecondition) as exc:
        _pull(images.ImageStore(Paths()), ref)
    assert "unauthorized: authentication required" in exc.value.message
    assert "`fleet login {}`".format(host) in exc.value.message
    assert exc.value.details.get("credentials") is not True

    with pytest.raises(errors.FailedPrecondition) as exc:
        ops_call(env, "login", {"registry": host, "username": USER, "password": PASSWORD + "x"}, None)
    assert exc.value.message == "unauthorized: incorrect username or password"
    assert_no_secret(exc.value)
    assert not env.docker_json.exists()  # nothing stored

    out = ops_call(env, "login", {"registry": host, "username": USER, "password": PASSWORD}, None)
    assert out == {"registry": host, "status": "Login Succeeded"}
    assert stat.S_IMODE(os.stat(env.docker_json).st_mode) == 0o600
    assert json.loads(env.docker_json.read_text()) == {"auths": {host: {"auth": base64.b64encode(
        "{}:{}".format(USER, PASSWORD).encode()).decode()}}}

    rec, info = _pull(images.ImageStore(Paths()), ref)
    assert rec.id == regs["config"] and rec.digest == regs["manifest"] and info["endpoint"] == "http://" + host

    assert ops_call(env, "logout", {"registry": host}, None) == {"registry": host, "removed": True}
    assert ops_call(env, "logout", {"registry": host}, None) == {"registry": host, "removed": False}
    with pytest.raises(errors.FailedPrecondition, match="fleet login") as exc:
        _pull(images.ImageStore(Paths()), "{}/test/img:v2".format(host))
    assert_no_secret(exc.value)


def test_token_flow_scopes_and_no_basic_to_registry(regs, env):
    state, tok = regs["token_state"], regs["token_server"]
    state["token_requests"].clear()
    tok.seen.clear()
    ep = registry.Endpoint("http://" + regs["token"], insecure=True, registry=regs["token"])
    client = registry.RegistryClient(ep, "test/img", (USER, PASSWORD))
    body, _mt, digest = client.get_manifest("v1")
    assert digest == regs["manifest"]
    client.get_manifest(regs["manifest"])  # same scope: the cached token, no new token request
    assert [r["query"]["scope"] for r in state["token_requests"]] == [["repository:test/img:pull"]]
    assert state["token_requests"][0]["query"]["service"] == ["fake-registry"]
    assert state["token_requests"][0]["auth"].startswith("Basic ")
    # The registry only ever saw Bearer tokens (or nothing), never the Basic credentials.
    v2 = [a for _m, p, a in tok.seen if p.startswith("/v2/")]
    assert v2 and all(a is None or a.startswith("Bearer ") for a in v2)
    resp = client.request("HEAD", "/v2/test/img/blobs/" + regs["config"], scope_actions=("pull", "push"),
                          extra_scopes=("repository:other/repo:pull",))
    assert resp.getcode() == 200
    resp.close()
    assert state["token_requests"][-1]["query"]["scope"] == ["repository:test/img:pull,push",
                                                             "repository:other/repo:pull"]
    missing = client.request("GET", "/v2/test/img/blobs/sha256:" + "0" * 64)
    assert missing.getcode() == 404  # non-auth HTTP errors come back as the response
    missing.close()
    with pytest.raises(registry.Unauthorized) as exc:
        registry.RegistryClient(ep, "test/img", (USER, "wrong")).get_manifest("v1")
    assert exc.value.details["credentials"] is True and "fleet login {}".format(regs["token"]) in exc.value.message
    assert_no_secret(exc.value)


def test_list_tags_paginated_with_basic_auth(regs, env):
    ep = registry.Endpoint("http://" + regs["auth"], insecure=True, registry=regs["auth"])
    client = registry.RegistryClient(ep, "test/img", (USER, PASSWORD))
    assert client.list_tags(page_size=1) == ["v1", "v2", "v3"]
    assert client.list_tags() == ["v1", "v2", "v3"]
    with pytest.raises(errors.FailedPrecondition, match="fleet login"):
        registry.RegistryClient(ep, "test/img", False).list_tags()


@pytest.mark.parametrize("caps", [["pull"], ["pull", "resolve"]])
def test_pull_only_mirror_never_resolves_tags(regs, env, caps):
    mirror = serve("http://" + regs["open"])
    try:
        origin = regs["open"]
        daemon = {"registries": {origin: {"mirrors": [{"url": "http://127.0.0.1:{}".format(
            mirror.server_address[1]), "capabilities": caps}]}}}
        out = ops_call(env, "configure", {"daemon": daemon}, None)
        assert out == {"changed": True, "daemon": daemon}
        rec, info = _pull(images.ImageStore(Paths()), "{}/test/img:v1".format(origin))
        assert rec.id == regs["config"]
        paths = [p for _m, p, _a in mirror.seen]
        if caps == ["pull"]:
            assert info["endpoint"] == "http://" + origin  # the tag was resolved by the origin
            assert not any("/manifests/v1" in p for p in paths)
            assert any("/blobs/" in p for p in paths)  # content came from the mirror
            mirror.seen.clear()
            _pull(images.ImageStore(Paths()), "{}/test/img@{}".format(origin, regs["manifest"]))
            assert any(p.endswith("/manifests/" + regs["manifest"]) for _m, p, _a in mirror.seen)
        else:
            assert any(p.endswith("/manifests/v1") for p in paths)  # a resolve mirror is trusted with tags
    finally:
        mirror.shutdown()
        mirror.server_close()


def test_configure_round_trip_and_refusal(regs, env):
    first = ops_call(env, "configure", {"daemon": {"insecure-registries": ["reg.lan:5000"], "debug": True}}, None)
    assert first == {"changed": True, "daemon": {"insecure-registries": ["reg.lan:5000"], "debug": True}}
    assert ops_call(env, "configure", {"daemon": {"debug": True}}, None)["changed"] is False
    path = Paths().daemon_json
    before = open(path, "rb").read()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with pytest.raises(errors.InvalidArgument, match="daemon.json: registries\\['r.lan'\\].mirrors\\[0\\].url"):
        ops_call(env, "configure", {"daemon": {"registries": {"r.lan": {"mirrors": [{"url": "ftp://x"}]}}}}, None)
    assert open(path, "rb").read() == before
    out = ops_call(env, "configure", {"daemon": {"debug": None}}, None)
    assert out == {"changed": True, "daemon": {"insecure-registries": ["reg.lan:5000"]}}
    with pytest.raises(errors.InvalidArgument):
        ops_call(env, "configure", {"daemon": "debug=true"}, None)
