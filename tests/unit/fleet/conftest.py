"""Every fleet unit test gets its own empty controller cache (fleet/cache.py), never the user's ~/.cache/fleet."""

import pytest


@pytest.fixture(autouse=True)
def _private_fleet_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path_factory.mktemp("fleet-cache")))
