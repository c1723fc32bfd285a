"""Layout rules for the tests themselves, so a newcomer finds shared code where they would look:

- no module under tests/ imports a test module (``test_*``) or a ``conftest``: shared helpers live in
  tests/helpers/ (plain functions, classes and fixtures), fixtures for a whole directory in its conftest.py;
- every file in tests/integration/ says what it needs: ``test_*_local.py`` runs on this machine alone,
  ``test_*_lab.py`` uses the ``lab`` fixture (a real multi-host lab; test_lab.py, the test of ``fleet lab``, builds
  its own), and a ``_local`` file never asks for it; ``test_*_vm.py`` uses the ``vm_lab`` fixture (Debian VM hosts
  under qemu), and a file that asks for ``vm_lab`` is named so.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# The test of `fleet lab` itself builds and tears down its own lab rather than taking the shared one.
BUILDS_ITS_OWN_LAB = {"test_lab.py"}


def _imported_modules(tree):
    """(lineno, dotted name) of every import (``from a import b`` gives a and a.b)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, base.rstrip(".") + "." + alias.name if base.strip(".") else base + alias.name


def imports_of_test_modules(root):
    """'path:line imports name' for each import of a test module or a conftest by a module under ``root``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        for lineno, name in _imported_modules(ast.parse(path.read_text(), str(path))):
            last = name.rsplit(".", 1)[-1]
            if last.startswith("test_") or last == "conftest":
                bad.append("{}:{} imports {}".format(path.relative_to(root), lineno, name))
    return sorted(set(bad))


def _asks_for(tree, fixture="lab"):
    """Whether a function (test or fixture) in the module takes the fixture."""
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and
               any(arg.arg == fixture for arg in node.args.args) for node in ast.walk(tree))


def misnamed_integration_files(directory):
    """Integration test files that break the ``_local``/``_lab``/``_vm`` convention, with the reason."""
    bad = []
    for path in sorted(directory.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        lab = _asks_for(tree) or path.name in BUILDS_ITS_OWN_LAB
        if path.stem.endswith("_vm"):
            if not _asks_for(tree, "vm_lab"):
                bad.append("{}: named _vm but never takes the vm_lab fixture".format(path.name))
        elif _asks_for(tree, "vm_lab"):
            bad.append("{}: takes the vm_lab fixture; name it test_*_vm.py".format(path.name))
        elif path.stem.endswith("_lab"):
            if not lab:
                bad.append("{}: named _lab but never takes the lab fixture".format(path.name))
        elif path.stem.endswith("_local"):
            if lab:
                bad.append("{}: named _local but takes the lab fixture".format(path.name))
        else:
            bad.append("{}: name it test_*_{}.py".format(path.name, "lab" if lab else "local"))
    return bad


def test_no_test_module_imports_another():
    assert imports_of_test_modules(TESTS) == []


def test_integration_files_follow_the_local_lab_convention():
    assert misnamed_integration_files(TESTS / "integration") == []


def test_the_rules_catch_violations(tmp_path):
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "test_a.py").write_text("from tests.integration.test_b import _ssh\nfrom . import helpers\n")
    (tmp_path / "test_c.py").write_text("from tests.integration import test_b as b\nimport tests.unit.conftest\n")
    (tmp_path / "test_d.py").write_text("from .test_b import x\nfrom .conftest import fleet\n")
    assert imports_of_test_modules(tmp_path) == [
        "test_a.py:1 imports tests.integration.test_b", "test_c.py:1 imports tests.integration.test_b",
        "test_c.py:2 imports tests.unit.conftest", "test_d.py:1 imports .test_b", "test_d.py:2 imports .conftest"]

    (tmp_path / "test_up_lab.py").write_text("def test_up(lab):\n    pass\n")
    (tmp_path / "test_runs_local.py").write_text("def test_runs(env):\n    pass\n")
    (tmp_path / "test_fake_lab.py").write_text("def test_x(env):\n    pass\n")
    (tmp_path / "test_wrong_local.py").write_text("import pytest\n\n@pytest.fixture\ndef clean(lab):\n    yield\n")
    (tmp_path / "test_bare.py").write_text("def test_y(tmp_path):\n    pass\n")
    (tmp_path / "test_boot_vm.py").write_text("def test_boot(vm_lab):\n    pass\n")
    (tmp_path / "test_novm_vm.py").write_text("def test_boot(lab):\n    pass\n")
    (tmp_path / "test_guest_lab.py").write_text("def test_guest(lab, vm_lab):\n    pass\n")
    for path in ("helpers.py", "test_a.py", "test_c.py", "test_d.py"):
        (tmp_path / path).unlink()
    assert misnamed_integration_files(tmp_path) == [
        "test_bare.py: name it test_*_local.py", "test_fake_lab.py: named _lab but never takes the lab fixture",
        "test_guest_lab.py: takes the vm_lab fixture; name it test_*_vm.py",
        "test_novm_vm.py: named _vm but never takes the vm_lab fixture",
        "test_wrong_local.py: named _local but takes the lab fixture"]
