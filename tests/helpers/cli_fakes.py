"""The fleet CLI without hosts, for unit tests: the fan-out (``Session.run_hosts``) replaced by a recorder.

``cli_calls`` records (host, op, args, bounded) of every request a command sends (through the fan-out, the
interactive runner, or cp's payload call) on a two-host inventory, run with ``_cli(rec, *args)``;
``calls`` records (host, op, args) and answers per host, with ``inventory`` (web1, web2, db1 with registry settings).
Test modules take the fixtures by assignment (``inventory, calls = cli_fakes.inventory, cli_fakes.calls``).
"""

import asyncio
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


#: h1 carries registry settings (what ``configure`` sends it), h2 none (it is sent an empty daemon.json).
TWO_HOSTS = """
all:
  hosts:
    h1:
      ansible_host: 10.0.0.1
      fleet_registry_mirrors: ["http://10.0.0.2:5000"]
      fleet_insecure_registries: ["10.0.0.2:5000"]
      fleet_registries: {"reg:5000": {"mirrors": ["http://m:5000"]}}
      fleet_daemon: {debug: true}
    h2: {ansible_host: 10.0.0.2}
"""


@pytest.fixture
def cli_calls(monkeypatch, tmp_path):
    """Replace every way fleet's commands reach a host: record (host, op, args, bounded); each op answers
    ``answers[op]`` (its data).

    The seams are where a request leaves the command, after all of its argument building: the fan-out
    (``Session.run_hosts``, per-host ``args_for`` honoured), the interactive runner (``interactive.stream_hosts``:
    attach, start -a -i, run/exec -i/-t; nothing is read from stdin) and the payload call on a connection
    that cp makes next to its SFTP transfers and deploy on the connection it holds per host (``invoke.call``;
    ``files.run_on_hosts`` and ``ssh.connect`` give each host a fake connection, ``files.put_file``/``get_file``/
    ``remove_quietly`` touch no host: a fetched file is ``answers["cp_out:file"]``, bytes).
    """
    from fleet.commands import interactive
    from fleet.errors import FleetError
    from fleet.transport import files, invoke

    rec = SimpleNamespace(calls=[], answers={}, inventory=str(tmp_path / "inv.yml"))
    (tmp_path / "inv.yml").write_text(TWO_HOSTS)

    def run_hosts(self, hosts, op, args, on_event=None, bounded=True, args_for=None):
        out = []
        for h in hosts:
            rec.calls.append((h.name, op, args_for(h) if args_for else args, bounded))
            out.append(HostResult(h, data=rec.answers.get(op, {})))
        raise_if_rejected_input(out)
        return out

    async def stream_hosts(session, hosts, op, args, on_event, interactive, tty, stdin_fd=0):
        out = []
        for h in hosts:
            rec.calls.append((h.name, op, args, False))  # as the real one: session.run_options(bounded=False)
            out.append(HostResult(h, data=rec.answers.get(op, {})))
        return out

    def run_on_hosts(hosts, work, opts=None):
        async def one(h):
            conn = SimpleNamespace(bounded=opts is None or opts.command_timeout is not None)
            try:
                return HostResult(h, data=await work(conn, h, None))
            except FleetError as exc:
                return HostResult(h, error=exc)

        async def all_hosts():
            return [await one(h) for h in hosts]
        return asyncio.run(all_hosts())

    async def call(conn, host, payload, op, args, on_event=None):
        rec.calls.append((host.name, op, args, conn.bounded))
        return invoke.Invocation(data=rec.answers.get(op, {}))

    async def put_file(conn, local_path, remote_path):
        pass

    async def get_file(conn, remote_path, local_path):
        with open(local_path, "wb") as f:
            f.write(rec.answers.get("cp_out:file", b""))

    async def remove_quietly(conn, remote_path):
        pass

    monkeypatch.setattr(Session, "run_hosts", run_hosts)
    monkeypatch.setattr(interactive, "stream_hosts", stream_hosts)
    monkeypatch.setattr(files, "run_on_hosts", run_on_hosts)
    monkeypatch.setattr(files, "put_file", put_file)
    monkeypatch.setattr(files, "get_file", get_file)
    monkeypatch.setattr(files, "remove_quietly", remove_quietly)
    monkeypatch.setattr(invoke, "call", call)

    class Conn:  # what HostLink (deploy's one connection per host) holds: every call goes through invoke.call
        bounded = True

        def close(self):
            pass

        async def wait_closed(self):
            pass

    async def connect(host, opts):
        return Conn()

    from fleet.transport import ssh
    monkeypatch.setattr(ssh, "connect", connect)
    return rec


def _cli(rec, *args, input=None):
    from typer.testing import CliRunner

    from fleet import cli
    return CliRunner().invoke(cli.app, ["-i", rec.inventory] + list(args), input=input)
