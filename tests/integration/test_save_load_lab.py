"""fleet save, load and import end to end over SSH on the lab, cross-checked with skopeo and a real dockerd.

An image made by ``fleet import`` (a busybox container's export plus a file, with ``-c`` changes) is saved from
web1, loaded on web2 and db1 (a second load sends no byte), read by skopeo (docker-archive and oci-archive) and
loaded by ``docker load`` into a dockerd of this test's own (tests/helpers/dockerd.py) with the same image ID
and RepoTags; ``docker save`` and skopeo-made archives load in fleet. Bad input exits 2 with nothing changed.
"""

import functools
import gzip
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading

import pytest

from fleet.lab import netns
from tests.helpers.dockerd import DOCKER_ROOT, Dockerd, binaries
from tests.helpers.lab import LAB_NAME, LAB_SUBNET

pytestmark = pytest.mark.integration

PREFIX = "sl-"
SRC = "web1"
IMG = "sl/imp:1"
TAGS = (IMG, "sl/bad:1", "sl/sk:1", "sl/dk:2", "sl/url:1", "sl/stdin:1", "sl/lay:1")


def _skopeo(*args):
    return subprocess.run(["skopeo"] + list(args), capture_output=True, text=True, timeout=120)


def _out(proc):
    """The container's output lines: one host's run, so stdout (not a terminal) holds its bytes alone."""
    return proc.stdout.splitlines()


def _rmi_everywhere(lab, *refs):
    for ref in refs:
        lab.fleet("rmi", "-H", "all", "-f", ref)


def _image_ids(lab, host):
    rc, images = lab.fleet_json("images", "-H", host)
    assert rc == 0, images
    return sorted({(row["id"], row["repository"], row["tag"]) for row in images[host]["images"]})


@pytest.fixture(scope="module")
def imported(lab, tmp_path_factory):
    """IMG on web1, imported from a busybox container's export with /hello added; (its ID, the saved archive)."""
    tmp = tmp_path_factory.mktemp("sl")
    lab.remove_containers(PREFIX)
    _rmi_everywhere(lab, *TAGS)
    lab.fleet("pull", "-H", SRC, "busybox", check=True)
    lab.fleet("run", "-H", SRC, "--name", PREFIX + "src", "busybox", "sh", "-c", "echo hello > /hello", check=True)
    rootfs = tmp / "rootfs.tar"
    with open(rootfs, "wb") as f:
        proc = subprocess.run([*_fleet_cmd(lab), "export", "-H", SRC, PREFIX + "src"], stdout=f,
                              stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = lab.fleet("import", "-H", SRC, "-c", 'CMD ["cat", "/hello"]', "-c", "ENV SL=1", "-m", "imported",
                     str(rootfs), IMG)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71, proc.stdout
    archive = tmp / "imp.tar"
    proc = lab.fleet("save", "-H", SRC, "-o", str(archive), IMG)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    try:
        yield image_id, archive, tmp
    finally:
        lab.remove_containers(PREFIX)
        _rmi_everywhere(lab, *TAGS)


def _fleet_cmd(lab):
    import sys
    return [sys.executable, "-m", "fleet", "-i", str(lab.inventory)]


def test_import_runs_with_its_changes(lab, imported):
    image_id, _archive, _tmp = imported
    proc = lab.fleet("run", "-H", SRC, "--rm", IMG)
    assert proc.returncode == 0 and _out(proc) == ["hello"], (proc.stdout, proc.stderr)
    (obj,) = json.loads(lab.fleet("image", "inspect", "-H", SRC, IMG, check=True).stdout)
    assert obj["Id"] == image_id and obj["Comment"] == "imported" and "SL=1" in obj["Config"]["Env"]
    assert len(obj["RootFS"]["Layers"]) == 1


def test_import_from_a_url_the_host_fetches_and_from_stdin(lab, imported):
    _image_id, _archive, tmp = imported
    buf = io.BytesIO()  # the export plus /url: a layer the hosts do not have from the other tests
    with tarfile.open(tmp / "rootfs.tar") as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        info = tarfile.TarInfo("url")
        info.size = 4
        dst.addfile(info, io.BytesIO(b"url\n"))
    rootfs = buf.getvalue()
    (tmp / "www").mkdir()
    (tmp / "www" / "rootfs.tar.gz").write_bytes(gzip.compress(rootfs))
    gateway = netns.plan(LAB_NAME, LAB_SUBNET, 3)[1].split("/")[0]  # the lab bridge's address on this machine
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp / "www"))
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://{}:{}/rootfs.tar.gz".format(gateway, server.server_address[1])
        proc = lab.fleet("import", "-H", "web2", "-c", "WORKDIR /tmp", url, "sl/url:1")
        assert proc.returncode == 0 and proc.stdout.startswith("sha256:"), (proc.stdout, proc.stderr)
        proc = lab.fleet("import", "-H", "web2", url + ".missing", "sl/url:2")
        assert proc.returncode == 1 and "404" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    proc = lab.fleet("run", "-H", "web2", "--rm", "sl/url:1", "sh", "-c", "pwd; cat /hello")
    assert proc.returncode == 0 and _out(proc) == ["/tmp", "hello"], (proc.stdout, proc.stderr)
    proc = subprocess.run([*_fleet_cmd(lab), "import", "-H", "db1", "-", "sl/stdin:1"], input=rootfs,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith(b"sha256:"), proc.stderr
    proc = lab.fleet("run", "-H", "db1", "--rm", "sl/stdin:1", "cat", "/hello")
    assert proc.returncode == 0 and _out(proc) == ["hello"], (proc.stdout, proc.stderr)


def test_save_then_load_on_two_hosts_sends_only_missing_layers(lab, imported):
    image_id, archive, _tmp = imported
    tar = tarfile.open(archive)
    manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest[0]["RepoTags"] == [IMG] and manifest[0]["Config"] == image_id[7:] + ".json"
    rc, loaded = lab.fleet_json("load", "-H", "web2:db1", "-i", str(archive))
    assert rc == 0, loaded
    for host in ("web2", "db1"):
        assert loaded[host]["loaded"] == [{"id": image_id, "tags": [IMG], "renamed": []}]
        assert loaded[host]["layers_sent"] == 1 and loaded[host]["bytes_sent"] > 1000
    proc = lab.fleet("run", "-H", "web2", "--rm", IMG)
    assert proc.returncode == 0 and _out(proc) == ["hello"], (proc.stdout, proc.stderr)
    # what load stored is pushable: the registry serves the same config and layer (skopeo checks the digests)
    import yaml
    target = "{}/sl/loaded:1".format(yaml.safe_load(lab.inventory.read_text())["all"]["vars"]["fleet_lab_registry"])
    lab.fleet("tag", "-H", "web2", IMG, target, check=True)
    rc, pushed = lab.fleet_json("push", "-H", "web2", target)
    assert rc == 0, pushed
    copy = _skopeo("copy", "--src-tls-verify=false", "docker://" + target, "oci:{}:p".format(_tmp / "pushed"))
    assert copy.returncode == 0, copy.stderr
    info = json.loads(_skopeo("inspect", "--config", "oci:{}:p".format(_tmp / "pushed")).stdout)
    assert info["rootfs"]["diff_ids"] == json.loads(tar.extractfile(manifest[0]["Config"]).read())["rootfs"]["diff_ids"]
    lab.fleet("rmi", "-H", "web2", target, check=True)
    rc, again = lab.fleet_json("load", "-H", "web2:db1", "-i", str(archive))
    assert rc == 0 and [again[h]["bytes_sent"] for h in ("web2", "db1")] == [0, 0], again
    proc = lab.fleet("load", "-H", "web2", "-i", str(archive))  # docker's words with one host
    assert proc.returncode == 0 and proc.stdout == "Loaded image: {}\n".format(IMG), (proc.stdout, proc.stderr)
    with open(archive, "rb") as f:  # stdin
        proc = subprocess.run([*_fleet_cmd(lab), "load", "-H", "db1"], stdin=f, capture_output=True, text=True,
                              timeout=300)
    assert proc.returncode == 0 and proc.stdout == "Loaded image: {}\n".format(IMG), proc.stderr
    # save to stdout is the same archive
    proc = subprocess.run([*_fleet_cmd(lab), "save", "-H", SRC, IMG], capture_output=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout == archive.read_bytes(), proc.stderr


def test_bad_archives_exit_2_and_change_nothing(lab, imported):
    _image_id, archive, tmp = imported
    before = _image_ids(lab, "web2")
    junk = tmp / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 100)
    proc = lab.fleet("load", "-H", "web2", "-i", str(junk))
    assert proc.returncode == 2 and "junk.tar: not a tar archive" in proc.stderr, proc.stderr
    # a layer whose content is not its diff_id (under a tag no host has)
    bad = tmp / "bad.tar"
    src = tarfile.open(archive)
    with tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read() if m.isreg() else None
            if m.name == "manifest.json":
                man = json.loads(body)
                man[0]["RepoTags"] = ["sl/bad:1"]
                body = json.dumps(man).encode()
            elif m.name.endswith("/layer.tar"):
                body = body[:-2048] + b"x" * 1024 + b"\0" * 1024
            if body is not None:
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    proc = lab.fleet("load", "-H", "web2", "-i", str(bad))
    assert proc.returncode == 2 and "does not match its digest" in proc.stderr, proc.stderr
    proc = lab.fleet("import", "-H", "web2", "-c", "RUN true", str(junk), "sl/bad:1")
    assert proc.returncode == 2 and "run is not a valid change command" in proc.stderr, proc.stderr
    proc = lab.fleet("import", "-H", "web2", str(junk), "sl/bad:1")
    assert proc.returncode == 2 and "corrupt layer" in proc.stderr, proc.stderr
    proc = lab.fleet("save", "-H", "all", "-o", str(tmp / "x.tar"), IMG)
    assert proc.returncode == 2 and "exactly one host" in proc.stderr, proc.stderr
    assert _image_ids(lab, "web2") == before


def test_skopeo_reads_fleet_archives_and_fleet_loads_skopeos(lab, imported):
    image_id, archive, tmp = imported
    (obj,) = json.loads(lab.fleet("image", "inspect", "-H", SRC, IMG, check=True).stdout)
    info = _skopeo("inspect", "docker-archive:{}".format(archive))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["Layers"] == obj["RootFS"]["Layers"]
    oci_dir = tmp / "oci"
    copy = _skopeo("copy", "docker-archive:{}".format(archive), "oci:{}:sl".format(oci_dir))
    assert copy.returncode == 0, copy.stderr
    skopeo_archive = tmp / "sk.tar"
    copy = _skopeo("copy", "oci:{}:sl".format(oci_dir), "docker-archive:{}:sl/sk:1".format(skopeo_archive))
    assert copy.returncode == 0, copy.stderr
    proc = lab.fleet("load", "-H", "web2", "-i", str(skopeo_archive))
    assert proc.returncode == 0 and proc.stdout == "Loaded image: sl/sk:1\n", (proc.stdout, proc.stderr)
    proc = lab.fleet("run", "-H", "web2", "--rm", "sl/sk:1")
    assert proc.returncode == 0 and _out(proc) == ["hello"], (proc.stdout, proc.stderr)
    # --format oci-archive: skopeo reads it, fleet loads it back (same image ID)
    oci_archive = tmp / "imp-oci.tar"
    lab.fleet("save", "-H", SRC, "--format", "oci-archive", "-o", str(oci_archive), IMG, check=True)
    info = _skopeo("inspect", "oci-archive:{}".format(oci_archive))
    assert info.returncode == 0, info.stderr
    copy = _skopeo("copy", "oci-archive:{}".format(oci_archive), "oci:{}:again".format(tmp / "oci2"))
    assert copy.returncode == 0, copy.stderr
    rc, loaded = lab.fleet_json("load", "-H", "db1", "-i", str(oci_archive))
    assert rc == 0 and loaded["db1"]["loaded"][0]["id"] == image_id, loaded


@pytest.fixture(scope="module")
def dockerd(lab, tmp_path_factory):
    if not binaries():
        reason = "no dockerd under {} (scripts/fetch-dockerd)".format(DOCKER_ROOT)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + " under CI=true")
        pytest.skip(reason)
    daemon = Dockerd(tmp_path_factory.mktemp("sl-dockerd"))
    problems = []
    try:
        daemon.start()
        yield daemon
    finally:
        problems = daemon.stop()
    assert problems == [], "dockerd left these behind:\n{}".format("\n".join(problems))


def test_docker_loads_fleet_save_and_fleet_loads_docker_save(lab, imported, dockerd):
    image_id, archive, tmp = imported
    proc = dockerd.docker("load", "-i", str(archive))
    assert proc.returncode == 0 and proc.stdout.decode() == "Loaded image: {}\n".format(IMG), proc.stderr
    (obj,) = json.loads(dockerd.check("image", "inspect", IMG).stdout)
    assert obj["Id"] == image_id and obj["RepoTags"] == [IMG]
    # a second layer on docker's side, then docker save -> fleet load: only that layer travels to web2
    dockerd.check("run", "--network", "none", "--name", PREFIX + "dk", IMG, "sh", "-c", "echo more > /more")
    dockerd.check("commit", "-c", 'CMD ["cat", "/more"]', PREFIX + "dk", "sl/dk:2")
    dockerd.check("rm", PREFIX + "dk")
    saved = tmp / "docker-save.tar"
    dockerd.check("save", "-o", str(saved), "sl/dk:2")
    (dk,) = json.loads(dockerd.check("image", "inspect", "sl/dk:2").stdout)
    lab.fleet("load", "-H", "web2", "-i", str(archive), check=True)
    rc, loaded = lab.fleet_json("load", "-H", "web2", "-i", str(saved))
    assert rc == 0 and loaded["web2"]["loaded"] == [{"id": dk["Id"], "tags": ["sl/dk:2"], "renamed": []}], loaded
    assert loaded["web2"]["layers_sent"] == 1
    proc = lab.fleet("run", "-H", "web2", "--rm", "sl/dk:2")
    assert proc.returncode == 0 and _out(proc) == ["more"], (proc.stdout, proc.stderr)


TREE = ("find / -path /proc -prune -o -path /sys -prune -o -path /dev -prune -o -path /etc/hostname -prune -o "
        "-path /etc/hosts -prune -o -path /etc/resolv.conf -prune -o -print | sort | "
        "while read p; do if [ -L \"$p\" ]; then echo \"$p -> $(readlink \"$p\")\"; "
        "elif [ -f \"$p\" ]; then echo \"$p $(stat -c %a \"$p\") $(md5sum < \"$p\" | cut -c1-32)\"; "
        "else echo \"$p $(stat -c %a \"$p\")\"; fi; done")


def test_layered_image_through_docker_and_back(lab, imported, dockerd):
    """The lab's layered image (whiteouts, an opaque dir, hardlinks) saved by fleet, loaded by docker (same ID),
    saved by docker and loaded by fleet on a host without it: the same tree as the pulled image."""
    _image_id, _archive, tmp = imported
    lab.fleet("pull", "-H", SRC, "layered", check=True)
    (pulled,) = json.loads(lab.fleet("image", "inspect", "-H", SRC, "layered", check=True).stdout)
    ours = tmp / "layered.tar"
    lab.fleet("save", "-H", SRC, "-o", str(ours), "layered", check=True)
    proc = dockerd.docker("load", "-i", str(ours))
    assert proc.returncode == 0 and proc.stdout.decode() == "Loaded image: layered:latest\n", proc.stderr
    (obj,) = json.loads(dockerd.check("image", "inspect", "layered:latest").stdout)
    assert obj["Id"] == pulled["Id"] and obj["RootFS"]["Layers"] == pulled["RootFS"]["Layers"]
    dockerd.check("tag", "layered:latest", "sl/lay:1")
    theirs = tmp / "docker-layered.tar"
    dockerd.check("save", "-o", str(theirs), "sl/lay:1")
    lab.fleet("rmi", "-H", "db1", "-f", "layered", "sl/lay:1")
    ids = lab.fleet("images", "-H", "db1", "-aq", check=True).stdout.split()
    held = set()  # the layers db1's other images hold (earlier tests' pulls may share one): never sent
    if ids:
        for image in json.loads(lab.fleet("image", "inspect", "-H", "db1", *sorted(set(ids)), check=True).stdout):
            held.update(image["RootFS"]["Layers"])
    rc, loaded = lab.fleet_json("load", "-H", "db1", "-i", str(theirs))
    assert rc == 0 and loaded["db1"]["loaded"][0]["id"] == pulled["Id"], loaded
    assert loaded["db1"]["layers_sent"] == len(set(pulled["RootFS"]["Layers"]) - held), (loaded, held)
    try:
        want = lab.fleet("run", "-H", SRC, "--rm", "layered", "sh", "-c", TREE, check=True)
        got = lab.fleet("run", "-H", "db1", "--rm", "sl/lay:1", "sh", "-c", TREE, check=True)
        assert _out(got) == _out(want) and len(_out(want)) > 50
    finally:
        lab.fleet("rmi", "-H", "db1", "sl/lay:1")
