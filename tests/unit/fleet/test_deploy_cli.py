"""`fleet deploy` / `rollback` / `services` on bad input: one clear error, exit 2, and no host contacted."""

import textwrap

import pytest
from typer.testing import CliRunner

from fleet.cli import app

INVENTORY = "all:\n  children:\n    web:\n      hosts:\n        web1: {ansible_host: 192.0.2.1}\n" \
            "        web2: {ansible_host: 192.0.2.2}\n    db:\n      hosts:\n        db1: {ansible_host: 192.0.2.3}\n"

GOOD = """
services:
  web:
    image: "reg.lan/app:{{ tag | default('1') }}"
    ports: ["8080:80"]
  worker:
    image: busybox
    command: ["sleep", "1000"]
"""


@pytest.fixture
def contacted(monkeypatch):
    """Fail the test if any host connection is even constructed."""
    from fleet.transport import link

    made = []

    class NoLink:
        def __init__(self, host, *a, **kw):
            made.append(host.name)
            raise AssertionError("host {} contacted".format(host.name))

    monkeypatch.setattr(link, "HostLink", NoLink)
    return made


def _run(tmp_path, compose, *args):
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(compose))
    return CliRunner().invoke(app, ["-i", str(tmp_path / "inv.yml"), *args, "-f", str(tmp_path / "compose.yaml")])


@pytest.mark.parametrize("compose,args,needle", [
    (GOOD.replace("ports:", "prots:"), [], "unknown key 'prots'"),
    (GOOD.replace('["8080:80"]', "8080"), [], "ports"),
    (GOOD.replace("{{ tag | default('1') }}", "{{ tag }}"), [], "tag"),
    (GOOD.replace('command: ["sleep", "1000"]', 'ports: ["8080:80"]'), [], "8080"),  # two services, one port
    (GOOD, ["--parallelism", "0"], "--parallelism"),
    (GOOD, ["--parallelism", "1,x"], "--parallelism"),
    (GOOD, ["-e", "not a var"], "-e"),
    (GOOD, ["--keep", "0"], "--keep"),
])
def test_bad_input_exits_2_before_any_host(tmp_path, contacted, compose, args, needle):
    res = _run(tmp_path, compose, "deploy", "-H", "all", *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and contacted == []
    assert len([line for line in res.output.splitlines() if line.startswith("fleet: error:")]) == 1


def test_rollback_of_an_unknown_service_exits_2(tmp_path, contacted):
    res = _run(tmp_path, GOOD, "rollback", "-H", "all", "nosuch")
    assert res.exit_code == 2 and "nosuch" in res.output and contacted == []


def test_no_compose_file_says_where_it_looked(tmp_path, contacted, monkeypatch):
    (tmp_path / "inv.yml").write_text(INVENTORY)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["-i", str(tmp_path / "inv.yml"), "deploy", "-H", "all"])
    assert res.exit_code == 2 and "compose.yaml" in res.output and contacted == []
