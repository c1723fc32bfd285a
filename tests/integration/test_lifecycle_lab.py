"""Container lifecycle commands end to end over SSH on the lab: create/start -a, restart, kill, wait, rename,
inspect, top, diff, export, container prune, ps filters/-n/-l/-s and logs --since/--until."""

import json
import time

import pytest

from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

PREFIX = "lc-"


def _cleanup(lab):
    """Remove every container this module made (names start with PREFIX), on every host."""
    lab.remove_containers(PREFIX)


@pytest.fixture
def clean(lab):
    _cleanup(lab)
    yield lab
    _cleanup(lab)


def _inspect(lab, host, name):
    proc = lab.fleet("inspect", "-H", host, name, check=True)
    (obj,) = json.loads(proc.stdout)
    assert obj["host"] == host
    return obj


def _ps(lab, host, *args):
    rc, ps = lab.fleet_json("ps", "-H", host, *args)
    assert rc == 0, ps
    return ps[host]["containers"]


def _wait_running(lab, host, name, deadline=15.0):
    end = time.monotonic() + deadline
    while _inspect(lab, host, name)["State"]["Status"] != "running":
        assert time.monotonic() < end, "{} never ran".format(name)
        time.sleep(0.2)


def test_create_then_start_attach_returns_the_exit_code(clean):
    lab = clean
    name = PREFIX + "att"
    proc = lab.fleet("create", "-H", "web*", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 5",
                     check=True)
    assert proc.stdout.splitlines()[0].split()[:3] == ["HOST", "CONTAINER", "ID"]
    for host in ("web1", "web2"):
        (c,) = [c for c in _ps(lab, host, "-a") if c["name"] == name]
        assert c["state"] == "created" and c["status"] == "Created"
        obj = _inspect(lab, host, name)
        assert obj["State"]["Status"] == "created" and obj["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    attached = lab.fleet("start", "-a", "-H", "web1", "--prefix", name)
    assert attached.returncode == 5, attached.stdout + attached.stderr
    assert attached.stdout.splitlines() == ["web1 | out"]
    assert attached.stderr.strip() == "web1 | err"
    again = lab.fleet("start", "-a", "-H", "web1", "--prefix", name)  # only this run's output, not the first run's too
    assert again.returncode == 5 and again.stdout.splitlines() == ["web1 | out"]
    obj = _inspect(lab, "web1", name)
    assert obj["State"]["Status"] == "exited" and obj["State"]["ExitCode"] == 5 and obj["State"]["Pid"] == 0
    assert obj["Name"] == "/" + name and obj["Path"] == "sh" and obj["Args"] == ["-c",
                                                                                  "echo out; echo err >&2; exit 5"]
    assert obj["Config"]["Cmd"] == ["sh", "-c", "echo out; echo err >&2; exit 5"]
    assert obj["Config"]["Image"] == "busybox" and obj["Image"].startswith("sha256:")
    assert obj["Driver"] == "overlay2" and obj["Platform"] == "linux"
    assert set(obj["GraphDriver"]["Data"]) == {"LowerDir", "UpperDir", "WorkDir", "MergedDir"}
    assert obj["Config"]["Hostname"] == obj["Id"][:12]
    # start without -a on several hosts: both start, nothing streams
    proc = lab.fleet("start", "-H", "web*", name, "--json", check=True)
    assert {h["host"] for h in json.loads(proc.stdout)} == {"web1", "web2"}
    multi = lab.fleet("start", "-a", "-H", "web1", name, "other")
    assert multi.returncode == 2 and "multiple containers" in multi.stderr


def test_restart_changes_started_at_and_pid(clean):
    lab = clean
    name = PREFIX + "rs"
    lab.fleet("run", "-d", "-H", "db1", "--name", name, "busybox", "sleep", "300", check=True)
    before = _inspect(lab, "db1", name)["State"]
    assert before["Running"] and before["Pid"] > 0
    lab.fleet("restart", "-t", "1", "-H", "db1", name, check=True)
    after = _inspect(lab, "db1", name)["State"]
    assert after["Running"] and after["StartedAt"] > before["StartedAt"] and after["Pid"] != before["Pid"]
    assert lab.fleet("restart", "-t", "-1", "-H", "db1", name).returncode == 2


def test_kill_with_signals_and_wait_returns_the_code(clean):
    lab = clean
    trap, plain = PREFIX + "trap", PREFIX + "plain"
    lab.fleet("run", "-d", "-H", "db1", "--name", trap, "busybox", "sh", "-c",
              "trap 'exit 7' TERM; while :; do sleep 0.1; done", check=True)
    lab.fleet("run", "-d", "-H", "db1", "--name", plain, "busybox", "sleep", "300", check=True)
    _wait_running(lab, "db1", trap)
    time.sleep(0.5)  # the shell installs its trap right after it starts
    lab.fleet("kill", "-s", "TERM", "-H", "db1", trap, check=True)
    waited = lab.fleet("wait", "-H", "db1", trap, "--json", check=True)
    (entry,) = json.loads(waited.stdout)[0]["exited"]
    assert entry["exit_code"] == 7
    lab.fleet("kill", "-H", "db1", plain, check=True)  # default KILL; returns once the exit is recorded
    assert _inspect(lab, "db1", plain)["State"]["ExitCode"] == 137
    table = lab.fleet("wait", "-H", "db1", plain, trap, check=True).stdout.splitlines()
    assert [line.split()[-1] for line in table[1:]] == ["137", "7"]
    stopped = lab.fleet("kill", "-H", "db1", plain)
    assert stopped.returncode == 1 and "is not running" in stopped.stdout
    bad = lab.fleet("kill", "-s", "NOTASIGNAL", "-H", "db1", plain)
    assert bad.returncode == 2 and "Invalid signal" in bad.stderr


def test_wait_blocks_until_exit(clean):
    lab = clean
    name = PREFIX + "wait"
    lab.fleet("run", "-d", "-H", "web1", "--name", name, "busybox", "sh", "-c", "sleep 2; exit 4", check=True)
    start = time.monotonic()
    proc = lab.fleet("wait", "-H", "web1", name, check=True)
    assert time.monotonic() - start > 1.0
    assert proc.stdout.splitlines()[1].split()[-1] == "4"


def test_rename_and_name_clash(clean):
    lab = clean
    a, b, c = PREFIX + "a", PREFIX + "b", PREFIX + "c"
    for n in (a, b):
        lab.fleet("create", "-H", "db1", "--name", n, "busybox", "true", check=True)
    clash = lab.fleet("rename", "-H", "db1", a, b)
    assert clash.returncode == 1 and 'The container name "/{}" is already in use'.format(b) in clash.stdout
    lab.fleet("rename", "-H", "db1", a, c, check=True)
    names = {x["name"] for x in _ps(lab, "db1", "-a")}
    assert c in names and a not in names and b in names
    missing = lab.fleet("rename", "-H", "db1", a, PREFIX + "d")
    assert missing.returncode == 1 and "No such container" in missing.stdout
    bad = lab.fleet("rename", "-H", "db1", c, "bad name!")
    assert bad.returncode == 2 and "Invalid container name" in bad.stderr


def test_top_shows_the_containers_processes(clean):
    lab = clean
    name = PREFIX + "top"
    lab.fleet("run", "-d", "-H", "web2", "--name", name, "busybox", "sh", "-c", "sleep 301 & sleep 302; wait",
              check=True)
    _wait_running(lab, "web2", name)
    pid = _inspect(lab, "web2", name)["State"]["Pid"]
    deadline = time.monotonic() + 10
    while True:
        rc, top = lab.fleet_json("top", "-H", "web2", name)
        procs = top["web2"]["processes"]
        cmds = [p[-1] for p in procs]
        if "sleep 301" in cmds and "sleep 302" in cmds:
            break
        assert time.monotonic() < deadline, procs
        time.sleep(0.2)
    assert top["web2"]["titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert str(pid) in [p[1] for p in procs] and all(p[0] == "root" for p in procs)
    assert len(procs) == 3  # the shell and its two sleeps: no host process leaks into the view
    table = lab.fleet("top", "-H", "web2", name, check=True).stdout.splitlines()
    assert table[0].split() == ["HOST", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    lab.fleet("stop", "-t", "0", "-H", "web2", name, check=True)
    stopped = lab.fleet("top", "-H", "web2", name)
    assert stopped.returncode == 1 and "is not running" in stopped.stdout


def test_diff_and_export(clean):
    lab = clean
    name, out = PREFIX + "fs", "/tmp/lc-export.tar"
    _ssh(lab, "db1", "rm -f " + out)
    lab.fleet("run", "-d", "-H", "db1", "--name", name, "busybox", "sh", "-c",
              "echo hi > /added.txt; rm /bin/true; echo extra >> /etc/group; sleep 300", check=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            rc, d = lab.fleet_json("diff", "-H", "db1", name)
            changes = {(c["kind"], c["path"]) for c in d["db1"]["changes"]}
            if {("A", "/added.txt"), ("D", "/bin/true"), ("C", "/etc/group")} <= changes:
                break
            assert time.monotonic() < deadline, changes
            time.sleep(0.2)
        assert ("C", "/bin") in changes  # the parent of an A or D
        # the mountpoints the runtime made for its bind mounts are not the container's changes (docker's init layer)
        assert not {p for _k, p in changes} & {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}, changes
        assert not any(p.startswith("/bin/") and p != "/bin/true" for _k, p in changes), changes
        table = lab.fleet("diff", "-H", "db1", name, check=True).stdout.splitlines()
        assert table[0].split() == ["HOST", "KIND", "PATH"]

        rel = lab.fleet("export", "-H", "db1", name, "-o", "relative.tar")
        assert rel.returncode == 2
        lab.fleet("export", "-H", "db1", name, "-o", out, check=True)
        listing = _ssh(lab, "db1", "tar -tf " + out).stdout.split()
        assert "added.txt" in listing and "bin/sh" in listing and "bin/true" not in listing
        assert _ssh(lab, "db1", "tar -xOf {} added.txt".format(out)).stdout == "hi\n"
        assert _ssh(lab, "db1", "tar -xOf {} etc/group".format(out)).stdout.endswith("extra\n")
        exists = lab.fleet("export", "-H", "db1", name, "-o", out)
        assert exists.returncode == 1 and "already exists" in exists.stdout
        rc, forced = lab.fleet_json("export", "-H", "db1", name, "-o", out, "--force")
        size = int(_ssh(lab, "db1", "stat -c %s " + out).stdout)
        assert rc == 0 and forced["db1"]["size"] == size
        sha = _ssh(lab, "db1", "sha256sum " + out).stdout.split()[0]
        assert forced["db1"]["sha256"] == "sha256:" + sha
    finally:
        _ssh(lab, "db1", "rm -f " + out)


def test_container_prune(clean):
    lab = clean
    lab.fleet("run", "-H", "web2", "--name", PREFIX + "p1", "busybox", "true", check=True)
    lab.fleet("create", "-H", "web2", "--name", PREFIX + "p2", "busybox", "true", check=True)
    lab.fleet("run", "-d", "-H", "web2", "--name", PREFIX + "p3", "busybox", "sleep", "300", check=True)
    refused = lab.fleet("container", "prune", "-H", "web2", input="y\n")
    assert refused.returncode == 2 and "-f" in refused.stderr
    assert {PREFIX + "p1", PREFIX + "p2"} <= {c["name"] for c in _ps(lab, "web2", "-a")}
    ids = {c["name"]: c["id"] for c in _ps(lab, "web2", "-a")}
    rc, pruned = lab.fleet_json("container", "prune", "-f", "-H", "web2")
    assert rc == 0 and {ids[PREFIX + "p1"], ids[PREFIX + "p2"]} <= set(pruned["web2"]["deleted"])
    assert pruned["web2"]["reclaimed"] >= 0
    left = {c["name"] for c in _ps(lab, "web2", "-a")}
    assert PREFIX + "p3" in left and PREFIX + "p1" not in left and PREFIX + "p2" not in left
    text = lab.fleet("container", "prune", "-f", "-H", "web2", check=True).stdout
    assert text.strip().endswith("Total reclaimed space: 0B")


def test_ps_filters_last_latest_and_size(clean):
    lab = clean
    lab.fleet("run", "-H", "db1", "--name", PREFIX + "f-ok", "busybox", "true", check=True)
    lab.fleet("run", "-H", "db1", "--name", PREFIX + "f-three", "busybox", "sh", "-c", "exit 3")
    lab.fleet("run", "-d", "-H", "db1", "--name", PREFIX + "f-up", "busybox", "sh", "-c",
              "head -c 5000 /dev/zero > /blob; sleep 300", check=True)
    mine = "name=^" + PREFIX + "f-"

    def names(*args):
        return [c["name"] for c in _ps(lab, "db1", "-f", mine, *args)]

    assert names() == [PREFIX + "f-up"]
    assert names("-a") == [PREFIX + "f-up", PREFIX + "f-three", PREFIX + "f-ok"]  # newest first
    assert names("-f", "status=exited") == [PREFIX + "f-three", PREFIX + "f-ok"]  # status implies -a
    assert names("-f", "status=exited", "-f", "status=running") == [PREFIX + "f-up", PREFIX + "f-three",
                                                                    PREFIX + "f-ok"]
    assert names("-a", "-f", "exited=3") == [PREFIX + "f-three"]
    assert names("-a", "-f", "ancestor=busybox") == names("-a")
    assert names("-a", "-f", "ancestor=docker.io/library/busybox:latest") == names("-a")
    assert names("-a", "-f", "ancestor=nginx") == []
    assert names("-n", "2") == [PREFIX + "f-up", PREFIX + "f-three"]
    assert names("-l") == [PREFIX + "f-up"]
    up_id = _ps(lab, "db1", "-l", "-f", mine)[0]["id"]
    assert names("-a", "-f", "id=" + up_id[:10]) == [PREFIX + "f-up"]
    deadline = time.monotonic() + 10
    while True:
        (row,) = _ps(lab, "db1", "-s", "-f", "name=" + PREFIX + "f-up")
        if row["size_rw"] >= 5000:
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.2)
    assert row["size_root_fs"] > row["size_rw"] and row["size"].startswith("5")
    assert "(virtual " in row["size"]
    table = lab.fleet("ps", "-s", "-H", "db1", "-f", mine, check=True).stdout.splitlines()
    assert table[0].split()[-1] == "SIZE"
    for bad, needle in ((["-f", "foo=bar"], "invalid filter 'foo'"), (["-f", "status=zzz"], "status=zzz"),
                        (["-f", "exited=x"], "exited=x")):
        proc = lab.fleet("ps", "-H", "db1", *bad)
        assert proc.returncode == 2 and needle in proc.stderr


def test_logs_since_until(clean):
    lab = clean
    name = PREFIX + "logs"
    lab.fleet("run", "-H", "web1", "--name", name, "busybox", "sh", "-c", "echo one; sleep 1.5; echo two",
              check=True)
    stamped = lab.fleet("logs", "-t", "-H", "web1", "--prefix", name, check=True).stdout.splitlines()
    (t1, one), (t2, two) = [line.split(" | ", 1)[1].split(" ", 1) for line in stamped]
    assert (one, two) == ("one", "two")

    def lines(*args):
        out = lab.fleet("logs", "-H", "web1", "--prefix", name, *args, check=True).stdout.splitlines()
        return [line.split(" | ", 1)[1] for line in out]

    assert lines("--since", t2) == ["two"]
    assert lines("--until", t1) == ["one"]
    assert lines("--since", t1, "--until", t1) == ["one"]
    assert lines("--since", "1h") == ["one", "two"]
    assert lines("--since", "0") == ["one", "two"]
    assert lines("--until", "1h") == []
    assert lines("--details") == ["one", "two"]
    bad = lab.fleet("logs", "-H", "web1", name, "--since", "yesterday")
    assert bad.returncode == 2 and "yesterday" in bad.stderr


def test_isolation_flags_reach_the_payload(clean):
    lab = clean
    name = PREFIX + "iso"
    lab.fleet("create", "-H", "db1", "--name", name, "--user", "1000", "--read-only", "--network", "none",
              "--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "--cap-drop", "NET_RAW",
              "busybox", "id", check=True)
    obj = _inspect(lab, "db1", name)
    assert obj["Config"]["User"] == "1000"
    host = obj["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none"
    assert host["SecurityOpt"] == ["no-new-privileges", "seccomp=unconfined"] and host["CapDrop"]
    for bad, needle in ((["--security-opt", "apparmor=docker-default"], "unsupported security option"),
                        (["--security-opt", "seccomp=/no/such/profile.json"],
                         "opening seccomp profile (/no/such/profile.json) failed"),
                        (["--network", "no-such-net"], "network no-such-net not found")):
        proc = lab.fleet("create", "-H", "db1", *bad, "busybox", "true")
        assert proc.returncode == 2 and needle in proc.stderr
