"""Controller side of -i/-t: per-host line prefixing of raw output, usage errors, detach keys (payload side)."""

import pytest

from agent_payload import errors, protocol
from agent_payload.runtime import attach_client as attach
from fleet.commands import interactive
from fleet.errors import FleetError, UsageError


class Host:
    def __init__(self, name):
        self.name = name


def test_line_prefixer_keeps_partial_lines_per_host_and_stream(capsys):
    pre = interactive.LinePrefixer(4)
    web1, web2 = Host("web1"), Host("w2")
    pre(web1, "output", protocol.output_event("stdout", b"hel")["data"])
    pre(web2, "output", protocol.output_event("stdout", b"x\ny")["data"])
    pre(web1, "output", protocol.output_event("stdout", b"lo\nwor")["data"])
    pre(web1, "output", protocol.output_event("stderr", b"err\n")["data"])
    pre(web1, "log", {"line": "ignored"})
    pre.flush()
    out, err = capsys.readouterr()
    assert out.splitlines() == ["w2   | x", "web1 | hello", "web1 | wor", "w2   | y"]
    assert err == "web1 | err\n"


def test_tty_needs_one_host_and_a_terminal():
    interactive.one_host_for_tty([Host("a")], True)
    interactive.one_host_for_tty([Host("a"), Host("b")], False)
    with pytest.raises(UsageError, match=r"-t/--tty needs exactly one host.*2 \(a, b\)"):
        interactive.one_host_for_tty([Host("a"), Host("b")], True)

    class NotTty:
        def isatty(self):
            return False
    with pytest.raises(FleetError, match="the input device is not a TTY") as info:
        interactive.check_tty_input(True, True, NotTty())
    assert info.value.exit_code == 1
    interactive.check_tty_input(True, False, NotTty())  # -i alone reads a pipe or file
    interactive.check_tty_input(False, True, NotTty())  # -t alone reads nothing


@pytest.mark.parametrize("text,keys", [(None, b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a,x", b"\x01x"),
                                       ("ctrl-@,ctrl-[", b"\x00\x1b"), ("Q", b"Q")])
def test_detach_keys_parse(text, keys):
    assert attach.parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "alt-x", "ab", ""])
def test_bad_detach_keys(text):
    with pytest.raises(errors.InvalidArgument):
        attach.parse_detach_keys(text)


def test_detach_filter_holds_a_partial_sequence_and_releases_it():
    f = attach.DetachFilter(b"\x10\x11")
    assert f(b"ab\x10") == b"ab"  # held: might be the start of the sequence
    assert f(b"c") == b"\x10c"  # it was not
    assert f(b"\x10\x10") == b"\x10"  # the second ctrl-p may start it again
    assert f(b"\x11") is None  # detached
    assert attach.DetachFilter(b"\x10\x11")(b"x\x10\x11y") is None
