"""Session fixtures: ``lab``, a real 3-host lab (network namespaces, sshd, registry) built by `fleet lab up`, and
``vm_lab``, a lab of its own with a Debian VM host per suite under qemu (`fleet lab up --hosts 0 --vm ...`)."""

import os

import pytest

from tests.helpers.lab import LAB_NAME, LAB_SUBNET, Lab, fleet
from tests.helpers.vmlab import VmLabBoot, missing_tools


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    inv = tmp_path_factory.mktemp("lab") / "lab.yml"
    common = ["--name", LAB_NAME, "--subnet", LAB_SUBNET, "--inventory-out", str(inv)]
    try:
        fleet("lab", "up", "--hosts", "3", *common, check=True, timeout=1200)
        yield Lab(inv)
    finally:
        fleet("lab", "down", *common, timeout=300)


_VM_BOOT = []      # the session's VmLabBoot, once a collected test asks for vm_lab


def _vm_lab_unavailable():
    """Why this machine cannot run VM hosts (None when it can). Under CI=true nothing excuses it: a failure there."""
    if os.geteuid() != 0:
        return "VM hosts need root"
    missing = missing_tools()
    return "VM hosts need {}".format(", ".join(missing)) if missing else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Start booting the VM hosts in the background as soon as a selected test needs them."""
    if any("vm_lab" in getattr(item, "fixturenames", ()) for item in items):
        if _vm_lab_unavailable() is None and not _VM_BOOT:
            _VM_BOOT.append(VmLabBoot())
            _VM_BOOT[0].start()


@pytest.fixture(scope="session")
def vm_lab():
    why = _vm_lab_unavailable()
    if why and os.environ.get("CI") != "true":
        pytest.skip(why)
    assert why is None, why
    if not _VM_BOOT:
        _VM_BOOT.append(VmLabBoot())
    try:
        yield _VM_BOOT[0].wait()
    finally:
        _VM_BOOT[0].down()
        _VM_BOOT.clear()


def pytest_sessionfinish(session, exitstatus):
    """A boot started for tests that then never ran (deselected, interrupted) is torn down too."""
    while _VM_BOOT:
        _VM_BOOT.pop().down()
