"""The remote-call choke point against a real SSH server on loopback (asyncssh's server, real shell, real payload).

Covers what the lab cannot force deterministically: the cold path (missing payload -> SFTP upload -> rerun),
a host that closes the channel before reading the request, crashes without a result, noisy login output,
and host-key policy (strict, trust on first use, changed key).
"""

import asyncio
import hashlib
import os
import shlex
import sys

import asyncssh
import pytest

from fleet.errors import PayloadCrash, RemoteError, TransportError
from fleet.inventory.models import Host
from fleet.transport import invoke, payload, ssh

PYTHON = "/usr/bin/python3" if sys.platform.startswith("linux") else sys.executable


class FakeHost:
    """A loopback SSH server whose exec requests run in /bin/sh, recording every command and SFTP session."""

    def __init__(self, tmp_path, behaviour=None):
        self.tmp = tmp_path
        self.commands = []
        self.sftp_sessions = 0
        self.behaviour = behaviour  # optional override: async fn(process, n) -> True if handled
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = tmp_path / "id_ed25519"
        self.client_key.write_private_key(str(self.client_key_path))
        self.server = None
        self.port = None

    async def _process(self, process):
        self.commands.append(process.command)
        if self.behaviour and await self.behaviour(process, len(self.commands)):
            return
        data = await process.stdin.read()
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", process.command, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(data.encode())
        process.stdout.write(out.decode())
        process.stderr.write(err.decode())
        process.exit(proc.returncode)

    def _sftp(self, chan):
        self.sftp_sessions += 1
        return asyncssh.SFTPServer(chan)

    async def start(self):
        self.server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()),
            process_factory=self._process, sftp_factory=self._sftp)
        self.port = self.server.sockets[0].getsockname()[1]

    def known_hosts_line(self, key=None):
        key = key or self.host_key
        return "[127.0.0.1]:{} {}\n".format(self.port, key.export_public_key().decode().strip())

    def host(self, known_hosts):
        return Host(name="h1", address="127.0.0.1", port=self.port, user=None, python=PYTHON,
                    ssh_key=str(self.client_key_path), known_hosts=str(known_hosts), groups=["all"],
                    vars={"fleet_root": str(self.tmp / "root")})


def run(coro):
    return asyncio.run(coro)


async def _call(fake, kh, op="ping", args=None, opts=None):
    conn = await ssh.connect(fake.host(kh), opts or ssh.SSHOptions())
    async with conn:
        return await invoke.call(conn, fake.host(kh), payload.build(), op, args or {})


@pytest.fixture
def fake(tmp_path):
    return FakeHost(tmp_path)


def _with_server(fake, coro_fn):
    async def main():
        await fake.start()
        try:
            return await coro_fn()
        finally:
            fake.server.close()
            await fake.server.wait_closed()
    return run(main())


def test_cold_host_gets_one_upload_then_warm_calls_are_one_exec(fake, tmp_path):
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        first = await _call(fake, kh)
        n_after_first = (len(fake.commands), fake.sftp_sessions)
        second = await _call(fake, kh)
        return first, n_after_first, second

    first, (execs, uploads), second = _with_server(fake, scenario)
    built = payload.build()
    assert first.uploaded and (execs, uploads) == (2, 1)
    assert not second.uploaded and (len(fake.commands), fake.sftp_sessions) == (3, 1)
    assert second.data["payload"] == built.sha256
    placed = tmp_path / "root" / "payload" / built.filename
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == built.sha256
    assert oct(placed.stat().st_mode & 0o777) == "0o644"
    # no temp file left behind; the payload unpacked its code cache next to itself on first run
    assert sorted(p.name for p in placed.parent.iterdir()) == [built.sha256 + ".d", built.filename]


def test_the_payload_keeps_its_state_under_the_inventorys_fleet_root(fake, tmp_path, monkeypatch):
    """fleet_root moves the whole state root, not only the .pyz: the payload finds its root from its own path."""
    monkeypatch.delenv("FLEET_ROOT", raising=False)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        return await _call(fake, kh, op="volume_create", args={"name": "rootcheck"})

    _with_server(fake, scenario)
    root = tmp_path / "root"
    assert (root / "volumes" / "rootcheck").is_dir()
    assert oct(root.stat().st_mode & 0o777) == "0o710"


def test_upload_never_uses_the_remote_umask(fake, tmp_path, monkeypatch):
    """At umask 000 on the host: the state root is made private (0700, then 0710 by the payload's first run),
    payload/ 0755, the .pyz 0644; a stale <sha>.d without its .pyz is removed, not trusted."""
    monkeypatch.setenv("FLEET_ROOT", str(tmp_path / "root"))  # the payload's state root (the shell inherits it)
    kh = tmp_path / "known_hosts"
    built = payload.build()
    stale = tmp_path / "root" / "payload" / (built.sha256 + ".d")

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        old = os.umask(0)  # the in-process SFTP server and the shell both run at it
        try:
            stale.mkdir(parents=True)
            os.chmod(tmp_path / "root", 0o700)
            (stale / "planted").write_text("x")
            return await _call(fake, kh)
        finally:
            os.umask(old)

    result = _with_server(fake, scenario)
    assert result.uploaded
    root = tmp_path / "root"
    modes = {p: oct(p.stat().st_mode & 0o7777) for p in (root, root / "payload", root / "payload" / built.filename)}
    assert list(modes.values()) == ["0o710", "0o755", "0o644"], modes
    assert not (stale / "planted").exists()


def test_a_fresh_root_made_by_the_upload_is_never_wider_than_0700(fake, tmp_path):
    kh = tmp_path / "known_hosts"
    seen = {}

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        old = os.umask(0)
        try:
            conn = await ssh.connect(fake.host(kh), ssh.SSHOptions())
            async with conn:
                await invoke.upload(conn, fake.host(kh), payload.build())
            seen["root"] = oct((tmp_path / "root").stat().st_mode & 0o7777)
        finally:
            os.umask(old)

    _with_server(fake, scenario)
    assert seen["root"] == "0o700"


def test_a_host_that_closes_before_reading_the_request_still_gets_the_payload(tmp_path):
    async def exit_at_once(process, n):
        if n == 1:  # as a shell that finds no payload and exits without touching stdin
            process.exit(97)
            return True
        return False

    fake = FakeHost(tmp_path, behaviour=exit_at_once)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        return await _call(fake, kh)

    result = _with_server(fake, scenario)
    assert result.uploaded and result.data["hostname"]


@pytest.mark.parametrize("script,expected", [
    ("echo boom >&2; exit 1", "boom"),
    ("exit 127", "ansible_python_interpreter"),
])
def test_a_crash_without_result_reports_status_and_stderr(tmp_path, script, expected):
    async def crash(process, n):
        await process.stdin.read()
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", script, stderr=asyncio.subprocess.PIPE)
        _out, err = await proc.communicate()
        process.stderr.write(err.decode())
        process.exit(proc.returncode)
        return True

    fake = FakeHost(tmp_path, behaviour=crash)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        with pytest.raises(PayloadCrash) as err:
            await _call(fake, kh)
        return str(err.value)

    assert expected in _with_server(fake, scenario)


def test_noise_before_the_result_is_ignored_and_errors_arrive_as_data(tmp_path):
    async def noisy(process, n):
        await process.stdin.read()
        process.stdout.write("Welcome to host h1!\n")
        process.stdout.write('{"type":"result","ok":false,'
                             '"error":{"kind":"NotFound","message":"No such container: x"}}\n')
        process.exit(0)
        return True

    fake = FakeHost(tmp_path, behaviour=noisy)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        with pytest.raises(RemoteError) as err:
            await _call(fake, kh)
        return err.value

    err = _with_server(fake, scenario)
    assert err.kind == "NotFound" and "No such container" in err.message


def test_host_keys_strict_by_default_tofu_on_request_and_changed_keys_refused(fake, tmp_path):
    kh = tmp_path / "known_hosts"

    async def scenario():
        with pytest.raises(TransportError, match="--accept-new-host-keys"):
            await _call(fake, kh)  # no known_hosts file at all
        kh.write_text("")
        with pytest.raises(TransportError, match="host key verification failed"):
            await _call(fake, kh)
        await _call(fake, kh, opts=ssh.SSHOptions(accept_new_host_keys=True))
        recorded = kh.read_text()
        await _call(fake, kh)  # now trusted in strict mode
        other = asyncssh.generate_private_key("ssh-ed25519")
        kh.write_text(fake.known_hosts_line(other))
        with pytest.raises(TransportError, match="host key verification failed"):
            await _call(fake, kh, opts=ssh.SSHOptions(accept_new_host_keys=True))
        return recorded

    recorded = _with_server(fake, scenario)
    assert recorded == fake.known_hosts_line()


@pytest.mark.parametrize("python,root", [
    ("/usr/bin/python3", "/var/lib/fleet"),
    ("/opt/my python/bin/python3", "/srv/fleet's root"),
    ("python3; rm -rf /", "/tmp/$(reboot)"),
])
def test_remote_command_quotes_every_interpolated_value(python, root):
    host = Host(name="h", address="h", port=22, user=None, python=python, ssh_key=None, known_hosts=None,
                groups=["all"], vars={"fleet_root": root})
    built = payload.build()
    words = shlex.split(invoke.remote_command(host, built))
    assert python in words
    assert "{}/payload/{}".format(root, built.filename) in words


def _hosts(fake, kh, n):
    return [fake.host(kh).model_copy(update={"name": "h{}".format(i)}) for i in range(n)]


def test_fanout_bounds_parallelism_with_forks(tmp_path):
    from fleet.transport import fanout
    active = {"now": 0, "max": 0}

    async def slow(process, n):
        await process.stdin.read()
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.2)
        active["now"] -= 1
        process.stdout.write('{"type":"result","ok":true,"data":{}}\n')
        process.exit(0)
        return True

    fake = FakeHost(tmp_path, behaviour=slow)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        return await fanout.run_async(_hosts(fake, kh, 5), "ping", {}, fanout.RunOptions(forks=2))

    results = _with_server(fake, scenario)
    assert all(r.ok for r in results) and [r.host.name for r in results] == ["h0", "h1", "h2", "h3", "h4"]
    assert active["max"] == 2


def test_a_host_that_hangs_times_out_alone(tmp_path):
    from fleet.transport import fanout

    async def hang_once(process, n):
        await process.stdin.read()
        if n == 1:
            await asyncio.sleep(30)
        process.stdout.write('{"type":"result","ok":true,"data":{}}\n')
        process.exit(0)
        return True

    fake = FakeHost(tmp_path, behaviour=hang_once)
    kh = tmp_path / "known_hosts"

    async def scenario():
        kh.write_text(fake.known_hosts_line())
        return await fanout.run_async(_hosts(fake, kh, 3), "ping", {}, fanout.RunOptions(command_timeout=1.0))

    results = _with_server(fake, scenario)
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1 and "timed out after 1s" in str(failed[0].error)
    assert sum(r.ok for r in results) == 2
