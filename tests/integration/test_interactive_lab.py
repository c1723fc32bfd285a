"""Interactive I/O end to end over SSH on the lab: exec -i with piped stdin, exec -t driven through a local PTY."""

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

import pytest

pytestmark = pytest.mark.integration

PREFIX = "it-"
HOST = "web1"


@pytest.fixture
def box(lab):
    """A running busybox container on web1 and web2 (removed afterwards, even on failure)."""
    lab.remove_containers(PREFIX)
    name = PREFIX + "box"
    lab.fleet("run", "-d", "-H", "web1:web2", "--name", name, "busybox", "sleep", "300", check=True)
    yield lab, name
    lab.remove_containers(PREFIX)


class Terminal:
    """``python -m fleet ARGS`` on the slave of a local PTY (what a user's terminal is), driven from the master."""

    def __init__(self, lab, *args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execv(sys.executable, [sys.executable, "-m", "fleet", "-i", str(lab.inventory)] + list(args))
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def type(self, text):
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def expect(self, needle, timeout=60):
        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("{!r} not seen; output so far:\n{}".format(needle, self.output.decode("utf-8",
                                                                                                          "replace")))
            if select.select([self.fd], [], [], min(left, 0.5))[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError("EOF before {!r}; output:\n{}".format(needle, self.output.decode(
                        "utf-8", "replace")))
                self.output += chunk

    def wait(self, timeout=60):
        """The exit status, reading (and keeping) the rest of the output meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                self.output += chunk
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError("fleet did not exit; output:\n" + self.output.decode("utf-8", "replace"))


def test_exec_i_sends_piped_stdin_to_every_host(box):
    lab, name = box
    proc = lab.fleet("exec", "-i", "-H", "web1:web2", name, "sh", input="echo from-script $(hostname | wc -c)\n"
                     "cat /etc/hostname >/dev/null; echo err >&2; exit 5\n")
    assert proc.returncode == 1, proc.stderr  # several hosts: 1 when any code is not 0 (as exec)
    lines = sorted(proc.stdout.splitlines())
    assert lines == ["web1 | from-script 13", "web2 | from-script 13"], proc.stdout
    assert sorted(proc.stderr.splitlines()) == ["web1 | err", "web2 | err"], proc.stderr
    proc = lab.fleet("exec", "-i", "-H", HOST, "--prefix", name, "cat", input="a\nb\nno-newline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["web1 | a", "web1 | b", "web1 | no-newline"]


def test_exec_t_needs_one_host_and_a_terminal(box):
    lab, name = box
    proc = lab.fleet("exec", "-it", "-H", "web1:web2", name, "sh")
    assert proc.returncode == 2
    assert "-t/--tty needs exactly one host" in proc.stderr and "web1, web2" in proc.stderr
    proc = lab.fleet("exec", "-it", "-H", HOST, name, "sh", input="true\n")
    assert proc.returncode == 1
    assert "the input device is not a TTY" in proc.stderr


def test_exec_it_through_a_terminal(box):
    lab, name = box
    term = Terminal(lab, "exec", "-it", "-H", HOST, name, "sh", rows=33, cols=101)
    term.expect("/ # ")
    term.type("tty; stty size; echo hi $((40 + 2))\r")
    term.expect("hi 42")
    assert b"/dev/pts/" in term.output and b"33 101" in term.output
    term.resize(50, 120)
    time.sleep(0.5)
    term.type("stty size; exit 3\r")
    assert term.wait() == 3
    assert b"50 120" in term.output



def test_run_it_through_a_terminal_exit_code_and_log(lab):
    lab.remove_containers(PREFIX)
    try:
        term = Terminal(lab, "run", "-it", "-H", HOST, "--name", PREFIX + "runit", "busybox", "sh", rows=25,
                        cols=90)
        term.expect("/ # ")
        term.type("tty; stty size; echo hi $((40 + 2)); exit 3\r")
        assert term.wait() == 3
        assert b"hi 42" in term.output and b"/dev/pts/0" in term.output and b"25 90" in term.output
        (obj,) = __import__("json").loads(lab.fleet("inspect", "-H", HOST, PREFIX + "runit", check=True).stdout)
        assert obj["Config"]["Tty"] is True and obj["Config"]["OpenStdin"] is True
        assert obj["Config"]["StdinOnce"] is True and obj["Config"]["AttachStdin"] is True
        assert "TERM=xterm" in obj["Config"]["Env"]
        assert obj["State"]["ExitCode"] == 3
        logs = lab.fleet("logs", "-H", HOST, PREFIX + "runit", check=True).stdout
        assert "hi 42" in logs  # the shim still writes the json-file log
    finally:
        lab.remove_containers(PREFIX)


def test_run_i_with_piped_stdin_closes_it_at_eof(lab):
    lab.remove_containers(PREFIX)
    try:
        proc = lab.fleet("run", "-i", "--rm", "-H", HOST, "busybox", "sh", "-c", "wc -l; exit 4",
                         input="a\nb\nc\n")
        assert proc.returncode == 4, proc.stderr
        assert proc.stdout.strip() == "3", proc.stdout
    finally:
        lab.remove_containers(PREFIX)


def test_run_dit_then_attach_and_detach_keys(lab):
    lab.remove_containers(PREFIX)
    name = PREFIX + "dit"
    try:
        lab.fleet("run", "-dit", "-H", HOST, "--name", name, "busybox", "sh", check=True)
        (obj,) = __import__("json").loads(lab.fleet("inspect", "-H", HOST, name, check=True).stdout)
        assert obj["Config"]["Tty"] is True and obj["Config"]["StdinOnce"] is False
        term = Terminal(lab, "attach", "-H", HOST, name, rows=40, cols=100)
        time.sleep(1)
        term.type("stty size; echo attached-$((1 + 1))\r")
        term.expect("attached-2")
        assert b"40 100" in term.output  # attach sends this terminal's size
        term.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert term.wait() == 1  # docker attach: "read escape sequence", exit 1
        ps = lab.fleet("ps", "-H", HOST, "-f", "name=^" + name, check=True).stdout
        assert "Up " in ps, ps  # detaching left it running
        term = Terminal(lab, "attach", "-H", HOST, name)
        time.sleep(1)
        term.type("exit 6\r")
        assert term.wait() == 6
        proc = lab.fleet("attach", "-H", HOST, name)
        assert proc.returncode == 1 and "You cannot attach to a stopped container" in proc.stderr
        proc = lab.fleet("start", "-a", "-i", "-H", HOST, name, input="")
        assert proc.returncode == 1 and "the input device is not a TTY" in proc.stderr
        term = Terminal(lab, "start", "-a", "-i", "-H", HOST, name)
        time.sleep(1)
        term.type("echo restarted; exit 2\r")
        assert term.wait() == 2
        assert b"restarted" in term.output
    finally:
        lab.remove_containers(PREFIX)


def test_exec_it_ends_when_the_controller_is_gone(box):
    lab, name = box
    term = Terminal(lab, "exec", "-it", "-H", HOST, name, "sh")
    term.expect("/ # ")
    term.type("echo ready-$((2 * 3))\r")
    term.expect("ready-6")
    os.kill(term.pid, signal.SIGKILL)  # no goodbye: the SSH session just drops
    os.waitpid(term.pid, 0)
    os.close(term.fd)
    deadline = time.monotonic() + 30
    while True:
        proc = lab.fleet("exec", "-H", HOST, name, "ps", "-o", "args", check=True)
        shells = [line for line in proc.stdout.splitlines() if line.split(" | ", 1)[-1].strip() == "sh"]
        if not shells:
            break  # the payload saw its session go, closed the PTY master, and the shell got SIGHUP
        assert time.monotonic() < deadline, proc.stdout
        time.sleep(1)


def test_run_t_without_a_terminal_on_stdin(lab):
    proc = lab.fleet("run", "-t", "--rm", "-H", HOST, "busybox", "sh", "-c", "tty; echo $TERM; exit 9", input="")
    assert proc.returncode == 9, proc.stderr
    assert proc.stdout.splitlines() == ["/dev/pts/0", "xterm"], proc.stdout
    proc = lab.fleet("run", "-t", "-H", "web1:web2", "busybox", "true")
    assert proc.returncode == 2 and "-t/--tty needs exactly one host" in proc.stderr
