"""agent_payload/deploy/ without containers: the gate's rules and probes, the journal, the retired marks, the
deploy lock and its holder process, image_resolve against a registry stub, the compose create args' checks."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from agent_payload import errors
from agent_payload.deploy import gate, journal, lock, resolve, retired
from agent_payload.image import images
from agent_payload.ops.args import decode
from agent_payload.ops.containers import exposed_ports
from agent_payload.runtime import records
from agent_payload.state.paths import Paths
from tests.helpers.registry_stub import REPO, make_layer, pull, sha


# ---------------------------------------------------------------- gate

def test_parse_probe():
    assert gate.parse_probe("http://:8080/healthz") == ("http", None, 8080, "/healthz")
    assert gate.parse_probe("http://10.0.0.5:80") == ("http", "10.0.0.5", 80, "/")
    assert gate.parse_probe("http://:80/a?b=1") == ("http", None, 80, "/a?b=1")
    assert gate.parse_probe("tcp://:5432") == ("tcp", None, 5432, "/")
    for bad in ("ftp://:21", "http://:0/", "tcp://:99999", "tcp://host", "8080", "http://:x/"):
        with pytest.raises(errors.InvalidArgument, match="invalid probe"):
            gate.parse_probe(bad)


def _rec(**kw):
    rec = {"id": "c" * 64, "status": "running", "restart_count": 0, "network": "bridge", "ports": [],
           "network_settings": {"endpoints": [{"network": "bridge", "ip": "172.17.0.5"}], "ports": []}}
    rec.update(kw)
    return rec


def test_probe_address_is_the_new_containers_own():
    staged = [{"proto": "tcp", "host_ip": "", "host_port": 8080, "host_port_end": 8080, "container_port": 80}]
    # a published host port goes to the container's own address and container port (start-first: the host
    # port still routes to the old container)
    assert gate.probe_address(_rec(ports=staged), None, 8080) == ("172.17.0.5", 80)
    bound = _rec(network_settings={"endpoints": [{"ip": "10.1.0.2"}], "ports": [dict(staged[0], host_port=9000)]})
    assert gate.probe_address(bound, None, 9000) == ("10.1.0.2", 80)
    assert gate.probe_address(_rec(), None, 5432) == ("172.17.0.5", 5432)  # not published: its container port
    assert gate.probe_address(_rec(), "192.0.2.1", 81) == ("192.0.2.1", 81)
    assert gate.probe_address(_rec(network="host", network_settings={}), None, 8080) == ("127.0.0.1", 8080)
    assert gate.probe_address(_rec(network="none", network_settings={}), None, 80) == (None, 80)


@pytest.fixture
def web():
    """An HTTP server on 127.0.0.1: /ok 200, /moved 302, anything else 500."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = {"/ok": 200, "/moved": 302}.get(self.path, 500)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            if code == 302:
                self.send_header("Location", "/elsewhere")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()
    # closed on leaving: nothing listens there now


def test_probe_once_http_and_tcp(web):
    assert gate.probe_once("http", web, "/ok") is None
    assert gate.probe_once("http", web, "/moved") is None  # 3xx passes (not followed)
    assert gate.probe_once("http", web, "/broken") == "HTTP 500 Internal Server Error"
    assert gate.probe_once("tcp", web, "/") is None
    assert "refused" in gate.probe_once("tcp", _closed_port(), "/").lower()
    assert "refused" in gate.probe_once("http", _closed_port(), "/").lower()


class FakeRuntime:
    """lookup() answers the next scripted record (the last one forever); a fake clock moves 0.1 s per sleep."""

    def __init__(self, script):
        self.script = list(script)
        self.now = 0.0

    def lookup(self, ref):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def sleep(self, s):
        self.now += s

    def clock(self):
        return self.now


def _wait(rt, **kw):
    return gate.wait(rt, "c", sleep=rt.sleep, clock=rt.clock, **kw)


def test_monitor_passes_after_monitor_seconds_and_fails_on_restart_or_exit():
    rt = FakeRuntime([_rec()])
    assert _wait(rt, monitor=2, timeout=10) is None and 2 <= rt.now < 2.2
    restarted = FakeRuntime([_rec()] * 5 + [_rec(restart_count=1, last_exit_code=3)])
    assert _wait(restarted, monitor=2, timeout=10) == "container restarted (1 restarts, last exit code 3)"
    restarting = FakeRuntime([_rec()] * 3 + [_rec(status="restarting", restart_count=1, exit_code=2)])
    assert "restarted" in _wait(restarting, monitor=2, timeout=10)
    exited = FakeRuntime([_rec(status="exited", exit_code=1, error="exec: nope")])
    assert _wait(exited, monitor=2, timeout=10) == "container exited with code 1: exec: nope"
    assert _wait(FakeRuntime([_rec()]), monitor=5, timeout=1) == "container did not stay up for 5s within 1s"


def test_health_gate():
    hc = {"Test": ["CMD", "true"]}
    starting = _rec(healthcheck=hc, health={"Status": "starting"})
    healthy = FakeRuntime([starting] * 4 + [dict(starting, health={"Status": "healthy"})])
    assert _wait(healthy, monitor=100, timeout=10) is None and healthy.now < 1  # monitor does not apply
    bad = dict(starting, health={"Status": "unhealthy", "Log": [{"Output": "db down\n"}]})
    assert _wait(FakeRuntime([starting, bad]), timeout=10) == "container is unhealthy: db down"
    assert _wait(FakeRuntime([starting]), timeout=3) == "container did not become healthy within 3s"


def test_probe_is_retried_within_the_timeout(web, monkeypatch):
    answers = ["connection refused", "HTTP 503 Service Unavailable", None]
    calls = []
    monkeypatch.setattr(gate, "probe_once", lambda *a: calls.append(a) or answers.pop(0))
    rt = FakeRuntime([_rec(ports=[{"host_port": 8080, "container_port": 80}])])
    assert _wait(rt, monitor=0, probe="http://:8080/ok", timeout=10) is None
    assert calls == [("http", ("172.17.0.5", 80), "/ok")] * 3
    monkeypatch.setattr(gate, "probe_once", lambda *a: "HTTP 500 Internal Server Error")
    out = _wait(FakeRuntime([_rec()]), monitor=0, probe="http://:80/", timeout=1)
    assert out == "probe http://:80/ did not pass within 1s: HTTP 500 Internal Server Error"
    nowhere = FakeRuntime([_rec(network="none", network_settings={})])
    assert "has no address" in _wait(nowhere, monitor=0, probe="tcp://:80", timeout=1)


# ---------------------------------------------------------------- journal, retired marks

def test_journal_lines_filters_and_modes(paths):
    assert journal.read(paths) == []
    for i, (project, service) in enumerate([("a", "web"), ("a", "db"), ("b", "web"), ("a", "web")]):
        journal.append(paths, {"time": str(i), "controller": "me@ctl", "deploy_id": "d", "project": project,
                               "service": service, "from": None, "to": {"config_hash": "h", "image_digest": "x"},
                               "result": "updated", "ignored": 1})
    path = journal.path_of(paths)
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert [e["time"] for e in journal.read(paths, project="a")] == ["0", "1", "3"]
    assert [e["time"] for e in journal.read(paths, project="a", service="web")] == ["0", "3"]
    assert [e["time"] for e in journal.read(paths, service="web", last=2)] == ["2", "3"]
    assert journal.read(paths, last=0) == []
    assert "ignored" not in journal.read(paths)[0] and set(journal.read(paths)[0]) == set(journal.FIELDS)
    with open(path, "ab") as f:
        f.write(b'{"time": "torn')  # a crash mid-line: skipped
    assert len(journal.read(paths)) == 4
    journal.append(paths, {"time": "5"})
    assert [e["time"] for e in journal.read(paths)][-1] == "5"


def test_journal_appends_from_many_processes_stay_whole_lines(paths):
    pids = []
    for n in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(25):
                    journal.append(paths, {"time": "{}-{}".format(n, i), "controller": "x" * 3000})
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    with open(journal.path_of(paths)) as f:
        lines = f.read().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["controller"] == "x" * 3000 for line in lines)


def test_retired_marks(paths):
    assert retired.read(paths, "p") == {}
    retired.update(paths, "p", add={"a": "web"})
    retired.update(paths, "p", add={"b": "web", "c": "db"})
    marks = retired.read(paths, "p")
    assert sorted(marks) == ["a", "b", "c"] and marks["c"]["service"] == "db" and marks["a"]["since"]
    assert os.stat(os.path.join(paths.root, "deploys", "p.json")).st_mode & 0o777 == 0o600
    retired.update(paths, "p", remove=["a"], exists=lambda cid: cid != "c")
    assert list(retired.read(paths, "p")) == ["b"]
    retired.update(paths, "p", remove=["b"])
    assert not os.path.exists(os.path.join(paths.root, "deploys", "p.json"))


# ---------------------------------------------------------------- the deploy lock

@pytest.fixture
def holder():
    """A live process to stand for a holder's sshd: (pid, starttime); killed by the test or at the end."""
    proc = subprocess.Popen(["sleep", "600"])
    deadline = time.monotonic() + 5
    while records.proc_starttime(proc.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield proc, (proc.pid, records.proc_starttime(proc.pid))
    finally:
        proc.kill()
        proc.wait()


def test_lock_conflict_while_the_holder_lives_then_taken_over(paths, holder):
    proc, ident = holder
    assert lock.acquire(paths, "shop", "d1", "alice@ctl", process=ident) == {"acquired": True, "took_over": None}
    since = lock.read(paths, "shop")["since"]
    assert os.stat(os.path.join(paths.root, "deploys", "shop.lock")).st_mode & 0o777 == 0o600
    with pytest.raises(errors.Conflict) as exc:
        lock.acquire(paths, "shop", "d2", "bob@ctl", process=(os.getpid(), records.proc_starttime(os.getpid())))
    assert exc.value.message == "project shop on this host is being deployed by alice@ctl since {} (d1)".format(since)
    # the same deploy again (a new connection of the same controller run): fine, still since the first time
    assert lock.acquire(paths, "shop", "d1", "alice@ctl", process=ident)["took_over"] is None
    assert lock.read(paths, "shop")["since"] == since
    lock.check_held(paths, "shop", "d1")
    with pytest.raises(errors.FailedPrecondition, match="deploy d2 does not hold the deploy lock of project shop"):
        lock.check_held(paths, "shop", "d2")
    assert lock.acquire(paths, "other", "d2", "bob@ctl", process=ident)["acquired"]  # projects are separate
    proc.kill()
    proc.wait()
    with pytest.raises(errors.FailedPrecondition):
        lock.check_held(paths, "shop", "d1")  # its holder is gone
    me = (os.getpid(), records.proc_starttime(os.getpid()))
    assert lock.acquire(paths, "shop", "d2", "bob@ctl", process=me) == {
        "acquired": True, "took_over": {"holder": "alice@ctl", "since": since, "deploy_id": "d1"}}
    assert lock.release(paths, "shop", "d1") == {"released": False}  # not the holder: nothing changes
    assert lock.read(paths, "shop")["deploy_id"] == "d2"
    assert lock.release(paths, "shop", "d2") == {"released": True} and lock.read(paths, "shop") is None


def test_a_reused_pid_is_not_the_holder(paths, holder):
    _proc, (pid, start) = holder
    lock.acquire(paths, "shop", "d1", "alice@ctl", process=(pid, start + 1))  # same pid, another process
    assert lock.acquire(paths, "shop", "d2", "bob@ctl", process=(pid, start))["took_over"]["deploy_id"] == "d1"


def test_bad_lock_input(paths):
    with pytest.raises(errors.InvalidArgument, match="invalid project name 'Shop!'"):
        lock.acquire(paths, "Shop!", "d1", "x")
    with pytest.raises(errors.InvalidArgument, match="deploy_id must not be empty"):
        lock.acquire(paths, "shop", "", "x")


FAKE_SSHD = """\
import ctypes, subprocess, sys
ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)  # PR_SET_NAME: what the holder search looks for
child = subprocess.Popen(["sleep", "600"])
print(child.pid, flush=True)
child.wait()
"""


def test_the_holder_is_the_nearest_sshd_ancestor():
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SSHD], stdout=subprocess.PIPE)
    try:
        child = int(fake.stdout.readline())
        assert lock._stat_fields(child) == ("sleep", fake.pid)
        assert lock.holder_process(start=child) == (fake.pid, records.proc_starttime(fake.pid))
    finally:
        fake.kill()
        fake.wait()
        fake.stdout.close()
    me = os.getpid()  # no sshd above: the start process itself
    if all(lock._stat_fields(p)[0] not in lock.SSHD_NAMES for p in _ancestors(me)):
        assert lock.holder_process(start=me) == (me, records.proc_starttime(me))


def test_an_orphaned_op_takes_no_lock(tmp_path):
    """A controller killed mid-call: sshd is gone before the op looks for it, and the op's new parent (init, a
    subreaper) would hold the lock forever.  The op sees it was orphaned and takes nothing."""
    assert lock.holder_process(parent_at_start=os.getppid())[0] > 0  # still the parent that started it
    with pytest.raises(errors.Unavailable, match="session that asked for the deploy lock has ended"):
        lock.holder_process(parent_at_start=os.getppid() + 1)
    paths = Paths(root=str(tmp_path / "root"))
    os.makedirs(paths.root)
    with pytest.raises(errors.Unavailable):
        lock.acquire(paths, "shop", "d1", "me@ctl", parent_at_start=os.getppid() + 1)
    assert lock.read(paths, "shop") is None


def _ancestors(pid):
    out = []
    while pid > 1:
        out.append(pid)
        pid = lock._stat_fields(pid)[1]
    return out


# ---------------------------------------------------------------- image_resolve

def test_image_resolve_asks_the_registry_and_falls_back_to_the_local_repo_digest(stubs, paths):
    stub = stubs()
    stub.add_image("v1", [make_layer("a", 1000, b"a")])
    ref = "{}/{}:v1".format(stub.host, REPO)
    store = images.ImageStore(paths)
    first = resolve.resolve(store, ref)
    assert first == {"reference": ref, "digest": sha(stub.manifests["v1"]), "local": False}
    assert not any("/blobs/" in p for p, _r in stub.requests)  # the manifest only: nothing pulled
    assert store._read_index()["images"] == {}
    stub.add_image("v1", [make_layer("b", 1000, b"b")])  # the tag moves
    assert resolve.resolve(images.ImageStore(paths), ref)["digest"] == sha(stub.manifests["v1"]) != first["digest"]
    pinned = "{}/{}@{}".format(stub.host, REPO, first["digest"])
    assert resolve.resolve(store, pinned)["digest"] == first["digest"]
    with pytest.raises(errors.NotFound, match="manifest unknown"):
        resolve.resolve(store, "{}/{}:nope".format(stub.host, REPO))
    pull(paths, ref)
    stub.close()  # the registry is gone: the digest the local tag came with
    assert resolve.resolve(images.ImageStore(paths), ref) == {"reference": ref, "digest": sha(stub.manifests["v1"]),
                                                              "local": True}
    with pytest.raises(errors.Unavailable):
        resolve.resolve(images.ImageStore(paths), "{}/{}:v2".format(stub.host, REPO))


# ---------------------------------------------------------------- requests and create args

def test_swap_request_defaults_and_checks():
    from agent_payload.ops import dispatch
    req = decode("service_swap", {"project": "p", "service": "s", "deploy_id": "d", "create": {"image": "x"}})
    assert (req.order, req.monitor, req.timeout, req.stop_grace_period, req.keep, req.probe) == (
        "stop-first", 5, 300, 10, 2, None)
    assert req.extra_networks == [] and req.journal == {}
    base = {"project": "p", "service": "s", "deploy_id": "d", "create": {"image": "x"}}
    for bad, message in (({"keep": -1}, "argument keep must be >= 0"),
                         ({"project": "P q"}, "invalid project name"),
                         ({"service": "-x"}, "invalid service name"),
                         ({"create": None}, "missing argument: create"),
                         ({"create": ["x"]}, "argument create must be an object"),
                         ({"monitor": True}, "argument monitor must be a number"),
                         ({"stop_grace_period": -1}, "argument stop_grace_period must be a number"),
                         ({"extra_networks": [["net", "alias"]]}, "argument extra_networks must be a list"),
                         ({"create": {"image": "x", "env": "A=1"}}, "argument env must be a list")):
        with pytest.raises(errors.InvalidArgument, match=message):
            dispatch(None, "service_swap", dict(base, **bad), None)  # ctx None: refused before any state


def test_exposed_ports():
    assert exposed_ports(["80", "53/udp", "8000-8002/TCP"]) == ["80/tcp", "53/udp", "8000/tcp", "8001/tcp",
                                                                "8002/tcp"]
    for bad in ("x", "0", "70000", "80/icmp", "90-80", ""):
        with pytest.raises(errors.InvalidArgument, match="invalid containerPort: " + bad):
            exposed_ports([bad])


# ---------------------------------------------------------------- draining after a handover

def test_drain_waits_for_the_connections_on_the_published_ports():
    from agent_payload.deploy import drain
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    rec = {"status": "running", "pid": os.getpid(), "ports": [{"proto": "tcp", "container_port": port}]}
    try:
        assert drain.open_connections(os.getpid(), {port}) == 0  # LISTEN is not a client
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        assert drain.open_connections(os.getpid(), {port}) == 1  # the served side only (the client's port differs)
        rt = FakeRuntime([rec])
        assert drain.wait(rec, 1.0, clock=rt.clock, sleep=rt.sleep) == 1 and 1.0 <= rt.now < 1.2  # at most grace
        client.close()
        conn.close()
        assert drain.wait(rec, 5.0) == 0
        assert drain.wait(dict(rec, status="exited"), 5.0) == 0 and drain.wait(dict(rec, ports=[]), 5.0) == 0
    finally:
        server.close()


# ---------------------------------------------------------------- the detached worker

def _first_line(path):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(path) as f:
            line = f.readline()
        if line.endswith("\n"):
            return json.loads(line)
        time.sleep(0.01)
    raise AssertionError("the worker never wrote its first line")


def test_the_worker_is_detached_and_reports_through_its_progress_file(paths, tmp_path):
    from agent_payload.deploy import worker
    go = tmp_path / "go"

    def job(progress):
        progress.phase("creating", id="x")
        while not go.exists():
            time.sleep(0.01)
        progress.event("progress", {"layer": "l"})
        return {"result": "updated"}

    path = worker.progress_path(paths, "p", "s", "swap", "d/1", {"a": 1})
    assert os.path.basename(path).startswith("p.s.swap.d_1.") and path != worker.progress_path(
        paths, "p", "s", "swap", "d/1", {"a": 2})
    assert worker.launch(path, job) is True
    pid, start = _first_line(path)["worker"]
    try:
        # a session of its own (not its leader: no controlling terminal again): no hang-up or group signal of ours
        assert os.getsid(pid) not in (os.getsid(0), pid) and os.getpgid(pid) != os.getpgid(0)
        fds = {fd: os.readlink("/proc/{}/fd/{}".format(pid, fd)) for fd in os.listdir("/proc/{}/fd".format(pid))}
        assert [fds[n] for n in ("0", "1", "2")] == ["/dev/null"] * 3
        assert sorted(fds.values()) == sorted(["/dev/null"] * 3 + [path])  # nothing of the op's is held
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        assert worker.launch(path, job) is False  # the same request again: follow the running one
    finally:
        go.touch()
    events = []
    assert worker.follow(path, lambda *a: events.append(a)) == {"result": "updated"}
    assert events == [("phase", {"phase": "creating", "id": "x"}), ("progress", {"layer": "l"})]
    worker.consumed(path)
    assert not os.path.exists(path)


def test_the_workers_errors_reach_the_op(paths):
    from agent_payload.deploy import worker

    def bad_input(progress):
        raise errors.NotFound("no previous version of service s")

    def bug(progress):
        return {}["missing"]

    for n, (job, kind, message) in enumerate(((bad_input, errors.NotFound, "no previous version of service s"),
                                              (bug, errors.Internal, "KeyError: 'missing'"))):
        path = worker.progress_path(paths, "p", "s", "swap", "d", n)
        worker.launch(path, job)
        with pytest.raises(kind) as exc:
            worker.follow(path, None)
        assert exc.value.message == message
        if kind is errors.Internal:
            assert "KeyError" in exc.value.details["traceback"]


def test_a_worker_that_dies_without_a_result_is_reported(paths):
    from agent_payload.deploy import worker

    def dies(progress):
        os._exit(9)

    path = worker.progress_path(paths, "p", "s", "swap", "d", None)
    worker.launch(path, dies)
    with pytest.raises(errors.Internal, match=r"the deploy worker \(pid \d+\) ended without a result"):
        worker.follow(path, None)
