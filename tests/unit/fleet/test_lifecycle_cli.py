"""fleet's lifecycle commands (ps, logs, run/create, wait, start -a, container prune): flags checked before any host,
the args each sends on the wire, usage errors exit 2 first."""

import pytest

from tests.helpers import cli_fakes
from tests.helpers.cli_fakes import _cli


# ---------------------------------------------------------------- fleet side: flags checked before any host

def test_security_options_and_network():
    from fleet.commands.runflags import parse_flags
    from fleet.errors import UsageError

    def isolation_args(user, cap_add, cap_drop, privileged, read_only, security_opt, network):
        args = parse_flags("create", {"user": user, "cap_add": cap_add, "cap_drop": cap_drop,
                                      "privileged": privileged, "read_only": read_only,
                                      "security_opt": security_opt, "network": network})
        return {k: args[k] for k in ("user", "cap_add", "cap_drop", "privileged", "read_only", "no_new_privileges",
                                     "seccomp", "network")}

    args = isolation_args("1000:1000", ["NET_ADMIN"], ["ALL"], False, True, ["no-new-privileges"], None)
    assert args == {"user": "1000:1000", "cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"], "privileged": False,
                    "read_only": True, "no_new_privileges": True, "seccomp": None,
                    "network": None}  # None: the host's default
    assert isolation_args(None, [], [], False, False, ["no-new-privileges:false"], "none")["no_new_privileges"] \
        is False
    assert isolation_args(None, [], [], False, False, ["no-new-privileges=true"], None)["no_new_privileges"]
    for opt in (["apparmor=x"], ["label=disable"], ["seccomp-profile=x"]):
        with pytest.raises(UsageError, match="unsupported security option"):
            isolation_args(None, [], [], False, False, opt, None)
    for opt in (["no-new-privileges:maybe"], ["no-new-privileges="], ["seccomp="], ["seccomp"]):
        with pytest.raises(UsageError, match="invalid --security-opt"):
            isolation_args(None, [], [], False, False, opt, None)
    with pytest.raises(UsageError, match="network"):
        isolation_args(None, [], [], False, False, [], "")
    assert isolation_args(None, [], [], False, False, [], "bridge")["network"] == "bridge"


# ---------------------------------------------------------------- fleet CLI: args on the wire, usage errors first

cli_calls = cli_fakes.cli_calls  # the fixture by assignment


@pytest.mark.parametrize("args,needle", [
    (["ps", "-H", "all", "-f", "foo=bar"], "invalid filter 'foo'"),
    (["container", "ls", "-H", "all", "-f", "exited=x"], "exited=x"),
    (["logs", "-H", "all", "c", "--until", "tomorrow"], "tomorrow"),
    (["kill", "-H", "all", "-s", "SIGNOPE", "c"], "Invalid signal"),
    (["export", "-H", "all", "c"], "-o"),
    (["container", "export", "-H", "all", "c", "-o", "x.tar"], "absolute"),
    (["start", "-a", "-H", "all", "a", "b"], "multiple"),
    (["create", "-H", "all", "--security-opt", "label=disable", "busybox"], "unsupported security option"),
    (["run", "-H", "all", "--network", "", "busybox"], "network"),
    (["update", "-H", "all", "-m", " ", "c"], 'invalid argument "" for "--memory" flag'),
    (["container", "prune", "-H", "all"], "-f"),
])
def test_usage_errors_exit_2_before_any_host(cli_calls, args, needle):
    result = _cli(cli_calls, *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert cli_calls.calls == []


def test_ps_and_logs_send_only_the_given_flags(cli_calls):
    cli_calls.answers["ps"] = {"containers": [{"id": "e" * 64, "name": "w", "image": "busybox", "command": '"sh"',
                                               "created": None, "status": "Up", "size": "2B (virtual 4MB)"}]}
    result = _cli(cli_calls, "ps", "-H", "h1", "-s", "-l", "-f", "status=exited", "-f", "name=w")
    assert result.exit_code == 0, result.output
    assert cli_calls.calls[-1][1:3] == ("ps", {"all": False, "filters": ["status=exited", "name=w"], "last": 1,
                                               "size": True})
    lines = result.stdout.splitlines()
    assert lines[0].split()[-1] == "SIZE" and lines[1].endswith("2B (virtual 4MB)")
    _cli(cli_calls, "container", "ps", "-H", "h1", "-n", "3")
    assert cli_calls.calls[-1][2] == {"all": False, "last": 3}
    _cli(cli_calls, "logs", "-H", "h1", "c", "--since", "10m", "--until", "2024-01-01T00:00:00Z", "--details")
    assert cli_calls.calls[-1][2] == {"container": "c", "tail": None, "follow": False, "timestamps": False,
                                      "since": "10m", "until": "2024-01-01T00:00:00Z", "details": True}


def test_run_and_create_forward_isolation_args(cli_calls):
    cli_calls.answers["create"] = {"id": "f" * 64, "name": "x", "image": "busybox"}
    result = _cli(cli_calls, "container", "create", "-H", "h1", "-u", "nobody", "--cap-add", "NET_ADMIN",
                  "--cap-add", "SYS_TIME", "--cap-drop", "MKNOD", "--privileged", "--read-only",
                  "--security-opt", "no-new-privileges:true", "--network", "none", "busybox", "id", "-u")
    assert result.exit_code == 0, result.output
    _h, op, args, _b = cli_calls.calls[-1]
    assert op == "create" and args["command"] == ["id", "-u"]
    assert {k: args[k] for k in ("user", "cap_add", "cap_drop", "privileged", "read_only", "no_new_privileges",
                                 "network")} == {"user": "nobody", "cap_add": ["NET_ADMIN", "SYS_TIME"],
                                                 "cap_drop": ["MKNOD"], "privileged": True, "read_only": True,
                                                 "no_new_privileges": True, "network": "none"}
    cli_calls.answers["run"] = {"id": "f" * 64, "name": "x", "image": "busybox", "exit_code": None}
    _cli(cli_calls, "run", "-d", "-H", "h1", "busybox")
    assert cli_calls.calls[-1][2]["network"] is None and cli_calls.calls[-1][2]["no_new_privileges"] is False


def test_wait_and_start_attach_are_unbounded_and_return_the_code(cli_calls):
    cli_calls.answers["wait"] = {"exited": [{"id": "a" * 64, "exit_code": 3}]}
    result = _cli(cli_calls, "wait", "-H", "h1", "c")
    assert result.exit_code == 0 and result.stdout.splitlines()[1].split() == ["h1", "a" * 12, "3"]
    assert cli_calls.calls[-1][3] is False
    cli_calls.answers["start"] = {"started": ["a" * 64], "exit_code": 4}
    result = _cli(cli_calls, "start", "-a", "-H", "h1", "c")
    assert result.exit_code == 4 and cli_calls.calls[-1][2] == {"containers": ["c"], "attach": True}
    assert cli_calls.calls[-1][3] is False


def test_container_prune_prompts_like_docker(cli_calls, monkeypatch):
    from fleet.commands import lifecycle

    cli_calls.answers["container_prune"] = {"deleted": ["a" * 64], "reclaimed": 2000}

    class Tty:
        def __init__(self, text):
            self.lines = [text]

        def isatty(self):
            return True

        def readline(self):
            return self.lines.pop(0)

    from fleet.commands.common import Session
    session = Session(inventories=[cli_calls.inventory])
    assert lifecycle.container_prune(session, ["all"], False, False, stdin=Tty("n\n")) == 0
    assert cli_calls.calls == []
    assert lifecycle.container_prune(session, ["all"], False, False, stdin=Tty("y\n")) == 0
    assert [c[1] for c in cli_calls.calls] == ["container_prune", "container_prune"]
