"""The payload's container runtime on this machine: busybox rootfs, real namespaces, overlayfs and shims (root)."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agent_payload import errors
from agent_payload.runtime import records, rootfs
from tests.helpers import runtime
from tests.helpers.runtime import IMAGE_ID, REPO, TIME_RE, _output, _overlay_mounts, _run, _spec, _wait_for, needs_root

env, layers = runtime.env, runtime.layers  # fixtures by assignment (ruff flags imported fixtures as unused)


@pytest.mark.integration
@needs_root
def test_echo_hello_json_file_log(env, layers):
    rec, code = _run(env, layers, ["echo", "hello"])
    assert code == 0
    with open(rec["log_path"], "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert list(entry) == ["log", "stream", "time"]
    assert entry["log"] == "hello\n" and entry["stream"] == "stdout"
    assert TIME_RE.match(entry["time"])
    assert lines[0].startswith(b'{"log":"hello\\n","stream":"stdout","time":"')
    after = env.lookup(rec["id"])
    assert after["status"] == "exited" and after["exit_code"] == 0
    assert after["started_at"] and after["finished_at"] and after["pid"] == 0


@pytest.mark.integration
@needs_root
def test_exit_code_and_layering(env, layers):
    rec, code = _run(env, layers, ["sh", "-c", "cat /etc/layer /etc/only-bottom; echo oops >&2; exit 3"])
    assert code == 3
    assert _output(env, rec["id"], "stdout") == "top\nyes\n"
    assert _output(env, rec["id"], "stderr") == "oops\n"
    row = env.list(all=True)[0]
    assert row["state"] == "exited" and row["status"].startswith("Exited (3) ") and row["status"].endswith(" ago")


@pytest.mark.integration
@needs_root
def test_command_not_found_127_and_not_executable_126(env, layers):
    rec, code = _run(env, layers, ["no-such-command", "x"])
    assert code == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in _output(env, rec["id"], "stderr")
    rec, code = _run(env, layers, ["/etc/notexec"])
    assert code == 126
    assert 'exec: "/etc/notexec": permission denied' in _output(env, rec["id"], "stderr")


@pytest.mark.integration
@needs_root
def test_pid1_hostname_own_proc_and_mounts(env, layers):
    script = "echo $$; hostname; cat /etc/hostname; ps -o pid | tail -n +2 | wc -l; cat /proc/1/cmdline; echo; pwd"
    rec, code = _run(env, layers, ["sh", "-c", script], workdir="/srv/app", env=["FOO=bar"])
    assert code == 0, _output(env, rec["id"])
    pid1, host, etc_host, nprocs, cmdline, cwd = _output(env, rec["id"], "stdout").splitlines()
    assert pid1 == "1"
    assert host == etc_host == rec["id"][:12] == rec["hostname"]
    assert int(nprocs) <= 4  # sh, ps, tail, wc: not the host's process table
    assert cmdline.startswith("sh")
    assert cwd == "/srv/app"
    assert not _overlay_mounts(), "the overlay must live only in the container's mount namespace"


@pytest.mark.integration
@needs_root
def test_environment_and_isolation_details(env, layers):
    script = ("echo PATH=$PATH; echo FOO=$FOO; echo HOSTNAME=$HOSTNAME; ls /proc/self/fd | wc -l; "
              "grep -c nameserver /etc/resolv.conf; touch /sys/x 2>/dev/null || echo sys-ro; "
              "echo 1 > /proc/sys/kernel/ostype 2>/dev/null || echo procsys-ro; test -c /dev/null && echo devnull")
    rec, code = _run(env, layers, ["sh", "-c", script], env=["FOO=bar baz"], hostname="box1")
    assert code == 0, _output(env, rec["id"])
    out = _output(env, rec["id"], "stdout").splitlines()
    assert out[0] == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert out[1:3] == ["FOO=bar baz", "HOSTNAME=box1"]
    assert int(out[3]) == 4  # 0, 1, 2 and the fd ls opens for the listing: nothing leaked (PITFALLS 3.10)
    assert int(out[4]) >= 1
    assert out[5:] == ["sys-ro", "procsys-ro", "devnull"]


@pytest.mark.integration
@needs_root
def test_long_running_up_then_stop_falls_back_to_sigkill(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"], name="sleeper"))
    started = env.start("sleeper")
    assert started["status"] == "running" and records.is_alive(started["pid"], started["pid_start"])
    rows = env.list()
    assert [r["name"] for r in rows] == ["sleeper"]
    assert rows[0]["status"].startswith("Up ") and rows[0]["command"] == '"sleep 1000"'
    t0 = time.monotonic()
    assert env.stop(["sleeper"], time=1) == [rec["id"]]
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 8, "busybox sleep as PID 1 ignores SIGTERM: SIGKILL after the grace time"
    after = env.lookup(rec["id"][:10])
    assert after["status"] == "exited" and after["exit_code"] == 137
    assert env.list(all=True)[0]["status"].startswith("Exited (137) ")
    assert env.list() == []
    assert not records.is_alive(started["pid"], started["pid_start"])
    assert env.stop([rec["id"]], time=1) == [rec["id"]]  # already stopped is fine


@pytest.mark.integration
@needs_root
def test_remove_running_needs_force_and_leaves_nothing(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"]))
    run = env.start(rec["id"])
    with pytest.raises(errors.Conflict, match="You cannot remove a running container " + rec["id"]):
        env.remove([rec["id"]])
    assert env.remove([rec["id"]], force=True) == [rec["id"]]
    assert _wait_for(lambda: not records.is_alive(run["shim_pid"], run["shim_start"]), 10)
    assert not records.is_alive(run["pid"], run["pid_start"])
    assert not os.path.exists(env.paths.container_dir(rec["id"]))
    assert not _overlay_mounts()
    with pytest.raises(errors.NotFound, match="No such container: " + rec["id"]):
        env.lookup(rec["id"])


@pytest.mark.integration
@needs_root
def test_shim_survives_the_session_that_started_it(env, layers):
    script = textwrap.dedent("""\
        import sys
        sys.path.insert(0, {repo!r})
        from agent_payload.runtime.containers import Runtime
        from agent_payload.runtime.spec import ContainerSpec
        from agent_payload.state.paths import Paths
        rt = Runtime(Paths())
        rec = rt.create(ContainerSpec(image="busybox:test", image_id={image_id!r}, lowerdirs={layers!r}, network="none",
                                      argv=["sh", "-c", "echo up; sleep 1000"]))
        print(rt.start(rec["id"])["id"])
        """).format(repo=REPO, image_id=IMAGE_ID, layers=layers)
    # capture_output: run() only returns once every holder of the pipes is gone (as an SSH channel)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    cid = done.stdout.strip()
    rec = env.lookup(cid)
    assert rec["status"] == "running" and records.is_alive(rec["shim_pid"], rec["shim_start"])
    with open("/proc/{}/stat".format(rec["shim_pid"])) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ppid, session = int(fields[1]), int(fields[3])
    assert ppid != os.getpid() and session != os.getsid(0)  # reparented, in a session of its own
    fd_dir = "/proc/{}/fd".format(rec["shim_pid"])
    targets = {int(fd): os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
    assert targets[0] == targets[1] == "/dev/null"
    assert targets[2] == os.path.join(env.paths.container_dir(cid), "shim.log")
    assert not [t for t in targets.values() if t.startswith("socket:")]
    assert _wait_for(lambda: "up\n" in _output(env, cid))
    env.remove([cid], force=True)


@pytest.mark.integration
@needs_root
def test_logs_tail_and_follow(env, layers):
    script = "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2; sleep 1; printf late"
    rec = env.create(_spec(layers, ["sh", "-c", script]))
    env.start(rec["id"])
    followed = list(env.logs(rec["id"], follow=True, timestamps=True))  # returns once the container exits
    assert [ev["line"] for ev in followed] == ["line1\n", "line2\n", "line3\n", "line4\n", "line5\n", "err\n", "late"]
    assert [ev["stream"] for ev in followed][-2:] == ["stderr", "stdout"]
    assert all(TIME_RE.match(ev["time"]) for ev in followed)
    assert env.wait(rec["id"], timeout=5) == 0
    tail = list(env.logs(rec["id"], tail=2))
    assert [ev["line"] for ev in tail] == ["err\n", "late"] and tail[0]["time"] is None
    assert list(env.logs(rec["id"], tail=0)) == []
    assert len(list(env.logs(rec["id"], tail=100))) == 7


@pytest.mark.integration
@needs_root
def test_auto_remove(env, layers):
    rec = env.create(_spec(layers, ["sh", "-c", "echo bye; exit 4"], auto_remove=True))
    env.start(rec["id"])
    assert env.wait(rec["id"], timeout=20) == 4  # from the tombstone once the shim removed it
    assert _wait_for(lambda: not os.path.exists(env.paths.container_dir(rec["id"])))
    with pytest.raises(errors.NotFound):
        env.lookup(rec["id"])
    assert [ev["line"] for ev in env.logs(rec["id"])] == ["bye\n"]  # `run --rm` can still print the output
    assert env.list(all=True) == []


@pytest.mark.integration
@needs_root
def test_reconcile_after_shim_and_container_killed(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"]))
    run = env.start(rec["id"])
    os.kill(run["shim_pid"], signal.SIGKILL)
    os.kill(run["pid"], signal.SIGKILL)
    assert _wait_for(lambda: not records.is_alive(run["shim_pid"], run["shim_start"]))
    after = env.lookup(rec["id"])
    assert after["status"] == "exited" and after["exit_code"] == -1
    assert "shim" in after["error"]
    assert env.list(all=True)[0]["status"].startswith("Exited (-1)")
    assert env.wait(rec["id"], timeout=1) == -1


@pytest.mark.integration
@needs_root
def test_hundred_layers(env, layers, tmp_path):
    lowers = [layers[0]]
    for i in range(1, 100):
        d = tmp_path / "layers" / "layer-with-a-fairly-long-directory-name-{:03d}".format(i) / "fs"
        (d / "stack").mkdir(parents=True)
        (d / "stack" / "{:03d}".format(i)).write_text(str(i))
        (d / "top").write_text(str(i))
        lowers.append(str(d))
    assert sum(len(p) + 1 for p in lowers) > 4096  # absolute paths would not fit in one page
    assert len(rootfs.overlay_options(len(lowers))) < 1024
    rec, code = _run(env, lowers, ["sh", "-c", "ls /stack | wc -l; cat /top"])
    assert code == 0, _output(env, rec["id"])
    assert _output(env, rec["id"]).split() == ["99", "99"]


@pytest.mark.integration
@needs_root
def test_start_failure_is_reported_to_the_caller(env, layers, tmp_path):
    bad = tmp_path / "badlayer"
    (bad / "etc").mkdir(parents=True)
    os.symlink("/", str(bad / "proc"))  # a symlinked mount target must be refused, not followed
    rec = env.create(_spec(layers + [str(bad)], ["true"]))
    with pytest.raises(errors.AgentError, match="failed to start container.*symlink") as exc:
        env.start(rec["id"])
    assert exc.value.kind != "Internal" or "Traceback" in exc.value.details
    after = env.lookup(rec["id"])
    assert after["status"] == "created" and after["exit_code"] == 128 and after["error"]
    assert env.list(all=True)[0]["status"] == "Created"


@needs_root
def test_names_lookup_and_listing(env, layers):
    web = env.create(_spec(layers, ["true"], name="web"))
    with pytest.raises(errors.AlreadyExists) as exc:
        env.create(_spec(layers, ["true"], name="/web"))
    assert exc.value.message.startswith(
        'Conflict. The container name "/web" is already in use by container "{}".'.format(web["id"]))
    other = env.create(_spec(layers, ["echo", "a b"]))
    assert re.match(r"^[a-z]+_[a-z]+\d?$", other["name"])
    assert re.match(r"^[0-9a-f]{64}$", other["id"]) and other["status"] == "created"
    assert env.lookup("web")["id"] == env.lookup("/web")["id"] == env.lookup(web["id"][:6])["id"] == web["id"]
    with pytest.raises(errors.NotFound, match="No such container: nope"):
        env.lookup("nope")
    rows = env.list(all=True)
    assert [r["id"] for r in rows] == [other["id"], web["id"]]  # newest first
    assert rows[0]["command"] == "\"echo 'a b'\"" and rows[0]["status"] == "Created" and rows[0]["ports"] == ""
    assert env.list() == []
    with pytest.raises(errors.NotFound):
        env.create(_spec(["/nonexistent/layer"], ["true"]))
    assert env.remove(["web", other["id"]]) == [web["id"], other["id"]]
    assert env.list(all=True) == []


@pytest.mark.integration
@needs_root
def test_auto_remove_and_rm_leave_no_lock_file(env, layers):
    """`run --rm` (shim removal, then wait/logs by the caller) and `rm -f`: locks/ keeps no file of theirs."""
    auto = env.create(_spec(layers, ["true"], auto_remove=True))
    env.start(auto["id"])
    assert env.wait(auto["id"], timeout=20) == 0
    list(env.logs(auto["id"]))
    running = env.create(_spec(layers, ["sleep", "60"]))
    env.start(running["id"])
    env.remove([running["id"]], force=True)
    lock_files = lambda: sorted(n for n in os.listdir(env.paths.locks) if n.startswith("container-"))  # noqa: E731
    assert _wait_for(lambda: not os.path.exists(env.paths.container_dir(auto["id"])))
    env.wait(auto["id"], timeout=20)  # once more, after the removal
    assert lock_files() == []
