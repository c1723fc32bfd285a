"""fleet commit and fleet cp end to end over SSH on the lab: layers, history, --change, push + skopeo; cp both ways."""

import json
import os
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.integration

PREFIX = "cc-"
HOST = "web1"
CHANGES = ("echo new > /new.txt && echo changed >> /etc/passwd && rm -rf /home && rm -rf /var && "
           "mkdir -p /var/fresh && echo v > /var/fresh/f && ln -s /new.txt /link")


def _vars(lab):
    return yaml.safe_load(lab.inventory.read_text())["all"]["vars"]


def _skopeo(*args):
    return subprocess.run(["skopeo"] + list(args), capture_output=True, text=True, timeout=120)


def _out(proc):
    """The container's output lines (the "host | " prefixed ones), without the prefix."""
    return [line.split(" | ", 1)[1] for line in proc.stdout.splitlines() if " | " in line]


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def test_commit_runs_lists_pushes_and_copies_back(clean, tmp_path):
    lab = clean
    target = "{}/committed/bb:v1".format(_vars(lab)["fleet_lab_registry"])
    lab.fleet("run", "-H", HOST, "--name", PREFIX + "src", "busybox", "sh", "-c", CHANGES, check=True)
    proc = lab.fleet("commit", "-H", HOST, "-a", "Ann <ann@example.org>", "-m", "my change",
                     "-c", 'CMD ["cat", "/new.txt"]', "-c", "ENV FOO=bar", PREFIX + "src", target, "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    image_id = result["id"]
    assert image_id.startswith("sha256:") and result["layer"].startswith("sha256:")
    rc, images = lab.fleet_json("images", "-H", HOST)
    assert any(row["id"] == image_id and row["tag"] == "v1" for row in images[HOST]["images"])
    rc, hist = lab.fleet_json("history", "-H", HOST, target)
    top = hist[HOST]["history"][0]
    assert top["id"] == image_id and top["comment"] == "my change" and top["size"] > 0
    assert top["created_by"] == "sh -c " + CHANGES
    (obj,) = json.loads(lab.fleet("image", "inspect", "-H", HOST, target, check=True).stdout)
    assert obj["Author"] == "Ann <ann@example.org>" and "FOO=bar" in obj["Config"]["Env"]
    # CMD from --change; the files as the container left them (lower deletions and the opaque dir included)
    proc = lab.fleet("run", "-H", HOST, "--prefix", "--rm", target)
    assert proc.returncode == 0 and _out(proc) == ["new"], (proc.stdout, proc.stderr)
    check = ("test ! -e /home && test ! -e /var/spool && test \"$(cat /var/fresh/f)\" = v && "
             "tail -n1 /etc/passwd && readlink /link && echo $FOO")
    proc = lab.fleet("run", "-H", HOST, "--prefix", "--rm", target, "sh", "-c", check)
    assert proc.returncode == 0 and _out(proc) == ["changed", "/new.txt", "bar"], (proc.stdout, proc.stderr)
    # push, and the registry serves exactly what was committed (skopeo checks every digest on copy)
    rc, pushed = lab.fleet_json("push", "-H", HOST, target)
    assert rc == 0, pushed
    inspect = _skopeo("inspect", "--tls-verify=false", "docker://" + target)
    assert inspect.returncode == 0, inspect.stderr
    info = json.loads(inspect.stdout)
    assert info["Digest"] == pushed[HOST]["digest"] and info["Layers"][-1] == result["layer"]
    copy = _skopeo("copy", "--src-tls-verify=false", "docker://" + target, "oci:{}:v1".format(tmp_path / "oci"))
    assert copy.returncode == 0, copy.stderr
    lab.fleet("rmi", "-H", HOST, target)


def test_commit_bad_input(clean):
    lab = clean
    lab.fleet("create", "-H", HOST, "--name", PREFIX + "bad", "busybox", "true", check=True)
    proc = lab.fleet("commit", "-H", HOST, "-c", "RUN echo hi", PREFIX + "bad", "x:1")
    assert proc.returncode == 2 and "run is not a valid change command" in proc.stderr, proc.stderr
    proc = lab.fleet("commit", "-H", HOST, PREFIX + "bad", "Bad:Name")
    assert proc.returncode == 2 and "invalid reference format" in proc.stderr
    proc = lab.fleet("commit", "-H", HOST, PREFIX + "ghost")
    assert proc.returncode == 1 and "No such container: {}ghost".format(PREFIX) in proc.stdout + proc.stderr
    rc, images = lab.fleet_json("images", "-H", HOST)
    assert not any(row["repository"] == "x" for row in images[HOST]["images"])


@pytest.fixture
def local(tmp_path):
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "file.txt").write_text("local file\n")
    (src / "dir" / "one").write_text("1\n")
    (src / "dir" / "sub" / "two").write_text("2\n")
    for p in (src / "dir", src / "dir" / "one"):
        os.chown(str(p), 1234, 4321)
    return src


def test_cp_into_running_and_stopped_containers_and_out(clean, local, tmp_path):
    lab = clean
    hosts = sorted(lab.hosts)
    run = PREFIX + "run"
    lab.fleet("run", "-d", "-H", "all", "--name", run, "busybox", "sleep", "300", check=True)
    proc = lab.fleet("cp", "-H", "all", str(local / "file.txt"), run + ":/tmp/")
    assert proc.returncode == 0, proc.stderr
    proc = lab.fleet("cp", "-H", "all", "-a", str(local / "dir"), run + ":/tmp/kept")
    assert proc.returncode == 0, proc.stderr
    proc = lab.fleet("container", "cp", "-H", "all", str(local / "dir") + "/.", run + ":/tmp/contents")
    assert proc.returncode == 0, proc.stderr
    proc = lab.fleet("exec", "-H", "all", run, "sh", "-c",
                     "cat /tmp/file.txt; stat -c %u:%g /tmp/file.txt /tmp/kept/one /tmp/contents/one; "
                     "cat /tmp/contents/sub/two")
    assert proc.returncode == 0, proc.stderr
    for host in hosts:
        lines = [line.split(" | ", 1)[1] for line in proc.stdout.splitlines()
                 if line.split(" | ", 1)[0].strip() == host]
        assert lines == ["local file", "0:0", "1234:4321", "0:0", "2"], (host, proc.stdout)
    # a stopped container: the file lands in its filesystem and its next start sees it
    stopped = PREFIX + "stopped"
    lab.fleet("create", "-H", HOST, "--name", stopped, "busybox", "cat", "/in.txt", check=True)
    proc = lab.fleet("cp", "-H", HOST, str(local / "file.txt"), stopped + ":/in.txt")
    assert proc.returncode == 0, proc.stderr
    proc = lab.fleet("start", "-a", "-H", HOST, "--prefix", stopped)
    assert proc.returncode == 0 and _out(proc) == ["local file"], (proc.stdout, proc.stderr)
    # out of every host: DEST/<host>/...; out of one host: DEST as docker names it
    out = tmp_path / "out"
    proc = lab.fleet("cp", "-H", "all", run + ":/tmp/kept", str(out))
    assert proc.returncode == 0, proc.stderr
    for host in hosts:
        assert (out / host / "kept" / "sub" / "two").read_text() == "2\n"
    proc = lab.fleet("cp", "-H", HOST, "-a", run + ":/tmp/kept/one", str(tmp_path / "one-copy"))
    assert proc.returncode == 0, proc.stderr
    st = os.stat(str(tmp_path / "one-copy"))
    assert (tmp_path / "one-copy").read_text() == "1\n" and (st.st_uid, st.st_gid) == (1234, 4321)
    # - writes a tar to stdout
    proc = subprocess.run(["tar", "-t"], input=lab.fleet("cp", "-H", HOST, run + ":/tmp/kept", "-").stdout.encode(),
                          capture_output=True)
    assert "kept/sub/two" in proc.stdout.decode()


def test_cp_symlink_escape_stays_in_the_container_and_errors(clean, local, tmp_path):
    lab = clean
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    run = PREFIX + "esc"
    lab.fleet("run", "-d", "-H", HOST, "--name", run, "busybox", "sleep", "300", check=True)
    lab.fleet("exec", "-H", HOST, run, "sh", "-c", "ln -s {} /tmp/esc && ln -s / /tmp/root".format(host_dir),
              check=True)
    proc = lab.fleet("cp", "-H", HOST, str(local / "file.txt"), run + ":/tmp/esc/")
    assert proc.returncode == 1 and "no such directory" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    proc = lab.fleet("cp", "-H", HOST, str(local / "file.txt"), run + ":/tmp/root/../../../etc/")
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(str(host_dir)) == []
    proc = lab.fleet("exec", "-H", HOST, "--prefix", run, "cat", "/etc/file.txt")
    assert _out(proc) == ["local file"]
    proc = lab.fleet("cp", "-H", HOST, run + ":/nope", str(tmp_path))
    assert proc.returncode == 1 and "Could not find the file /nope in container" in proc.stdout, proc.stdout
    proc = lab.fleet("cp", "-H", HOST, PREFIX + "ghost:/etc", str(tmp_path))
    assert proc.returncode == 1 and "No such container: {}ghost".format(PREFIX) in proc.stdout
    proc = lab.fleet("cp", "-H", HOST, str(local / "missing"), run + ":/tmp/")
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    proc = lab.fleet("cp", "-H", HOST, str(local / "file.txt"), str(tmp_path / "x"))
    assert proc.returncode == 2 and "must specify at least one container source" in proc.stderr
    proc = lab.fleet("cp", "-H", HOST, str(local / "dir"), run + ":/etc/passwd")
    assert proc.returncode == 2 and "cannot copy directory" in proc.stderr, proc.stderr
