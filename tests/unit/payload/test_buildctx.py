"""ops/buildctx: the build context store (presence check, checked upload, atomic rename, last-N kept)."""

import hashlib
import os
import stat

import pytest

from agent_payload import errors
from agent_payload.ops import Context, dispatch
from agent_payload.ops import buildctx


def _call(paths, **args):
    return dispatch(Context(paths, "dev", None), "build_context", args, lambda *a: None)


def _stage(paths, data, name="cp-upload.tar"):
    os.makedirs(paths.tmp, mode=0o700, exist_ok=True)
    path = os.path.join(paths.tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_absent_then_uploaded_then_present(paths):
    data = b"context bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert _call(paths, sha256=sha) == {"present": False, "size": None, "kept": False}
    staging = _stage(paths, data)
    assert _call(paths, sha256=sha, staging=staging) == {"present": True, "size": len(data), "kept": True}
    assert not os.path.exists(staging)
    target = paths.build_context(sha)
    with open(target, "rb") as f:
        assert f.read() == data
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.build_contexts).st_mode) == 0o700
    assert _call(paths, sha256=sha) == {"present": True, "size": len(data), "kept": False}


def test_corrupt_upload_is_refused_and_removed(paths):
    staging = _stage(paths, b"other bytes")
    sha = hashlib.sha256(b"context").hexdigest()
    with pytest.raises(errors.InvalidArgument, match="build context upload corrupt"):
        _call(paths, sha256=sha, staging=staging)
    assert not os.path.exists(staging) and not os.path.exists(paths.build_context(sha))


@pytest.mark.parametrize("args", [{"sha256": "../x"}, {"sha256": "A" * 64}, {}])
def test_bad_digest(paths, args):
    with pytest.raises(errors.InvalidArgument):
        _call(paths, **args)


def test_staging_must_be_a_fleet_staging_file(paths, tmp_path):
    outside = tmp_path / "cp-x.tar"
    outside.write_bytes(b"x")
    with pytest.raises(errors.InvalidArgument, match="staging file must be"):
        _call(paths, sha256=hashlib.sha256(b"x").hexdigest(), staging=str(outside))
    assert outside.exists()


def test_only_the_newest_contexts_are_kept(paths, monkeypatch):
    monkeypatch.setattr(buildctx, "CONTEXTS_KEPT", 3)
    shas = []
    for i in range(3):
        data = b"ctx %d" % i
        shas.append(hashlib.sha256(data).hexdigest())
        _call(paths, sha256=shas[-1], staging=_stage(paths, data))
        os.utime(paths.build_context(shas[-1]), (1000 + i, 1000 + i))
    assert _call(paths, sha256=shas[0])["present"]  # a use refreshes it: the oldest is now ctx 1
    data = b"ctx 3"
    _call(paths, sha256=hashlib.sha256(data).hexdigest(), staging=_stage(paths, data))
    kept = sorted(os.listdir(paths.build_contexts))
    assert kept == sorted(s + ".tar" for s in (shas[0], shas[2], hashlib.sha256(data).hexdigest()))
