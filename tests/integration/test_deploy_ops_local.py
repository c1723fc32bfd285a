"""Deploy ops on this machine's real runtime (busybox image, private FLEET_ROOT): service_swap stop-first and
start-first, the gate (exit, never healthy, restarts, probes), keep N, service_rollback, service_down, the journal,
and the detached worker finishing or reverting by itself when the op process is killed mid-swap."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from agent_payload import errors
from agent_payload.deploy import lock, retired, worker
from tests.helpers import images
from tests.helpers.images import _layer_with_links, op
from tests.helpers.runtime import BUSYBOX, REPO, scratch_netns
from tests.helpers import runtime as runtime_helpers

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and /usr/bin/busybox (busybox-static)")
pytestmark = [pytest.mark.integration, needs_root]

env = images.env  # the fixture: private FLEET_ROOT with images, cleanup of every process and mount
P, S = "shop", "web"
LABELS = {"com.docker.compose.project": P, "com.docker.compose.service": S}
FAST = {"monitor": 0.3, "timeout": 20, "stop_grace_period": 1}


hook_root = runtime_helpers.hook_root  # boot hooks under a private root (autouse)


@pytest.fixture
def fx(env):
    from agent_payload import cli
    env.ctx.launcher = cli.launcher()  # what the boot hook of a restart policy runs
    env.image(["bb:1"], [_layer_with_links(), {"www/index.html": b"hello\n"}])
    op(env, "deploy_lock", project=P, deploy_id="d1", holder="tester@ctl")
    return env


def create(version, command=None, **kw):
    args = {"image": "bb:1", "network": "none", "env": ["VERSION={}".format(version)],
            "command": command or ["sleep", "600"],
            "labels": dict(LABELS, **{"com.docker.compose.config-hash": "h{}".format(version),
                                      "fleet.deploy.image-digest": "sha256:" + "0" * 64,
                                      "fleet.deploy.spec": json.dumps({"v": version})})}
    args.update(kw)
    return args


def swap(fx, version, command=None, deploy_id="d1", events=None, gate=None, **kw):
    args = dict(project=P, service=S, deploy_id=deploy_id, create=create(version, command, **kw),
                journal={"controller": "tester@ctl"}, **dict(FAST, **(gate or {})))
    return _op(fx, "service_swap", events, **args)


def _op(fx, name, events=None, **args):
    from agent_payload.ops import dispatch
    return dispatch(fx.ctx, name, args, lambda ev, data: events.append((ev, data)) if events is not None else None)


def containers(fx):
    """{name: (state, VERSION)} of every container."""
    out = {}
    for rec in fx.rt.all_records():
        version = [e.split("=", 1)[1] for e in rec.get("env") or [] if e.startswith("VERSION=")]
        out[rec["name"]] = (rec["status"], version[0] if version else None)
    return out


def live(fx):
    return fx.rt.lookup("{}-{}-1".format(P, S))


def test_stop_first_swap_updates_retires_the_old_one_and_keeps_n(fx):
    events = []
    first = swap(fx, 1, events=events)
    assert first["result"] == "updated" and first["from"] is None and first["name"] == "shop-web-1"
    assert first["to"]["config_hash"] == "h1" and first["logs"] == []
    assert [d["phase"] for e, d in events if e == "phase"] == ["creating", "starting", "waiting", "done"]
    events.clear()
    second = swap(fx, 2, events=events)
    assert second["result"] == "updated" and second["from"]["id"] == first["id"] and second["to"]["id"] != first["id"]
    assert [d["phase"] for e, d in events if e == "phase"] == ["creating", "switching", "starting", "waiting", "done"]
    old_name = "shop-web-1." + first["id"][:12]
    assert containers(fx) == {"shop-web-1": ("running", "2"), old_name: ("exited", "1")}
    rows = {r["name"]: r for r in op(fx, "service_ls", project=P)["services"]}
    assert rows["shop-web-1"]["retired"] is None and rows["shop-web-1"]["state"] == "running"
    assert rows["shop-web-1"]["config_hash"] == "h2" and rows["shop-web-1"]["spec"] == {"v": 2}
    assert rows[old_name]["retired"] and rows[old_name]["service"] == S and rows[old_name]["project"] == P
    assert op(fx, "service_ls", project="other")["services"] == []
    # keep 2: the third and fourth swaps prune the oldest retired versions
    swap(fx, 3)
    fourth = swap(fx, 4, gate={"keep": 2})
    assert fourth["pruned"] == [old_name]
    state = containers(fx)
    assert sorted(v for _s, v in state.values()) == ["2", "3", "4"] and state["shop-web-1"] == ("running", "4")
    assert sorted(retired.read(fx.paths, P)) == sorted(r["id"] for r in fx.rt.all_records()
                                                       if r["name"] != "shop-web-1")
    fifth = swap(fx, 5, gate={"keep": 0})
    assert containers(fx) == {"shop-web-1": ("running", "5")} and len(fifth["pruned"]) == 3
    entries = op(fx, "deploy_journal", project=P, service=S, last=None)["entries"]
    assert [e["result"] for e in entries] == ["updated"] * 5
    assert entries[1]["from"] == {"config_hash": "h1", "image_digest": "sha256:" + "0" * 64}
    assert entries[1]["to"]["config_hash"] == "h2" and entries[1]["controller"] == "tester@ctl"
    assert entries[1]["deploy_id"] == "d1" and entries[0]["from"] is None
    assert [e["to"]["config_hash"] for e in op(fx, "deploy_journal", last=2)["entries"]] == ["h4", "h5"]
    assert op(fx, "deploy_journal", project="other")["entries"] == []
    assert os.stat(os.path.join(fx.paths.root, "deploys", "journal.jsonl")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(fx.paths.root, "deploys")).st_mode & 0o777 == 0o700


def test_gate_failure_by_exit_removes_the_new_one_and_the_old_one_serves_again(fx):
    first = swap(fx, 1)
    events = []
    out = swap(fx, 2, ["sh", "-c", "echo starting v2; echo broken config >&2; exit 3"], events=events)
    assert out["result"] == "rolled_back" and "exited with code 3" in out["reason"]
    assert "starting v2" in out["logs"] and "broken config" in out["logs"]
    assert out["id"] == first["id"] and out["name"] == "shop-web-1"
    assert containers(fx) == {"shop-web-1": ("running", "1")}  # the new one removed, the old one started again
    assert [d["phase"] for e, d in events if e == "phase"][-2:] == ["rolling-back", "rolled-back"]
    assert retired.read(fx.paths, P) == {}
    entry = op(fx, "deploy_journal", project=P)["entries"][-1]
    assert entry["result"] == "rolled_back" and entry["to"]["config_hash"] == "h2" and "code 3" in entry["reason"]


def test_gate_never_healthy_unhealthy_or_timeout(fx):
    swap(fx, 1)
    ms = 10 ** 6
    unhealthy = swap(fx, 2, healthcheck={"Test": ["CMD-SHELL", "echo nope; exit 1"], "Interval": 100 * ms,
                                         "Retries": 2})
    assert unhealthy["result"] == "rolled_back" and "unhealthy" in unhealthy["reason"]
    assert "nope" in unhealthy["reason"]
    # failures inside the start period never count: it stays "starting" until the gate's timeout
    starting = swap(fx, 3, healthcheck={"Test": ["CMD", "false"], "Interval": 100 * ms, "StartPeriod": 60000 * ms},
                    gate={"timeout": 1.5})
    assert starting["result"] == "rolled_back" and "did not become healthy within 1.5s" in starting["reason"]
    assert containers(fx) == {"shop-web-1": ("running", "1")}
    healthy = swap(fx, 4, healthcheck={"Test": ["CMD", "true"], "Interval": 100 * ms, "Retries": 1},
                   gate={"monitor": 600})  # with a healthcheck, healthy is the gate (monitor does not apply)
    assert healthy["result"] == "updated" and live(fx)["health"]["Status"] == "healthy"


def test_monitor_fails_a_container_that_restarts(fx):
    swap(fx, 1)
    out = swap(fx, 2, ["sh", "-c", "sleep 0.3; exit 4"], restart="always", gate={"monitor": 5})
    assert out["result"] == "rolled_back" and "restarted" in out["reason"], out
    assert containers(fx) == {"shop-web-1": ("running", "1")}


def test_a_one_shot_service_must_complete(fx):
    """complete (others depend on it with service_completed_successfully): the gate is exit code 0."""
    done = swap(fx, 1, ["true"], gate={"complete": True})
    assert done["result"] == "updated" and containers(fx) == {"shop-web-1": ("exited", "1")}, done
    failed = swap(fx, 2, ["sh", "-c", "exit 3"], gate={"complete": True})
    assert failed["result"] == "rolled_back" and failed["reason"] == "container exited with code 3", failed
    assert containers(fx) == {"shop-web-1": ("exited", "1")}
    slow = swap(fx, 3, ["sleep", "600"], gate={"complete": True, "timeout": 1})
    assert slow["result"] == "rolled_back" and "did not complete within 1s" in slow["reason"], slow
    (row,) = [r for r in op(fx, "service_ls", project=P)["services"] if not r["retired"]]
    assert row["state"] == "exited" and row["exit_code"] == 0  # what the plan reads as a completed one-shot


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_http_and_tcp_to_the_new_container(fx):
    port = _free_port()
    httpd = ["httpd", "-f", "-p", "127.0.0.1:{}".format(port), "-h", "/www"]
    ok = swap(fx, 1, httpd, network="host", gate={"probe": "http://:{}/index.html".format(port)})
    assert ok["result"] == "updated"
    missing = swap(fx, 2, httpd, network="host", gate={"probe": "http://:{}/missing".format(port), "timeout": 1.5})
    assert missing["result"] == "rolled_back" and "404" in missing["reason"], missing
    nobody = swap(fx, 3, ["sleep", "600"], network="host", gate={"probe": "tcp://:{}".format(_free_port()),
                                                                "timeout": 1.5})
    assert nobody["result"] == "rolled_back" and "did not pass within 1.5s" in nobody["reason"]
    tcp = swap(fx, 4, httpd, network="host",
               gate={"probe": "tcp://:{}".format(port)})
    assert tcp["result"] == "updated", tcp
    assert live(fx)["env"][-1] == "VERSION=4"


def test_start_first_gates_the_new_one_while_the_old_one_serves(fx):
    first = swap(fx, 1)
    events = []
    out = _op(fx, "service_swap", events, project=P, service=S, deploy_id="d1", create=create(2), order="start-first",
        **FAST)
    phases = [d["phase"] for e, d in events if e == "phase"]
    assert out["result"] == "updated" and phases == ["creating", "starting", "waiting", "switching", "draining",
                                                     "done"]
    assert containers(fx) == {"shop-web-1": ("running", "2"), "shop-web-1." + first["id"][:12]: ("exited", "1")}
    events.clear()
    bad = _op(fx, "service_swap", events, project=P, service=S, deploy_id="d1", create=create(3, ["false"]),
              order="start-first", **FAST)
    assert bad["result"] == "rolled_back" and "exited with code 1" in bad["reason"]
    assert "switching" not in [d["phase"] for e, d in events if e == "phase"]  # the live one was never touched
    assert containers(fx)["shop-web-1"] == ("running", "2") and live(fx)["id"] == out["id"]


def test_rollback_to_the_previous_version_and_back(fx):
    with pytest.raises(errors.NotFound, match="no previous version of service web"):
        _op(fx, "service_rollback", project=P, service=S, deploy_id="d1", **FAST)
    first, second = swap(fx, 1), swap(fx, 2)
    events = []
    back = _op(fx, "service_rollback", events, project=P, service=S, deploy_id="d1", **FAST)
    assert back["result"] == "updated" and back["id"] == first["id"] and back["from"]["id"] == second["id"]
    assert containers(fx) == {"shop-web-1": ("running", "1"), "shop-web-1." + second["id"][:12]: ("exited", "2")}
    assert list(retired.read(fx.paths, P)) == [second["id"]]
    again = _op(fx, "service_rollback", project=P, service=S, deploy_id="d1", **FAST)  # rollback of the rollback
    assert again["id"] == second["id"] and containers(fx)["shop-web-1"] == ("running", "2")
    assert [e["action"] for e in op(fx, "deploy_journal", project=P)["entries"]] == ["swap", "swap", "rollback",
                                                                                      "rollback"]


def test_rollback_target_failing_its_gate_stays_retired(fx):
    swap(fx, 1, ["sh", "-c", "test -e /ran && exit 5; touch /ran; sleep 600"])
    second = swap(fx, 2)
    out = _op(fx, "service_rollback", project=P, service=S, deploy_id="d1", **FAST)  # v1 exits at its 2nd start
    assert out["result"] == "rolled_back" and "code 5" in out["reason"] and out["id"] == second["id"]
    assert sorted(containers(fx).values()) == [("exited", "1"), ("running", "2")]
    assert live(fx)["id"] == second["id"] and len(retired.read(fx.paths, P)) == 1


def test_down_removes_live_and_retired_containers_and_with_v_their_anonymous_volumes(fx):
    swap(fx, 1, volumes=["/data"])
    swap(fx, 2, volumes=["/data"])
    assert len(op(fx, "volume_ls")["volumes"]) == 2
    other = dict(create(9), labels={"com.docker.compose.project": "other", "com.docker.compose.service": "x"})
    op(fx, "deploy_lock", project="other", deploy_id="d9")
    _op(fx, "service_swap", project="other", service="x", deploy_id="d9", create=other, **FAST)
    out = op(fx, "service_down", project=P, volumes=True)
    assert sorted(out["removed"])[0] == "shop-web-1" and len(out["removed"]) == 2
    assert list(containers(fx)) == ["other-x-1"] and len(op(fx, "volume_ls")["volumes"]) == 0
    assert retired.read(fx.paths, P) == {}


def test_the_swap_requires_the_lock_and_checks_its_request_first(fx):
    with pytest.raises(errors.FailedPrecondition, match="does not hold the deploy lock of project shop"):
        swap(fx, 1, deploy_id="d2")
    with pytest.raises(errors.Conflict, match="being deployed by tester@ctl since .* \\(d1\\)"):
        op(fx, "deploy_lock", project=P, deploy_id="d2", holder="other@ctl")
    for bad, message in (({"order": "sideways"}, "argument order must be"),
                         ({"probe": "ftp://:21"}, "invalid probe"),
                         ({"timeout": "soon"}, "argument timeout must be a number"),
                         ({"create": create(1, labels={"com.docker.compose.project": "nope"})}, "does not match"),
                         ({"create": dict(create(1), env="X=1")}, "argument env must be a list")):
        args = dict(project=P, service=S, deploy_id="d1", create=create(1), **FAST)
        args.update(bad)
        with pytest.raises(errors.InvalidArgument, match=message):
            _op(fx, "service_swap", **args)
    assert containers(fx) == {} and not os.listdir(worker.work_dir(fx.paths))
    assert op(fx, "deploy_lock", project=P, deploy_id="d1", action="release") == {"released": True}
    with pytest.raises(errors.FailedPrecondition):
        swap(fx, 1)


def test_create_args_healthcheck_and_expose(fx):
    ms = 10 ** 6
    hc = {"Test": ["CMD-SHELL", "true"], "Interval": 200 * ms, "Timeout": 1000 * ms, "StartPeriod": 0, "Retries": 1}
    made = op(fx, "create", image="bb:1", command=["sleep", "60"], healthcheck=hc, health_cmd="false",
              expose=["8081", "53/udp"], publish_all=True)
    rec = fx.rt.lookup(made["id"])
    assert rec["healthcheck"] == hc  # in place of the --health-* flags' result
    assert sorted((b["container_port"], b["proto"], b["host_port"]) for b in rec["ports"]) == [
        (53, "udp", 0), (8081, "tcp", 0)]  # -P publishes what expose added to the image's (none) EXPOSE
    assert rec["exposed_ports"] == ["53/udp", "8081/tcp"]
    (obj,) = fx.rt.inspect([made["id"]])
    assert obj["Config"]["ExposedPorts"] == {"53/udp": {}, "8081/tcp": {}}  # docker's inspect shows them
    off = op(fx, "create", image="bb:1", healthcheck={"Test": ["NONE"]}, network="none")
    assert fx.rt.lookup(off["id"])["healthcheck"] == {"Test": ["NONE"], "Interval": 0, "Timeout": 0,
                                                     "StartPeriod": 0, "Retries": 0}
    for bad, message in (({"healthcheck": {"Test": ["SHELL", "x"]}}, "unknown healthcheck type 'SHELL'"),
                         ({"healthcheck": {"Test": ["CMD", "x"], "Interval": 10}}, "Interval in Healthcheck cannot"),
                         ({"expose": ["80/icmp"]}, "invalid containerPort: 80/icmp")):
        with pytest.raises(errors.InvalidArgument, match=message):
            op(fx, "create", image="bb:1", network="none", **bad)
    assert len(fx.rt.all_records()) == 2


# ---------------------------------------------------------------- the op process killed mid-swap

def _rpc(fx, op_name, args):
    """Start the op in its own payload process (as an SSH exec would run it); returns the Popen."""
    req = json.dumps({"protocol": 1, "payload": "dev", "op": op_name, "args": args}) + "\n"
    env = dict(os.environ, FLEET_ROOT=fx.paths.root, FLEET_CONFIG_DIR=fx.paths.config_dir)
    proc = subprocess.Popen([sys.executable, "-m", "agent_payload", "--rpc"], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True, env=env)
    proc.stdin.write(req.encode())
    proc.stdin.close()
    return proc


def _progress_file(fx):
    """The one progress file a killed op left behind."""
    names = os.listdir(worker.work_dir(fx.paths))
    assert len(names) == 1 and names[0].startswith("shop.web.swap.d1."), names
    return os.path.join(worker.work_dir(fx.paths), names[0])


def _kill_at(proc, phase):
    """Read the op's events until ``phase``, then SIGKILL its whole process group and close its pipes (the SSH
    session dies: everything of the session goes, except what left it)."""
    seen = []
    for line in proc.stdout:
        obj = json.loads(line)
        if obj.get("type") == "event" and obj["event"] == "phase":
            seen.append(obj["data"]["phase"])
            if obj["data"]["phase"] == phase:
                break
        assert obj.get("type") != "result", (phase, seen, obj)
    proc.stdout.close()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return seen


@pytest.mark.parametrize("phase", ["creating", "switching", "starting", "waiting"])
def test_killing_the_op_mid_swap_leaves_the_worker_finishing_the_swap(fx, phase):
    first = swap(fx, 1)
    args = dict(project=P, service=S, deploy_id="d1", create=create(2), journal={}, monitor=1, timeout=20,
                stop_grace_period=1)
    seen = _kill_at(_rpc(fx, "service_swap", args), phase)
    assert seen[-1] == phase
    out = worker.follow(_progress_file(fx), lambda *a: None)  # the worker's own result, written after the op died
    assert out["result"] == "updated" and out["from"]["id"] == first["id"]
    assert containers(fx) == {"shop-web-1": ("running", "2"), "shop-web-1." + first["id"][:12]: ("exited", "1")}
    # the controller asking again (same deploy, same service) gets that result, no second swap
    again = _op(fx, "service_swap", **args)
    assert again == out and len(op(fx, "deploy_journal")["entries"]) == 2
    assert os.listdir(worker.work_dir(fx.paths)) == []


@pytest.mark.parametrize("phase", ["starting", "waiting"])
def test_killing_the_op_mid_swap_leaves_the_worker_reverting_a_failed_one(fx, phase):
    swap(fx, 1)
    args = dict(project=P, service=S, deploy_id="d1", create=create(2, ["sh", "-c", "sleep 0.5; exit 7"]),
                monitor=3, timeout=20, stop_grace_period=1)
    _kill_at(_rpc(fx, "service_swap", args), phase)
    out = worker.follow(_progress_file(fx), lambda *a: None)
    assert out["result"] == "rolled_back" and "code 7" in out["reason"]
    assert containers(fx) == {"shop-web-1": ("running", "1")}


def test_a_killed_lock_holder_is_taken_over(fx, tmp_path):
    """The lock names the sshd carrying the acquiring connection: a fake one (comm "sshd") runs the op."""
    op(fx, "deploy_lock", project=P, deploy_id="d1", action="release")
    fake = tmp_path / "fake_sshd.py"
    fake.write_text(FAKE_SSHD)
    holder = subprocess.Popen([sys.executable, str(fake), REPO, fx.paths.root], stdout=subprocess.PIPE)
    try:
        answer = json.loads(holder.stdout.readline())
        assert answer["ok"] and answer["data"] == {"acquired": True, "took_over": None}, answer
        record = lock.read(fx.paths, P)
        assert record["pid"] == holder.pid and record["holder"] == "alice@ctl"
        with pytest.raises(errors.Conflict, match="being deployed by alice@ctl since {}".format(record["since"])):
            op(fx, "deploy_lock", project=P, deploy_id="d3", holder="bob@ctl")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    got = op(fx, "deploy_lock", project=P, deploy_id="d3", holder="bob@ctl")
    assert got == {"acquired": True, "took_over": {"holder": "alice@ctl", "since": record["since"],
                                                   "deploy_id": "d2"}}


# A process named "sshd" that runs deploy_lock through the payload's --rpc (as sshd would), then waits.
FAKE_SSHD = """\
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)  # PR_SET_NAME
repo, root = sys.argv[1], sys.argv[2]
req = {"protocol": 1, "payload": "dev", "op": "deploy_lock",
       "args": {"project": "shop", "deploy_id": "d2", "holder": "alice@ctl"}}
done = subprocess.run([sys.executable, "-m", "agent_payload", "--rpc"], cwd=repo, input=json.dumps(req).encode(),
                      stdout=subprocess.PIPE, env=dict(os.environ, FLEET_ROOT=root))
sys.stdout.write(done.stdout.decode().splitlines()[-1] + "\\n")
sys.stdout.flush()
time.sleep(600)
"""


# ---------------------------------------------------------------- published ports (a network namespace of our own)

# Inside the test's namespace (address 10.79.9.1 on a veth pair of its own): web v1 published on 8080, then a
# start-first swap to v2 while a client loops on 10.79.9.1:8080 (DNAT from the host's own address), then a
# start-first rollback to v1 the same way: staged ports and their handover, so the loop sees no failure.
PORTS_SCENARIO = """\
import json, os, sys, threading, time, urllib.request
sys.path.insert(0, {repo!r})
from agent_payload import cli
from agent_payload.ops import dispatch
from agent_payload.runtime.containers import Runtime
from agent_payload.state.paths import Paths
from tests.helpers.images import Fixture, _Ctx, _layer_with_links
from tests.helpers.runtime import _cleanup

paths = Paths(root={root!r}, config_dir={etc!r})
fx = Fixture(paths)
base = _layer_with_links()
fx.image(["bb:1"], [base, {{"www/index.html": b"v1"}}])
fx.image(["bb:2"], [base, {{"www/index.html": b"v2"}}])
ctx = _Ctx(paths)
ctx.launcher = cli.launcher()
labels = {{"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}}
out = {{"handover": hasattr(Runtime, "handover_ports"), "answers": {{}}, "failures": []}}

def call(op, **args):
    return dispatch(ctx, op, args, lambda *a: None)

def swap(tag, order, command=("httpd", "-f", "-p", "80", "-h", "/www")):
    create = {{"image": tag, "command": list(command), "publish": ["8080:80"], "labels": labels}}
    return call("service_swap", project="shop", service="web", deploy_id="d1", create=create, order=order,
                monitor=0.5, timeout=30, stop_grace_period=1, probe="http://:8080/index.html")

def get():
    with urllib.request.urlopen("http://10.79.9.1:8080/index.html", timeout=2) as resp:
        return resp.read().decode()

try:
    call("deploy_lock", project="shop", deploy_id="d1", holder="t@ctl")
    out["first"] = swap("bb:1", "stop-first")
    out["before"] = get()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                page = get()
                out["answers"][page] = out["answers"].get(page, 0) + 1
            except Exception as exc:
                out["failures"].append(str(exc))
    t = threading.Thread(target=loop)
    t.start()
    out["second"] = swap("bb:2", "start-first")
    time.sleep(0.3)
    stop.set()
    t.join()
    out["after"] = get()
    out["bad"] = swap("bb:1", "start-first", ["sh", "-c", "exit 3"])
    out["after_bad"] = get()
    stop.clear()  # start-first rollback: the previous container comes back with staged ports, then takes them over
    out["swap_loop"] = {{"answers": out["answers"], "failures": out["failures"]}}
    out["answers"], out["failures"] = {{}}, []
    t = threading.Thread(target=loop)
    t.start()
    out["back"] = call("service_rollback", project="shop", service="web", deploy_id="d1", order="start-first",
                       monitor=0.5, timeout=30, stop_grace_period=1, probe="http://:8080/index.html")
    time.sleep(0.3)
    stop.set()
    t.join()
    out["after_back"] = get()
    call("network_create", name="shop_default", labels={{"com.docker.compose.project": "shop"}})
    call("network_create", name="other_default", labels={{"com.docker.compose.project": "other"}})
    out["down"] = call("service_down", project="shop", volumes=True)
    out["networks_left"] = sorted(n["name"] for n in call("network_ls")["networks"])
finally:
    _cleanup(paths)
print(json.dumps(out))
"""
IN_NETNS = ("cg=$(mktemp -d) && mount --rbind /sys/fs/cgroup \"$cg\" && "
            "exec nsenter --net=/run/netns/\"$0\" sh -c "
            "'mount -t sysfs sysfs /sys && mount --rbind \"$0\" /sys/fs/cgroup && exec \"$@\"' \"$cg\" \"$@\"")


@pytest.fixture
def host_ns():
    with scratch_netns("fldeploy", lo_up=True) as name:
        for cmd in (["link", "add", "dep0", "type", "veth", "peer", "name", "dep1"],
                    ["addr", "add", "10.79.9.1/24", "dev", "dep0"], ["link", "set", "dep0", "up"],
                    ["link", "set", "dep1", "up"]):
            subprocess.run(["ip", "-n", name] + cmd, check=True)
        yield name


def test_start_first_with_published_ports(host_ns, tmp_path):
    script = tmp_path / "scenario.py"
    script.write_text(PORTS_SCENARIO.format(repo=REPO, root=str(tmp_path / "root"), etc=str(tmp_path / "etc")))
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", IN_NETNS, host_ns,
                           sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, FLEET_HOOK_ROOT=str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["first"]["result"] == "updated" and out["before"] == "v1"
    second = out["second"]
    assert second["result"] == "updated" and out["after"] == "v2", second
    swap_loop = out["swap_loop"]
    assert swap_loop["answers"].get("v1") and set(swap_loop["answers"]) <= {"v1", "v2"}
    assert swap_loop["failures"] == [], swap_loop["failures"][:5]
    assert out["down"]["networks"] == ["shop_default"] and "shop-web-1" in out["down"]["removed"]
    assert out["networks_left"] == ["bridge", "host", "none", "other_default"]
    assert out["handover"] and second["warnings"] == []
    assert out["bad"]["result"] == "rolled_back" and "code 3" in out["bad"]["reason"]
    assert out["after_bad"] == "v2"  # the failed start-first never touched the live one's ports
    back = out["back"]
    assert back["result"] == "updated" and back["warnings"] == [] and out["after_back"] == "v1", back
    assert out["failures"] == [] and set(out["answers"]) <= {"v1", "v2"}, out["failures"][:5]
