"""The `lab` fixture: a real 3-host lab (network namespaces, sshd, registry) built by `fleet lab up`."""

import os

import pytest

from tests.helpers.lab import LAB_NAME, LAB_SUBNET, Lab, fleet


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
