"""CLI of commit and cp: argument rules and usage errors exit 2 before any host is contacted; commit's request."""

import pytest
from typer.testing import CliRunner

from fleet import cli
from fleet.commands.transfer import split_cp_arg
from fleet.errors import UsageError
from fleet.transport import files
from tests.helpers import cli_fakes

inventory, calls = cli_fakes.inventory, cli_fakes.calls  # fixtures


def invoke(inventory, *args):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args))


@pytest.mark.parametrize("arg,expected", [
    ("c:/etc/x", ("c", "/etc/x")), ("c:rel", ("c", "rel")), ("/abs:with:colons", (None, "/abs:with:colons")),
    ("./a:b", (None, "./a:b")), ("plain", (None, "plain")), ("c:", ("c", "")),
])
def test_split_cp_arg(arg, expected):
    assert split_cp_arg(arg) == expected


@pytest.fixture
def no_hosts(monkeypatch):
    """Fail the test if cp ever tries to reach a host."""
    def boom(*a, **k):
        raise AssertionError("a host was contacted")
    monkeypatch.setattr(files, "run_on_hosts", boom)


@pytest.mark.parametrize("args,needle", [
    (["cp", "-H", "all", "a", "b"], "must specify at least one container source"),
    (["cp", "-H", "all", "c1:/a", "c2:/b"], "copying between containers is not supported"),
    (["cp", "-H", "all", "/nonexistent-src-path", "c:/tmp"], "no such file or directory"),
    (["cp", "-H", "all", "c:", "/tmp"], "container path must not be empty"),
    (["cp", "-H", "all", "c:/etc", "-"], "exactly one host"),
    (["container", "cp", "-H", "all", ":/x", "/tmp"], "invalid container name"),
    (["commit", "-H", "all", "c", "Bad:Name"], "Bad:Name"),
    (["container", "commit", "-H", "all", "c", "x@sha256:" + "a" * 64], "digest"),
])
def test_usage_errors_exit_2(inventory, no_hosts, calls, args, needle):  # noqa: F811
    res = invoke(inventory, *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert calls.calls == []


def test_commit_request(inventory, calls):  # noqa: F811
    calls.answers["commit"] = lambda host, a: {"id": "sha256:" + "c" * 64, "repository": "app:1"}
    res = invoke(inventory, "commit", "-H", "web1", "-a", "me", "-m", "msg", "-c", "CMD x", "-c", "ENV A=1",
                 "--no-pause", "box", "app:1")
    assert res.exit_code == 0, res.output
    assert calls.calls == [("web1", "commit", {"container": "box", "repository": "app:1", "author": "me",
                                               "message": "msg", "changes": ["CMD x", "ENV A=1"], "pause": False})]
    assert "sha256:" + "c" * 64 in res.output



cli_calls = cli_fakes.cli_calls


def test_export_without_o_writes_the_tar_to_stdout(cli_calls):  # noqa: F811
    """docker export CONTAINER: the tar on stdout when stdout is not a terminal; the staged copy is fetched."""
    cli_calls.answers["export_out"] = {"staging": "/var/lib/fleet/tmp/cp-1.tar", "size": 7, "sha256": "x"}
    cli_calls.answers["cp_out:file"] = b"\x00tar\xff\n"
    result = cli_fakes._cli(cli_calls, "export", "-H", "h1", "c1")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"\x00tar\xff\n"
    assert [(h, op, a) for h, op, a, _b in cli_calls.calls] == [("h1", "export_out", {"container": "c1"})]


def test_export_to_stdout_needs_one_host_and_no_terminal(cli_calls, monkeypatch):  # noqa: F811
    """docker refuses a terminal ("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    fleet also refuses several hosts for stdout.  Both exit 2 before any host is contacted."""
    many = cli_fakes._cli(cli_calls, "export", "-H", "all", "c1")
    assert many.exit_code == 2 and "exactly one host" in many.stderr and cli_calls.calls == []
    from fleet.commands import transfer

    class Terminal:
        def isatty(self):
            return True
    with pytest.raises(UsageError, match="cowardly refusing to save to a terminal. Use the -o flag or redirect"):
        transfer.export_stdout(None, ["h1"], "c1", stdout=Terminal())
