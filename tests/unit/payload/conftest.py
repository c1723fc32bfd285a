"""Fixtures shared by the payload's unit tests."""

from tests.helpers.registry_stub import paths, stubs  # noqa: F401  (fixtures: registry stubs, a state root)
from tests.helpers.cgroupfs import sleeper  # noqa: F401  (fixture: `sleep 60` processes, killed at the end)
