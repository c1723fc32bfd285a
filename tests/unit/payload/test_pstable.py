"""docker top's ps options rendered from /proc (runtime/pstable.py): option parsing, headers and columns as
procps prints them, and the errors ps and docker give."""

import os
import subprocess
import sys

import pytest

from agent_payload import errors
from agent_payload.runtime import pstable


def headers(*tokens):
    return [h for _k, h in pstable.parse(list(tokens))]


@pytest.mark.parametrize("tokens,expected", [
    ((), ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]),
    (("-ef",), ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]),
    (("-e", "-f"), ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]),
    (("aux",), ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"]),
    (("ax",), ["PID", "TTY", "STAT", "TIME", "COMMAND"]),
    (("-e",), ["PID", "TTY", "TIME", "CMD"]),
    (("-o", "pid,comm"), ["PID", "COMMAND"]),
    (("-opid,ppid,user,uid",), ["PID", "PPID", "USER", "UID"]),
    (("-eo", "pid,args,cmd,etime,time,stat,rss,vsz,pcpu,pmem,nlwp"),
     ["PID", "COMMAND", "CMD", "ELAPSED", "TIME", "STAT", "RSS", "VSZ", "%CPU", "%MEM", "NLWP"]),
    (("-o", "pid", "-o", "comm"), ["PID", "COMMAND"]),
    (("o", "pid,%cpu"), ["PID", "%CPU"]),
    (("--format", "pid,tty"), ["PID", "TT"]),
    (("--format=pid",), ["PID"]),
    (("-o", "pid=ID,comm"), ["ID,comm"]),  # procps: a header takes the rest of the list
    (("-o", "pid=ID", "-o", "comm=NAME"), ["ID", "NAME"]),
    (("-o pid,comm",), ["PID", "COMMAND"]),  # one argument with a space, as docker joins them
])
def test_parse_gives_procps_headers(tokens, expected):
    assert headers(*tokens) == expected


@pytest.mark.parametrize("tokens,message", [
    (("-o", "comm"), "Couldn't find PID field in ps output"),
    (("-o", "pid,nosuch"), 'unknown user-defined format specifier "nosuch"'),
    (("-o",), "list of keywords must follow -o"),
    (("-l",), "unsupported SysV option: -l"),
    (("auxj",), "unsupported BSD option: j"),
    (("--nosuch",), "unknown gnu long option: --nosuch"),
])
def test_parse_refuses_what_ps_or_docker_would(tokens, message):
    with pytest.raises(errors.InvalidArgument, match=message.replace("(", r"\(")):
        pstable.parse(list(tokens))


@pytest.fixture
def child():
    # it says when its start-up is over (its memory settled), then sleeps
    proc = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(60)", "arg two"],
                            stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_columns_of_a_real_process(child):
    out = pstable.table([child.pid, 999999999], ["-o", "pid,ppid,uid,user,comm,args,nlwp,stat,rss,vsz,etime,"
                                                 "time,pcpu,pmem,tty"])
    (row,) = out["processes"]  # the missing PID is left out
    values = dict(zip(["pid", "ppid", "uid", "user", "comm", "args", "nlwp", "stat", "rss", "vsz", "etime", "time",
                       "pcpu", "pmem", "tty"], row))
    assert values["pid"] == str(child.pid) and values["ppid"] == str(os.getpid())
    assert values["uid"] == str(os.geteuid())
    assert values["comm"].startswith("python")
    assert values["args"].endswith("-c import time; print(flush=True); time.sleep(60) arg two")
    assert values["nlwp"] == "1" and values["stat"][0] in "SR"
    with open("/proc/{}/status".format(child.pid)) as f:
        status = dict(line.split(":", 1) for line in f)
    assert abs(int(values["rss"]) - int(status["VmRSS"].split()[0])) < 2048
    assert values["vsz"] == status["VmSize"].split()[0]
    assert values["etime"].count(":") == 1 and values["time"] == "00:00:00"
    assert float(values["pcpu"]) >= 0 and float(values["pmem"]) >= 0
    ef = pstable.table([child.pid], [])["processes"][0]
    assert ef[1:3] == [str(child.pid), str(os.getpid())] and ef[7] == values["args"]
    assert pstable.table([child.pid], ["-e"])["processes"][0][3] == values["comm"]  # ps -e's CMD: the name
    assert pstable.table([child.pid], ["ax"])["processes"][0][4] == values["args"]  # ps ax's COMMAND: the args


@pytest.mark.parametrize("seconds,clock,elapsed", [
    (0, "00:00:00", "00:00"), (61, "00:01:01", "01:01"), (3 * 3600 + 5, "03:00:05", "03:00:05"),
    (2 * 86400 + 3600, "2-01:00:00", "2-01:00:00"),
])
def test_time_formats(seconds, clock, elapsed):
    assert pstable._clock(seconds) == clock
    assert pstable._elapsed(seconds) == elapsed


def test_stat_flags():
    base = {"state": "S", "nice": 0, "locked": False, "sid": 1, "pid": 1, "nlwp": 1, "tpgid": 1, "pgrp": 1}
    assert pstable._stat(base) == "Ss+"
    assert pstable._stat(dict(base, sid=2, nlwp=4, tpgid=-1, nice=5)) == "SNl"
    assert pstable._stat(dict(base, nice=-5, locked=True, sid=3, tpgid=7)) == "S<L"
