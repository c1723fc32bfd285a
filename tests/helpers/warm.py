"""The warm payload server from outside, for tests: a real built pyz under a private state root, its remote
command run as sshd would, raw socket clients of the server, and the server's pid (the holder of its lock).

Every server a test starts is SIGKILLed by pid at the end (``Host.close``).
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

from fleet.transport import invoke, payload

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def poll(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class Host:
    """A state root with the payload uploaded as the controller does (root 0700, payload/ 0755, pyz 0644)."""

    def __init__(self, tmp_path, built, root=None, env=None):
        self.built = built
        self.sha = built.sha256
        # pytest's tmp_path is too deep for a unix socket's name (108 bytes): a short root of our own
        self.short = None if root else tempfile.mkdtemp(prefix="w", dir="/tmp")
        self.root = root or pathlib.Path(self.short)
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        d = self.root / "payload"
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        self.pyz = d / built.filename
        self.pyz.write_bytes(built.data)
        os.chmod(self.pyz, 0o644)
        self.sock = str(self.pyz)[:-4] + ".sock"
        self.env = dict(env or os.environ, FLEET_ROOT=str(self.root),
                        FLEET_CONFIG_DIR=str(tmp_path / "etc"), FLEET_WARM_IDLE="60")
        self.env.pop("FLEET_WARM", None)
        self.host = types.SimpleNamespace(vars={"fleet_root": str(self.root)}, python=PYTHON)
        self.command = invoke.remote_command(self.host, built)
        self.seen = set()

    def request(self, op="ping", **args):
        return json.dumps({"protocol": 1, "payload": self.sha, "op": op, "args": args}) + "\n"

    def exec_rpc(self, op="ping", env=None, **args):
        """One exec of the remote command (as sshd runs it); returns the CompletedProcess (text)."""
        proc = subprocess.run(["/bin/sh", "-c", self.command], input=self.request(op, **args), capture_output=True,
                              text=True, env=dict(self.env, **(env or {})), timeout=60)
        self.servers()
        return proc

    def hand(self, *argv, env=None, **kw):
        """``python3 <pyz> argv...`` by hand, stdin /dev/null."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        return subprocess.run([PYTHON, str(self.pyz)] + list(argv), env=dict(self.env, **(env or {})),
                              timeout=60, **kw)

    def servers(self):
        """Pids of the live servers: reparented processes holding the pyz open (its flock is the server's lock;
        children close it)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fds = os.listdir("/proc/{}/fd".format(entry))
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink("/proc/{}/fd/{}".format(entry, fd)) == str(self.pyz) and _ppid(entry) == 1:
                        pids.append(int(entry))
                        break
                except OSError:
                    pass
        self.seen.update(pids)
        return pids

    def server(self, timeout=20.0):
        """The one live server with its socket in place (waits for both)."""
        pids = poll(lambda: self.listening() and self.servers(), timeout, "the warm server")
        assert len(pids) == 1, pids
        return pids[0]

    def listening(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)  # the child that answers sees EOF before a request and ends
            return True
        except OSError:
            return False
        finally:
            s.close()

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.sock)
        return s

    def close(self, remove=True):
        """SIGKILL every server seen; then (``remove``) the short state root: after any container cleanup."""
        for pid in self.seen | set(self.servers()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if remove and self.short:
            shutil.rmtree(self.short, ignore_errors=True)


class Conn:
    """A raw client of the server: the hello line, then a request as the controller sends it."""

    def __init__(self, host):
        self.sock = host.connect()
        self.file = self.sock.makefile("rb")

    def hello(self):
        """The hello (dict), or None when the connection closed or was reset before it (nothing ran)."""
        try:
            line = self.file.readline()
        except ConnectionResetError:
            return None
        return json.loads(line) if line else None

    def send(self, text):
        self.sock.sendall(text.encode())
        self.sock.shutdown(socket.SHUT_WR)

    def lines(self):
        return [json.loads(line) for line in self.file.read().splitlines() if line.strip()]

    def close(self):
        self.file.close()
        self.sock.close()


def _ppid(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def result(lines):
    found = [m for m in lines if m.get("type") == "result"]
    assert found, lines
    return found[-1]


def build():
    return payload.build()
