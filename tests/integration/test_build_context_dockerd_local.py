"""The build context fleet sends is docker's: a real dockerd (Debian's docker.io 20.10, classic builder, see
tests/helpers/dockerd.py) builds ``FROM scratch`` + ``COPY . /`` for each case, and the files of that image's
layer (names, types, modes, sizes, mtimes, link targets) are the files of fleet's context tar as the builder sees
it (the Dockerfile moved under .fleet-dockerfile/ excepted).  No image is pulled: nothing leaves the machine."""

import io
import json
import os
import tarfile

import pytest

from fleet.build import context
from tests.helpers.dockerd import require_binaries, running

pytestmark = pytest.mark.integration

DOCKERFILE = "FROM scratch\nCOPY . /\n"


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    require_binaries()
    with running(tmp_path_factory.mktemp("dockerd-ctx")) as daemon:
        yield daemon


def _entry(m):
    kind = "l" if m.issym() else "f"
    return (m.name.rstrip("/"), kind, m.mode & 0o7777, m.size if kind == "f" else 0, int(m.mtime), m.linkname)


def _docker_files(dockerd, tag, argv, stdin=None):
    proc = dockerd.docker("build", "-t", tag, *argv, input=stdin)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    saved = tarfile.open(fileobj=io.BytesIO(dockerd.check("save", tag).stdout))
    (manifest,) = json.loads(saved.extractfile("manifest.json").read())
    files = set()
    for layer in manifest["Layers"]:
        with tarfile.open(fileobj=saved.extractfile(layer)) as tar:
            files |= {_entry(m) for m in tar.getmembers() if not m.isdir()}
    dockerd.check("rmi", tag)
    return files, proc.stdout.decode()


def _fleet_files(ctx):
    with tarfile.open(ctx.tar_path) as tar:
        return {_entry(m) for m in tar.getmembers()
                if not m.isdir() and not m.name.startswith(context.SPECIAL_DIR + "/")}


def _tree(root, files, links=()):
    for name, data in files.items():
        path = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data)
        os.chmod(path, 0o755 if name.endswith(".sh") else 0o644)
        os.utime(path, (1600000000 + len(name), 1600000000 + len(name)))
    for name, target in links:
        os.symlink(target, os.path.join(str(root), name))


CASES = {
    "exceptions": ({".dockerignore": "# a comment\n*.log\n/build\n!build/keep.txt\n**/secret*\nnode_modules\n",
                    "a.txt": "a", "x.log": "x", "docs/n.log": "n", "build/out.o": "o", "build/keep.txt": "k",
                    "src/secret.key": "s", "src/main.c": "m", "node_modules/y/z.js": "z", "run.sh": "#!/bin/sh"},
                   [("link", "a.txt"), ("dangling", "nowhere")]),
    "doublestar": ({".dockerignore": "**/*.tmp\n!keep/important.tmp\na/**/z\n./c/d\n/e\n",
                    "x.tmp": "1", "deep/er/y.tmp": "2", "keep/important.tmp": "3", "a/z": "4", "a/b/c/z": "5",
                    "a/b/c/w": "6", "c/d": "7", "c/e": "8", "e": "9"}, []),
    "build-files-ignored": ({".dockerignore": "Dockerfile\n.dockerignore\n*.md\n!README.md\n",
                             "README.md": "r", "CHANGES.md": "c", "f": "f"}, []),
    "dir-excluded-exception-deep": ({".dockerignore": ".git\nvendor\n!vendor/keep/**\n",
                                     ".git/HEAD": "h", "vendor/a/b": "b", "vendor/keep/x/y": "y", "v": "v"}, []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_directory_context_is_dockers(dockerd, tmp_path, case):
    files, links = CASES[case]
    _tree(tmp_path, dict(files, Dockerfile=DOCKERFILE), links)
    docker, output = _docker_files(dockerd, "ctx-" + case, [str(tmp_path)])
    with context.prepare(str(tmp_path), None) as ctx:
        assert _fleet_files(ctx) == docker
        # the same line, the same size: fleet's tar is laid out as Go's archive/tar lays out docker's (when the
        # Dockerfile is excluded docker sends it and .dockerignore anyway, for the daemon to drop: 1 KiB more)
        if case != "build-files-ignored":
            assert output.startswith(context.sending_line(ctx.size))


def test_dockerfile_outside_the_context_is_not_in_it(dockerd, tmp_path):
    _tree(tmp_path, {"ctx/a": "a", "ctx/.dockerignore": "b\n", "ctx/b": "b", "elsewhere/Dockerfile.x": DOCKERFILE})
    outside = str(tmp_path / "elsewhere" / "Dockerfile.x")
    docker, _ = _docker_files(dockerd, "ctx-outside", ["-f", outside, str(tmp_path / "ctx")])
    with context.prepare(str(tmp_path / "ctx"), outside) as ctx:
        assert ctx.dockerfile == context.SPECIAL_DOCKERFILE
        fleet = _fleet_files(ctx)
    # docker's CLI appends "\n.dockerfile.<20 random hex>\n" to the context's .dockerignore (it names the
    # Dockerfile it added under that random name), so its COPY copies that altered file; fleet leaves the user's
    # .dockerignore as it is (a random line cannot be reproduced, and it is not the user's file)
    (ours,) = [e for e in fleet if e[0] == ".dockerignore"]
    (theirs,) = [e for e in docker if e[0] == ".dockerignore"]
    assert theirs[3] == ours[3] + len("\n.dockerfile.") + 20 + 1
    assert fleet - {ours} == docker - {theirs}


def test_dockerfile_on_stdin_is_the_whole_context(dockerd, tmp_path):
    docker, _ = _docker_files(dockerd, "ctx-stdin", ["-"], stdin=DOCKERFILE.encode())
    with context.prepare("-", None, io.BytesIO(DOCKERFILE.encode())) as ctx:
        assert {name for name, *_ in _fleet_files(ctx)} == {name for name, *_ in docker} == {"Dockerfile"}


def test_tar_on_stdin_is_sent_as_it_is(dockerd, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", DOCKERFILE.encode(), 0o644),
                                 (".dockerignore", b"*.log\nDockerfile\n", 0o644),
                                 ("x.log", b"log", 0o600), ("sub/y.log", b"y", 0o640), ("a", b"a", 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1600000000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    docker, _ = _docker_files(dockerd, "ctx-tar", ["-"], stdin=raw)
    with context.prepare("-", None, io.BytesIO(raw)) as ctx:
        assert _fleet_files(ctx) == docker
