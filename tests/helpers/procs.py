"""The fleet CLI as a byte stream and as a background process (what a script or a shell does with it).

``fleet_bytes``: one run with bytes in and out (``> dump.sql``, ``< data``).  ``Background``: fleet started with
its PID known, its stdout/stderr collected by threads, so a test can wait for output, send it a signal (as ^C or
``kill`` would) and read its exit status.
"""

import os
import signal
import subprocess
import sys
import threading
import time


def _command(lab, args):
    return [sys.executable, "-m", "fleet", "-i", str(lab.inventory)] + list(args)


def fleet_bytes(lab, *args, input=None, timeout=300):
    """Run the fleet CLI with ``input`` (bytes) on stdin; the CompletedProcess with stdout/stderr as bytes."""
    return subprocess.run(_command(lab, args), input=input if input is not None else b"", capture_output=True,
                          timeout=timeout)


def _default_signals():
    """In the child: SIGINT and SIGTERM at their defaults, as in a shell's foreground job (a test runner started in
    the background may pass SIGINT on ignored, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Background:
    """``fleet ARGS`` running in the background; stdin a pipe kept open (``stdin=True``) or /dev/null."""

    def __init__(self, lab, *args, stdin=False):
        self.proc = subprocess.Popen(_command(lab, args), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_signals)
        self.pid = self.proc.pid
        self.out, self.err = bytearray(), bytearray()
        self.threads = [threading.Thread(target=self._pump, args=(f, buf), daemon=True)
                        for f, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(f, buf):
        while True:
            chunk = os.read(f.fileno(), 65536)
            if not chunk:
                return
            buf.extend(chunk)

    def wait_for(self, needle: bytes, timeout=120):
        """Until ``needle`` is in stdout (AssertionError with what was seen when it is not, or fleet exited)."""
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("{!r} not seen (exit {}):\n{}\n{}".format(
                    needle, self.proc.poll(), bytes(self.out), bytes(self.err)))
            time.sleep(0.05)

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=120):
        """The exit status (as the shell reports it: -N for death by signal N); the process is killed on timeout."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("fleet did not exit:\n{}\n{}".format(bytes(self.out), bytes(self.err)))
        for t in self.threads:
            t.join(10)
        return code

    def stop(self):
        """Kill it if it still runs (cleanup after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
