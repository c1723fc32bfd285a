"""fleet exec end to end over SSH on the lab: namespaces, cgroup, caps, user, env, workdir, exit codes, -d."""

import json
import re
import time

import pytest

pytestmark = pytest.mark.integration

PREFIX = "ex-"
HOST = "web1"


def _cleanup(lab):
    """Remove every container this module made (names start with PREFIX), on every host."""
    lab.remove_containers(PREFIX)


@pytest.fixture
def box(lab):
    """A running busybox container on web1 (removed afterwards, even on failure)."""
    _cleanup(lab)
    name = PREFIX + "box"
    lab.fleet("run", "-d", "-H", HOST, "--name", name, "busybox", "sleep", "300", check=True)
    yield lab, name
    _cleanup(lab)


def _exec(lab, *args):
    proc = lab.fleet("exec", "-H", HOST, "--prefix", *args)
    lines = [line.split(" | ", 1)[1] if " | " in line else line for line in proc.stdout.splitlines()]
    return proc, lines


def _inspect(lab, name):
    (obj,) = json.loads(lab.fleet("inspect", "-H", HOST, name, check=True).stdout)
    return obj


def test_exec_joins_uts_pid_and_cgroup(box):
    lab, name = box
    obj = _inspect(lab, name)
    proc, lines = _exec(lab, name, "hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(HOST + " | ")
    assert lines == [obj["Id"][:12]]
    proc, lines = _exec(lab, name, "ps", "-o", "pid,args")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(None, 1) for line in lines[1:]]
    assert ["1", "sleep 300"] in rows
    assert any(args.startswith("ps") for _pid, args in rows)
    assert len(rows) == 2, rows  # only the container's init and the exec'd ps: no host process is visible
    # the exec'd process's cgroup (as seen from inside) equals the init's, read inside the same namespace
    proc, lines = _exec(lab, name, "sh", "-c", "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup")
    assert proc.returncode == 0, proc.stderr
    sep = lines.index("---")
    mine, init = sorted(lines[:sep]), sorted(lines[sep + 1:])
    assert mine and mine == init


def test_exec_has_the_container_caps_and_nothing_of_the_host(box):
    lab, name = box
    proc, lines = _exec(lab, name, "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status; echo ---;"
                        " grep -E '^Cap(Eff|Bnd)' /proc/1/status")
    assert proc.returncode == 0, proc.stderr
    sep = lines.index("---")
    assert lines[:sep] == lines[sep + 1:]
    eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", proc.stdout).group(1), 16)
    assert eff == 0x00000000a80425fb  # docker's default set (caps.DEFAULT)
    proc, lines = _exec(lab, "--privileged", name, "sh", "-c", "grep CapEff /proc/self/status")
    assert int(lines[0].split()[1], 16) > eff
    proc, lines = _exec(lab, name, "sh", "-c", "ls /proc/self/fd")
    assert sorted(lines) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd: no leaked host fds


def test_exec_user_env_workdir(box):
    lab, name = box
    proc, lines = _exec(lab, "-u", "nobody", name, "id", "-u")
    assert proc.returncode == 0 and lines == ["65534"], proc.stderr
    proc, lines = _exec(lab, "-u", "nobody", name, "grep", "CapEff", "/proc/self/status")
    assert lines == ["CapEff:\t0000000000000000"]
    proc, lines = _exec(lab, name, "id", "-u")
    assert lines == ["0"]
    proc, lines = _exec(lab, "-e", "X=1", name, "sh", "-c", "echo $X $HOSTNAME $PATH")
    assert proc.returncode == 0, proc.stderr
    x, hostname, path = lines[0].split()
    assert x == "1" and hostname == _inspect(lab, name)["Id"][:12] and "/bin" in path
    proc, lines = _exec(lab, "-w", "/tmp", name, "pwd")
    assert lines == ["/tmp"]
    proc, lines = _exec(lab, name, "pwd")
    assert lines == ["/"]
    proc, _ = _exec(lab, "-u", "nosuchuser", name, "true")
    assert proc.returncode == 1 and "unable to find user nosuchuser" in proc.stderr  # not 2: not a usage error


def test_exit_codes_and_streams(box):
    lab, name = box
    proc, lines = _exec(lab, name, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert proc.returncode == 7
    assert lines == ["out"]
    assert proc.stderr.strip() == HOST + " | err"
    proc, _ = _exec(lab, name, "nosuchcmd")
    assert proc.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in proc.stderr
    proc, _ = _exec(lab, name, "/etc/passwd")
    assert proc.returncode == 126, proc.stderr
    proc, _ = _exec(lab, name, "sh", "-c", "kill -9 $$")
    assert proc.returncode == 137


def test_detach_and_not_running(box):
    lab, name = box
    start = time.monotonic()
    proc = lab.fleet("exec", "-d", "-H", HOST, name, "sh", "-c", "sleep 4; touch /tmp/done")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 4  # returned before the command finished
    _, lines = _exec(lab, name, "ls", "/tmp")
    assert "done" not in lines  # still sleeping: -d did not wait for it
    deadline = time.monotonic() + 20
    while "done" not in _exec(lab, name, "ls", "/tmp")[1]:
        assert time.monotonic() < deadline, "the detached process never ran"
        time.sleep(0.3)
    lab.fleet("stop", "-H", HOST, "-t", "0", name, check=True)
    proc, _ = _exec(lab, name, "true")
    assert proc.returncode == 1 and "is not running" in proc.stderr
    proc = lab.fleet("exec", "-H", HOST, "nosuchcontainer", "true")
    assert proc.returncode == 1 and "No such container" in proc.stderr
