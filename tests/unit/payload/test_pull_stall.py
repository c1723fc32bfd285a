"""A registry that stalls or trickles is left after ``fleet-stall-timeout`` seconds (fleet issue 9, item 10)."""

import time

import pytest

from agent_payload import config as daemon_config
from agent_payload import errors
from tests.helpers.registry_stub import REPO, make_layer, pull, run_threads, sha, temp_entries, write_daemon_json


def _mirror_setup(stubs, paths, mode, timeout=1):
    origin, mirror = stubs(), stubs()
    layers = [make_layer("a", 80 * 1024, b"a")]
    for s in (origin, mirror):
        s.add_image("v1", layers)
    mirror.mode[sha(layers[0][0])] = mode
    write_daemon_json(paths, {"registries": {origin.host: {"mirrors": [{"url": "http://" + mirror.host}]}},
                              "fleet-stall-timeout": timeout})
    return origin, mirror, sha(layers[0][0])


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_stalled_mirror_falls_through_to_origin(stubs, paths, mode):
    origin, mirror, digest = _mirror_setup(stubs, paths, mode)
    start = time.monotonic()
    results = run_threads([lambda: pull(paths, origin.host + "/" + REPO + ":v1")], timeout=20)
    elapsed = time.monotonic() - start
    result, exc = results[0]
    assert exc is None
    _rec, info = result
    assert info["downloaded"] == 1
    assert len(mirror.blob_gets(digest)) == 1 and len(origin.blob_gets(digest)) == 1
    assert elapsed < 6  # stall timeout 1 s: the mirror is left within ~1-2 s, not after minutes


@pytest.mark.parametrize("mode,says", [("trickle", "sent only"), ("silent", "sent no data for 1s")])
def test_stall_on_the_only_endpoint_fails_naming_registry_and_blob(stubs, paths, mode, says):
    stub = stubs()
    layers = [make_layer("a", 80 * 1024, b"a")]
    stub.add_image("v1", layers)
    digest = sha(layers[0][0])
    stub.mode[digest] = mode
    write_daemon_json(paths, {"fleet-stall-timeout": 1})
    results = run_threads([lambda: pull(paths, stub.host + "/" + REPO + ":v1")], timeout=20)
    exc = results[0][1]
    assert isinstance(exc, errors.Unavailable)
    assert "registry {} {}".format(stub.host, says) in exc.message
    assert "while fetching blob " + digest in exc.message
    assert temp_entries(paths) == ([], [])


def test_stall_timeout_key_in_daemon_json():
    assert daemon_config.from_dict({}).stall_timeout == 30
    assert daemon_config.from_dict({"fleet-stall-timeout": 2.5}).stall_timeout == 2.5
    for bad in (0, -1, "30", True, None, 7200):
        with pytest.raises(errors.InvalidArgument, match="daemon.json: fleet-stall-timeout"):
            daemon_config.from_dict({"fleet-stall-timeout": bad})
