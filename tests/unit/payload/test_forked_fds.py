"""process.close_fds_except in forked children: inherited Python objects must not close fds reused later."""

import gc
import os
import selectors

from agent_payload.runtime import process


def test_close_fds_except_keeps_inherited_garbage_from_closing_reused_fds():
    """An unreachable selector inherited over fork owns an fd close_fds_except closes; the next pipe reuses that
    number. A collection (the seccomp compile in an exec'd health probe triggered one) must not close the pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            gc.disable()  # the garbage must still be there when close_fds_except runs
            sel = selectors.DefaultSelector()  # a reference cycle with its mapping: only the collector frees it
            stale = sel.fileno()
            del sel
            process.close_fds_except(w)
            a, b = os.pipe()
            os.dup2(b, stale)  # the number is reused (a pipe made later would take the lowest free one)
            gc.enable()
            gc.collect()
            os.write(stale, b"x")  # EBADF if the collected selector closed it
            code = 0 if os.read(a, 1) == b"x" else 2
        except BaseException:
            code = 3
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"\x00", got
