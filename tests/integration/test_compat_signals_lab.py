"""Docker compatibility of signals on attached commands (issue 13, item 8), over SSH on the lab.

docker run/start -a/attach proxy signals (``--sig-proxy``, default true, off with a TTY): the docker CLI
forwards what it receives (ForwardAllSignals: ContainerKill with the signal) and keeps streaming, then returns the
container's exit code: the one the container chooses when it traps the signal, 128+N when it dies of it.
``--sig-proxy=false``: the client just ends (^C: 130) and the container keeps running.  fleet today ends with
130 on ^C and leaves the container running.  Each test starts fleet in the background (PID known), waits for the
container's output, signals fleet as a terminal's ^C or ``kill`` would, and checks fleet's status and the
container's.
"""

import json
import signal

import pytest

from tests.helpers.procs import Background, fleet_bytes

pytestmark = pytest.mark.integration

PREFIX = "cmps-"
HOST = "web1"
# traps INT and TERM with its own exit codes; "ready" once the traps are set
TRAPPER = ("trap 'echo got-INT; exit 42' INT; trap 'echo got-TERM; exit 43' TERM; echo ready; "
           "while :; do sleep 0.1; done")
# for attach: says "tick" until it dies, so an attach sees output whenever it joins
TICKER = ("trap 'echo got-INT; exit 42' INT; trap 'echo got-TERM; exit 43' TERM; "
          "while :; do echo tick; sleep 0.1; done")


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    started = []
    yield lab, started
    for bg in started:
        bg.stop()
    lab.remove_containers(PREFIX)


def _state(lab, host, name):
    (obj,) = json.loads(lab.fleet("inspect", "-H", host, name, check=True).stdout)
    return obj["State"]


def _background(clean, *args, stdin=False):
    lab, started = clean
    bg = Background(lab, *args, stdin=stdin)
    started.append(bg)
    return bg


def test_run_forwards_sigint_and_returns_the_container_s_code(clean):
    """docker: ^C on ``docker run IMAGE sh -c TRAPPER`` (no -t) reaches the container's process, which exits 42;
    docker run returns 42 and the container is exited (42).  fleet today: 130, container still running."""
    lab, _ = clean
    bg = _background(clean, "run", "-H", HOST, "--name", PREFIX + "int", "busybox", "sh", "-c", TRAPPER)
    bg.wait_for(b"ready\n")
    bg.signal(signal.SIGINT)
    assert bg.wait() == 42, (bytes(bg.out), bytes(bg.err))
    assert b"got-INT" in bg.out
    state = _state(lab, HOST, PREFIX + "int")
    assert state["Status"] == "exited" and state["ExitCode"] == 42


def test_run_i_forwards_sigterm(clean):
    """docker: SIGTERM to ``docker run -i ...`` (stdin attached, no TTY) is forwarded the same way: exit 43."""
    lab, _ = clean
    bg = _background(clean, "run", "-i", "-H", HOST, "--name", PREFIX + "term", "busybox", "sh", "-c", TRAPPER,
                     stdin=True)
    bg.wait_for(b"ready\n")
    bg.signal(signal.SIGTERM)
    assert bg.wait() == 43, (bytes(bg.out), bytes(bg.err))
    assert b"got-TERM" in bg.out and _state(lab, HOST, PREFIX + "term")["ExitCode"] == 43


def test_start_a_and_attach_forward_and_return_the_code(clean):
    """docker: ``docker start -a`` and ``docker attach`` forward signals as run does (--sig-proxy default true)
    and return the container's exit code."""
    lab, _ = clean
    lab.fleet("create", "-H", HOST, "--name", PREFIX + "start", "busybox", "sh", "-c", TRAPPER, check=True)
    bg = _background(clean, "start", "-a", "-H", HOST, PREFIX + "start")
    bg.wait_for(b"ready\n")
    bg.signal(signal.SIGINT)
    assert bg.wait() == 42, (bytes(bg.out), bytes(bg.err))
    assert _state(lab, HOST, PREFIX + "start")["ExitCode"] == 42

    lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "att", "busybox", "sh", "-c", TICKER, check=True)
    bg = _background(clean, "attach", "-H", HOST, "--no-stdin", PREFIX + "att")
    bg.wait_for(b"tick\n")
    bg.signal(signal.SIGTERM)
    assert bg.wait() == 43, (bytes(bg.out), bytes(bg.err))
    assert _state(lab, HOST, PREFIX + "att")["ExitCode"] == 43


def test_several_hosts_each_get_the_signal(clean):
    """fleet across hosts (docker has one): every host's container gets the signal; each exits with its code and
    fleet's status is 1 (several hosts: 1 when any code is not 0, as run's rule)."""
    lab, _ = clean
    bg = _background(clean, "run", "-H", "web1:web2", "--name", PREFIX + "many", "busybox", "sh", "-c", TRAPPER)
    bg.wait_for(b"web1 | ready\n")
    bg.wait_for(b"web2 | ready\n")
    bg.signal(signal.SIGTERM)
    assert bg.wait() == 1, (bytes(bg.out), bytes(bg.err))
    for host in ("web1", "web2"):
        assert _state(lab, host, PREFIX + "many")["ExitCode"] == 43, host


def test_sig_proxy_false_and_a_tty_leave_the_container_running(clean):
    """docker: ``--sig-proxy=false`` (and -t, which turns the proxy off) does not forward: ^C ends the client
    (130) and the container keeps running."""
    lab, _ = clean
    bg = _background(clean, "run", "-H", HOST, "--sig-proxy=false", "--name", PREFIX + "off", "busybox", "sh", "-c",
                     TRAPPER)
    bg.wait_for(b"ready\n")
    bg.signal(signal.SIGINT)
    assert bg.wait() == 130
    state = _state(lab, HOST, PREFIX + "off")
    assert state["Running"] is True and b"got-INT" not in bg.out
    bg = _background(clean, "run", "-t", "-H", HOST, "--name", PREFIX + "tty", "busybox", "sh", "-c", TRAPPER)
    bg.wait_for(b"ready")
    bg.signal(signal.SIGINT)
    assert bg.wait() == 130
    assert _state(lab, HOST, PREFIX + "tty")["Running"] is True


def test_attach_detached_by_the_keys_prints_read_escape_sequence(clean):
    """docker: detaching ``docker attach`` with ctrl-p ctrl-q prints "read escape sequence" on stderr (the hijack's
    term.EscapeError, which the CLI's main prints and exits 1 for) and leaves the container running.  fleet
    today is silent and exits 0."""
    lab, _ = clean
    lab.fleet("run", "-d", "-i", "-H", HOST, "--name", PREFIX + "det", "busybox", "cat", check=True)
    proc = fleet_bytes(lab, "attach", "-H", HOST, PREFIX + "det", input=b"\x10\x11")
    assert proc.returncode == 1 and proc.stderr == b"read escape sequence\n", proc.stderr
    assert _state(lab, HOST, PREFIX + "det")["Running"] is True
