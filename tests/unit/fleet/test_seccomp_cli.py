"""--security-opt seccomp=... on the controller: read the profile file here (as docker's CLI), check it, send it."""

import json

import pytest

from fleet.commands import runflags
from fleet.errors import UsageError
from tests.helpers.cli_fakes import _cli, cli_calls  # noqa: F401  (fixture)



def security_args(opts):
    """--security-opt through run/create's one parse: its op args."""
    args = runflags.parse_flags("create", {"security_opt": opts})
    return {k: args[k] for k in ("no_new_privileges", "seccomp")}


PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def test_security_args_keywords_files_and_last_one_wins(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(PROFILE, indent=4))
    assert security_args([]) == {"no_new_privileges": False, "seccomp": None}
    assert security_args(["seccomp=unconfined"])["seccomp"] == "unconfined"
    assert security_args(["seccomp:builtin"])["seccomp"] == "builtin"
    sent = security_args(["no-new-privileges", "seccomp=" + str(f)])
    assert sent["no_new_privileges"] is True
    assert json.loads(sent["seccomp"]) == PROFILE and "\n" not in sent["seccomp"]  # compact, as docker sends it
    assert security_args(["seccomp=" + str(f), "seccomp=unconfined"])["seccomp"] == "unconfined"


@pytest.mark.parametrize("content,needle", [
    (None, "opening seccomp profile ({path}) failed: no such file or directory"),
    ('{"defaultAction": ', "seccomp profile ({path}): decoding seccomp profile failed"),
    ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "seccomp profile ({path}): defaultAction: SCMP_ACT_NOTIFY is not "
                                             "supported"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}',
     "seccomp profile ({path}): syscalls[0]: invalid action 'ALLOW'"),
])
def test_bad_profile_files_exit_2_naming_the_file(cli_calls, tmp_path, content, needle):  # noqa: F811
    f = tmp_path / "bad.json"
    if content is not None:
        f.write_text(content)
    for cmd in (["run", "-d"], ["create"]):
        result = _cli(cli_calls, *cmd, "-H", "all", "--security-opt", "seccomp=" + str(f), "busybox")
        assert result.exit_code == 2, result.output
        assert needle.format(path=f) in result.stderr, result.stderr
    assert cli_calls.calls == []


def test_run_sends_the_profile_content(cli_calls, tmp_path):  # noqa: F811
    f = tmp_path / "p.json"
    f.write_text(json.dumps(PROFILE))
    cli_calls.answers["run"] = {"id": "f" * 64, "name": "x", "image": "busybox", "exit_code": None}
    result = _cli(cli_calls, "run", "-d", "-H", "h1", "--security-opt", "seccomp=" + str(f),
                  "--security-opt", "no-new-privileges", "busybox")
    assert result.exit_code == 0, result.output
    args = cli_calls.calls[-1][2]
    assert json.loads(args["seccomp"]) == PROFILE and args["no_new_privileges"] is True
    _cli(cli_calls, "run", "-d", "-H", "h1", "--security-opt", "seccomp=unconfined", "busybox")
    assert cli_calls.calls[-1][2]["seccomp"] == "unconfined"
    _cli(cli_calls, "run", "-d", "-H", "h1", "busybox")
    assert cli_calls.calls[-1][2]["seccomp"] is None


def test_unreadable_utf8_is_a_usage_error(tmp_path):
    f = tmp_path / "p.json"
    f.write_bytes(b'{"defaultAction": "\xff"}')
    with pytest.raises(UsageError, match="opening seccomp profile .*p.json.* failed"):
        security_args(["seccomp=" + str(f)])
