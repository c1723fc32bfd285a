"""The live pull/push view: frames redrawn in place on a TTY (throttled), status-change lines elsewhere."""

import io
from types import SimpleNamespace

from fleet.errors import TransportError
from fleet.render.progress import ProgressView
from fleet.transport.fanout import HostResult

UP3, CLEAR = "\x1b[3A", "\x1b[2K"


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _hosts(*names):
    return [SimpleNamespace(name=n) for n in names]


def _view(stream, clock, tty=None, quiet=False):
    return ProgressView(_hosts("web1", "web2", "db1"), "nginx:latest", stream=stream, tty=tty, quiet=quiet,
                        clock=clock, columns=200)


def _frames(text):
    """Split TTY output into frames (each redraw starts by moving up) -> list of lists of lines."""
    frames = []
    for chunk in text.split(UP3):
        if chunk:
            frames.append([line[len(CLEAR):] for line in chunk.split("\n") if line])
    return frames


def _ev(layer, status, current=None, total=None):
    return {"layer": layer, "status": status, "current": current, "total": total}


def test_tty_block_aggregates_layers_and_redraws_in_place(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out, clock = FakeTTY(), Clock()
    view = _view(out, clock)
    assert view.tty
    view.start()
    web1, web2, db1 = _hosts("web1", "web2", "db1")
    view.on_event(web1, "progress", _ev("a", "Already exists"))  # within 0.1 s of the first frame: not drawn
    assert _frames(out.getvalue())[-1][0] == "web1  nginx:latest  Waiting"
    clock.t += 0.5
    view.on_event(web1, "progress", _ev("a", "Already exists"))
    clock.t += 0.5
    view.on_event(web1, "progress", _ev("b", "Downloading", 0, 20_000_000))
    clock.t += 0.5
    view.on_event(web1, "progress", _ev("c", "Downloading", 0, 38_000_000))
    view.on_event(web1, "progress", _ev("d", "Pull complete", 4_000_000, 4_000_000))
    clock.t += 0.5
    view.on_event(web1, "progress", _ev("b", "Downloading", 20_000_000, 20_000_000))
    view.on_event(web1, "progress", _ev("c", "Downloading", 17_200_000, 38_000_000))
    clock.t += 0.5
    view.on_event(web2, "progress", _ev("b", "Extracting", 100, 20_000_000))
    view.on_event(db1, "log", {"line": "ignored"})
    frames = _frames(out.getvalue())
    assert frames[0] == ["web1  nginx:latest  Waiting", "web2  nginx:latest  Waiting", "db1   nginx:latest  Waiting"]
    assert frames[1][0] == "web1  nginx:latest  1/1 layers  Already exists"
    last = frames[-1]
    # a, d done (a skipped from bytes: nothing downloaded); b, c, d moving: 20+17.2+4 of 20+38+4 MB
    assert last[0] == "web1  nginx:latest  2/4 layers  41.2MB/62MB  Downloading"
    assert last[1] == "web2  nginx:latest  0/1 layers  20MB/20MB  Extracting"
    assert last[2] == "db1   nginx:latest  Waiting"
    assert out.getvalue().startswith(CLEAR)  # the first frame does not move up
    view.finish([HostResult(web1, data={}), HostResult(web2, data={}),
                 HostResult(db1, error=TransportError("ssh 10.0.0.9:22: Connection refused"))])
    final = _frames(out.getvalue())[-1]
    assert final == ["web1  nginx:latest  2/4 layers  41.2MB/62MB  Pull complete",
                     "web2  nginx:latest  0/1 layers  20MB/20MB  Pull complete",
                     "db1   nginx:latest  error: ssh 10.0.0.9:22: Connection refused"]


def test_tty_redraws_at_most_ten_times_a_second():
    out, clock = FakeTTY(), Clock()
    view = _view(out, clock, tty=True)
    view.start()
    web1 = _hosts("web1")[0]
    for i in range(1000):  # 1000 chunk events within 0.999 s
        view.on_event(web1, "progress", _ev("a", "Downloading", i * 1000, 1_000_000))
        clock.t += 0.001
    redraws = out.getvalue().count(UP3)
    assert 9 <= redraws <= 10, redraws
    view.finish([HostResult(h, data={}) for h in _hosts("web1", "web2", "db1")])
    assert out.getvalue().count(UP3) == redraws + 1  # the final frame is always drawn


def test_long_lines_are_cut_to_the_terminal_width():
    out = FakeTTY()
    view = ProgressView(_hosts("web1"), "registry.example.com:5000/team/very-long-image-name:tag", stream=out,
                        tty=True, clock=Clock(), columns=30)
    view.start()
    assert all(len(line) <= len(CLEAR) + 29 for line in out.getvalue().splitlines())


def test_not_a_tty_prints_one_line_per_status_change():
    out, clock = io.StringIO(), Clock()
    view = _view(out, clock)
    assert not view.tty
    view.start()
    web1 = _hosts("web1")[0]
    for cur in (0, 10, 20):
        view.on_event(web1, "progress", _ev("3f4ca61ae4c3", "Downloading", cur, 20))
    view.on_event(web1, "progress", _ev("3f4ca61ae4c3", "Pull complete", 20, 20))
    view.finish([HostResult(web1, data={})])
    assert out.getvalue() == "web1: 3f4ca61ae4c3: Downloading\nweb1: 3f4ca61ae4c3: Pull complete\n"
    assert "\x1b" not in out.getvalue()


def test_dumb_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert not _view(FakeTTY(), Clock()).tty


def test_quiet_prints_nothing():
    out = FakeTTY()
    view = _view(out, Clock(), tty=True, quiet=True)
    view.start()
    view.on_event(_hosts("web1")[0], "progress", _ev("a", "Downloading", 1, 2))
    view.finish([HostResult(_hosts("web1")[0], data={})])
    assert out.getvalue() == ""


def test_push_statuses_count_as_done_and_skip_bytes():
    out = FakeTTY()
    view = ProgressView(_hosts("web1"), "reg:5000/app:1", "Push complete", stream=out, tty=True, clock=Clock(),
                        columns=200)
    web1 = _hosts("web1")[0]
    view.on_event(web1, "progress", _ev("a", "Layer already exists"))
    view.on_event(web1, "progress", _ev("b", "Mounted from library/base"))
    view.on_event(web1, "progress", _ev("c", "Pushing", 500, 1000))
    assert view.frame() == ["web1  reg:5000/app:1  2/3 layers  500B/1kB  Pushing"]
    view.on_event(web1, "progress", _ev("c", "Pushed", 1000, 1000))
    view.finish([HostResult(web1, data={})])
    assert view.frame() == ["web1  reg:5000/app:1  3/3 layers  1kB/1kB  Push complete"]
