"""The check op on this machine's real runtime (busybox image, private FLEET_ROOT): desired services running,
drifted, missing, unhealthy; a restart loop and an OOM kill since the last check with the counters kept; log and
disk thresholds; http (busybox httpd), tcp and exec probes on the host and in a container."""

import json
import os
import socket
import subprocess
import time

import pytest

from agent_payload import errors
from tests.helpers import images
from tests.helpers.images import _layer_with_links, op
from tests.helpers.runtime import BUSYBOX, _wait_for
from tests.helpers import runtime as runtime_helpers

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and /usr/bin/busybox (busybox-static)")
pytestmark = [pytest.mark.integration, needs_root]

env = images.env  # the fixture: private FLEET_ROOT with images, cleanup of every process and mount
MS = 10 ** 6
H_NEW, H_OLD = "c" * 64, "d" * 64
DIGEST = "sha256:" + "0" * 64


hook_root = runtime_helpers.hook_root  # boot hooks under a private root (autouse)


@pytest.fixture
def fx(env):
    from agent_payload import cli
    env.ctx.launcher = cli.launcher()  # what the boot hook of a restart policy runs
    env.image(["bb:1"], [_layer_with_links(), {"www/index.html": b"hello\n"}])
    return env


def run(fx, name, command=("sleep", "600"), project=None, service=None, config_hash=H_NEW, **kw):
    labels = {}
    if project:
        labels = {"com.docker.compose.project": project, "com.docker.compose.service": service,
                  "com.docker.compose.config-hash": config_hash, "fleet.deploy.image-digest": DIGEST}
    args = dict(image="bb:1", name=name, command=list(command), network="none", detach=True, labels=labels)
    args.update(kw)
    return _op(fx, "run", args)["id"]


def _op(fx, name, args):
    from agent_payload.ops import dispatch
    return dispatch(fx.ctx, name, args, lambda *a: None)


def check(fx, **args):
    out = op(fx, "check", **args)
    json.dumps(out)  # all of it goes over the wire
    return out


def rows(out):
    return {r["check"]: r for r in out["checks"]}


def _health(fx, name):
    return (fx.rt.lookup(name).get("health") or {}).get("Status")


def want(service, config_hash=H_NEW, digest=DIGEST):
    return {"project": "shop", "service": service, "config_hash": config_hash, "image_digest": digest}


def test_desired_services_ok_drifted_missing_unhealthy(fx):
    healthy = {"Test": ["CMD", "true"], "Interval": 100 * MS, "Retries": 1}
    run(fx, "shop-web-1", project="shop", service="web", healthcheck=healthy)
    run(fx, "shop-api-1", project="shop", service="api", config_hash=H_OLD)
    run(fx, "shop-db-1", project="shop", service="db",
        healthcheck={"Test": ["CMD-SHELL", "echo db down; false"], "Interval": 100 * MS, "Retries": 1})
    run(fx, "shop-job-1", ["sh", "-c", "exit 3"], project="shop", service="job")
    run(fx, "stray", healthcheck={"Test": ["CMD", "false"], "Interval": 100 * MS, "Retries": 1})
    assert _wait_for(lambda: _health(fx, "shop-web-1") == "healthy" and _health(fx, "shop-db-1") == "unhealthy"
                     and _health(fx, "stray") == "unhealthy" and fx.rt.lookup("shop-job-1")["status"] == "exited",
                     timeout=20)
    out = check(fx, services=[want("web"), want("api"), want("db"), want("job"), want("gone")])
    got = rows(out)
    assert [r["check"] for r in out["checks"]][:3] == ["payload", "disk:/", "disk:" + fx.paths.root]
    assert got["payload"]["status"] == "OK" and "payload dev" in got["payload"]["detail"]
    assert got["service:shop/web"]["status"] == "OK" and "healthy" in got["service:shop/web"]["detail"]
    assert got["service:shop/api"]["status"] == "WARNING"
    assert got["service:shop/api"]["detail"] == "drifted: config_hash {} (want {})".format(H_OLD[:12], H_NEW[:12])
    assert (got["service:shop/db"]["status"], got["service:shop/db"]["detail"]) == ("CRITICAL", "unhealthy: db down")
    assert got["service:shop/job"]["status"] == "CRITICAL" and got["service:shop/job"]["detail"].startswith(
        "exited (3)")
    assert (got["service:shop/gone"]["status"], got["service:shop/gone"]["detail"]) == \
        ("CRITICAL", "missing: no container shop-gone-1")
    assert got["container:stray"]["status"] == "CRITICAL" and got["container:stray"]["detail"] == "unhealthy"
    assert not [k for k in got if k.startswith(("container:shop", "log:", "probe:"))]
    metrics = {m["name"]: m for m in out["metrics"]["containers"]}
    assert metrics["shop-db-1"] == {"name": "shop-db-1", "project": "shop", "service": "db", "restarts": 0,
                                    "oom_kills": 0, "health": "unhealthy", "state": "running"}
    assert metrics["shop-job-1"]["state"] == "exited" and metrics["stray"]["project"] is None
    assert [d["path"] for d in out["metrics"]["disk"]] == ["/", fx.paths.root]
    # the image digest differs too: both fields named
    other = check(fx, services=[want("api", digest="sha256:" + "7" * 64)], counters=False)
    assert rows(other)["service:shop/api"]["detail"] == "drifted: config_hash {} (want {}), image_digest " \
        "sha256:000000000000 (want sha256:777777777777)".format(H_OLD[:12], H_NEW[:12])


def test_a_restart_loop_warns_on_the_second_check_and_the_counters_are_kept(fx):
    run(fx, "loop", ["sh", "-c", "exit 1"], restart="always")
    assert _wait_for(lambda: (fx.rt.lookup("loop").get("restart_count") or 0) >= 1, timeout=10)
    first = rows(check(fx))
    assert "container:loop" not in first  # the first check: what it sees is the baseline
    path = os.path.join(fx.paths.root, "checks", "counters.json")
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    seen = {v["name"]: v for v in json.load(open(path))["containers"].values()}["loop"]["restarts"]
    assert _wait_for(lambda: fx.rt.lookup("loop")["restart_count"] > seen, timeout=15)
    dry = rows(check(fx, counters=False))["container:loop"]
    assert dry["status"] == "WARNING" and "since the last check" in dry["detail"]
    assert {v["name"]: v for v in json.load(open(path))["containers"].values()}["loop"]["restarts"] == seen
    second = check(fx)
    row = rows(second)["container:loop"]
    assert row["status"] == "WARNING" and row["detail"].startswith("restarted ")
    kept = {v["name"]: v for v in json.load(open(path))["containers"].values()}["loop"]["restarts"]
    assert kept > seen and kept == {m["name"]: m for m in second["metrics"]["containers"]}["loop"]["restarts"]


def test_an_oom_kill_since_the_last_check_warns(fx):
    check(fx)  # a check before the container exists: all it does later is news
    run(fx, "hog", ["sh", "-c", 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo survived'], memory="8m")
    assert fx.rt.wait("hog", timeout=30) is not None
    assert fx.rt.lookup("hog")["oom_killed"] is True
    out = check(fx)
    assert rows(out)["container:hog"] == {"check": "container:hog", "status": "WARNING",
                                          "detail": "1 OOM kill since the last check", "perfdata": []}
    assert {m["name"]: m for m in out["metrics"]["containers"]}["hog"]["oom_kills"] == 1
    again = check(fx)
    assert "container:hog" not in rows(again)  # told once
    assert {m["name"]: m for m in again["metrics"]["containers"]}["hog"]["oom_kills"] == 1


def test_an_oom_kill_inside_a_running_service_warns(fx):
    """A process other than the init killed: the container runs on, its cgroup counts the kill."""
    hog = 'sh -c \'x=$(head -c 64m /dev/zero | tr "\\0" a)\'; echo child-done; sleep 600'
    check(fx)  # before the container exists: all it does later is news
    # no swap (memory_swap = memory): the hog is killed at once instead of paging slowly on a loaded machine
    cid = run(fx, "shop-web-1", ["sh", "-c", hog], project="shop", service="web", memory="8m", memory_swap="8m")
    assert _wait_for(lambda: any("child-done" in ev["line"] for ev in fx.rt.logs(cid)), timeout=90)
    assert fx.rt.lookup(cid)["status"] == "running"
    out = check(fx, services=[want("web")])
    row = rows(out)["service:shop/web"]
    assert (row["status"], row["detail"]) == ("WARNING", "1 OOM kill since the last check")
    assert {m["name"]: m for m in out["metrics"]["containers"]}["shop-web-1"]["oom_kills"] == 1
    assert rows(check(fx, services=[want("web")]))["service:shop/web"]["status"] == "OK"


def test_log_and_disk_thresholds(fx):
    run(fx, "chatty", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i-of-some-output; i=$((i+1)); done"])
    assert fx.rt.wait("chatty", timeout=20) == 0
    size = os.path.getsize(fx.rt.lookup("chatty")["log_path"])
    assert size > 5000
    got = rows(check(fx, thresholds={"log_warn_bytes": 1000}))
    assert got["log:chatty"]["status"] == "WARNING" and got["log:chatty"]["perfdata"][0]["value"] == size
    got = rows(check(fx, thresholds={"log_warn_bytes": 1000, "log_crit_bytes": 5000}))
    assert got["log:chatty"]["status"] == "CRITICAL"
    assert "log:chatty" not in rows(check(fx))  # 100 MiB by default
    got = rows(check(fx, thresholds={"disk_warn_pct": 100, "disk_crit_pct": 0}))
    assert got["disk:/"]["status"] == got["disk:" + fx.paths.root]["status"] == "WARNING"
    got = rows(check(fx, thresholds={"disk_warn_pct": 100, "disk_crit_pct": 100}))
    assert got["disk:/"]["status"] == got["disk:" + fx.paths.root]["status"] == "CRITICAL"
    with pytest.raises(errors.InvalidArgument, match="threshold disk_warn_pct must be a number from 0 to 100"):
        check(fx, thresholds={"disk_warn_pct": 101})


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def httpd(tmp_path):
    """busybox httpd on a loopback port serving index.html "hello"."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from httpd\n")
    port = _free_port()
    proc = subprocess.Popen([BUSYBOX, "httpd", "-f", "-p", "127.0.0.1:{}".format(port), "-h", str(www)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        assert _wait_for(up, timeout=10)
        yield port
    finally:
        proc.kill()
        proc.wait()


def test_http_and_tcp_probes(fx, httpd):
    closed = _free_port()
    base = "http://127.0.0.1:{}".format(httpd)
    probes = [{"name": "web", "type": "http", "url": base + "/index.html", "body": "hello", "timeout": 5},
              {"name": "404", "type": "http", "url": base + "/missing.html"},
              {"name": "body", "type": "http", "url": base + "/", "body": "^goodbye"},
              {"name": "refused", "type": "http", "url": "http://127.0.0.1:{}/".format(closed), "timeout": 2},
              {"name": "tcp", "type": "tcp", "port": httpd},
              {"name": "tcp-refused", "type": "tcp", "host": "127.0.0.1", "port": closed}]
    out = check(fx, probes=probes)
    got = rows(out)
    assert [r["check"] for r in out["checks"]][-6:] == ["probe:" + p["name"] for p in probes]
    assert got["probe:web"]["status"] == "OK" and got["probe:web"]["detail"].startswith("HTTP 200 from")
    assert got["probe:web"]["perfdata"][0]["label"] == "time"
    assert got["probe:404"]["status"] == "CRITICAL" and "HTTP 404" in got["probe:404"]["detail"]
    assert got["probe:body"]["status"] == "CRITICAL" and "does not match /^goodbye/" in got["probe:body"]["detail"]
    assert got["probe:refused"]["status"] == "CRITICAL" and "connection refused" in got["probe:refused"]["detail"]
    assert got["probe:tcp"]["status"] == "OK"
    assert got["probe:tcp-refused"]["status"] == "CRITICAL"


PLUGIN = ("echo 'STATE {code} - said {code} | value={code}ms;1;2;0;10 '\"'\"'the load'\"'\"'=0.5'; echo more; "
          "exit {code}")


def test_exec_probes_on_the_host_and_in_a_container(fx):
    run(fx, "app")
    run(fx, "done", ["true"])
    assert fx.rt.wait("done", timeout=10) == 0
    codes = (0, 1, 2, 3, 42)
    probes = []
    for where in ("host", "ctr"):
        for code in codes:
            probes.append({"name": "{}-{}".format(where, code), "type": "exec",
                           "command": ["sh", "-c", PLUGIN.format(code=code)],
                           "container": "app" if where == "ctr" else None})
    probes += [{"name": "hostname", "type": "exec", "command": ["hostname"], "container": "app"},
               {"name": "stopped", "type": "exec", "command": ["true"], "container": "done"},
               {"name": "nobody", "type": "exec", "command": ["true"], "container": "nosuch"},
               {"name": "missing", "type": "exec", "command": ["/no/plugin"], "container": "app"},
               {"name": "slow", "type": "exec", "command": ["sleep", "30"], "container": "app", "timeout": 0.5}]
    started = time.monotonic()
    got = rows(check(fx, probes=probes))
    assert time.monotonic() - started < 20
    states = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN", 42: "UNKNOWN"}
    for where in ("host", "ctr"):
        for code in codes:
            r = got["probe:{}-{}".format(where, code)]
            assert r["status"] == states[code], r
            text = "STATE {0} - said {0}".format(code)
            assert r["detail"] == (text if code <= 3 else "exit code 42: " + text)
            assert r["perfdata"] == [
                {"label": "value", "value": code, "uom": "ms", "warn": 1, "crit": 2, "min": 0, "max": 10},
                {"label": "the load", "value": 0.5, "uom": "", "warn": None, "crit": None, "min": None,
                 "max": None}]
    assert got["probe:hostname"]["detail"] == fx.rt.lookup("app")["hostname"]  # it ran in the container
    assert got["probe:stopped"]["status"] == "UNKNOWN" and "not running" in got["probe:stopped"]["detail"]
    assert got["probe:nobody"]["status"] == "UNKNOWN" and "No such container" in got["probe:nobody"]["detail"]
    assert got["probe:missing"]["status"] == "UNKNOWN" and "/no/plugin" in got["probe:missing"]["detail"]
    assert got["probe:slow"]["status"] == "CRITICAL" and got["probe:slow"]["detail"] == \
        "timed out after 0.5s in container app"
    # the timed-out probe's process is gone from the container
    pids = fx.rt.top("app")["processes"]
    assert _wait_for(lambda: not [p for p in fx.rt.top("app")["processes"] if "sleep 30" in " ".join(p)],
                     timeout=5), pids
