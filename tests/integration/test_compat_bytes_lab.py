"""Docker compatibility of output bytes (issue 13, item 5), over SSH on the lab.

Docker copies a container's streams as bytes (``stdcopy``): ``docker exec c cat f > out`` gives f's bytes,
``docker logs`` of the ``local`` driver gives the bytes logged (its json-file driver stores text and writes
U+FFFD for bytes that are not UTF-8: moby's jsonlog ``ffjsonWriteJSONBytesAsString``; fleet's json-file store keeps
that text and the exact bytes next to it, so its ``logs`` are exact).  fleet with one host and stdout not a
terminal writes the same bytes, no prefix; ``--prefix`` puts ``host | `` before each line, several hosts are
prefixed per line with each line's bytes unchanged; stderr stays stderr.  There is no dockerd on the test
machine: the expectations come from docker/cli and moby's sources.
"""

import hashlib
import os

import pytest

from tests.helpers.procs import fleet_bytes

pytestmark = pytest.mark.integration

PREFIX = "cmpb-"
HOST = "web1"
BUSYBOX_HEAD = "head -c 4096 /bin/busybox"  # ELF bytes: NULs, 0x7f, 0x80-0xff (not UTF-8), a few newlines


@pytest.fixture
def box(lab):
    """A running busybox container on web1 and web2 (removed afterwards, even on failure)."""
    lab.remove_containers(PREFIX)
    name = PREFIX + "box"
    lab.fleet("run", "-d", "-H", "web1:web2", "--name", name, "busybox", "sleep", "600", check=True)
    yield lab, name
    lab.remove_containers(PREFIX)


def _ok(proc):
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def _sha_in_container(lab, name, path):
    out = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "sha256sum", path)).stdout
    return out.split()[0].decode()


def test_binary_file_round_trip_through_exec(box):
    """docker: ``docker exec -i c sh -c 'cat > f' < data`` then ``docker exec c cat f > copy``: copy == data
    (sha256 equal), and 300 bytes of /bin/busybox come back as 300 bytes (fleet today: 335, U+FFFD)."""
    lab, name = box
    data = os.urandom(200000) + b"\n\xff\xfe no newline at the end \x80"
    _ok(fleet_bytes(lab, "exec", "-i", "-H", HOST, name, "sh", "-c", "cat > /tmp/f", input=data))
    assert _sha_in_container(lab, name, "/tmp/f") == hashlib.sha256(data).hexdigest()
    back = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "cat", "/tmp/f"))
    assert len(back.stdout) == len(data) and back.stdout == data and back.stderr == b""
    # the same bytes on stderr when the command writes them there
    err = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "sh", "-c", "cat /tmp/f >&2"))
    assert err.stdout == b"" and err.stderr == data
    # exec -i's raw output path: stdin to stdout and back
    echo = _ok(fleet_bytes(lab, "exec", "-i", "-H", HOST, name, "cat", input=data))
    assert echo.stdout == data
    head = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "head", "-c", "300", "/bin/busybox"))
    sha = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "sh", "-c", "head -c 300 /bin/busybox | sha256sum"))
    assert len(head.stdout) == 300 and hashlib.sha256(head.stdout).hexdigest() == sha.stdout.split()[0].decode()


def test_one_host_is_raw_unless_prefix_and_several_are_prefixed_per_line(box):
    """docker has no hosts: its output is the container's bytes.  fleet: one host and stdout not a terminal ->
    the bytes alone (``fleet exec -H db1 pg pg_dump > dump.sql``); ``--prefix`` forces ``host | line``;
    several hosts are prefixed per line, each line's bytes unchanged; ``--no-prefix`` gives them raw."""
    lab, name = box
    assert _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "echo", "hi")).stdout == b"hi\n"
    assert _ok(fleet_bytes(lab, "exec", "-H", HOST, "--prefix", name, "echo", "hi")).stdout == b"web1 | hi\n"
    both = _ok(fleet_bytes(lab, "exec", "-H", "web1:web2", "--no-prefix", name, "echo", "hi"))
    assert both.stdout == b"hi\nhi\n"
    data = bytes(b for b in os.urandom(8000) if b != 0x0a)[:3000] + b"\n" + os.urandom(3000).replace(b"\n", b"")
    data = data + b"\n\xc3(\xff\n"  # lines well under the 16K split; ends with a newline
    _ok(fleet_bytes(lab, "exec", "-i", "-H", "web1:web2", name, "sh", "-c", "cat > /tmp/g", input=data))
    out = _ok(fleet_bytes(lab, "exec", "-H", "web1:web2", name, "cat", "/tmp/g")).stdout
    for host in ("web1", "web2"):
        mark = host.encode() + b" | "
        lines = [line[len(mark):] for line in out.split(b"\n") if line.startswith(mark)]
        assert b"\n".join(lines) + b"\n" == data, host


def test_logs_run_start_and_attach_of_a_container_that_writes_binary(box):
    """docker: a container's binary stdout comes back exactly through ``docker run`` (attached), ``docker start
    -a``, ``docker attach`` and ``docker logs`` (-f too) of the ``local`` log driver (json-file: U+FFFD, see the
    module docstring).  fleet's json-file logs and every attached path give the exact bytes; a last line without
    a newline stays without one."""
    lab, name = box
    expected = _ok(fleet_bytes(lab, "exec", "-H", HOST, name, "sh", "-c", BUSYBOX_HEAD)).stdout
    assert len(expected) == 4096
    script = BUSYBOX_HEAD + "; printf 'tail \\377'"
    want = expected + b"tail \xff"
    run = _ok(fleet_bytes(lab, "run", "-H", HOST, "--name", PREFIX + "run", "busybox", "sh", "-c", script))
    assert run.stdout == want
    logs = _ok(fleet_bytes(lab, "logs", "-H", HOST, PREFIX + "run"))
    assert logs.stdout == want
    followed = _ok(fleet_bytes(lab, "logs", "-f", "-H", HOST, PREFIX + "run"))
    assert followed.stdout == want
    _ok(fleet_bytes(lab, "create", "-H", HOST, "--name", PREFIX + "start", "busybox", "sh", "-c", script))
    started = fleet_bytes(lab, "start", "-a", "-H", HOST, PREFIX + "start")
    assert started.returncode == 0 and started.stdout == want, started.stderr
    # attach: the shim's attach socket (a container with -i), started before the bytes are written
    _ok(fleet_bytes(lab, "run", "-d", "-i", "-H", HOST, "--name", PREFIX + "att", "busybox", "sh", "-c",
                    "read go; " + script))
    attached = fleet_bytes(lab, "attach", "-H", HOST, PREFIX + "att", input=b"go\n")
    assert attached.returncode == 0 and attached.stdout == want, attached.stderr
    assert _ok(fleet_bytes(lab, "logs", "-H", HOST, PREFIX + "att")).stdout == want
