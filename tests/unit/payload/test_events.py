"""The host's event journal (agent_payload/events.py) and the ``events`` op: bounded, rotated, appended whole
under its flock by concurrent writers, never failing the action that records it; docker's filters and times."""

import json
import multiprocessing
import os
import stat
import threading
import time

import pytest

from agent_payload import errors, events
from agent_payload.ops import Context, dispatch
from agent_payload.state.paths import Paths

CID = "c" * 64


def _paths(tmp_path):
    return Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc"), run=str(tmp_path / "run"))


def _all(paths):
    return list(events.read(paths))


def test_an_event_is_docker_s_message_in_a_private_journal(tmp_path):
    paths = _paths(tmp_path)
    events.container(paths, "die", {"id": CID, "name": "web", "image": "busybox", "labels": {"tier": "front"}},
                     exitCode=3)
    (ev,) = _all(paths)
    assert ev["Type"] == "container" and ev["Action"] == "die" and ev["status"] == "die" and ev["id"] == CID
    assert ev["Actor"] == {"ID": CID, "Attributes": {"name": "web", "image": "busybox", "tier": "front",
                                                     "exitCode": "3"}}
    assert ev["scope"] == "local" and ev["time"] == ev["timeNano"] // 10 ** 9
    assert abs(ev["timeNano"] - time.time_ns()) < 10 * 10 ** 9
    assert stat.S_IMODE(os.stat(events.journal_path(paths)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(events.directory(paths)).st_mode) == 0o700


def test_the_journal_rotates_and_stays_bounded(tmp_path):
    paths = _paths(tmp_path)
    ev = events.message("container", "start", CID, {"name": "x" * 200})
    size = len(json.dumps(ev)) + 1
    for i in range(200):
        events.append(paths, dict(ev, timeNano=i), max_bytes=10 * size, keep=2)
    path = events.journal_path(paths)
    assert not os.path.exists(path + ".3")
    files = [path + ".2", path + ".1", path]
    assert all(os.path.getsize(f) <= 10 * size for f in files)
    kept = [e["timeNano"] for f in files for e in map(json.loads, open(f).read().splitlines())]
    assert kept == list(range(200 - len(kept), 200))  # the newest ones, in order, none torn
    assert len(kept) >= 20


def _writer(root, n):
    paths = Paths(root=root)
    for i in range(n):
        events.append(paths, events.message("container", "start", str(os.getpid()), {"i": i, "pad": "y" * 300}),
                      max_bytes=20000, keep=50)


def test_concurrent_appends_from_processes_never_interleave_or_lose_a_line(tmp_path):
    paths = _paths(tmp_path)
    os.makedirs(paths.root)
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(paths.root, 100)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    path = events.journal_path(paths)
    lines = []
    for n in range(50, 0, -1):
        if os.path.exists("{}.{}".format(path, n)):
            lines += open("{}.{}".format(path, n)).read().splitlines()
    lines += open(path).read().splitlines()
    evs = [json.loads(line) for line in lines]  # every line whole
    assert len(evs) == 400
    for pid in {e["Actor"]["ID"] for e in evs}:  # each writer's own lines in its order
        assert [int(e["Actor"]["Attributes"]["i"]) for e in evs if e["Actor"]["ID"] == pid] == list(range(100))


def test_a_failing_write_never_fails_the_action(tmp_path):
    paths = _paths(tmp_path)
    os.makedirs(paths.root)
    with open(os.path.join(paths.root, "events"), "w"):
        pass  # a file where the directory should be: every write fails
    events.record(paths, "volume", "create", "v1")
    events.container(paths, "start", None)  # not even a config
    events.container_of(paths, "missing", "kill", signal=9)
    assert _all(paths) == []


def _ev(type_, action, actor, ns=0, **attrs):
    return events.message(type_, action, actor, attrs, now_ns=ns)


EVS = [
    _ev("container", "start", CID, name="web", image="nginx:1.25", tier="front"),
    _ev("container", "health_status: healthy", CID, name="web", image="nginx:1.25"),
    _ev("container", "die", "d" * 64, name="db", image="postgres", exitCode="1"),
    _ev("image", "pull", "busybox:latest", name="busybox"),
    _ev("network", "connect", "n" * 64, name="backend", container=CID),
    _ev("volume", "create", "data", driver="local"),
]


@pytest.mark.parametrize("flt,expected", [
    ([], [0, 1, 2, 3, 4, 5]),
    (["type=container"], [0, 1, 2]),
    (["type=image", "type=volume"], [3, 5]),  # one key: OR
    (["event=die"], [2]),
    (["event=health_status"], [1]),  # docker: health_status matches "health_status: <status>"
    (["event=health_status: healthy"], [1]),
    (["event=health"], []),
    (["container=web"], [0, 1]),
    (["container=" + CID[:12]], [0, 1]),  # an ID prefix
    (["container=web", "event=start"], [0]),  # keys: AND
    (["image=nginx:1.25"], [0, 1]),
    (["image=nginx"], [0, 1]),
    (["image=busybox"], [3]),
    (["label=tier"], [0]),
    (["label=tier=front"], [0]),
    (["label=tier=back"], []),
    (["network=backend"], [4]),
    (["volume=data"], [5]),
])
def test_docker_s_filters(flt, expected):
    f = events.Filters(flt)
    assert [i for i, ev in enumerate(EVS) if f.match(ev)] == expected


@pytest.mark.parametrize("bad", ["nope=1", "container"])
def test_an_unknown_filter_is_invalid_and_names_it(bad):
    with pytest.raises(errors.InvalidArgument, match="Invalid filter 'nope'|Invalid filter 'container'"):
        events.Filters([bad])


def _op(paths, **args):
    out = []
    dispatch(Context(paths, "dev", []), "events", args, lambda name, d: out.append((name, d)))
    assert {name for name, _ in out} <= {"event"}
    return [d for _, d in out]


def test_the_op_reads_between_since_and_until_in_docker_s_time_values(tmp_path):
    paths = _paths(tmp_path)
    base = 1_700_000_000 * 10 ** 9
    for i in range(5):
        events.append(paths, _ev("container", "start", CID, ns=base + i * 10 ** 9, name="c{}".format(i)))
    names = [e["Actor"]["Attributes"]["name"] for e in _op(paths, since="1700000001", until="1700000003")]
    assert names == ["c1", "c2", "c3"]
    got = _op(paths, since="2023-11-14T22:13:22Z", filters=["container=c3"])  # 1700000002 is 22:13:22 UTC
    assert [e["Actor"]["Attributes"]["name"] for e in got] == ["c3"]
    assert len(_op(paths, since="10m")) == 0  # a duration: relative to now
    with pytest.raises(errors.InvalidArgument):
        _op(paths, since="yesterday")
    with pytest.raises(errors.InvalidArgument, match="Invalid filter"):
        _op(paths, filters=["colour=red"])


def test_follow_streams_new_events_across_a_rotation(tmp_path):
    paths = _paths(tmp_path)
    events.record(paths, "volume", "create", "old")  # before since: not shown
    since = time.time_ns() + 1
    got, done = [], threading.Event()

    def follow():
        for ev in events.follow(paths, since=since, filters=events.Filters(["type=volume"]), stop=done.is_set,
                                poll=0.01):
            got.append(ev["Actor"]["ID"])
    t = threading.Thread(target=follow)
    t.start()
    try:
        deadline = time.monotonic() + 20
        sent = []
        for i in range(20):  # each one seen before the next is written: the follower crosses every rotation
            sent.append("v{}".format(i))
            events.append(paths, events.message("container", "start", CID), max_bytes=1000)  # filtered out
            events.append(paths, events.message("volume", "create", sent[-1], {"pad": "z" * 100}), max_bytes=1000)
            while got != sent and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == sent
        assert os.path.exists(events.journal_path(paths) + ".1")  # it did rotate meanwhile
    finally:
        done.set()
        t.join(10)


def test_follow_with_since_replays_history_then_streams(tmp_path):
    paths = _paths(tmp_path)
    events.record(paths, "volume", "create", "a")
    done = threading.Event()
    got = []

    def follow():
        for ev in events.follow(paths, since=0, stop=done.is_set, poll=0.01):
            got.append(ev["Actor"]["ID"])
    t = threading.Thread(target=follow)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while got != ["a"] and time.monotonic() < deadline:
            time.sleep(0.01)
        events.record(paths, "volume", "create", "b")
        while got != ["a", "b"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == ["a", "b"]
    finally:
        done.set()
        t.join(10)


def test_follow_ends_when_until_passes(tmp_path):
    paths = _paths(tmp_path)
    events.record(paths, "volume", "create", "a")
    start = time.monotonic()
    got = _op(paths, since="0", until=str(time.time() + 0.3), follow=True)
    assert [e["Actor"]["ID"] for e in got] == ["a"]
    assert time.monotonic() - start < 5


def test_an_image_pull_and_its_delete_are_recorded(stubs, paths):
    from agent_payload.image import gc, images
    from tests.helpers.registry_stub import REPO, make_layer, pull

    stub = stubs()
    image_id = stub.add_image("v1", [make_layer("a", 1000, b"1")])
    ref = "{}/{}:v1".format(stub.host, REPO)
    pull(paths, ref)
    gc.Collector(images.ImageStore(paths), lambda: []).remove([ref])
    got = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events.read(paths)]
    assert got == [("image", "pull", ref, {"name": "{}/{}".format(stub.host, REPO)}),
                   ("image", "delete", image_id, {"name": image_id})]
