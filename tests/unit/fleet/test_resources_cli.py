"""fleet's resource commands without hosts: docker stats' columns, the refresh loop, flag plumbing and usage errors."""

import io
from types import SimpleNamespace

import pytest

from fleet.commands import lifecycle
from fleet.errors import UsageError
from fleet.transport.fanout import HostResult

MB = 1 << 20


def _sample(**kw):
    row = {"id": "ab" * 32, "name": "web", "cpu_percent": 12.345, "memory_usage": int(1.5 * MB),
           "memory_limit": 32 * MB, "memory_percent": 4.69, "net_rx": 0, "net_tx": 0, "block_read": 4096,
           "block_write": 0, "pids": 3}
    row.update(kw)
    return row


def test_bytes_size_is_go_units_binary():
    assert lifecycle.bytes_size(0) == "0B"
    assert lifecycle.bytes_size(1.5 * MB) == "1.5MiB"
    assert lifecycle.bytes_size(32 * MB) == "32MiB"
    assert lifecycle.bytes_size(7.6 * 1024 * MB) == "7.6GiB"


def test_stats_row_has_dockers_columns():
    assert lifecycle.stats_row(_sample()) == ["abababababab", "web", "12.35%", "1.5MiB / 32MiB", "4.69%",
                                              "0B / 0B", "4.1kB / 0B", "3"]


class FakeSession:
    def __init__(self, samples):
        self.samples = list(samples)
        self.calls = []

    def select(self, patterns):
        return [SimpleNamespace(name="web1")]

    def run_hosts(self, hosts, op, args, *a, **kw):
        self.calls.append((op, args))
        return [HostResult(hosts[0], data={"stats": self.samples.pop(0)})]


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_stats_no_stream_prints_one_table(capsys):
    session = FakeSession([[_sample()]])
    assert lifecycle.stats(session, ["web1"], ["web"], True, True, False) == 0
    assert session.calls == [("stats", {"containers": ["web"], "all": True})]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["HOST", "CONTAINER", "ID"] and "MEM USAGE / LIMIT" in lines[0]
    assert lines[1].startswith("web1") and "1.5MiB / 32MiB" in lines[1]


def test_stats_streams_until_interrupted_clearing_a_terminal(capsys):
    session = FakeSession([[_sample(pids=1)], [_sample(pids=2)]])
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lifecycle.stats(session, ["web1"], [], False, False, False, stdout=Tty(), sleep=sleep)
    assert len(session.calls) == 2 and sleeps == [lifecycle.STATS_REFRESH] * 2
    out = capsys.readouterr().out
    assert out.count("HOST") == 2


def test_update_needs_a_flag_and_resource_args_refuse_empty_values():
    from fleet.commands.runflags import parse_flags

    def resource_args(memory, memory_swap, cpus, cpu_shares, pids_limit):  # update's flags, parsed as the CLI does
        return parse_flags("update", {"memory": memory, "memory_swap": memory_swap, "cpus": cpus,
                                      "cpu_shares": cpu_shares, "pids_limit": pids_limit})

    with pytest.raises(UsageError):
        lifecycle.update(None, ["web1"], ["c"], resource_args(None, None, None, None, None), False)
    with pytest.raises(UsageError, match="--memory"):
        resource_args(" ", None, None, None, None)
    assert resource_args("32m", "-1", "0.5", "512", "10") == {
        "memory": "32m", "memory_swap": "-1", "cpus": "0.5", "cpu_shares": "512", "pids_limit": "10",
        "restart": None}
