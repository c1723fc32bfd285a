"""fleet build's context over SSH on the lab: sent to a host only when it lacks it (bytes counted), stored as
<root>/build/contexts/<sha256>.tar with docker's .dockerignore filtering; a bad Dockerfile sends nothing."""

import hashlib
import tarfile

import pytest

from fleet.build import context
from fleet.build.upload import ensure_context
from fleet.commands.common import Session
from fleet.transport import files
from tests.helpers.lab import _ssh

pytestmark = pytest.mark.integration

CONTEXTS = "/var/lib/fleet/build/contexts"


def _tree(root):
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / ".dockerignore").write_text("*.log\nbuild\n!build/keep\n")
    (root / "a.txt").write_text("a")
    (root / "x.log").write_text("x")
    (root / "build").mkdir()
    (root / "build" / "drop").write_text("d")
    (root / "build" / "keep").write_text("k")


def _send(lab, names, ctx):
    session = Session(inventories=[str(lab.inventory)])

    async def work(conn, host, payload):
        return {"sent": await ensure_context(conn, host, payload, ctx)}
    return {r.host.name: (r.data["sent"] if r.ok else r.error)
            for r in files.run_on_hosts(session.select(names), work, session.run_options())}


def _stat(lab, host, path):
    proc = _ssh(lab, host, "stat -c '%i %a %s' " + path)
    return proc.stdout.split() if proc.returncode == 0 else None


def test_context_sent_once_per_host(lab, tmp_path):
    names = sorted(lab.hosts)[:2]
    _tree(tmp_path)
    with context.prepare(str(tmp_path), None) as ctx:
        with open(ctx.tar_path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == ctx.sha256
        with tarfile.open(ctx.tar_path) as tar:
            assert tar.getnames() == [".dockerignore", "Dockerfile", "a.txt", "build/keep"]
        target = "{}/{}.tar".format(CONTEXTS, ctx.sha256)
        try:
            assert _send(lab, names, ctx) == {n: ctx.size for n in names}
            first = {n: _stat(lab, n, target) for n in names}
            for n in names:
                assert first[n][1:] == ["600", str(ctx.size)]
                assert _stat(lab, n, CONTEXTS)[1] == "700"
                listing = _ssh(lab, n, "tar tf " + target).stdout.split()
                assert listing == [".dockerignore", "Dockerfile", "a.txt", "build/keep"]
            assert _send(lab, names, ctx) == {n: 0 for n in names}  # the second time: not a byte
            assert {n: _stat(lab, n, target) for n in names} == first  # the same file, untouched
            assert _ssh(lab, names[0], "ls /var/lib/fleet/tmp | grep -c '^cp-' || true").stdout.strip() == "0"
        finally:
            for n in names:
                _ssh(lab, n, "rm -f " + target)


def test_bad_dockerfile_exits_2_before_any_host(lab, tmp_path):
    host = sorted(lab.hosts)[0]
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\nRUNN true\n")
    (tmp_path / "unique").write_text(str(tmp_path))
    before = _ssh(lab, host, "ls {} 2>/dev/null || true".format(CONTEXTS)).stdout
    proc = lab.fleet("build", "-H", host, str(tmp_path))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Dockerfile:3: RUNN: unknown instruction: RUNN" in proc.stderr
    assert proc.stdout == ""
    assert _ssh(lab, host, "ls {} 2>/dev/null || true".format(CONTEXTS)).stdout == before
