"""fleet build end to end over SSH on the lab: the issue's Goal as a user types it.

``fleet build -H web1 -t <lab registry>/bl/app:1.4 -f Dockerfile --build-arg VERSION=1.4 .`` of a small
multi-step Dockerfile (busybox from the lab's mirror, ARG, ENV, WORKDIR, COPY, RUN, CMD) prints docker's classic
output; a second build runs no step; changing one copied file reruns that step and the ones after it only; ``-q``
and ``--iidfile``; the image runs, is pushed (skopeo reads it from the registry: same config digest), saved from
web1 and loaded and run on web2.  SOURCE_DATE_EPOCH gives the same image ID on two hosts building at once (each
line ``host | `` prefixed); a failing RUN exits 1 naming the host and the command, with nothing tagged.
"""

import hashlib
import json
import os
import re
import subprocess

import pytest

pytestmark = pytest.mark.integration

PREFIX = "bl-"
HOST = "web1"
DOCKERFILE = """FROM busybox
ARG VERSION=0
ENV APP_VERSION=${VERSION}
WORKDIR /app
COPY greet.sh ./
RUN chmod 755 greet.sh && echo "built $APP_VERSION" > built
COPY data/ ./data/
CMD ["/app/greet.sh"]
"""
STEPS = 8  # FROM and 7 more: a second build prints ' ---> Using cache' for each of the 7
GREET = "#!/bin/sh\necho \"hello $APP_VERSION from $(pwd)\"\ncat /app/built /app/data/*\n"
LOCAL_TAGS = ("bl/app:q", "bl/repro:1", "bl/bad:1")


def _registry(lab):
    import yaml
    return yaml.safe_load(lab.inventory.read_text())["all"]["vars"]["fleet_lab_registry"]


def _app(lab):
    return "{}/bl/app:1.4".format(_registry(lab))


def _out(proc):
    """The container's output lines (one host: as they are)."""
    return proc.stdout.splitlines()


def _context(root, data="one\n"):
    root.mkdir(exist_ok=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "greet.sh").write_text(GREET)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "a.txt").write_text(data)
    return root


def _build(lab, ctx, *args, hosts=HOST):
    """fleet build run from inside the context directory (PATH '.'), as the Goal types it."""
    cmd = [*_fleet_cmd(lab), "build", "-H", hosts, *args, "."]
    return subprocess.run(cmd, cwd=str(ctx), capture_output=True, text=True, timeout=600)


def _fleet_cmd(lab):
    import sys
    return [sys.executable, "-m", "fleet", "-i", str(lab.inventory)]


def _image_id(lab, host, ref):
    proc = lab.fleet("image", "inspect", "-H", host, ref)
    if proc.returncode != 0:
        return None
    (obj,) = json.loads(proc.stdout)
    return obj["Id"]


def _rerun_steps(stdout):
    """The step numbers that ran (no ' ---> Using cache' right after their 'Step N/M' line), FROM excluded."""
    ran, step = [], None
    for line in stdout.splitlines():
        m = re.match(r"^Step (\d+)/\d+ : ", line)
        if m:
            if step is not None:
                ran.append(step)
            step = int(m.group(1))
        elif line == " ---> Using cache":
            step = None
        elif line.startswith("Successfully built"):
            break
    if step is not None:
        ran.append(step)
    return [s for s in ran if s != 1]


@pytest.fixture(scope="module")
def built(lab, tmp_path_factory):
    """The Goal's build on web1 from a fresh context: (context dir, the build's stdout, the image ID).
    Removes every image and container this module makes, on every host, even on failure."""
    tmp = tmp_path_factory.mktemp("bl")
    app = _app(lab)
    refs = (app,) + LOCAL_TAGS

    def clean():
        lab.remove_containers(PREFIX)
        for ref in refs:
            lab.fleet("rmi", "-H", "all", "-f", ref)
    clean()
    try:
        ctx = _context(tmp / "ctx")
        proc = _build(lab, ctx, "-t", app, "-f", "Dockerfile", "--build-arg", "VERSION=1.4")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        yield ctx, proc.stdout, _image_id(lab, HOST, app)
    finally:
        clean()
        for cid in _failed_containers:
            lab.fleet("rm", "-f", "-H", HOST, cid)


_failed_containers = []


def test_goal_build_prints_docker_output_and_uses_its_cache(lab, built):
    ctx, out, image_id = built
    app = _app(lab)
    lines = out.splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon"), out
    steps = [line for line in lines if line.startswith("Step ")]
    assert steps == ["Step {}/{} : {}".format(i + 1, STEPS, text)
                     for i, text in enumerate(DOCKERFILE.strip().splitlines())], out
    assert re.search(r"^ ---> Running in [0-9a-f]{12}$", out, re.M), out
    assert len(re.findall(r"^ ---> [0-9a-f]{12}$", out, re.M)) == STEPS, out
    assert image_id and lines[-2:] == ["Successfully built " + image_id[7:19], "Successfully tagged " + app], out
    # an unchanged context: every step after FROM from the cache, the same image
    proc = _build(lab, ctx, "-t", app, "--build-arg", "VERSION=1.4")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout.count(" ---> Using cache\n") == STEPS - 1 and "Running in" not in proc.stdout, proc.stdout
    assert _rerun_steps(proc.stdout) == [] and "Successfully built " + image_id[7:19] in proc.stdout
    # a copied file touched (its mtime alone): still all from the cache, as both docker builders (their source
    # hashes leave mtimes out)
    mtime = (ctx / "greet.sh").stat().st_mtime + 100
    os.utime(ctx / "greet.sh", (mtime, mtime))
    proc = _build(lab, ctx, "-t", app, "--build-arg", "VERSION=1.4")
    assert proc.returncode == 0 and proc.stdout.count(" ---> Using cache\n") == STEPS - 1, proc.stdout
    # one copied file changed: its COPY (step 5) and the steps after it run again, the three before do not
    (ctx / "greet.sh").write_text(GREET + "echo changed\n")
    try:
        proc = _build(lab, ctx, "-t", "bl/app:q", "--build-arg", "VERSION=1.4")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert proc.stdout.count(" ---> Using cache\n") == 3, proc.stdout
        assert _rerun_steps(proc.stdout) == [5, 6, 7, 8], proc.stdout
        assert proc.stdout.count("Running in") == 1, proc.stdout
        changed = _image_id(lab, HOST, "bl/app:q")
        assert changed not in (None, image_id)
    finally:
        (ctx / "greet.sh").write_text(GREET)
    # -q: the image ID only; --iidfile: the same ID in the file
    iid = ctx.parent / "iid"
    proc = _build(lab, ctx, "-q", "--iidfile", str(iid), "--build-arg", "VERSION=1.4")
    assert proc.returncode == 0 and proc.stdout == image_id + "\n", (proc.stdout, proc.stderr)
    assert iid.read_text() == image_id


def test_built_image_runs_pushes_saves_and_loads(lab, built, tmp_path):
    _ctx, _out_text, image_id = built
    app = _app(lab)
    proc = lab.fleet("run", "-H", HOST, "--rm", app)
    assert proc.returncode == 0 and _out(proc) == ["hello 1.4 from /app", "built 1.4", "one"], (
        proc.stdout, proc.stderr)
    # pushed: the registry serves this config (its digest is the image ID) and the layers skopeo reads
    rc, pushed = lab.fleet_json("push", "-H", HOST, app)
    assert rc == 0, pushed
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "--config", "docker://" + app],
                         capture_output=True, timeout=120)
    assert raw.returncode == 0, raw.stderr
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == image_id
    config = json.loads(raw.stdout)
    assert "APP_VERSION=1.4" in config["config"]["Env"] and config["config"]["Cmd"] == ["/app/greet.sh"]
    assert config["config"]["WorkingDir"] == "/app"
    info = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "docker://" + app], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    (obj,) = json.loads(lab.fleet("image", "inspect", "-H", HOST, app, check=True).stdout)
    assert len(json.loads(info.stdout)["Layers"]) == len(obj["RootFS"]["Layers"])
    # saved on this machine from web1, loaded on web2, run there
    archive = tmp_path / "app.tar"
    proc = lab.fleet("save", "-H", HOST, "-o", str(archive), app)
    assert proc.returncode == 0 and archive.stat().st_size > 1000, proc.stderr
    rc, loaded = lab.fleet_json("load", "-H", "web*", "-i", str(archive))  # as the Goal: web1 has it all
    assert rc == 0 and loaded["web1"]["bytes_sent"] == 0 and loaded["web2"]["layers_sent"] >= 4, loaded
    assert loaded["web2"]["loaded"] == [{"id": image_id, "tags": [app], "renamed": []}], loaded
    proc = lab.fleet("load", "-H", "web2", "-i", str(archive))
    assert proc.returncode == 0 and proc.stdout == "Loaded image: {}\n".format(app), (proc.stdout, proc.stderr)
    assert _image_id(lab, "web2", app) == image_id
    proc = lab.fleet("run", "-H", "web2", "--rm", app)
    assert proc.returncode == 0 and _out(proc) == ["hello 1.4 from /app", "built 1.4", "one"], (
        proc.stdout, proc.stderr)


def test_source_date_epoch_same_image_on_two_hosts_at_once(lab, built, tmp_path):
    """web1 holds the steps of an earlier build of this context in its cache, web2 builds it from nothing: with
    SOURCE_DATE_EPOCH both give one image ID (--iidfile is written only then)."""
    ctx, _out_text, image_id = built
    iid = tmp_path / "iid"
    proc = _build(lab, ctx, "-t", "bl/repro:1", "--build-arg", "VERSION=1.4", "--build-arg",
                  "SOURCE_DATE_EPOCH=1700000000", "--iidfile", str(iid), hosts="web1:web2")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    for host in ("web1", "web2"):
        mine = [line.split(" | ", 1)[1] for line in proc.stdout.splitlines() if line.startswith(host + " | ")]
        assert mine[0] == "Step 1/{} : FROM busybox".format(STEPS) and mine[-1] == "Successfully tagged bl/repro:1"
        assert len([line for line in mine if line.startswith("Step ")]) == STEPS, proc.stdout
    # text mode reads the "Sending build context" line's "\r\r\n" as two line ends: the empty line is its
    stray = [line for line in proc.stdout.splitlines()[1:] if line and not re.match(r"^web[12] +\| ", line)]
    assert stray == [], proc.stdout  # the "Sending build context" line first, then only prefixed lines
    ids = {host: _image_id(lab, host, "bl/repro:1") for host in ("web1", "web2")}
    assert ids["web1"] == ids["web2"] and ids["web1"] not in (None, image_id), ids
    assert iid.read_text() == ids["web1"]
    (obj,) = json.loads(lab.fleet("image", "inspect", "-H", "web2", "bl/repro:1", check=True).stdout)
    assert obj["Created"].startswith("2023-11-14T22:13:20")
    # again with -q: one prefixed line per host, the same ID
    proc = _build(lab, ctx, "-q", "--build-arg", "VERSION=1.4", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
                  hosts="web1:web2")
    assert proc.returncode == 0 and sorted(proc.stdout.splitlines()) == [
        "web1 | " + ids["web1"], "web2 | " + ids["web2"]], (proc.stdout, proc.stderr)


def test_failing_run_exits_1_naming_host_and_command(lab, built, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo first > /first\nRUN echo nope; exit 3\n"
                                         "CMD [\"true\"]\n")
    proc = _build(lab, tmp_path, "-t", "bl/bad:1")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    _failed_containers.extend(re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.M))
    assert "nope" in proc.stdout and "Successfully" not in proc.stdout, proc.stdout
    assert "{}: The command '/bin/sh -c echo nope; exit 3' returned a non-zero code: 3".format(HOST) in proc.stderr
    assert _image_id(lab, HOST, "bl/bad:1") is None
