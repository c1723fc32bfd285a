"""The payload's code cache (<sha>.d) never trusts the umask, and a cache others could have changed is never run.

Each run goes through the real remote command line (invoke.remote_command) in /bin/sh, as sshd would run it.
"""

import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import types

import pytest

from fleet.transport import invoke, payload

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
NOBODY = 65534


@pytest.fixture(scope="module")
def built():
    return payload.build()


class Host:
    """One fake host: a state root under tmp_path with the payload uploaded as the controller does."""

    def __init__(self, tmp_path, built, pyz_mode=0o644, dir_mode=0o755):
        self.built = built
        self.root = tmp_path / "root"
        self.root.mkdir(mode=0o700)
        self.payload_dir = self.root / "payload"
        self.payload_dir.mkdir()
        os.chmod(self.payload_dir, dir_mode)
        self.pyz = self.payload_dir / built.filename
        self.pyz.write_bytes(built.data)
        os.chmod(self.pyz, pyz_mode)
        self.cache = self.payload_dir / (built.sha256 + ".d")
        self.env = dict(os.environ, FLEET_ROOT=str(self.root), FLEET_CONFIG_DIR=str(tmp_path / "etc"))
        self.host = types.SimpleNamespace(vars={"fleet_root": str(self.root)}, python=PYTHON)

    def run(self, op="ping", umask=0o022):
        request = json.dumps({"protocol": 1, "payload": self.built.sha256, "op": op, "args": {}})
        old = os.umask(umask)
        try:
            return subprocess.run(["/bin/sh", "-c", invoke.remote_command(self.host, self.built)], input=request,
                                  capture_output=True, text=True, env=self.env, timeout=60)
        finally:
            os.umask(old)

    def result(self, proc):
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        results = [m for m in lines if m.get("type") == "result"]
        assert results, "no result (exit {}): {}".format(proc.returncode, proc.stderr)
        return results[-1]


def _tree(path):
    """{relative path: (mode, uid, mtime_ns)} of every entry under ``path`` (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_mtime_ns)
    return out


def _cache_tag():
    return subprocess.run([PYTHON, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _assert_pristine(host):
    """Every dir 0755, every file 0644, all ours, no symlink; sources as shipped; bytecode for every module."""
    tree = _tree(host.cache)
    assert tree
    tag = _cache_tag()
    sources = [rel for rel in tree if rel.endswith(".py")]
    assert "agent_payload/cli.py" in sources
    for rel, (mode, uid, _mtime) in tree.items():
        assert uid == os.geteuid(), rel
        if stat.S_ISDIR(mode):
            assert stat.S_IMODE(mode) == 0o755, (rel, oct(mode))
        else:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, (rel, oct(mode))
    top = os.stat(host.cache)
    assert stat.S_IMODE(top.st_mode) == 0o755 and top.st_uid == os.geteuid()
    for rel in sources:
        head, name = os.path.split(rel)
        assert os.path.join(head, "__pycache__", "{}.{}.pyc".format(name[:-3], tag)) in tree, rel
        shipped = payload.source_dir() / os.path.relpath(rel, "agent_payload")
        assert (host.cache / rel).read_bytes() == shipped.read_bytes(), rel


def test_unpack_at_umask_000_gives_explicit_modes_and_python_writes_nothing_later(tmp_path, built):
    host = Host(tmp_path, built)
    first = host.run("ping", umask=0)
    assert host.result(first)["ok"], first.stderr
    _assert_pristine(host)
    before = _tree(host.cache)
    # warm runs (from the cache, as the controller's command line does) at umask 000 add and change nothing:
    # no __pycache__ written at the umask, no .pyc rewritten
    for op in ("ping", "facts"):
        proc = host.run(op, umask=0)
        assert host.result(proc)["ok"], proc.stderr
    assert _tree(host.cache) == before
    assert sorted(os.listdir(host.payload_dir)) == [built.sha256 + ".d", built.filename]


def _marker_code(marker):
    return "open({!r}, 'w').write('pwned')\n".format(str(marker))


def _tamper_file_mode(host, marker):
    cli = host.cache / "agent_payload" / "cli.py"
    os.chmod(cli, 0o666)  # what extractall left at umask 000: anyone could now edit it ...
    cli.write_text(_marker_code(marker) + cli.read_text())  # ... and so they did
    shutil.rmtree(host.cache / "agent_payload" / "__pycache__")  # (so that the source is what runs)


def _tamper_file_owner(host, marker):
    cli = host.cache / "agent_payload" / "cli.py"
    cli.write_text(_marker_code(marker) + cli.read_text())
    os.chown(cli, NOBODY, NOBODY)
    shutil.rmtree(host.cache / "agent_payload" / "__pycache__")


def _tamper_new_module(host, marker):
    os.chmod(host.cache, 0o777)  # a world-writable top dir: a json.py there shadows the stdlib's (sys.path[0])
    (host.cache / "json.py").write_text(_marker_code(marker))


def _tamper_forged_pyc(host, marker):
    """A writable __pycache__: a forged unchecked-hash .pyc for cli, which Python runs without a look at the source."""
    pycache = host.cache / "agent_payload" / "__pycache__"
    os.chmod(pycache, 0o777)
    forged = host.cache.parent / "forged.py"
    forged.write_text(_marker_code(marker) + (host.cache / "agent_payload" / "cli.py").read_text())
    target = pycache / "cli.{}.pyc".format(_cache_tag())
    os.unlink(target)
    py_compile.compile(str(forged), cfile=str(target), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    os.chown(target, NOBODY, NOBODY)
    forged.unlink()


def _tamper_symlink(host, marker):
    evil = host.cache.parent.parent / "evil"
    evil.mkdir()
    (evil / "facts.py").write_text(_marker_code(marker))
    os.unlink(host.cache / "agent_payload" / "facts.py")
    os.symlink(evil / "facts.py", host.cache / "agent_payload" / "facts.py")
    (host.cache / "agent_payload" / "__pycache__" / "facts.{}.pyc".format(_cache_tag())).unlink(missing_ok=True)


def _tamper_top_owner(host, marker):
    for p in [host.cache] + [host.cache / rel for rel in _tree(host.cache)]:
        os.lchown(p, NOBODY, NOBODY)
    _tamper_file_owner(host, marker)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("tamper", [_tamper_file_mode, _tamper_file_owner, _tamper_new_module, _tamper_forged_pyc,
                                    _tamper_symlink, _tamper_top_owner])
def test_a_tampered_cache_is_never_run_but_replaced(tmp_path, built, tamper):
    """Policy: a cache that fails the check is removed and unpacked again from the .pyz (verified against its
    name), not an error: the cache is always rebuildable, and an error would strand the host."""
    host = Host(tmp_path, built)
    assert host.result(host.run())["ok"]
    marker = tmp_path / "marker"
    tamper(host, marker)
    for op in ("ping", "facts"):  # facts imports facts.py (the symlinked module)
        proc = host.run(op)
        assert not marker.exists(), "tampered code ran"
        assert host.result(proc)["ok"], proc.stderr
    _assert_pristine(host)
    assert sorted(os.listdir(host.payload_dir)) == [built.sha256 + ".d", built.filename]  # nothing left aside


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("what", ["dir-mode", "pyz-mode", "pyz-owner"])
def test_a_payload_others_can_change_is_refused(tmp_path, built, what):
    host = Host(tmp_path, built, dir_mode=0o777 if what == "dir-mode" else 0o755,
                pyz_mode=0o666 if what == "pyz-mode" else 0o644)
    if what == "pyz-owner":
        os.chown(host.pyz, NOBODY, NOBODY)
    proc = host.run()
    assert proc.returncode == 3 and not proc.stdout
    assert "refusing to run it" in proc.stderr and str(host.pyz) in proc.stderr
    assert not host.cache.exists()
