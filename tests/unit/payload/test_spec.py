"""Pure tests of the runtime's spec validation and its Docker-compatible formatting helpers (no root needed)."""

import io
import json
import random
import re
import signal

import pytest

from agent_payload import errors
from agent_payload.net import etcfiles
from agent_payload.runtime import logs, names, records, rootfs, status
from agent_payload.runtime.spec import DEFAULT_PATH, ContainerSpec, container_env, signal_number

IMAGE_ID = "sha256:" + "0123456789abcdef" * 4


def _spec(**kw):
    base = dict(image="nginx:latest", image_id=IMAGE_ID, lowerdirs=["/l/0", "/l/1"],
                argv=["nginx", "-g", "daemon off;"])
    base.update(kw)
    return ContainerSpec(**base)


def test_defaults_and_valid_spec():
    spec = _spec().validate()
    assert spec.name is None and spec.workdir == "/" and spec.hostname is None
    assert spec.auto_remove is False and spec.labels == {} and spec.stop_signal == "SIGTERM" and spec.env == []


@pytest.mark.parametrize("name", ["web", "a1", "my_app.v2-x", "/web", "0abc"])
def test_valid_names(name):
    assert _spec(name=name).validate().name == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "-web", "_web", "web app", "wéb", "", ".x", "a/b"])
def test_invalid_names(name):
    with pytest.raises(errors.InvalidArgument, match="Invalid container name"):
        _spec(name=name).validate()


@pytest.mark.parametrize("field,value,match", [
    ("argv", [], "No command specified"),
    ("argv", [""], "No command specified"),
    ("argv", "echo hi", "list of strings"),
    ("argv", ["a\x00b"], "NUL"),
    ("env", ["NOEQUALS"], "KEY=VALUE"),
    ("env", ["=value"], "KEY=VALUE"),
    ("env", [3], "list of strings"),
    ("image", "", "image reference"),
    ("image_id", "sha256:abc", "invalid image ID"),
    ("image_id", "0123", "invalid image ID"),
    ("lowerdirs", [], "at least one layer"),
    ("lowerdirs", ["relative/dir"], "absolute"),
    ("lowerdirs", ["/l"] * 501, "too many layers"),
    ("workdir", "app", "needs to be an absolute path"),
    ("hostname", "bad host", "invalid hostname"),
    ("hostname", "x" * 65, "invalid hostname"),
    ("labels", {"a": 1}, "labels"),
    ("auto_remove", "yes", "auto_remove"),
    ("stop_signal", "SIGNOPE", "Invalid signal"),
])
def test_invalid_fields(field, value, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        _spec(**{field: value}).validate()


def test_env_values_may_contain_equals_and_be_empty():
    _spec(env=["A=b=c", "EMPTY=", "PATH=/bin"]).validate()


def test_roundtrip_ignores_unknown_keys():
    spec = _spec(name="web", labels={"k": "v"}, auto_remove=True)
    data = spec.to_dict()
    data["id"] = "x" * 64
    assert ContainerSpec.from_dict(json.loads(json.dumps(data))) == spec


@pytest.mark.parametrize("text,num", [("SIGTERM", signal.SIGTERM), ("TERM", signal.SIGTERM), ("sigkill", 9),
                                      ("15", 15), ("SIGRTMIN+3", signal.SIGRTMIN + 3), ("SIGUSR1", signal.SIGUSR1)])
def test_signal_number(text, num):
    assert signal_number(text) == num


@pytest.mark.parametrize("text", ["0", "999", "SIG_IGN", "SIGRTMAX+1", "", "NOPE"])
def test_signal_number_rejects(text):
    with pytest.raises(errors.InvalidArgument):
        signal_number(text)


def test_container_env_defaults_and_overrides():
    env = container_env(_spec(env=["FOO=1", "HOME=/home/x"]), "abc")
    assert env == {"FOO": "1", "HOME": "/home/x", "PATH": DEFAULT_PATH, "HOSTNAME": "abc"}
    assert container_env(_spec(env=["PATH=/opt/bin"]), "h")["PATH"] == "/opt/bin"


def test_generated_names_are_docker_style():
    rng = random.Random(7)
    for retry in range(3):
        name = names.random_name(retry, rng)
        assert re.match(r"^[a-z]+_[a-z]+$" if retry == 0 else r"^[a-z]+_[a-z]+\d$", name)


# ------------------------------------------------------------ Docker-compatible presentation

@pytest.mark.parametrize("seconds,text", [(0.3, "Less than a second"), (1, "1 second"), (5, "5 seconds"),
                                          (59, "59 seconds"), (60, "About a minute"), (119, "About a minute"),
                                          (180, "3 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"),
                                          (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
                                          (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert status.human_duration(seconds) == text


def test_status_text():
    now = records.parse_ns("2026-11-28T01:10:00.5Z")
    assert status.status_text({"status": "created"}, now) == "Created"
    assert status.status_text({"status": "running", "started_at": "2026-11-28T01:09:55.000000000Z"}, now) == \
        "Up 5 seconds"
    assert status.status_text({"status": "exited", "exit_code": 0, "finished_at": "2026-11-28T01:07:00Z"}, now) == \
        "Exited (0) 3 minutes ago"
    assert status.status_text({"status": "exited", "exit_code": 137, "finished_at": "2026-11-28T01:10:00Z"}, now) \
        == "Exited (137) Less than a second ago"


def test_command_text_as_docker_ps():
    assert status.command_text(["nginx", "-g", "daemon off;"]) == "\"nginx -g 'daemon off;'\""
    assert status.command_text(["sleep", "1000"]) == '"sleep 1000"'
    assert status.command_text(["sh"]) == '"sh"'
    assert status.command_text(["echo", 'say "hi"']) == '"echo \'say \\"hi\\"\'"'


def test_rfc3339_nanoseconds_roundtrip():
    ns = 1795834923123456789
    text = records.format_ns(ns)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", text)
    assert records.parse_ns(text) == ns
    assert records.format_ns(10 ** 9 * 60) == "1970-01-01T00:01:00.000000000Z"


# ------------------------------------------------------------ rootfs helpers and the json-file log

def test_overlay_options_stay_short_for_many_layers():
    assert rootfs.overlay_options(3) == "lowerdir=l/2:l/1:l/0,upperdir=diff,workdir=work"
    assert len(rootfs.overlay_options(500)) < 4096


def test_resolv_conf_drops_loopback_nameservers():
    host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\nsearch example.com\n"
    assert etcfiles.resolv_conf(host) == "# generated\nnameserver 10.0.0.2\nsearch example.com\n"
    assert etcfiles.resolv_conf("nameserver 127.0.0.1\noptions edns0") == \
        "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_line_writer_splits_lines_and_keeps_partial_tail(tmp_path):
    buf = io.BytesIO()
    w = logs.LineWriter(buf, "stderr")
    w.feed(b"one\ntw")
    w.feed(b"o\nthree")
    w.close()
    entries = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [e["log"] for e in entries] == ["one\n", "two\n", "three"]
    assert {e["stream"] for e in entries} == {"stderr"}
    assert buf.getvalue().startswith(b'{"log":"one\\n","stream":"stderr","time":"')


def test_line_writer_splits_overlong_lines():
    buf = io.BytesIO()
    w = logs.LineWriter(buf, "stdout")
    w.feed(b"x" * (logs.MAX_LINE * 2 + 10) + b"\n")
    w.close()
    sizes = [len(json.loads(line)["log"]) for line in buf.getvalue().splitlines()]
    assert sizes == [logs.MAX_LINE, logs.MAX_LINE, 11]


def test_read_tail(tmp_path):
    path = tmp_path / "c-json.log"
    with open(str(path), "wb") as f:
        w = logs.LineWriter(f, "stdout")
        w.feed(b"".join(b"l%d\n" % i for i in range(1000)))
    lines = [ev["line"] for ev in logs.read(str(path), tail=3)]
    assert lines == ["l997\n", "l998\n", "l999\n"]
    assert len(list(logs.read(str(path)))) == 1000
    assert len(list(logs.read(str(path), tail=5000))) == 1000
    assert list(logs.read(str(path), tail=0)) == []
    ev = next(logs.read(str(path), timestamps=True))
    assert ev["stream"] == "stdout" and ev["time"].endswith("Z")
