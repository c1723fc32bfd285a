"""fleet.build.context: the build context docker's CLI would send, as one deterministic tar."""

import gzip
import io
import os
import tarfile

import pytest

from fleet.build import context
from fleet.errors import UsageError


def _tree(root, files):
    for name, data in files.items():
        path = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data)
        os.utime(path, (1700000000, 1700000000))


def _names(ctx):
    with tarfile.open(ctx.tar_path) as tar:
        return [m.name for m in tar.getmembers()]


def _member(ctx, name):
    with tarfile.open(ctx.tar_path) as tar:
        m = tar.getmember(name)
        return m, (tar.extractfile(m).read() if m.isreg() else None)


DOCKERFILE = "FROM scratch\nCOPY . /\n"


def test_dockerignore_with_exceptions(tmp_path):
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, ".dockerignore": "# comment\n*.log\n/build\n!build/keep.txt\n"
                     "**/secret*\nnode_modules\n", "a.txt": "a", "x.log": "x", "build/out.o": "o",
                     "build/keep.txt": "k", "src/secret.key": "s", "src/main.c": "m",
                     "node_modules/x/y.js": "y", "docs/n.log": "n"})
    with context.prepare(str(tmp_path), None) as ctx:
        names = _names(ctx)
        # "*.log" is top-level only (Go's * never crosses a /): docs/n.log stays, as with docker
        assert names == [".dockerignore", "Dockerfile", "a.txt", "build/keep.txt", "docs", "docs/n.log", "src",
                         "src/main.c"]
        assert ctx.dockerfile == "Dockerfile" and ctx.text == DOCKERFILE and ctx.has_dockerignore
        m, _ = _member(ctx, "a.txt")
        assert (m.uid, m.gid, m.mtime, m.mode) == (0, 0, 1700000000, 0o644)


def test_same_tree_same_sha_and_a_change_changes_it(tmp_path):
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, "a/b.txt": "b", "a/c.txt": "c"})
    with context.prepare(str(tmp_path), None) as one, context.prepare(str(tmp_path), None) as two:
        assert one.sha256 == two.sha256 and one.size == two.size
        with open(one.tar_path, "rb") as f:
            import hashlib
            assert hashlib.sha256(f.read()).hexdigest() == one.sha256
    os.utime(str(tmp_path / "a/b.txt"), (1700000001, 1700000001))
    with context.prepare(str(tmp_path), None) as three:
        assert three.sha256 != one.sha256


def test_dockerfile_excluded_by_dockerignore_travels_apart(tmp_path):
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, ".dockerignore": "Dockerfile\n.dockerignore\n", "a": "a"})
    with context.prepare(str(tmp_path), None) as ctx:
        assert _names(ctx) == ["a", context.SPECIAL_DOCKERFILE]
        assert ctx.dockerfile == context.SPECIAL_DOCKERFILE
        assert _member(ctx, context.SPECIAL_DOCKERFILE)[1] == DOCKERFILE.encode()


def test_dockerfile_outside_the_context_and_relative_to_cwd(tmp_path, monkeypatch):
    _tree(tmp_path, {"ctx/a": "a", "files/Dockerfile.dev": "FROM a\n"})
    monkeypatch.chdir(str(tmp_path / "files"))
    with context.prepare(str(tmp_path / "ctx"), "Dockerfile.dev") as ctx:
        assert _names(ctx) == ["a", context.SPECIAL_DOCKERFILE]
        assert ctx.text == "FROM a\n" and ctx.filename == "Dockerfile.dev"
    with pytest.raises(UsageError, match="Cannot locate specified Dockerfile: nope"):
        context.prepare(str(tmp_path / "ctx"), "nope")
    _tree(tmp_path, {"ctx/sub/Dockerfile": "FROM b\n"})
    monkeypatch.chdir(str(tmp_path))
    with context.prepare("ctx", "ctx/sub/Dockerfile") as ctx:
        assert ctx.dockerfile == "sub/Dockerfile" and ctx.text == "FROM b\n"


def test_dockerfile_from_stdin_with_a_directory(tmp_path):
    _tree(tmp_path, {"a": "a"})
    with context.prepare(str(tmp_path), "-", io.BytesIO(b"FROM c\n")) as ctx:
        assert _names(ctx) == ["a", context.SPECIAL_DOCKERFILE] and ctx.text == "FROM c\n"


def test_lowercase_dockerfile_fallback_and_missing(tmp_path):
    _tree(tmp_path, {"dockerfile": "FROM d\n"})
    with context.prepare(str(tmp_path), None) as ctx:
        assert ctx.dockerfile == "dockerfile"
    os.unlink(str(tmp_path / "dockerfile"))
    with pytest.raises(UsageError, match="^Cannot locate specified Dockerfile: Dockerfile$"):
        context.prepare(str(tmp_path), None)
    with pytest.raises(UsageError, match='unable to prepare context: path ".*nope" not found'):
        context.prepare(str(tmp_path / "nope"), None)


def test_stdin_dockerfile_alone():
    with context.prepare("-", None, io.BytesIO(b"FROM scratch\n")) as ctx:
        assert _names(ctx) == ["Dockerfile"] and ctx.dockerfile == "Dockerfile"


def _tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = 1000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_stdin_tar_plain_and_gzip(tmp_path):
    raw = _tar_bytes([("./Dockerfile", b"FROM e\n"), ("./app/x", b"x"), ("other/Dockerfile", b"FROM f\n")])
    for data in (raw, gzip.compress(raw)):
        with context.prepare("-", None, io.BytesIO(data)) as ctx:
            assert _names(ctx) == ["Dockerfile", "app/x", "other/Dockerfile"] and ctx.text == "FROM e\n"
            assert _member(ctx, "app/x")[0].uid == 1000  # sent as it is
    with context.prepare("-", "other/Dockerfile", io.BytesIO(raw)) as ctx:
        assert ctx.dockerfile == "other/Dockerfile" and ctx.text == "FROM f\n"
    path = tmp_path / "ctx.tar"
    path.write_bytes(raw)
    with context.prepare(str(path), None) as ctx:
        assert ctx.text == "FROM e\n"
    with pytest.raises(UsageError, match="can't use stdin for both build context and dockerfile"):
        context.prepare("-", "-", io.BytesIO(raw))
    with pytest.raises(UsageError, match="Cannot locate specified Dockerfile: nope"):
        context.prepare("-", "nope", io.BytesIO(raw))


def test_tar_entry_outside_the_context_is_refused():
    with pytest.raises(UsageError, match="points outside the context"):
        context.prepare("-", None, io.BytesIO(_tar_bytes([("Dockerfile", b"FROM a\n"), ("a/../../x", b"")])))


def test_tar_context_dockerignore_removes_the_build_files_only():
    raw = _tar_bytes([("Dockerfile", b"FROM a\n"), (".dockerignore", b"Dockerfile\n*.log\n.dockerignore\n"),
                      ("x.log", b"l")])
    with context.prepare("-", None, io.BytesIO(raw)) as ctx:
        assert _names(ctx) == ["x.log", context.SPECIAL_DOCKERFILE]


def test_bad_dockerignore_pattern(tmp_path):
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, ".dockerignore": "a[\n"})
    with pytest.raises(UsageError, match="error checking context: 'syntax error in pattern'"):
        context.prepare(str(tmp_path), None)


def test_sending_line_and_size_warning(tmp_path, monkeypatch):
    assert context.sending_line(2048) == "Sending build context to Docker daemon  2.048kB\r\r\n"
    assert context.sending_line(512) == "Sending build context to Docker daemon     512B\r\r\n"
    assert context.human_size(123456789) == "123.5MB"
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, "big": "x" * 20000})
    with context.prepare(str(tmp_path), None) as ctx:
        assert context.size_warning(ctx, "ctx") is None
        monkeypatch.setattr(context, "WARN_SIZE", 10000)
        assert "has no .dockerignore" in context.size_warning(ctx, "ctx")
    _tree(tmp_path, {".dockerignore": "nothing\n"})
    with context.prepare(str(tmp_path), None) as ctx:
        assert context.size_warning(ctx, "ctx") is None


def test_the_reserved_name_is_refused(tmp_path):
    _tree(tmp_path, {"Dockerfile": DOCKERFILE, ".fleet-dockerfile/x": "x"})
    with pytest.raises(UsageError, match="holds .fleet-dockerfile, a name fleet build reserves"):
        context.prepare(str(tmp_path), None)
    raw = _tar_bytes([("Dockerfile", b"FROM a\n"), (".fleet-dockerfile/Dockerfile", b"FROM b\n")])
    with pytest.raises(UsageError, match="a name fleet build reserves"):
        context.prepare("-", None, io.BytesIO(raw))
