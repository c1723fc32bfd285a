"""Content store tests: verified ingest, mismatches never enter the store, present blobs are skipped."""

import hashlib
import io
import os

import pytest

from agent_payload import config, errors
from agent_payload.image import content
from agent_payload.state.paths import Paths


@pytest.fixture
def store(tmp_path):
    return content.ContentStore(Paths(root=str(tmp_path / "state"), config_dir=str(tmp_path / "cfg")))


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_ingest_verifies_and_renames(store):
    data = os.urandom(300000)
    calls = []
    path = store.ingest(digest_of(data), len(data), io.BytesIO(data), lambda cur, tot: calls.append((cur, tot)))
    assert path == os.path.join(store.paths.blobs, digest_of(data)[7:])
    assert store.has(digest_of(data)) and store.read_bytes(digest_of(data)) == data
    assert calls[-1] == (len(data), len(data))
    assert len(calls) < 10  # throttled, not one call per chunk
    assert os.listdir(store.paths.ingest) == []


@pytest.mark.parametrize("size_delta", [0, None])
def test_digest_mismatch_leaves_no_blob(store, size_delta):
    data = b"the real bytes"
    wrong = digest_of(b"something else")
    with pytest.raises(errors.FailedPrecondition, match="digest mismatch"):
        store.ingest(wrong, len(data) if size_delta is not None else None, io.BytesIO(data))
    assert not store.has(wrong)
    assert os.listdir(store.paths.blobs) == []
    assert os.listdir(store.paths.ingest) == []


@pytest.mark.parametrize("claimed", [5, 100])
def test_size_mismatch_leaves_no_blob(store, claimed):
    data = b"0123456789"
    with pytest.raises(errors.FailedPrecondition, match="size|more than"):
        store.ingest(digest_of(data), claimed, io.BytesIO(data))
    assert not store.has(digest_of(data))
    assert os.listdir(store.paths.ingest) == []


def test_present_blob_is_skipped(store):
    data = b"abc"
    store.write_bytes(digest_of(data), data)

    class Exploding:
        def read(self, n=-1):
            raise AssertionError("must not download a present blob")

    assert store.ingest(digest_of(data), 3, Exploding()) == store.path(digest_of(data))


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha512:" + "a" * 128, "", None])
def test_malformed_digests_never_name_paths(store, bad):
    with pytest.raises(errors.InvalidArgument):
        store.ingest(bad, 1, io.BytesIO(b"x"))


def test_daemon_json(tmp_path):
    paths = Paths(root=str(tmp_path), config_dir=str(tmp_path / "cfg"))
    default = config.load(paths)  # missing file: defaults, loopback insecure as in dockerd
    assert default.registry_mirrors == [] and default.is_insecure("127.0.0.1:5000")
    assert default.is_insecure("localhost:5000") and not default.is_insecure("10.1.2.3:5000")
    os.makedirs(paths.config_dir)
    with open(paths.daemon_json, "w") as f:
        f.write('{"registry-mirrors": ["https://mirror.example/"], '
                '"insecure-registries": ["reg.lan:5000", "10.213.0.0/16", "http://other.lan"]}')
    cfg = config.load(paths)
    assert cfg.registry_mirrors == ["https://mirror.example"]
    assert cfg.is_insecure("reg.lan:5000") and cfg.is_insecure("10.213.0.2:5000") and cfg.is_insecure("other.lan")
    assert not cfg.is_insecure("docker.io") and not cfg.is_insecure("10.214.0.1")
    with open(paths.daemon_json, "w") as f:
        f.write("{not json")
    with pytest.raises(errors.InvalidArgument, match="daemon.json"):
        config.load(paths)
    with open(paths.daemon_json, "w") as f:
        f.write('{"registry-mirrors": ["ftp://x"]}')
    with pytest.raises(errors.InvalidArgument, match="mirror"):
        config.load(paths)


def test_publish_refuses_unless_verify_passed_since_the_last_byte(store):
    data = b"0123456789"
    ing = store.begin(digest_of(data), len(data), resume=False)
    ing.write(data[:4])
    with pytest.raises(errors.Internal, match="publish without a passed verify"):
        ing.publish()  # never verified
    ing.write(data[4:])
    ing.verify()
    ing.restart()
    ing.write(data)
    with pytest.raises(errors.Internal, match="publish without a passed verify"):
        ing.publish()  # verified once, but bytes came after it
    assert not store.has(digest_of(data)) and os.path.exists(ing.path)
    bad = store.begin(digest_of(b"other"), None, resume=False)
    bad.write(data)
    with pytest.raises(errors.FailedPrecondition):
        bad.verify()
    with pytest.raises(errors.Internal):
        bad.publish()  # a failed verify does not count either
    bad.discard()
    assert not store.has(digest_of(b"other"))
    ing.verify()
    assert ing.publish() == store.path(digest_of(data)) and store.read_bytes(digest_of(data)) == data
