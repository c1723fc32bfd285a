"""``fleet events`` and ``fleet logs -f`` across lab hosts over SSH: events in order on two hosts (followed, and
sorted with --until), three hosts' logs merged as written, and ``--retry`` surviving one host's sshd restart."""

import calendar
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers.lab import LAB_NAME, LAB_SUBNET, fleet

pytestmark = pytest.mark.integration

PREFIX = "evl-"
TWO = "web1:web2"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


class Stream:
    """A fleet command running in the background; its stdout/stderr lines read incrementally with deadlines."""

    def __init__(self, lab, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "fleet", "-i", str(lab.inventory)] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out, self.err = queue.Queue(), []
        self.lines = []  # (arrival monotonic time, line)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(f, put):
        for line in f:
            put(line.rstrip("\n"))

    def until(self, what, predicate, deadline=30.0):
        """Read lines until ``predicate(self.lines)`` holds; fail after ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while not predicate(self.lines):
            left = end - time.monotonic()
            assert left > 0 and self.proc.poll() is None, "waiting for {}: exit {}\nout: {}\nerr: {}".format(
                what, self.proc.poll(), self.lines[-20:], self.err[-20:])
            try:
                self.lines.append((time.monotonic(), self.out.get(timeout=min(left, 0.5))))
            except queue.Empty:
                pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _actions(lines, host, name):
    """The actions of container ``name`` on ``host`` in the order fleet printed them."""
    out = []
    for line in lines:
        m = re.match(r"^(\S+)\s+\| (\S+) container (.+?) [0-9a-f]{64} \((.*)\)$", line)
        if m and m.group(1) == host and "name={}".format(name) in m.group(4).split(", "):
            out.append(m.group(3))
    return out


def _run_life(lab, name):
    """A container that turns healthy, then dies with exit code 3, on both hosts."""
    proc = lab.fleet("run", "-d", "-H", TWO, "--name", name, "--health-cmd", "true", "--health-interval", "200ms",
                     "busybox", "sh", "-c", "sleep 2; exit 3")
    assert proc.returncode == 0, proc.stderr


LIFE = ["create", "start", "health_status: healthy", "die"]


def test_events_follow_two_hosts_by_arrival_and_until_sorted(clean):
    lab, name = clean, PREFIX + "life"
    since = "{:.3f}".format(time.time())
    # --since: what happened before a host's stream attached is replayed, then the stream follows
    follow = Stream(lab, "events", "-H", TWO, "--since", since, "-f", "type=container", "-f", "container=" + name)
    try:
        _run_life(lab, name)
        follow.until("both hosts' die", lambda ls: all(
            _actions([t for _, t in ls], h, name) == LIFE for h in ("web1", "web2")), deadline=60)
    finally:
        assert follow.stop() in (130, -signal.SIGINT)  # Ctrl-C ends it
    # the same window read back: every host's events, sorted by time, exit code and attributes as docker's
    proc = lab.fleet("events", "-H", TWO, "--since", since, "--until", "{:.3f}".format(time.time() + 1),
                     "-f", "container=" + name)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for host in ("web1", "web2"):
        assert _actions(lines, host, name) == LIFE, proc.stdout
    stamps = [line.split(" | ", 1)[1].split()[0] for line in lines]
    assert stamps == sorted(stamps) and len(stamps) == 8
    die = [line for line in lines if " container die " in line]
    assert all("exitCode=3" in line and "image=busybox" in line for line in die), die
    proc = lab.fleet("events", "-H", TWO, "--since", since, "--until", "{:.3f}".format(time.time() + 1),
                     "-f", "container=" + name, "-f", "event=health_status", "--format",
                     "{{.Host}} {{.Action}} {{.Actor.Attributes.name}}")
    assert sorted(proc.stdout.splitlines()) == ["web1 health_status: healthy " + name,
                                                "web2 health_status: healthy " + name]


COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done"


def _counts(lines, host):
    out = []
    for _at, line in lines:
        m = re.match(r"^(\S+)\s+\| (\S+) (\d+)$", line)
        if m and m.group(1) == host:
            out.append(int(m.group(3)))
    return out


def _lab_cmd(*args):
    return fleet("lab", *args, "--name", LAB_NAME, "--subnet", LAB_SUBNET, timeout=300)


def _restart_sshd(lab, host):
    """Kill the lab host's sshd and every SSH session it carries (by PID), then bring it back (`fleet lab up`)."""
    import json
    st = json.loads(_lab_cmd("status", "--json", "--inventory-out", str(lab.inventory)).stdout)
    (row,) = [h for h in st["hosts"] if h["name"] == host]
    listener = row["sshd_pid"]
    assert os.path.basename(os.readlink("/proc/{}/exe".format(listener))) == "sshd"
    sessions = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/{}/stat".format(entry)) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == listener and os.path.basename(os.readlink("/proc/{}/exe".format(entry))).startswith("sshd"):
                sessions.append(int(entry))
        except (OSError, ValueError):
            continue
    assert sessions, "no SSH session on {}".format(host)
    for pid in [listener] + sessions:
        os.kill(pid, signal.SIGKILL)
    return lambda: _lab_cmd("up", "--hosts", "3", "--inventory-out", str(lab.inventory))


def test_logs_follow_three_hosts_as_written_and_retry_survives_an_sshd_restart(clean):
    lab, name = clean, PREFIX + "count"
    proc = lab.fleet("run", "-d", "-H", "all", "--name", name, "busybox", "sh", "-c", COUNTER)
    assert proc.returncode == 0, proc.stderr
    hosts = sorted(lab.hosts)
    assert len(hosts) == 3
    logs = Stream(lab, "logs", "-f", "--retry", "-t", "--tail", "1", "-H", "all", name)
    try:
        logs.until("lines from all three hosts", lambda ls: all(len(_counts(ls, h)) >= 5 for h in hosts))
        # as written: each line arrives soon after the container wrote it (-t: the host's time of the line)
        recent = [(at, line) for at, line in logs.lines[-6:]]
        for at, line in recent:
            stamp = re.match(r"^\S+\s+\| (\S+) ", line).group(1)
            written = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + stamp[20:29])
            assert time.time() - (time.monotonic() - at) - written < 3.0, line
        victim = "web2"
        before = len(_counts(logs.lines, victim))
        bring_back = _restart_sshd(lab, victim)
        deadline = time.monotonic() + 30
        while not any("{} | stream broke".format(victim) in e for e in logs.err):
            assert time.monotonic() < deadline, logs.err
            logs.until("more lines", lambda ls, n=len(logs.lines): len(ls) > n, deadline=10)
        others = {h: len(_counts(logs.lines, h)) for h in hosts if h != victim}
        logs.until("the others flowing while {} is down".format(victim),
                   lambda ls: all(len(_counts(ls, h)) >= others[h] + 3 for h in others), deadline=15)
        assert bring_back().returncode == 0
        logs.until("{} re-attached".format(victim), lambda ls: len(_counts(ls, victim)) >= before + 15, deadline=60)
    finally:
        logs.stop()
    for h in hosts:  # every host's counter consecutive: nothing lost, nothing twice across the re-attach
        seq = _counts(logs.lines, h)
        assert seq == list(range(seq[0], seq[0] + len(seq))), (h, seq)


def test_network_and_volume_events(clean):
    lab, net, vol, name = clean, PREFIX + "net", PREFIX + "vol", PREFIX + "nc"
    since = "{:.3f}".format(time.time())
    try:
        for args in (("network", "create", "-H", "web1", net), ("volume", "create", "-H", "web1", vol),
                     ("run", "-d", "-H", "web1", "--name", name, "busybox", "sleep", "300"),
                     ("network", "connect", "-H", "web1", net, name),
                     ("network", "disconnect", "-H", "web1", net, name), ("volume", "rm", "-H", "web1", vol)):
            proc = lab.fleet(*args)
            assert proc.returncode == 0, (args, proc.stderr)
        proc = lab.fleet("events", "-H", "web1", "--since", since, "--until", "{:.3f}".format(time.time() + 1),
                         "-f", "type=network", "-f", "type=volume", "--format",
                         "{{.Type}} {{.Action}}|{{.Actor.Attributes.name}}|{{.Actor.Attributes.container}}|{{.ID}}")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        rows = [line.split("|") for line in lines]
        # docker's: a volume's Actor is its name (attributes: driver); a network's its ID (name, container, type)
        assert [(r[0], r[1]) for r in rows] == [("volume create", "<no value>"), ("network connect", net),
                                                ("network disconnect", net), ("volume destroy", "<no value>")], lines
        assert rows[0][3] == rows[3][3] == vol
        assert all(re.match(r"^[0-9a-f]{64}$", r[2]) for r in rows[1:3]), lines  # the container's full ID
    finally:
        lab.fleet("rm", "-f", "-H", "web1", name)
        lab.fleet("network", "rm", "-H", "web1", net)
        lab.fleet("volume", "rm", "-H", "web1", vol)
