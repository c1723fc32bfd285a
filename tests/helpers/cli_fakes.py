"""The fleet CLI without hosts, for unit tests: the fan-out (``Session.run_hosts``) replaced by a recorder.

``cli_calls`` records (host, op, args, bounded) on a two-host inventory, run with ``_cli(rec, *args)``;
``calls`` records (host, op, args) and answers per host, with ``inventory`` (web1, web2, db1 with registry settings).
Test modules take the fixtures by assignment (``inventory, calls = cli_fakes.inventory, cli_fakes.calls``).
"""

from types import SimpleNamespace

import pytest

from fleet.commands.common import Session, raise_if_rejected_input
from fleet.transport.fanout import HostResult

INVENTORY = """
all:
  children:
    web:
      hosts:
        web1:
          ansible_host: 10.0.0.1
          fleet_registry_mirrors: ["http://10.0.0.2:5000"]
          fleet_insecure_registries: ["10.0.0.2:5000"]
          fleet_daemon: {debug: true}
        web2:
          ansible_host: 10.0.0.2
          fleet_registries: {"reg:5000": {"mirrors": ["http://m:5000"]}}
    db:
      hosts:
        db1: {ansible_host: 10.0.0.3}
"""


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    return str(path)


@pytest.fixture
def calls(monkeypatch):
    """Replace the fan-out: record every call; hosts answer with ``answers[op](host, args)``."""
    record = SimpleNamespace(calls=[], answers={})

    def run_hosts(self, hosts, op, args, on_event=None, bounded=True, args_for=None):
        out = []
        for h in hosts:
            a = args_for(h) if args_for else args
            record.calls.append((h.name, op, a))
            answer = record.answers.get(op, lambda host, a: {})(h, a)
            out.append(HostResult(h, error=answer) if isinstance(answer, Exception) else HostResult(h, data=answer))
        raise_if_rejected_input(out)  # as the real run_hosts does
        return out

    monkeypatch.setattr(Session, "run_hosts", run_hosts)
    return record


TWO_HOSTS = "all:\n  hosts:\n    h1: {ansible_host: 10.0.0.1}\n    h2: {ansible_host: 10.0.0.2}\n"


@pytest.fixture
def cli_calls(monkeypatch, tmp_path):
    """Replace the fan-out: record (host, op, args); each op answers ``answers[op]``."""
    from types import SimpleNamespace

    from fleet.commands.common import Session, raise_if_rejected_input
    from fleet.transport.fanout import HostResult

    rec = SimpleNamespace(calls=[], answers={}, inventory=str(tmp_path / "inv.yml"))
    (tmp_path / "inv.yml").write_text(TWO_HOSTS)

    def run_hosts(self, hosts, op, args, on_event=None, bounded=True, args_for=None):
        out = []
        for h in hosts:
            rec.calls.append((h.name, op, args, bounded))
            out.append(HostResult(h, data=rec.answers.get(op, {})))
        raise_if_rejected_input(out)
        return out

    monkeypatch.setattr(Session, "run_hosts", run_hosts)
    return rec


def _cli(rec, *args, input=None):
    from typer.testing import CliRunner

    from fleet import cli
    return CliRunner().invoke(cli.app, ["-i", rec.inventory] + list(args), input=input)
