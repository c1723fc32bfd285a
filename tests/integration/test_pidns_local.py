"""restart.fork_in_new_pidns on the real kernel: one fork per run into a fresh PID namespace, the caller back in
its own namespace for the next one (no middle process)."""

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (PID namespaces)")]

SCRIPT = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, {repo!r})
    from agent_payload.runtime import restart

    me = os.stat("/proc/self/ns/pid").st_ino
    seen = set()
    for _ in range(3):  # as a shim does for each run of a restarting container
        r, w = os.pipe()
        pid = restart.fork_in_new_pidns()
        if pid == 0:
            os.close(r)
            os.write(w, "{{}} {{}} {{}}".format(os.getpid(), os.getppid(), os.stat("/proc/self/ns/pid").st_ino)
                     .encode())
            os._exit(0)
        os.close(w)
        inner_pid, inner_ppid, ns = (int(x) for x in os.read(r, 200).split())
        os.close(r)
        # its parent is us (no middle process), and our next children are born in our own namespace again
        with open("/proc/{{}}/status".format(pid)) as f:
            ppid = int([line for line in f if line.startswith("PPid:")][0].split()[1])
        assert inner_pid == 1 and ppid == os.getpid(), (inner_pid, ppid)
        assert os.stat("/proc/self/ns/pid_for_children").st_ino == me
        assert ns != me and ns not in seen
        seen.add(ns)
        os.waitpid(pid, 0)
    print("done")
    """)


def test_fork_in_new_pidns_forks_once_and_returns_home():
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=REPO)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
