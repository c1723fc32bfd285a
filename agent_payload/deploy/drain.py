"""Draining the old container after a start-first handover: its published ports no longer receive new
connections, but the ones it accepted before (kept by conntrack) may still be answering.  Before its stop
signal, wait (at most the grace period) until none of its TCP connections on its published container ports is
still open (ESTABLISHED, SYN_RECV, FIN_WAIT or CLOSE_WAIT in its network namespace's /proc/<pid>/net/tcp)."""

import time

# /proc/net/tcp states that mean a client is still being served (not LISTEN, TIME_WAIT or CLOSE)
_BUSY = {"01", "03", "04", "05", "08"}
POLL = 0.1


def open_connections(pid, ports):
    """How many TCP connections of the process's network namespace are open on one of ``ports``."""
    count = 0
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/{}/net/{}".format(pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] in _BUSY and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                count += 1
    return count


def wait(rec, grace, clock=time.monotonic, sleep=time.sleep):
    """Wait until the running container ``rec`` serves no connection on its published TCP ports, at most
    ``grace`` s; returns how many were still open."""
    ports = {b["container_port"] for b in rec.get("ports") or [] if b.get("proto", "tcp") == "tcp"}
    pid = rec.get("pid")
    if not ports or not pid or rec.get("status") != "running":
        return 0
    deadline = clock() + grace
    while True:
        left = open_connections(pid, ports)
        if not left or clock() >= deadline:
            return left
        sleep(POLL)
