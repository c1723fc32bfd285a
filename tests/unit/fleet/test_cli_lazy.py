"""fleet.cli.main registers only the module of the command it runs (COMMAND_MODULES): the table must match the fully
registered app, each module alone must register its commands, and the command is found behind any global option."""

import json
import subprocess
import sys

import pytest
import typer

from fleet import cli


def _top_level():
    command = typer.main.get_command(cli.app)
    return {name: (None if hasattr(c, "commands") else c.callback.__module__.rsplit(".", 1)[1])
            for name, c in command.commands.items()}


def test_the_table_lists_every_top_level_command_with_its_module_and_no_group():
    registered = _top_level()
    commands = {name: module for name, module in registered.items() if module is not None}
    assert cli.COMMAND_MODULES == commands
    assert set(cli.MODULES) >= set(commands.values())


@pytest.mark.parametrize("module", sorted(set(cli.COMMAND_MODULES.values())))
def test_each_module_alone_registers_its_commands(module):
    code = ("import json, typer\nfrom fleet import cli\nfrom fleet.cli import base\ncli.register(({!r},))\n"
            "print(json.dumps(sorted(typer.main.get_command(base.app).commands)))").format(module)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    wanted = sorted(name for name, m in cli.COMMAND_MODULES.items() if m == module)
    got = json.loads(proc.stdout)
    assert set(wanted) <= set(got), (wanted, got)


@pytest.mark.parametrize("argv,name", [
    (["ps", "-H", "all"], "ps"),
    (["-i", "inv.yml", "ps"], "ps"),
    (["-iinv.yml", "ping"], "ping"),
    (["--inventory=inv.yml", "-f", "3", "--forks", "ps", "ping"], "ping"),
    (["--timeout", "5", "--connect-timeout", "1", "--identity", "k", "--accept-new-host-keys", "images"], "images"),
    (["--help"], None),
    ([], None),
])
def test_the_command_is_found_after_the_global_options(argv, name):
    assert cli.command_name(argv) == name


def test_groups_help_and_unknown_names_register_everything():
    for argv in (["container", "ls"], ["--help"], ["nosuchcommand"], ["-i", "x", "lab", "up"]):
        assert cli.modules_for(argv) == cli.MODULES
    assert cli.modules_for(["-i", "x", "ps", "-H", "all"]) == ("containers",)


def test_a_lazily_registered_command_runs_as_the_full_app_would(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    a:\n      ansible_host: 10.0.0.1\n")
    out = []
    for code in ("from fleet import cli; cli.main()", "from fleet import cli; cli.app()"):
        proc = subprocess.run([sys.executable, "-c", code, "-i", str(inv), "hosts", "-H", "all", "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out.append(proc.stdout)
    assert out[0] == out[1] and json.loads(out[0])[0]["address"] == "10.0.0.1"
