"""The controller's side of byte-exact output and signals (issue 13, items 5, 7 and 8), hosts faked: output events
and log lines reach stdout/stderr byte for byte, raw for one host when stdout is not a terminal (``host | ``
lines otherwise, --prefix/--no-prefix force either way); --sig-proxy's parsing and forwarding; attach's
"read escape sequence"."""

import signal

import pytest
from typer.testing import CliRunner

from agent_payload import protocol
from fleet import cli
from fleet.commands import sigproxy
from fleet.commands.common import Session, raise_if_rejected_input
from fleet.render import streams
from fleet.transport.fanout import HostResult
from tests.helpers import cli_fakes

inventory, cli_calls = cli_fakes.inventory, cli_fakes.cli_calls  # fixtures by assignment

BINARY = b"\x00\xff\xfe bin\n\x80 second\r\nno newline \xc3"


class Host:
    def __init__(self, name):
        self.name = name


def _log_events(data, stream="stdout"):
    """``data`` as the payload's log events: one per line, as the store and exec cut them."""
    lines = data.splitlines(keepends=True)
    return [("log", protocol.log_line(stream, line)) for line in lines]


@pytest.fixture
def emitting(monkeypatch):
    """Session.run_hosts faked: every host emits ``events`` (name, data), then answers ``answer``."""
    state = {"events": [], "answer": {}, "calls": []}

    def run_hosts(self, hosts, op, args, on_event=None, bounded=True, args_for=None):
        out = []
        for h in hosts:
            state["calls"].append((h.name, op, args))
            if on_event is not None and op in ("exec", "logs", "run", "start"):
                for name, data in state["events"]:
                    on_event(h, name, data)
            out.append(HostResult(h, data=dict(state["answer"])))
        raise_if_rejected_input(out)
        return out

    monkeypatch.setattr(Session, "run_hosts", run_hosts)
    return state


def invoke(inventory, *args):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args))


def test_raw_printer_writes_the_exact_bytes_of_both_kinds_of_event(capsysbinary):
    p = streams.Printer([Host("web1")], raw=True)
    for name, data in _log_events(BINARY):
        p(Host("web1"), name, data)
    p(Host("web1"), "output", protocol.output_event("stderr", b"\xffERR")["data"])
    p(Host("web1"), "output", protocol.output_event("stdout", b"\x01tail")["data"])
    p.flush()
    out, err = capsysbinary.readouterr()
    assert out == BINARY + b"\x01tail" and err == b"\xffERR"


def test_prefixed_lines_keep_their_bytes(capsysbinary):
    p = streams.Printer([Host("web1"), Host("w2")], raw=False)
    for name, data in _log_events(b"a\xff\nb"):
        p(Host("w2"), name, data)
    p(Host("web1"), "output", protocol.output_event("stdout", b"x\x80")["data"])
    p(Host("web1"), "output", protocol.output_event("stdout", b"y\nz")["data"])
    p.flush()
    out, _ = capsysbinary.readouterr()
    assert out.split(b"\n") == [b"w2   | a\xff", b"w2   | b", b"web1 | x\x80y", b"web1 | z", b""]


def test_timestamps_come_before_each_raw_line(capsysbinary):
    p = streams.Printer([Host("h")], raw=True, timestamps=True)
    p(Host("h"), "log", protocol.log_line("stdout", b"\xff\n", time="2024-01-01T00:00:00.000000001Z"))
    assert capsysbinary.readouterr()[0] == b"2024-01-01T00:00:00.000000001Z \xff\n"


class _Out:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_raw_output_rule():
    one, two = [Host("a")], [Host("a"), Host("b")]
    assert streams.raw_wanted(one, None, stdout=_Out(False)) is True  # fleet exec -H db1 ... > dump.sql
    assert streams.raw_wanted(one, None, stdout=_Out(True)) is False  # a terminal: host | line
    assert streams.raw_wanted(one, None, attached=True, stdout=_Out(True)) is True  # attach's bytes
    assert streams.raw_wanted(two, None, stdout=_Out(False)) is False
    assert streams.raw_wanted(one, True, stdout=_Out(False)) is False  # --prefix
    assert streams.raw_wanted(two, False, stdout=_Out(True)) is True  # --no-prefix


def test_exec_and_logs_on_one_host_are_byte_exact(inventory, emitting):
    emitting["events"] = _log_events(BINARY) + _log_events(b"\xfe err\n", "stderr")
    emitting["answer"] = {"exit_code": 0}
    res = invoke(inventory, "exec", "-H", "web1", "c", "cat", "f")
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == BINARY and res.stderr_bytes == b"\xfe err\n"
    res = invoke(inventory, "logs", "-H", "web1", "c")
    assert res.exit_code == 0 and res.stdout_bytes == BINARY
    res = invoke(inventory, "exec", "-H", "web1", "--prefix", "c", "cat", "f")
    assert res.stdout_bytes.split(b"\n")[0] == b"web1 | \x00\xff\xfe bin"
    res = invoke(inventory, "logs", "-H", "web", "--no-prefix", "c")
    assert res.stdout_bytes == BINARY * 2
    res = invoke(inventory, "run", "-H", "web1", "--name", "r", "busybox")
    assert res.stdout_bytes == BINARY, res.output
    res = invoke(inventory, "start", "-a", "-H", "web1", "r")
    assert res.stdout_bytes == BINARY, res.output


def test_prefix_flags_and_sig_proxy_values_are_checked(inventory, emitting):
    res = invoke(inventory, "exec", "-H", "web1", "--prefix", "--no-prefix", "c", "true")
    assert res.exit_code == 2 and "--prefix and --no-prefix cannot be combined" in res.stderr
    res = invoke(inventory, "run", "-H", "web1", "--sig-proxy=maybe", "busybox")
    assert res.exit_code == 2 and 'invalid argument "maybe" for "--sig-proxy" flag' in res.stderr
    assert emitting["calls"] == []
    assert sigproxy.parse_bool("--sig-proxy", "false", True) is False
    assert sigproxy.parse_bool("--sig-proxy", None, True) is True


def test_attach_detached_by_the_keys_says_so(cli_calls):
    cli_calls.answers["inspect"] = {"containers": [{"State": {"Running": True}, "Config": {"Tty": False}}]}
    cli_calls.answers["attach"] = {"detached": True, "exit_code": None}
    res = cli_fakes._cli(cli_calls, "attach", "-H", "h1", "--no-stdin", "c")
    assert res.exit_code == 1 and res.stderr == "read escape sequence\n" and res.stdout == ""  # docker: exit 1


def test_the_proxy_forwards_to_known_containers_and_otherwise_lets_the_signal_be(monkeypatch):
    sent = []
    monkeypatch.setattr(sigproxy.SignalProxy, "_forward", lambda self, sig, targets: sent.append((sig, targets)))
    hosts = [Host("a"), Host("b")]
    with sigproxy.SignalProxy(None, hosts) as proxy:
        with pytest.raises(KeyboardInterrupt):  # nothing started yet: ^C ends fleet as before
            signal.raise_signal(signal.SIGINT)
    assert sent == []
    before = signal.getsignal(signal.SIGTERM)
    with sigproxy.SignalProxy(None, hosts, {"a": "web"}) as proxy:
        proxy.on_event(Host("b"), "container", {"id": "abc"})
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
    assert sent == [(signal.SIGTERM, {"a": "web", "b": "abc"}), (signal.SIGINT, {"a": "web", "b": "abc"})]
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    with sigproxy.SignalProxy(None, hosts, {"a": "web"}, enabled=False):
        assert signal.getsignal(signal.SIGTERM) is before
