"""state/store.py: atomic writes, durable (fsync of the file and its directory) unless the caller opts out."""

import os

from agent_payload.state import store


def test_durable_write_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    store.write_bytes_atomic(str(tmp_path / "state.json"), b"{}\n")
    assert len(synced) == 2
    assert (tmp_path / "state.json").read_bytes() == b"{}\n"


def test_non_durable_write_is_atomic_without_fsync(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    path = tmp_path / "hosts"
    path.write_bytes(b"old\n")
    store.write_bytes_atomic(str(path), b"new\n", mode=0o644, durable=False)
    assert synced == []
    assert path.read_bytes() == b"new\n" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["hosts"]  # no temp file left behind
