"""The payload zipapp is deterministic (the hash is the version) and runnable by hand."""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from fleet.transport import payload


def test_same_sources_same_bytes():
    a, b = payload.build(), payload.build()
    assert a.data == b.data
    assert a.sha256 == b.sha256 == hashlib.sha256(a.data).hexdigest()


def test_build_does_not_depend_on_mtime_or_location(tmp_path):
    src = payload.source_dir()
    copy = tmp_path / "agent_payload"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for p in copy.rglob("*.py"):
        os.utime(p, (1_000_000, 1_000_000))
    assert payload.build(copy).sha256 == payload.build().sha256


def test_a_source_change_changes_the_hash(tmp_path):
    copy = tmp_path / "agent_payload"
    shutil.copytree(payload.source_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "facts.py").write_text((copy / "facts.py").read_text() + "\n# changed\n")
    assert payload.build(copy).sha256 != payload.build().sha256


def test_ships_only_python_sources(tmp_path):
    built = payload.build()
    path = tmp_path / built.filename
    path.write_bytes(built.data)
    names = zipfile.ZipFile(path).namelist()
    assert "__main__.py" in names
    assert all(n.endswith(".py") for n in names)
    assert not any("__pycache__" in n or n.startswith("fleet/") for n in names)


def test_zipapp_runs_by_hand_with_system_python(tmp_path):
    built = payload.build()
    path = tmp_path / built.filename
    path.write_bytes(built.data)
    env = dict(os.environ, FLEET_ROOT=str(tmp_path / "root"), FLEET_CONFIG_DIR=str(tmp_path / "etc"))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    out = subprocess.run([python, str(path), "ps", "-a"], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[:2] == ["CONTAINER", "ID"]
    rpc = subprocess.run([python, str(path), "--rpc"], input='{"protocol": 1, "payload": "%s", "op": "ping"}'
                         % built.sha256, capture_output=True, text=True, env=env, check=True)
    assert '"ok":true' in rpc.stdout


def test_first_run_unpacks_a_code_cache_and_refuses_a_corrupt_file(tmp_path):
    built = payload.build()
    path = tmp_path / built.filename
    path.write_bytes(built.data)
    env = dict(os.environ, FLEET_ROOT=str(tmp_path / "root"), FLEET_CONFIG_DIR=str(tmp_path / "etc"))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    subprocess.run([python, "-S", "-E", str(path), "ps"], capture_output=True, env=env, check=True)
    cache = tmp_path / (built.sha256 + ".d")
    assert (cache / "agent_payload" / "cli.py").read_bytes() == (payload.source_dir() / "cli.py").read_bytes()

    corrupt = tmp_path / ("0" * 64 + ".pyz")
    corrupt.write_bytes(built.data)
    proc = subprocess.run([python, "-S", "-E", str(corrupt), "ps"], capture_output=True, text=True, env=env)
    assert proc.returncode == 3 and "corrupt" in proc.stderr
    assert not (tmp_path / ("0" * 64 + ".d")).exists()


def _old_pythons():
    import glob
    found = {}
    for pattern in ("/usr/bin/python3.[89]", "/root/.pyenv/versions/3.[89].*/bin/python3",
                    os.path.expanduser("~/.pyenv/versions/3.[89].*/bin/python3")):
        for path in sorted(glob.glob(pattern)):
            out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                found.setdefault(out.stdout.strip(), path)
    return found


@pytest.mark.parametrize("version", ["3.8", "3.9"])
def test_payload_runs_on_the_oldest_supported_pythons(tmp_path, version):
    python = _old_pythons().get(version)
    if python is None:
        pytest.skip("no python{} on this machine".format(version))
    built = payload.build()
    path = tmp_path / built.filename
    path.write_bytes(built.data)
    env = dict(os.environ, FLEET_ROOT=str(tmp_path / "root"), FLEET_CONFIG_DIR=str(tmp_path / "etc"))
    for argv in (["ps", "-a"], ["images"], ["facts"]):
        proc = subprocess.run([python, "-S", "-E", str(path)] + argv, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
    rpc = subprocess.run([python, "-S", "-E", str(path), "--rpc"], capture_output=True, text=True, env=env,
                         input='{"protocol": 1, "payload": "%s", "op": "facts"}' % built.sha256)
    assert '"ok":true' in rpc.stdout and '"python":"{}.'.format(version) in rpc.stdout, rpc.stdout + rpc.stderr
