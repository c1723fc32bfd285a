"""run/create's --env-file, -l/--label, --label-file, --stop-signal, --stop-timeout, --init on the controller."""

import pytest

from fleet.commands import runflags
from fleet.errors import UsageError
from tests.helpers.cli_fakes import _cli, cli_calls  # noqa: F401  (fixture)


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


# ---- one declaration (agent_payload/containeropts.py) for fleet run/create/update and the hand CLI


def _options(*path):
    """The option strings of a fleet command, as click sees them."""
    import typer

    from fleet import cli

    command = typer.main.get_command(cli.app)
    for name in path:
        command = command.get_command(None, name)
    return {opt for param in command.params for opt in param.opts + param.secondary_opts if opt.startswith("-")}


@pytest.mark.parametrize("path,table", [(["run"], "run"), (["container", "run"], "run"), (["create"], "create"),
                                        (["container", "create"], "create"), (["update"], "update")])
def test_the_commands_take_exactly_the_table_s_flags(path, table):
    from agent_payload import containeropts

    own = {"-H", "--hosts", "--json", "--help"}
    assert _options(*path) - own == {n for f in containeropts.flags_for(table) for n in f.names}


def test_help_shows_each_flag_with_its_help_text():
    from typer.testing import CliRunner

    from agent_payload import containeropts
    from fleet import cli

    text = " ".join(CliRunner().invoke(cli.app, ["run", "--help"], terminal_width=400).output.split())
    for flag in containeropts.flags_for("run"):
        assert ", ".join(flag.names) in text and " ".join(flag.help.split()) in text, flag.dest


def test_hand_cli_run_takes_the_table_s_flags():
    from agent_payload import containeropts, handcli

    run = handcli._parser()._subparsers._group_actions[0].choices["run"]
    opts = {o for action in run._actions for o in action.option_strings} - {"--help"}
    assert opts == {n for f in containeropts.flags_for("run") for n in f.hand_names}
    assert "-h" in opts and not {"-i", "-t", "--detach-keys"} & opts  # docker's -h; attaching is the controller's


def test_run_spec_sections_hold_every_op_arg():
    from fleet.commands.runflags import RunSpec, parse, parse_flags

    for command in ("run", "create"):
        spec = parse(command, "busybox", ["true"], {})
        assert spec.op == command
        assert spec.op_args() == dict(parse_flags(command, {}), image="busybox", command=["true"])
    with pytest.raises(TypeError, match="new_key"):
        RunSpec.from_args("busybox", [], dict(parse_flags("run", {}), new_key=1))


def test_hand_cli_and_fleet_send_the_same_request(cli_calls, tmp_path, monkeypatch):  # noqa: F811
    from agent_payload import handcli

    monkeypatch.setenv("FROM_ENV", "x")
    envf = tmp_path / "e.env"
    envf.write_text("A=1\nFROM_ENV\n")
    flags = ["-d", "--name", "n", "--rm", "-e", "FROM_ENV", "--env-file", str(envf), "--entrypoint", "sh", "-w", "/w",
             "-u", "1:2", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--read-only", "--security-opt",
             "no-new-privileges", "--network", "none", "-p", "80:80", "-P", "--network-alias", "a", "--ip",
             "10.0.0.9", "-l", "k=v", "--stop-signal", "USR1", "--stop-timeout", "3", "--init", "-m", "32m",
             "--memory-swap", "-1", "--cpus", "0.5", "-c", "512", "--pids-limit", "9", "--restart", "always",
             "--health-cmd", "true", "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "2",
             "--health-start-period", "1s", "--no-healthcheck", "--log-driver", "json-file", "--log-opt",
             "max-size=1k", "-v", "/data", "--mount", "type=tmpfs,target=/t"]
    cli_calls.answers["run"] = {"id": "f" * 64, "name": "n", "image": "busybox", "exit_code": None}
    result = _cli(cli_calls, "run", "-H", "h1", "--hostname", "hh", *flags, "busybox", "echo", "hi")
    assert result.exit_code == 0, result.output
    sent = cli_calls.calls[-1][2]
    by_hand = handcli._hand_args(handcli._parser().parse_args(["run", "-h", "hh", *flags, "busybox", "echo", "hi"]))
    assert by_hand == sent
    assert sent["env"] == ["A=1", "FROM_ENV=x", "FROM_ENV=x"] and sent["log_opts"] == ["max-size=1k"]


@pytest.mark.parametrize("flags,needle", [
    (["--add-host", "nohost"], 'invalid argument "nohost" for "--add-host" flag: bad format for add-host: "nohost"'),
    (["--add-host", "db:1.2.3"], 'invalid IP address in add-host: "1.2.3"'),
    (["--dns", "resolver"], 'invalid argument "resolver" for "--dns" flag: resolver is not an ip address'),
    (["--dns-search", "bad_domain!"], '"--dns-search" flag: bad_domain! is not a valid domain'),
    (["--tmpfs", "relative"], 'invalid mount path "relative": mount path must be absolute'),
    (["--tmpfs", "/t:bogus=1"], "invalid tmpfs option 'bogus=1'"),
    (["--shm-size", "lots"], 'invalid argument "lots" for "--shm-size" flag: invalid size'),
    (["--ulimit", "nofile=2:1"], "ulimit soft limit must be less than or equal to hard limit: 2 > 1"),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["--ulimit", "nofile"], "invalid ulimit argument: nofile"),
    (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname=x' is not allowed"),
    (["--sysctl", "net.core.somaxconn=1", "--network", "host"], 'sysctl "net.core.somaxconn" not allowed in host'),
    (["--device", "/dev/sda:/dev/xvda:rwx"], "bad mode specified: rwx"),
    (["--device", "sda"], "bad format for path: sda"),
    (["--device", "/dev/sda:/xvda"], "the container path /xvda is not under /dev"),
    (["--expose", "http"], "invalid containerPort: http"),
    (["--mac-address", "zz:d0:c6:0a:29:33"], "zz:d0:c6:0a:29:33 is not a valid mac address"),
    (["--link", "a:b:c"], "bad format for links: a:b:c"),
    (["--link", "db", "--network", "host"], "host type networking can't be used with links"),
    (["--volumes-from", "src:rx"], '"--volumes-from" flag: invalid mode: rx'),
])
def test_bad_host_flags_exit_2_before_any_host(cli_calls, flags, needle):  # noqa: F811
    """docker's CLI refuses each bad value before the daemon is asked: one error naming flag and value, exit 2."""
    for verb in (["run", "-d"], ["create"]):
        result = _cli(cli_calls, *verb, "-H", "all", *flags, "busybox")
        assert result.exit_code == 2, result.output
        assert needle in result.stderr
    assert cli_calls.calls == []


def test_host_flags_are_sent_as_typed(cli_calls):  # noqa: F811
    cli_calls.answers["create"] = {"id": "f" * 64, "name": "x", "image": "busybox"}
    result = _cli(cli_calls, "create", "-H", "h1", "--add-host", "db=10.0.0.1", "--tmpfs", "/t", "--ulimit",
                  "nproc=10", "--sysctl", "fs.mqueue.msg_max=20", "--shm-size", "1g", "--group-add", "50",
                  "--expose", "80", "--oom-kill-disable", "--cpuset-cpus", "0", "busybox")
    assert result.exit_code == 0, result.output
    args = cli_calls.calls[-1][2]
    assert (args["extra_hosts"], args["tmpfs"], args["ulimits"], args["sysctls"]) == (
        ["db=10.0.0.1"], ["/t"], ["nproc=10"], ["fs.mqueue.msg_max=20"])
    assert (args["shm_size"], args["group_add"], args["expose"]) == ("1g", ["50"], ["80"])
    assert (args["oom_kill_disable"], args["cpuset_cpus"]) == (True, "0")


def test_cidfile_gets_the_id_on_one_host_and_is_refused_otherwise(cli_calls, tmp_path):  # noqa: F811
    """docker run/create --cidfile FILE writes the full ID to FILE on the client; an existing FILE is refused
    before anything is done.  fleet's client is this machine: several hosts (several IDs) are refused, exit 2."""
    cli_calls.answers["create"] = {"id": "c" * 64, "name": "x", "image": "busybox"}
    cli_calls.answers["run"] = {"id": "d" * 64, "name": "x", "image": "busybox", "exit_code": None}
    made, ran = tmp_path / "made.cid", tmp_path / "ran.cid"
    assert _cli(cli_calls, "create", "-H", "h1", "--cidfile", str(made), "busybox").exit_code == 0
    assert made.read_text() == "c" * 64 and "cidfile" not in cli_calls.calls[-1][2]  # never sent
    assert _cli(cli_calls, "run", "-d", "-H", "h1", "--cidfile", str(ran), "busybox").exit_code == 0
    assert ran.read_text() == "d" * 64
    sent = len(cli_calls.calls)
    again = _cli(cli_calls, "run", "-d", "-H", "h1", "--cidfile", str(ran), "busybox")
    assert again.exit_code == 2 and "container ID file found, make sure the other container isn't running or " \
        "delete {}".format(ran) in again.stderr
    several = _cli(cli_calls, "create", "-H", "all", "--cidfile", str(tmp_path / "x.cid"), "busybox")
    assert several.exit_code == 2 and "--cidfile needs exactly one host" in several.stderr
    tty = _cli(cli_calls, "run", "-it", "-H", "h1", "--cidfile", str(tmp_path / "y.cid"), "busybox")
    assert tty.exit_code == 2 and "--cidfile with an attached -i/-t run" in tty.stderr
    assert len(cli_calls.calls) == sent and not (tmp_path / "x.cid").exists() and not (tmp_path / "y.cid").exists()
    assert ran.read_text() == "d" * 64  # the refused run left it alone


def test_cidfile_of_a_failed_create_is_removed(tmp_path):
    from types import SimpleNamespace

    from fleet.errors import FleetError
    from fleet.transport.fanout import HostResult

    host = SimpleNamespace(name="h1")
    cid = runflags.CidFile.claim(str(tmp_path / "c.cid"), [host])
    assert (tmp_path / "c.cid").read_text() == ""  # made at once, empty (docker's O_EXCL create)
    cid.finish([HostResult(host, error=FleetError("no such image"))])
    assert not (tmp_path / "c.cid").exists()
    ran = runflags.CidFile.claim(str(tmp_path / "r.cid"), [host])
    ran.on_event(host, "created", {"id": "e" * 64})  # run's event: written before the start
    assert (tmp_path / "r.cid").read_text() == "e" * 64
    ran.finish([HostResult(host, error=FleetError("start failed"))])
    assert (tmp_path / "r.cid").read_text() == "e" * 64  # the container exists: docker keeps the file


@pytest.mark.parametrize("flags, needle", [
    (["--device-read-bps", "sda:1mb"], 'invalid argument "sda:1mb" for "--device-read-bps" flag: bad format for '
                                       'device path'),
    (["--device-write-bps", "/dev/sda:fast"], '"--device-write-bps" flag: invalid rate for device: /dev/sda:fast'),
    (["--device-read-iops", "/dev/sda"], '"--device-read-iops" flag: bad format: /dev/sda'),
    (["--device-write-iops", "/dev/sda:1k"], '"--device-write-iops" flag: invalid rate for device'),
    (["--blkio-weight", "5"], '"--blkio-weight" flag: Range of blkio weight is from 10 to 1000'),
    (["--blkio-weight-device", "/dev/sda:2000"], '"--blkio-weight-device" flag: invalid weight for device'),
])
def test_bad_blkio_flags_exit_2_before_any_host(cli_calls, flags, needle):  # noqa: F811
    for verb in (["run", "-d"], ["create"]):
        result = _cli(cli_calls, *verb, "-H", "all", *flags, "busybox")
        assert result.exit_code == 2, result.output
        assert needle in result.stderr
    assert cli_calls.calls == []


def test_blkio_flags_are_sent_as_typed_and_update_takes_the_weight(cli_calls):  # noqa: F811
    cli_calls.answers["create"] = {"id": "f" * 64, "name": "x", "image": "busybox"}
    result = _cli(cli_calls, "create", "-H", "h1", "--device-read-bps", "/dev/vda:1mb", "--device-write-bps",
                  "/dev/vda:2m", "--device-read-iops", "/dev/vda:100", "--device-write-iops", "/dev/vda:50",
                  "--blkio-weight", "300", "--blkio-weight-device", "/dev/vda:200", "busybox")
    assert result.exit_code == 0, result.output
    args = cli_calls.calls[-1][2]
    assert (args["device_read_bps"], args["device_write_bps"], args["device_read_iops"],
            args["device_write_iops"]) == (["/dev/vda:1mb"], ["/dev/vda:2m"], ["/dev/vda:100"], ["/dev/vda:50"])
    assert (args["blkio_weight"], args["blkio_weight_device"]) == ("300", ["/dev/vda:200"])
    update = runflags.parse_flags("update", {"blkio_weight": "500"})
    assert update["blkio_weight"] == "500" and "device_read_bps" not in update
    with pytest.raises(UsageError, match="Range of blkio weight"):
        runflags.parse_flags("update", {"blkio_weight": "1"})
