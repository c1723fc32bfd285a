"""run/create's --env-file, -l/--label, --label-file, --stop-signal, --stop-timeout, --init on the controller."""

import pytest

from fleet.commands import runflags
from fleet.errors import UsageError
from tests.unit.payload.test_lifecycle import _cli, cli_calls  # noqa: F401  (fixture)


def env_file_entries(env_files):
    """--env-file through run/create's one parse: the env it sends."""
    return runflags.parse_flags("create", {"env_file": env_files})["env"]


def label_map(labels, label_files):
    return runflags.parse_flags("create", {"label": labels, "label_file": label_files})["labels"]


def process_args(labels, label_files, stop_signal, stop_timeout, init):
    args = runflags.parse_flags("create", {"label": labels, "label_file": label_files, "stop_signal": stop_signal,
                                           "stop_timeout": stop_timeout, "init": init})
    return {k: args[k] for k in ("labels", "stop_signal", "stop_timeout", "init")}


def test_env_file_docker_format(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HERE", "local value")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    f = tmp_path / "app.env"
    f.write_bytes(b"\xef\xbb\xbf# comment\n\n   LEADING=spaces kept after =  \nEMPTY=\nQUOTED=\"as is\"\n"
                  b"A=b=c\nFROM_HERE\nNOT_SET_ANYWHERE\n  # indented comment\nCRLF=x\r\n")
    assert env_file_entries([str(f)]) == [
        "LEADING=spaces kept after =  ", "EMPTY=", 'QUOTED="as is"', "A=b=c", "FROM_HERE=local value", "CRLF=x"]


@pytest.mark.parametrize("content,needle", [
    (b"=value\n", "no variable name on line '=value'"),
    (b"BAD KEY=1\n", "variable 'BAD KEY' contains whitespaces"),
    (b"OK=1\nX=\xff\n", "invalid utf8 bytes at line 2"),
])
def test_env_file_errors_name_the_file(tmp_path, content, needle):
    f = tmp_path / "bad.env"
    f.write_bytes(content)
    with pytest.raises(UsageError) as exc:
        env_file_entries([str(f)])
    assert needle in str(exc.value) and str(f) in str(exc.value)


def test_missing_env_file(tmp_path):
    with pytest.raises(UsageError, match="open .*nope.env: no such file or directory"):
        env_file_entries([str(tmp_path / "nope.env")])


def test_labels_file_then_flags(tmp_path):
    f = tmp_path / "labels"
    f.write_text("# team labels\ntier=backend\nowner=ops\nflag\n")
    assert label_map(["owner=me", "x=1=2", "bare"], [str(f)]) == {
        "tier": "backend", "owner": "me", "flag": "", "x": "1=2", "bare": ""}
    with pytest.raises(UsageError, match="invalid label '=v': empty name"):
        label_map(["=v"], [])


def test_process_args_validation():
    assert process_args([], [], "SIGUSR1", 3, True) == {"labels": {}, "stop_signal": "SIGUSR1",
                                                                "stop_timeout": 3, "init": True}
    with pytest.raises(UsageError, match="Invalid signal: SIGNOPE"):
        process_args([], [], "SIGNOPE", None, None)
    with pytest.raises(UsageError, match="--stop-timeout"):
        process_args([], [], None, -2, None)


def test_run_and_create_send_the_flags(cli_calls, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SECRET", "s3")
    envf, labf = tmp_path / "e.env", tmp_path / "l.txt"
    envf.write_text("A=from-file\nB=file\nSECRET\n")
    labf.write_text("team=a\n")
    cli_calls.answers["create"] = {"id": "f" * 64, "name": "x", "image": "busybox"}
    result = _cli(cli_calls, "create", "-H", "h1", "--env-file", str(envf), "-e", "B=flag", "-l", "k=v",
                  "--label", "team=b", "--label-file", str(labf), "--stop-signal", "USR1", "--stop-timeout", "4",
                  "--init", "busybox")
    assert result.exit_code == 0, result.output
    args = cli_calls.calls[-1][2]
    assert args["env"] == ["A=from-file", "B=file", "SECRET=s3", "B=flag"]  # -e after the file: it wins
    assert args["labels"] == {"team": "b", "k": "v"}
    assert (args["stop_signal"], args["stop_timeout"], args["init"]) == ("USR1", 4, True)
    cli_calls.answers["run"] = {"id": "f" * 64, "name": "x", "image": "busybox", "exit_code": None}
    assert _cli(cli_calls, "run", "-d", "-H", "h1", "busybox").exit_code == 0
    args = cli_calls.calls[-1][2]
    assert args["labels"] == {} and args["init"] is None and args["stop_timeout"] is None


@pytest.mark.parametrize("flags,needle", [
    (["--env-file", "/nonexistent/x.env"], "/nonexistent/x.env"),
    (["--stop-signal", "NOPE"], "Invalid signal: NOPE"),
    (["--stop-timeout", "-5"], "--stop-timeout"),
    (["-l", "=x"], "empty name"),
])
def test_bad_flags_exit_2_before_any_host(cli_calls, flags, needle):  # noqa: F811
    for verb in (["run", "-d"], ["create"]):
        result = _cli(cli_calls, *verb, "-H", "all", *flags, "busybox")
        assert result.exit_code == 2, result.output
        assert needle in result.stderr
    assert cli_calls.calls == []


def test_stop_and_restart_leave_the_timeout_to_the_container(cli_calls):  # noqa: F811
    cli_calls.answers["stop"] = {"stopped": ["a" * 64]}
    cli_calls.answers["restart"] = {"restarted": ["a" * 64]}
    _cli(cli_calls, "stop", "-H", "h1", "c")
    assert cli_calls.calls[-1][2] == {"containers": ["c"], "time": None}
    _cli(cli_calls, "restart", "-H", "h1", "-t", "2", "c")
    assert cli_calls.calls[-1][2] == {"containers": ["c"], "time": 2}
