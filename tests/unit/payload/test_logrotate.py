"""json-file log options (docker's checks, daemon.json defaults) and rotation: writer and reader across files."""

import json
import os
import threading
import time

import pytest

from agent_payload import errors
from agent_payload.runtime import logconfig, logs
from agent_payload.state.paths import Paths


def test_sizes_are_go_units_decimal():
    assert logconfig.from_human_size("10m") == 10 * 10 ** 6
    assert logconfig.from_human_size("1k") == 1000 and logconfig.from_human_size("512") == 512
    assert logconfig.from_human_size("1.5MB") == 1500000 and logconfig.from_human_size("2g") == 2 * 10 ** 9
    with pytest.raises(errors.InvalidArgument, match="^invalid size: 'ten'$"):
        logconfig.from_human_size("ten")


@pytest.mark.parametrize("cfg,message", [
    ({"Type": "syslog"}, "failed to get logging factory: logger: no log driver named 'syslog' is registered"),
    ({"Config": {"max-bytes": "1"}}, "unknown log opt 'max-bytes' for json-file log driver"),
    ({"Config": {"max-size": "0"}}, "max-size must be a positive number"),
    ({"Config": {"max-size": "big"}}, "invalid size: 'big'"),
    ({"Config": {"max-size": "1m", "max-file": "0"}}, "max-file cannot be less than 1"),
    ({"Config": {"max-file": "x"}}, 'strconv.Atoi: parsing "x": invalid syntax'),
])
def test_checks_are_dockers(cfg, message):
    with pytest.raises(errors.InvalidArgument) as exc:
        logconfig.check(cfg)
    assert exc.value.message.startswith(message)


def test_args_merge_with_daemon_json(tmp_path):
    paths = Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path))
    assert logconfig.from_flags(None, None, paths) == {"Type": "json-file", "Config": {}}
    (tmp_path / "daemon.json").write_text(json.dumps({"log-driver": "json-file",
                                                      "log-opts": {"max-size": "10m", "max-file": "3"}}))
    assert logconfig.from_flags(None, None, paths)["Config"] == {"max-size": "10m", "max-file": "3"}
    merged = logconfig.from_flags(None, ["max-size=1k"], paths)
    assert merged == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    assert logconfig.from_flags("none", None, paths) == {"Type": "none", "Config": {}}
    with pytest.raises(errors.InvalidArgument, match="invalid key value pair format in logging opts"):
        logconfig.from_flags(None, ["max-size"], paths)
    (tmp_path / "daemon.json").write_text(json.dumps({"log-opts": {"max-size": "-"}}))
    with pytest.raises(errors.InvalidArgument, match="daemon.json: invalid size"):
        logconfig.from_flags(None, None, paths)
    assert logconfig.rotation({"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}) == (1000, 3)
    assert logconfig.rotation({"Type": "json-file", "Config": {"max-file": "3"}}) == (None, 3)


def _write(path, n, max_size, max_file, start=0):
    f = logs.RotatingFile(str(path), max_size, max_file)
    w = logs.LineWriter(f, "stdout")
    for i in range(start, start + n):
        w.feed("line {:04d}\n".format(i).encode())
    w.close()
    f.close()


def _lines(events):
    return [ev["line"].strip() for ev in events]


def test_rotation_keeps_max_file_files_and_reads_in_order(tmp_path):
    log = tmp_path / "c-json.log"
    _write(log, 100, 300, 3)
    names = sorted(os.listdir(str(tmp_path)))
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for name in names:
        assert os.path.getsize(str(tmp_path / name)) <= 300 + 80  # rotated before a write once at max-size
    lines = _lines(logs.read(str(log)))
    assert lines == ["line {:04d}".format(i) for i in range(100 - len(lines), 100)]  # the newest, in order
    assert len(lines) > 6
    assert _lines(logs.read(str(log), tail=5)) == ["line {:04d}".format(i) for i in range(95, 100)]
    assert _lines(logs.read(str(log), tail=len(lines) - 1)) == lines[1:]  # the tail spans all three files
    assert _lines(logs.read(str(log), tail=1000)) == lines
    assert _lines(logs.read(str(log), tail=0)) == []


def test_single_file_is_truncated(tmp_path):
    log = tmp_path / "c-json.log"
    _write(log, 50, 200, 1)
    assert os.listdir(str(tmp_path)) == ["c-json.log"] and os.path.getsize(str(log)) <= 280
    assert _lines(logs.read(str(log)))[-1] == "line 0049"


def test_follow_carries_on_across_a_rotation(tmp_path):
    log = tmp_path / "c-json.log"
    _write(log, 3, 10 ** 6, 3)
    done = threading.Event()

    def writer():
        time.sleep(0.2)
        for burst in range(8):  # bursts of 5 lines: up to two rotations between two looks of the reader
            _write(log, 5, 200, 3, start=3 + 5 * burst)
            time.sleep(0.1)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    got = _lines(logs.read(str(log), follow=True, running=lambda: not done.is_set(), poll=0.01))
    t.join()
    assert got[:3] == ["line 0000", "line 0001", "line 0002"]
    assert got[-1] == "line 0042"
    assert got == ["line {:04d}".format(i) for i in range(43)]  # in order, nothing lost, nothing twice
