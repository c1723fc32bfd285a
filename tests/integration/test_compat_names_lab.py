"""Docker compatibility (issue 13, per-name results): with several names each one is its own operation.

docker acts on every name it was given, prints each success, reports each failure ("Error response from
daemon: No such container: x") and exits 1 if any failed. fleet: one row per host and name, in the table and
in --json (``results``), exit 1 if any name failed on any host.
"""

import json

import pytest

pytestmark = pytest.mark.integration

PREFIX = "cn-"
HOST = "db1"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _run(lab, name, *command):
    lab.fleet("run", "-d", "-H", HOST, "--name", name, "busybox", *(command or ("sleep", "300")), check=True)


def _states(lab):
    rc, ps = lab.fleet_json("ps", "-H", HOST, "-a", "-f", "name=^" + PREFIX)
    assert rc == 0, ps
    return {c["name"]: c["state"] for c in ps[HOST]["containers"]}


def _results(lab, *args):
    proc = lab.fleet(*args, "-H", HOST, "--json")
    (obj,) = json.loads(proc.stdout)
    return proc.returncode, obj


def test_rm_f_removes_every_found_name_and_reports_the_missing_one(clean):
    """docker rm -f a nosuch b: a and b are removed, "Error response from daemon: No such container: nosuch",
    exit 0 (under --force docker's client reports a missing name and does not count it, docker/cli rm.go; the
    dockerd comparison in test_compat_dockerd_lab shows it); a refused name still exits 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    proc = clean.fleet("rm", "-f", "-H", HOST, a, nosuch, b)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _states(clean) == {}
    rows = {line.split()[1]: line for line in proc.stdout.splitlines()[1:]}
    assert "Error response from daemon: No such container: " + nosuch in rows[nosuch]
    assert len(rows) == 3


def test_rm_reports_the_running_one_and_removes_the_stopped_one(clean):
    """docker rm a b with a stopped and b running: a is removed, b's error ("You cannot remove a running
    container ... Stop the container before attempting removal or force remove"), exit 1."""
    a, b = PREFIX + "stopped", PREFIX + "running"
    clean.fleet("create", "-H", HOST, "--name", a, "busybox", "true", check=True)
    _run(clean, b)
    rc, obj = _results(clean, "rm", a, b)
    assert rc == 1
    assert [(n["name"], n["ok"]) for n in obj["results"]] == [(a, True), (b, False)]
    assert "You cannot remove a running container" in obj["results"][1]["error"]["message"]
    assert _states(clean) == {b: "running"}


def test_stop_start_restart_act_on_every_found_name(clean):
    """docker stop/start/restart a nosuch b: a and b are stopped/started/restarted, nosuch is reported, exit 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    rc, obj = _results(clean, "stop", "-t", "0", a, nosuch, b)
    assert rc == 1
    assert [(n["name"], n["ok"]) for n in obj["results"]] == [(a, True), (nosuch, False), (b, True)]
    assert obj["results"][1]["error"] == {"kind": "NotFound", "message": "No such container: " + nosuch}
    assert _states(clean) == {a: "exited", b: "exited"}
    rc, obj = _results(clean, "start", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "running", b: "running"}
    rc, obj = _results(clean, "restart", "-t", "0", nosuch, a, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [False, True, True]
    assert _states(clean) == {a: "running", b: "running"}


def test_kill_signals_every_running_name_and_reports_the_others(clean):
    """docker kill a stopped b: a and b are killed; the stopped one is reported (not running), exit 1."""
    a, b, stopped = PREFIX + "a", PREFIX + "b", PREFIX + "stopped"
    _run(clean, a)
    _run(clean, b)
    clean.fleet("create", "-H", HOST, "--name", stopped, "busybox", "true", check=True)
    proc = clean.fleet("kill", "-H", HOST, a, stopped, b)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _states(clean) == {a: "exited", b: "exited", stopped: "created"}
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT", "ERROR"]
    assert [line.split()[2] for line in lines[1:]] == ["killed", "failed", "killed"]
    assert lines[2].split()[1] == stopped and "Error response from daemon: " in lines[2]


def test_pause_unpause_act_on_every_found_name(clean):
    """docker pause/unpause a nosuch b: a and b are paused/unpaused, nosuch reported, exit 1."""
    a, b, nosuch = PREFIX + "a", PREFIX + "b", PREFIX + "nosuch"
    _run(clean, a)
    _run(clean, b)
    rc, obj = _results(clean, "pause", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "paused", b: "paused"}
    rc, obj = _results(clean, "unpause", a, nosuch, b)
    assert rc == 1 and [n["ok"] for n in obj["results"]] == [True, False, True]
    assert _states(clean) == {a: "running", b: "running"}


def test_all_found_exits_0_with_one_row_and_result_per_name(clean):
    """docker stop a b: prints a and b (the names as given), exit 0; fleet: one row per name, no ERROR column,
    and --json has each name's result."""
    a, b = PREFIX + "a", PREFIX + "b"
    _run(clean, a)
    _run(clean, b)
    proc = clean.fleet("stop", "-t", "0", "-H", HOST, a, b)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "RESULT"] and len(lines) == 3
    rc, obj = _results(clean, "start", a, b)
    assert rc == 0
    assert [(n["name"], n["ok"], n["error"]) for n in obj["results"]] == [(a, True, None), (b, True, None)]
    assert [n["id"] for n in obj["results"]] == obj["started"]


def test_rmi_untags_every_found_name_and_reports_the_missing_one(lab):
    """docker rmi a nosuch b: "Untagged: a", "Error response from daemon: No such image: nosuch:latest",
    "Untagged: b", exit 1 (busybox keeps its own tag, so nothing is deleted)."""
    a, b, nosuch = PREFIX + "img:a", PREFIX + "img:b", PREFIX + "nosuch"
    try:
        for tag in (a, b):
            lab.fleet("tag", "-H", HOST, "busybox", tag, check=True)
        proc = lab.fleet("rmi", "-H", HOST, a, nosuch, b)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert [line.split(None, 1)[1] for line in proc.stdout.splitlines()[1:]] == [
            "Untagged: " + a, "Error response from daemon: No such image: " + nosuch + ":latest", "Untagged: " + b]
        rc, images = lab.fleet_json("images", "-H", HOST)
        assert not [i for i in images[HOST]["images"] if i["repository"] == PREFIX + "img"]
    finally:
        lab.fleet("rmi", "-H", HOST, a, b)


def test_rmi_json_has_each_name_error(lab):
    """docker rmi nosuch1 nosuch2 reports both names (--json: one result per name), exit 1."""
    rc, obj = _results(lab, "rmi", PREFIX + "nosuch1", PREFIX + "nosuch2")
    assert rc == 1
    assert [(n["name"], n["error"]["message"]) for n in obj["results"]] == [
        (PREFIX + "nosuch1", "No such image: {}nosuch1:latest".format(PREFIX)),
        (PREFIX + "nosuch2", "No such image: {}nosuch2:latest".format(PREFIX))]


def test_network_rm_removes_every_found_name(lab):
    """docker network rm a nosuch b: a and b removed, "Error response from daemon: network nosuch not found"
    (fleet: its NotFound message), exit 1."""
    a, b, nosuch = PREFIX + "net-a", PREFIX + "net-b", PREFIX + "net-nosuch"
    try:
        for net in (a, b):
            lab.fleet("network", "create", "-H", HOST, net, check=True)
        rc, obj = _results(lab, "network", "rm", a, nosuch, b)
        assert rc == 1
        assert [(n["name"], n["ok"]) for n in obj["results"]] == [(a, True), (nosuch, False), (b, True)]
        rc, nets = lab.fleet_json("network", "ls", "-H", HOST)
        assert not {a, b} & {n["name"] for n in nets[HOST]["networks"]}
    finally:
        lab.fleet("network", "rm", "-H", HOST, a, b)


def test_volume_rm_removes_every_unused_name_and_reports_the_used_one(clean):
    """docker volume rm a used b: a and b removed, "Error response from daemon: remove used: volume is in use -
    [id]", exit 1."""
    a, b, used = PREFIX + "vol-a", PREFIX + "vol-b", PREFIX + "vol-used"
    try:
        for vol in (a, b, used):
            clean.fleet("volume", "create", "-H", HOST, vol, check=True)
        clean.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "user", "-v", used + ":/data", "busybox", "sleep",
                    "300", check=True)
        proc = clean.fleet("volume", "rm", "-H", HOST, a, used, b)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert [line.split()[1:3] for line in lines[1:]] == [[a, "removed"], [used, "failed"], [b, "removed"]]
        assert "Error response from daemon: remove {}: volume is in use".format(used) in lines[2]
        rc, vols = clean.fleet_json("volume", "ls", "-H", HOST)
        assert {v["name"] for v in vols[HOST]["volumes"]} & {a, b, used} == {used}
    finally:
        clean.remove_containers(PREFIX)
        clean.fleet("volume", "rm", "-H", HOST, a, b, used)


def test_inspect_prints_the_found_one_and_reports_the_missing_one(clean):
    """docker inspect found missing: the found one's object on stdout (a list of one), "Error: No such object:
    missing" on stderr, exit 1."""
    found, missing = PREFIX + "found", PREFIX + "missing"
    clean.fleet("create", "-H", HOST, "--name", found, "busybox", "true", check=True)
    proc = clean.fleet("inspect", "-H", HOST, found, missing)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    objs = json.loads(proc.stdout)
    assert [o["Name"] for o in objs] == ["/" + found]
    assert "Error: No such object: " + missing in proc.stderr


def test_image_volume_network_inspect_print_the_found_and_report_the_missing(lab):
    """docker image/volume/network inspect found missing: the found object (a list of one), "Error: No such
    image|volume|network: missing" on stderr, exit 1 (fleet: image inspect printed the found one and exited 0;
    volume and network inspect printed nothing)."""
    vol, net, missing = PREFIX + "vol", PREFIX + "net", PREFIX + "missing"
    lab.fleet("volume", "create", "-H", HOST, vol, check=True)
    lab.fleet("network", "create", "-H", HOST, net, check=True)
    try:
        for argv, name, key in ((["image", "inspect", "busybox"], "busybox:latest", "RepoTags"),
                                (["volume", "inspect", vol], vol, "Name"),
                                (["network", "inspect", net], net, "Name")):
            proc = lab.fleet(*argv, missing, "-H", HOST)
            assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
            (obj,) = json.loads(proc.stdout)
            assert name in obj[key] if key == "RepoTags" else obj[key] == name, (argv, obj)
            assert "Error: No such" in proc.stderr and missing in proc.stderr, (argv, proc.stderr)
    finally:
        lab.fleet("volume", "rm", "-H", HOST, vol)
        lab.fleet("network", "rm", "-H", HOST, net)


def test_inspect_falls_back_to_images_and_type_keeps_to_one_kind(clean):
    """docker inspect busybox (no container of that name): the image's object; --type image the same;
    --type container: "Error: No such container: busybox", exit 1; a container's name wins over an image's."""
    proc = clean.fleet("inspect", "-H", HOST, "busybox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (obj,) = json.loads(proc.stdout)
    assert obj["Id"].startswith("sha256:") and "busybox:latest" in obj["RepoTags"]
    proc = clean.fleet("inspect", "--type", "image", "-H", HOST, "busybox")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["Id"] == obj["Id"]
    proc = clean.fleet("inspect", "--type", "container", "-H", HOST, "busybox")
    assert proc.returncode == 1 and json.loads(proc.stdout) == []
    assert "No such container: busybox" in proc.stderr
    name = PREFIX + "img"
    clean.fleet("create", "-H", HOST, "--name", name, "busybox", "true", check=True)
    clean.fleet("tag", "-H", HOST, "busybox", name, check=True)
    try:
        (both,) = json.loads(clean.fleet("inspect", "-H", HOST, name, check=True).stdout)
        assert both["Name"] == "/" + name  # the container's object, not the image's
        (image,) = json.loads(clean.fleet("inspect", "--type", "image", "-H", HOST, name, check=True).stdout)
        assert image["Id"] == obj["Id"]
    finally:
        clean.fleet("rmi", "-H", HOST, name)


def test_inspect_type_must_be_container_or_image(lab):
    """docker inspect --type volume x: '"volume" is not a valid value for --type', before anything is asked
    (fleet: exit 2)."""
    proc = lab.fleet("inspect", "--type", "volume", "-H", HOST, "x")
    assert proc.returncode == 2 and '"volume" is not a valid value for --type' in proc.stderr
