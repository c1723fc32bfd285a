"""invoke.call's warm path against a loopback SSH server (asyncssh's) that forwards direct-streamlocal channels to
a fake warm payload server (an asyncio unix server at the contract's socket path) and answers exec requests with
a canned result, so each test sees which way a call went: socket or exec, and what each side received.
"""

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import asyncssh
import pytest

from agent_payload import protocol
from fleet.errors import PayloadCrash, RemoteError
from fleet.inventory.models import Host
from fleet.transport import invoke, ssh
from fleet.transport.payload import Payload

PAYLOAD = Payload(data=b"", sha256="ab" * 32)


class Lab:
    """One SSH server on 127.0.0.1 plus, when ``serve`` is given, a warm server at the host's socket path."""

    def __init__(self, root: Path, key_dir: Path):
        self.root = root
        self.execs = []        # the stdin of every exec'd command
        self.accepted = 0      # warm connections the fake server accepted
        self.received = []     # what each warm connection got from the client, up to EOF
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_path = key_dir / "id"
        self.client_key.write_private_key(str(self.key_path))
        self.kh = key_dir / "known_hosts"
        self.server = self.unix = None
        self.port = None

    async def _exec(self, process):
        data = await process.stdin.read()
        self.execs.append(data)
        process.stdout.write(json.dumps({"type": "result", "ok": True, "data": {"via": "exec"}}) + "\n")
        process.exit(0)

    async def start(self, serve=None):
        lab = self

        class Server(asyncssh.SSHServer):
            def unix_connection_requested(self, dest_path):
                return True  # forward to the real unix socket, as sshd does

        self.server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key], server_factory=Server,
            authorized_client_keys=asyncssh.import_authorized_keys(self.client_key.export_public_key().decode()),
            process_factory=self._exec)
        self.port = self.server.sockets[0].getsockname()[1]
        self.kh.write_text("[127.0.0.1]:{} {}\n".format(
            self.port, self.host_key.export_public_key().decode().strip()))
        if serve is not None:
            async def handle(reader, writer):
                lab.accepted += 1
                try:
                    await serve(lab, reader, writer)
                finally:
                    writer.close()
            path = invoke.warm_socket_path(self.host(), PAYLOAD)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.unix = await asyncio.start_unix_server(handle, path)

    async def stop(self):
        for srv in (self.server, self.unix):
            if srv is not None:
                srv.close()
                await srv.wait_closed()

    def host(self, **extra):
        variables = {"fleet_root": str(self.root)}
        variables.update(extra)
        return Host.from_vars("h1", ["all"], dict(variables, ansible_host="127.0.0.1", ansible_port=self.port or 22,
                                                  ansible_ssh_private_key_file=str(self.key_path),
                                                  fleet_known_hosts=str(self.kh)))


@pytest.fixture
def root():
    # a short path: a unix socket path must fit in 108 bytes, and the socket name alone is 69
    path = Path(tempfile.mkdtemp(prefix="fw", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_call(lab, serve=None, events=None, **host_vars):
    async def main():
        await lab.start(serve)
        try:
            host = lab.host(**host_vars)
            async with await ssh.connect(host, ssh.SSHOptions()) as conn:
                return await invoke.call(conn, host, PAYLOAD, "ping", {"x": 1},
                                         (lambda n, d: events.append((n, d))) if events is not None else None)
        finally:
            await lab.stop()
    return asyncio.run(main())


def hello(sha=PAYLOAD.sha256, proto=protocol.PROTOCOL_VERSION):
    return (json.dumps({"type": "warm", "pid": 4242, "payload": sha, "protocol": proto}) + "\n").encode()


async def answering(lab, reader, writer):
    """A well-behaved warm child: hello, read the request to EOF, one event, one result."""
    writer.write(hello())
    await writer.drain()
    lab.received.append(await reader.read())
    writer.write(b'{"type":"event","event":"progress","data":{"n":1}}\n')
    writer.write(json.dumps({"type": "result", "ok": True, "data": {"via": "warm"}}).encode() + b"\n")
    await writer.drain()


def test_a_warm_server_answers_without_any_exec(root, tmp_path):
    lab, events = Lab(root, tmp_path), []
    inv = run_call(lab, answering, events)
    assert inv.data == {"via": "warm"} and not inv.uploaded
    assert lab.execs == [] and lab.accepted == 1
    # exactly the bytes the exec'd --rpc would get on stdin: one request line, then EOF
    assert [json.loads(r) for r in lab.received] == [protocol.request("ping", {"x": 1}, PAYLOAD.sha256)]
    assert lab.received[0].endswith(b"\n") and lab.received[0].count(b"\n") == 1
    assert events == [("progress", {"n": 1})]


def test_no_server_falls_back_to_exec(root, tmp_path):
    lab = Lab(root, tmp_path)
    assert run_call(lab).data == {"via": "exec"}
    assert [json.loads(r) for r in lab.execs] == [protocol.request("ping", {"x": 1}, PAYLOAD.sha256)]


def test_fleet_warm_false_never_opens_the_socket(root, tmp_path):
    lab = Lab(root, tmp_path)
    assert run_call(lab, answering, fleet_warm=False).data == {"via": "exec"}
    assert lab.accepted == 0 and len(lab.execs) == 1


@pytest.mark.parametrize("greeting", [b"", hello(sha="cd" * 32), hello(proto=protocol.PROTOCOL_VERSION + 1),
                                      b"not json\n", b'{"type": "result", "ok": true}\n'])
def test_no_valid_hello_means_nothing_ran_and_exec_runs_it(root, tmp_path, greeting):
    """A server that closes before its hello, or greets for another payload or protocol: the request is never
    sent to it (it reads EOF), and the exec path runs the op once."""
    async def serve(lab, reader, writer):
        writer.write(greeting)
        await writer.drain()
        lab.received.append(await reader.read())

    lab = Lab(root, tmp_path)
    assert run_call(lab, serve).data == {"via": "exec"}
    assert lab.accepted == 1 and lab.received == [b""] and len(lab.execs) == 1


def test_a_silent_server_times_out_into_exec(root, tmp_path, monkeypatch):
    monkeypatch.setattr(invoke, "HELLO_TIMEOUT", 0.2)

    async def serve(lab, reader, writer):
        lab.received.append(await reader.read())  # never greets; the client gives up and closes

    lab = Lab(root, tmp_path)
    assert run_call(lab, serve).data == {"via": "exec"}
    assert lab.received == [b""] and len(lab.execs) == 1


def test_a_connection_lost_after_the_request_is_a_crash_never_a_retry(root, tmp_path):
    async def serve(lab, reader, writer):
        writer.write(hello())
        await writer.drain()
        lab.received.append(await reader.readline())  # the request arrived, then the child dies

    lab = Lab(root, tmp_path)
    with pytest.raises(PayloadCrash, match="warm payload connection closed without a result"):
        run_call(lab, serve)
    assert len(lab.received) == 1 and lab.execs == []


def test_an_error_result_from_the_warm_server_is_raised_as_the_exec_one_would_be(root, tmp_path):
    async def serve(lab, reader, writer):
        writer.write(hello())
        await reader.read()
        writer.write(json.dumps({"type": "result", "ok": False, "error": {
            "kind": "NotFound", "message": "no such container: x"}}).encode() + b"\n")
        await writer.drain()

    lab = Lab(root, tmp_path)
    with pytest.raises(RemoteError, match="no such container: x"):
        run_call(lab, serve)
    assert lab.execs == []


def test_fleet_warm_is_validated_in_the_inventory(tmp_path):
    from fleet.errors import InventoryError
    from fleet.inventory import load_inventory

    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    a:\n      fleet_warm: false\n    b:\n")
    hosts = load_inventory([inv]).hosts
    assert hosts["a"].warm is False and hosts["b"].warm is True
    inv.write_text("all:\n  hosts:\n    a:\n      fleet_warm: maybe\n")
    with pytest.raises(InventoryError, match="fleet_warm"):
        load_inventory([inv])


def test_known_hosts_and_keys_are_parsed_once_while_unchanged(root, tmp_path, monkeypatch):
    reads = []
    real_kh, real_keys = asyncssh.read_known_hosts, asyncssh.load_keypairs
    monkeypatch.setattr(asyncssh, "read_known_hosts", lambda path: reads.append("kh") or real_kh(path))
    monkeypatch.setattr(asyncssh, "load_keypairs", lambda paths: reads.append("keys") or real_keys(paths))
    lab = Lab(root, tmp_path)

    async def main():
        await lab.start()
        try:
            host = lab.host()
            for n in range(3):
                if n == 2:  # the file changed (a new host was added): parsed again
                    lab.kh.write_text(lab.kh.read_text() + "10.9.9.9 " + lab.kh.read_text().split(" ", 1)[1])
                async with await ssh.connect(host, ssh.SSHOptions()) as conn:
                    assert (await invoke.call(conn, host, PAYLOAD, "ping", {})).data == {"via": "exec"}
        finally:
            await lab.stop()
    asyncio.run(main())
    assert reads == ["kh", "keys", "kh"]
