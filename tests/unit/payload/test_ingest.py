"""Ingest resume and cleanup: a dead writer's partial file is continued with Range, live writers are left alone."""

import fcntl
import hashlib
import io
import os

import pytest

from agent_payload import errors
from agent_payload.image import content, pull
from agent_payload.state.paths import Paths

DATA = os.urandom(200000)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class FakeResp(io.BytesIO):
    def __init__(self, code, body, headers=None):
        super().__init__(body)
        self.code, self.headers = code, headers or {}

    def getcode(self):
        return self.code

    def geturl(self):
        return "http://fake"


class FakeClient:
    """Serves DATA; honours Range unless told not to; can cut the body after ``cut`` bytes."""

    def __init__(self, url, ranges=True, cut=None):
        self.endpoint = type("E", (), {"url": url})()
        self.repository = "r"
        self.timeout = 30
        self.ranges, self.cut, self.calls = ranges, cut, []

    def request(self, method, url, headers=None, **kw):
        rng = (headers or {}).get("Range")
        self.calls.append(rng)
        if rng and self.ranges:
            start = int(rng.split("=")[1].rstrip("-"))
            return FakeResp(206, DATA[start:], {"Content-Range": "bytes {}-{}/{}".format(
                start, len(DATA) - 1, len(DATA))})
        return FakeResp(200, DATA[:self.cut] if self.cut else DATA)


@pytest.fixture
def store(tmp_path):
    return content.ContentStore(Paths(root=str(tmp_path / "state"), config_dir=str(tmp_path / "cfg")))


def _leave_partial(store, n):
    os.makedirs(store.paths.ingest, exist_ok=True)
    path = os.path.join(store.paths.ingest, DIGEST[7:] + content.PARTIAL_SUFFIX)
    with open(path, "wb") as f:
        f.write(DATA[:n])
    return path


def _read_all(stream):
    out = b""
    while True:
        chunk = stream.read(7000)
        if not chunk:
            return out
        out += chunk


@pytest.mark.parametrize("ranges", [True, False])
def test_resume_replays_partial_then_continues_at_offset(store, ranges):
    _leave_partial(store, 50000)
    ing = store.begin(DIGEST, len(DATA))
    assert ing.existing == 50000
    client = FakeClient("http://a", ranges=ranges)
    got = _read_all(pull.BlobStream(ing, [client], {"digest": DIGEST, "size": len(DATA)}))
    assert got == DATA  # the reader above sees the whole blob from byte 0, replay included
    assert client.calls == ["bytes=50000-"]
    ing.verify()
    ing.publish()
    assert store.read_bytes(DIGEST) == DATA and os.listdir(store.paths.ingest) == []


def test_cut_connection_continues_on_next_endpoint_with_range(store):
    ing = store.begin(DIGEST, len(DATA))
    first, second = FakeClient("http://a", cut=80000), FakeClient("http://b")
    got = _read_all(pull.BlobStream(ing, [first, second], {"digest": DIGEST, "size": len(DATA)}))
    assert got == DATA and second.calls == ["bytes=80000-"]
    ing.verify()


def test_cut_everywhere_is_unavailable_and_discard_removes_file(store):
    ing = store.begin(DIGEST, len(DATA))
    stream = pull.BlobStream(ing, [FakeClient("http://a", ranges=False, cut=1000)],
                             {"digest": DIGEST, "size": len(DATA)})
    with pytest.raises(errors.Unavailable, match="connection closed after 1000 of 200000 bytes"):
        _read_all(stream)
    ing.discard()
    assert os.listdir(store.paths.ingest) == [] and not store.has(DIGEST)


def test_corrupt_partial_fails_digest_check(store):
    path = _leave_partial(store, 1000)
    with open(path, "r+b") as f:
        f.write(bytes([DATA[0] ^ 0xFF]))  # a byte that surely differs (DATA is random)
    ing = store.begin(DIGEST, len(DATA))
    _read_all(pull.BlobStream(ing, [FakeClient("http://a")], {"digest": DIGEST, "size": len(DATA)}))
    with pytest.raises(errors.FailedPrecondition, match="digest mismatch"):
        ing.verify()
    ing.discard()
    assert not store.has(DIGEST) and os.listdir(store.paths.ingest) == []


def test_second_writer_of_same_blob_gets_private_file(store):
    a = store.begin(DIGEST, len(DATA))
    b = store.begin(DIGEST, len(DATA))
    assert a.path != b.path and a.path.endswith(content.PARTIAL_SUFFIX)
    a.discard()
    b.discard()


def test_clean_ingest_keeps_live_and_resumable_removes_dead(store):
    keep_path = _leave_partial(store, 10)
    other = os.path.join(store.paths.ingest, "b" * 64 + content.PARTIAL_SUFFIX)
    open(other, "wb").close()
    dead_tmp = os.path.join(store.paths.ingest, "cccccccccccc-xyz")
    open(dead_tmp, "wb").close()
    live = store.begin("sha256:" + "d" * 64, 5, resume=False)  # a concurrent writer holds its lock
    removed = store.clean_ingest(keep=[DIGEST[7:]])
    assert sorted(removed) == sorted([os.path.basename(other), os.path.basename(dead_tmp)])
    assert os.path.exists(keep_path) and os.path.exists(live.path)
    # A file that is locked by someone else is never removed, even if nobody keeps it.
    fd = os.open(keep_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert store.clean_ingest() == []
    finally:
        os.close(fd)
    assert store.clean_ingest() == [os.path.basename(keep_path)]
    live.discard()


def test_oversized_partial_is_restarted(store):
    path = _leave_partial(store, 10)
    with open(path, "ab") as f:
        f.write(b"\0" * (len(DATA) + 5))
    ing = store.begin(DIGEST, len(DATA))
    assert ing.existing == 0 and os.path.getsize(path) == 0
    ing.discard()
