"""Pulls sharing one host: one download and one extraction per layer, killed pulls taken over and reclaimed.

Against the registry stub of ``registry_stub`` on 127.0.0.1 (fleet issue 9, items 6 and 9).
"""

import multiprocessing
import os
import signal
import threading

from agent_payload.image import gc, images
from tests.helpers.registry_stub import REPO, make_layer, pull, run_threads, sha, temp_entries, wait_for


# -- one download per blob per host ---------------------------------------------------------------

def test_ten_concurrent_pulls_download_each_blob_once(stubs, paths):
    stub = stubs(delay=0.005)  # slow enough (~0.2 s a layer) that the ten pulls overlap
    layers = [make_layer("a", 300 * 1024, b"a"), make_layer("b", 200 * 1024, b"b"), make_layer("c", 100 * 1024, b"c")]
    image_id = stub.add_image("v1", layers)
    ref = stub.host + "/" + REPO + ":v1"
    results = run_threads([lambda: pull(paths, ref) for _ in range(10)])
    assert [exc for _r, exc in results if exc] == []
    assert {rec.id for (rec, _info), _e in results} == {image_id}
    for digest in [image_id] + [sha(b) for b, _d in layers]:
        assert stub.blob_gets(digest) == [None], digest  # exactly one GET, from the start
    assert sum(info["downloaded"] for (_rec, info), _e in results) == 3
    assert temp_entries(paths) == ([], [])
    # Every pull sees the same three committed snapshots, each extracted once.
    snaps = images.ImageStore(paths).snapshots.walk()
    assert len(snaps) == 3


def test_concurrent_pulls_of_images_sharing_layers_do_not_deadlock(stubs, paths):
    """Images sharing chains ("ab", "abc") and blobs under other chains, in the other order ("xba", "yab"):
    every pull waits for what another one holds, in whatever order its threads come; none deadlocks and
    each blob is still fetched once."""
    stub = stubs(delay=0.002)
    a, b, c, x, y = (make_layer(n, 120 * 1024, n.encode()) for n in "abcxy")
    shapes = {"ab": [a, b], "abc": [a, b, c], "xba": [x, b, a], "yab": [y, a, b]}
    for tag, layers in shapes.items():
        stub.add_image(tag, layers)
    refs = ["{}/{}:{}".format(stub.host, REPO, t) for t in shapes]
    results = run_threads([lambda r=refs[i % 4]: pull(paths, r) for i in range(8)])
    assert [exc for _r, exc in results if exc] == []
    for blob, _d in (a, b, c, x, y):
        assert stub.blob_gets(sha(blob)) == [None]
    assert len(images.ImageStore(paths).snapshots.walk()) == 3 + 3 + 3  # ab(c), xba, yab: no chain twice
    assert temp_entries(paths) == ([], [])


def test_a_blob_twice_in_one_image_is_downloaded_once(stubs, paths):
    stub = stubs()
    a, z = make_layer("a", 64 * 1024, b"a"), make_layer("z", 64 * 1024, b"z")
    stub.add_image("dup", [a, z, a])
    rec, info = pull(paths, stub.host + "/" + REPO + ":dup")
    assert stub.blob_gets(sha(a[0])) == [None]
    assert info["downloaded"] == 2 and len(rec.layers) == 3
    assert os.listdir(rec.layers[0]) == os.listdir(rec.layers[2]) == ["a"]
    assert temp_entries(paths) == ([], [])


# -- items 6 and 9: a killed pull ------------------------------------------------------------------------

def _pull_in_child(paths, ref):
    """Child process body: pull (it will be SIGKILLed while the stub holds a blob)."""
    try:
        pull(paths, ref)
    finally:
        os._exit(0)


def _start_held_pull(stub, paths, ref):
    """A child process pulling ``ref`` until the held blob is half sent and its temp dir exists."""
    proc = multiprocessing.get_context("fork").Process(target=_pull_in_child, args=(paths, ref), daemon=True)
    proc.start()
    try:
        wait_for(stub.held.is_set, what="the held blob to be half sent")
        wait_for(lambda: any(os.path.isdir(os.path.join(paths.snapshots, n)) for n in temp_entries(paths)[0]),
                 what="the pull's temp dir")
    except BaseException:
        _kill(proc)
        raise
    return proc


def _kill(proc):
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)


def _held_image(stub):
    layers = [make_layer("a", 96 * 1024, b"a"), make_layer("b", 256 * 1024, b"b")]
    stub.add_image("v1", layers)
    stub.mode[sha(layers[1][0])] = "hold"
    return layers


def test_killed_pull_temp_dir_is_reclaimed_by_the_next_pull(stubs, paths):
    stub = stubs()
    _held_image(stub)
    stub.add_image("other", [make_layer("z", 1024, b"z")])
    proc = _start_held_pull(stub, paths, stub.host + "/" + REPO + ":v1")
    _kill(proc)
    assert temp_entries(paths)[0]  # what the dead pull left
    pull(paths, stub.host + "/" + REPO + ":other")  # another image: nothing to take over, only to reclaim
    assert temp_entries(paths) == ([], [])


def test_killed_pull_temp_dir_is_reclaimed_by_prune_at_once(stubs, paths):
    stub = stubs()
    _held_image(stub)
    proc = _start_held_pull(stub, paths, stub.host + "/" + REPO + ":v1")

    def ingested():  # the half the stub sent is on disk (it may still be in the pull's buffers at first)
        return sum(os.path.getsize(os.path.join(paths.ingest, n)) for n in temp_entries(paths)[1]
                   if os.path.isfile(os.path.join(paths.ingest, n)))
    try:
        wait_for(lambda: ingested() > 0, what="the held blob's first bytes on disk")
    finally:
        _kill(proc)
    snaps, ingest = temp_entries(paths)
    assert snaps and ingest
    left = ingested()  # what the dead pull wrote of the held blob (its first half, or what of it reached the disk)
    store = images.ImageStore(paths)
    result = gc.Collector(store, lambda: []).prune()
    assert temp_entries(paths) == ([], [])
    assert result["reclaimed"] >= left > 0  # the half-downloaded blob at least


def test_waiting_pull_takes_over_from_a_killed_one(stubs, paths):
    stub = stubs()
    layers = _held_image(stub)
    held = sha(layers[1][0])
    ref = stub.host + "/" + REPO + ":v1"
    proc = _start_held_pull(stub, paths, ref)
    events = []
    try:
        waiter = threading.Thread(target=lambda: events.append(pull(paths, ref, events)), daemon=True)
        waiter.start()
        wait_for(lambda: any(e.get("status") == "Waiting" for e in events if isinstance(e, dict)) or
                 len(stub.blob_gets(held)) > 1, what="the second pull to wait")
        assert stub.blob_gets(held) == [None]  # it waits instead of downloading the same blob again
        del stub.mode[held]
    finally:
        _kill(proc)
    waiter.join(30)
    assert not waiter.is_alive()
    assert events and isinstance(events[-1], tuple), events
    gets = stub.blob_gets(held)
    assert len(gets) == 2 and gets[1] and gets[1] != "bytes=0-"  # resumed where the dead pull stopped
    assert temp_entries(paths) == ([], [])
