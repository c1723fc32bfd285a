"""Volumes end to end over SSH on the lab: `fleet volume ...`, `run -v/--mount`, binds, copy-up, bad input, in use."""

import json

import pytest

pytestmark = pytest.mark.integration

PREFIX = "vl-"
HOST = "web1"


def _cleanup(lab):
    lab.remove_containers(PREFIX)
    rc, vols = lab.fleet_json("volume", "ls", "-H", "all", "-f", "name=" + PREFIX)
    for host, data in vols.items():
        names = [v["name"] for v in data.get("volumes", []) if v["name"].startswith(PREFIX)]
        if names:
            lab.fleet("volume", "rm", "-f", "-H", host, *names)


@pytest.fixture
def clean(lab):
    _cleanup(lab)
    yield lab
    _cleanup(lab)


def _volume_names(lab, host):
    rc, vols = lab.fleet_json("volume", "ls", "-H", host)
    assert rc == 0, vols
    return sorted(v["name"] for v in vols[host]["volumes"])


def _container_names(lab, host):
    rc, ps = lab.fleet_json("ps", "-H", host, "-a")
    assert rc == 0, ps
    return sorted(c["name"] for c in ps[host]["containers"])


def test_volume_commands_tables_and_json(clean):
    lab = clean
    proc = lab.fleet("volume", "create", "-H", "web*", "--label", "team=a", PREFIX + "one", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "VOLUME", "NAME"]
    assert sorted(line.split()[:2] for line in lines[1:]) == [["web1", PREFIX + "one"], ["web2", PREFIX + "one"]]
    proc = lab.fleet("volume", "ls", "-H", "web*", "-f", "label=team=a", check=True)
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0] == ["HOST", "DRIVER", "VOLUME", "NAME"]
    assert sorted(rows[1:]) == [["web1", "local", PREFIX + "one"], ["web2", "local", PREFIX + "one"]]
    proc = lab.fleet("volume", "ls", "-q", "-H", HOST, "-f", "name=" + PREFIX, check=True)
    assert proc.stdout.split() == [PREFIX + "one"]  # docker's -q: bare names (issue 13)
    rc, data = lab.fleet_json("volume", "ls", "-H", "db1", "-f", "name=" + PREFIX)
    assert rc == 0 and data["db1"]["volumes"] == []
    proc = lab.fleet("volume", "inspect", "-H", HOST, PREFIX + "one", check=True)
    (obj,) = json.loads(proc.stdout)
    assert obj["host"] == HOST and obj["Name"] == PREFIX + "one" and obj["Driver"] == "local"
    assert obj["Labels"] == {"team": "a"} and obj["Mountpoint"].endswith("/volumes/{}one/_data".format(PREFIX))
    assert obj["Scope"] == "local" and obj["Options"] == {}
    proc = lab.fleet("volume", "inspect", "-H", HOST, PREFIX + "nope")
    assert proc.returncode == 1 and "No such volume: " + PREFIX + "nope" in proc.stderr
    proc = lab.fleet("volume", "create", "-H", HOST, "-d", "nfs", PREFIX + "x")
    assert proc.returncode == 2 and 'plugin "nfs" not found' in proc.stderr
    proc = lab.fleet("volume", "create", "-H", HOST, "bad/name")
    assert proc.returncode == 2 and "invalid characters" in proc.stderr
    rc, data = lab.fleet_json("volume", "rm", "-H", "web*", PREFIX + "one")
    assert rc == 0 and data[HOST]["removed"] == [PREFIX + "one"] and data["web2"]["removed"] == [PREFIX + "one"]
    assert PREFIX + "one" not in _volume_names(lab, HOST)
    # prune: anonymous unused volumes by default, named ones too with -a
    lab.fleet("volume", "create", "-H", HOST, PREFIX + "named", check=True)
    lab.fleet("create", "-H", HOST, "--name", PREFIX + "anon", "-v", "/anon", "busybox", "true", check=True)
    (anon,) = [m["Name"] for m in _inspect(lab, PREFIX + "anon")["Mounts"]]
    lab.fleet("rm", "-H", HOST, PREFIX + "anon", check=True)
    assert anon in _volume_names(lab, HOST)  # rm without -v keeps it
    rc, data = lab.fleet_json("volume", "prune", "-f", "-H", HOST)
    assert rc == 0 and anon in data[HOST]["removed"] and PREFIX + "named" not in data[HOST]["removed"]
    proc = lab.fleet("volume", "prune", "-a", "-f", "-H", HOST, check=True)
    assert proc.stdout.splitlines()[0].split() == ["HOST", "DELETED", "VOLUMES", "RECLAIMED"]
    assert PREFIX + "named" not in _volume_names(lab, HOST)


def _inspect(lab, name, host=HOST):
    (obj,) = json.loads(lab.fleet("inspect", "-H", host, name, check=True).stdout)
    return obj


def test_named_volume_outlives_containers_and_copy_up(clean):
    lab = clean
    lab.fleet("run", "-H", HOST, "--name", PREFIX + "w", "-v", PREFIX + "data:/data", "busybox", "sh", "-c",
              "echo persisted > /data/f", check=True)
    obj = _inspect(lab, PREFIX + "w")
    assert obj["Mounts"] == [{"Type": "volume", "Name": PREFIX + "data", "Source": obj["Mounts"][0]["Source"],
                              "Destination": "/data", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}]
    assert obj["HostConfig"]["Binds"] == [PREFIX + "data:/data"]
    lab.fleet("rm", "-v", "-H", HOST, PREFIX + "w", check=True)  # -v: named volumes stay
    proc = lab.fleet("run", "-H", HOST, "--rm", "--mount", "type=volume,src={}data,dst=/d,readonly".format(PREFIX),
                     "busybox", "cat", "/d/f", check=True)
    assert "persisted" in proc.stdout
    # copy-up: an empty named volume over /etc is filled with the image's /etc first, then kept as it is
    proc = lab.fleet("run", "-H", HOST, "--rm", "-v", PREFIX + "etc:/etc", "busybox", "sh", "-c",
                     "grep -c ^root: /etc/passwd; echo mine > /etc/mine", check=True)
    assert "1" in proc.stdout.split()
    proc = lab.fleet("run", "-H", HOST, "--rm", "-v", PREFIX + "etc:/etc:ro", "busybox", "cat", "/etc/mine",
                     check=True)
    assert "mine" in proc.stdout.split()
    proc = lab.fleet("run", "-H", HOST, "--rm", "-v", PREFIX + "empty:/etc:nocopy", "busybox", "ls", "/etc/passwd")
    assert proc.returncode != 0  # volume-nocopy: the image's files stay out


def test_bind_readonly_and_created_source(clean, tmp_path):
    lab = clean
    src = tmp_path / "ro"
    src.mkdir()
    (src / "in").write_text("from the host\n")
    proc = lab.fleet("run", "-H", HOST, "--rm", "-v", "{}:/ctr:ro".format(src), "busybox", "sh", "-c",
                     "cat /ctr/in; touch /ctr/x && echo wrote || echo refused")
    assert proc.returncode == 0, proc.stderr
    assert "from the host" in proc.stdout and "refused" in proc.stdout and not (src / "x").exists()
    made = tmp_path / "made" / "here"
    lab.fleet("run", "-H", HOST, "--rm", "-v", "{}:/m".format(made), "busybox", "sh", "-c", "echo hi > /m/f",
              check=True)
    assert (made / "f").read_text() == "hi\n"


@pytest.mark.parametrize("flags,message", [
    (["-v", "bad name:/x"], "includes invalid characters for a local volume name"),
    (["--mount", "type=bind,source=/nonexistent-fleet-vl,target=/x"], "bind source path does not exist"),
    (["--mount", "type=nfs,target=/x"], 'invalid mount type "nfs"'),
    (["-v", PREFIX + "ok:relative"], "mount path must be absolute"),
])
def test_bad_mount_input_exits_2_and_creates_nothing(clean, flags, message):
    lab = clean
    before_vols, before_ctrs = _volume_names(lab, HOST), _container_names(lab, HOST)
    for command in ("run", "create"):
        proc = lab.fleet(command, "-H", "web*", "--name", PREFIX + "bad", *flags, "busybox", "true")
        assert proc.returncode == 2 and message in proc.stderr, (proc.stdout, proc.stderr)
    assert _volume_names(lab, HOST) == before_vols and _container_names(lab, HOST) == before_ctrs


def test_volume_in_use_is_refused(clean):
    lab = clean
    lab.fleet("create", "-H", HOST, "--name", PREFIX + "user", "-v", PREFIX + "busy:/b", "busybox", "true",
              check=True)
    cid = _inspect(lab, PREFIX + "user")["Id"]
    proc = lab.fleet("volume", "rm", "-H", HOST, PREFIX + "busy")
    assert proc.returncode == 1
    assert "remove {}busy: volume is in use - [{}]".format(PREFIX, cid) in proc.stdout, proc.stdout
    assert proc.stdout.splitlines()[0].split()[-1] == "ERROR"
    assert PREFIX + "busy" in _volume_names(lab, HOST)
    rc, ps = lab.fleet_json("ps", "-H", HOST, "-a", "-f", "volume=" + PREFIX + "busy")
    assert [c["name"] for c in ps[HOST]["containers"]] == [PREFIX + "user"]
    lab.fleet("rm", "-H", HOST, PREFIX + "user", check=True)
    lab.fleet("volume", "rm", "-H", HOST, PREFIX + "busy", check=True)
