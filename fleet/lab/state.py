"""Lab bookkeeping: atomic files, the lab.json state file, process liveness and killing by PID."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from agent_payload.state.store import write_bytes_atomic
from fleet.errors import FleetError

STATE_FILE = "lab.json"
MOUNTPOINTS_FILE = Path("/var/lib/fleet-lab/.mountpoints.json")


class LabError(FleetError):
    """A lab step failed; the message names the step and carries the tool's stderr."""


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run an argv list, capture text output, raise LabError (with stderr) on failure when check is set."""
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise LabError("{} failed ({}): {}".format(" ".join(argv), proc.returncode, proc.stderr.strip()[-2000:]))
    return proc


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write a file via tmp + fsync + rename, so readers never see a partial file; a no-op when already identical."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o7777 == mode and path.read_bytes() == data:
            return                                  # unchanged: leave the file (and its mtime) alone
    write_bytes_atomic(str(path), data, mode)


def write_json(path: Path, obj, mode: int = 0o644) -> None:
    """Atomically write obj as indented JSON."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode)


def load_state(state_dir: Path) -> dict | None:
    """Return the lab's recorded state, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def save_state(state_dir: Path, state: dict) -> None:
    """Record the lab's state atomically."""
    write_json(Path(state_dir) / STATE_FILE, state)


def pid_matches(pid: int | None, exe: str, netns: str | None) -> bool:
    """True when pid is alive, runs exe and lives in the named netns: guards against PID reuse (sshd rewrites its
    command line, so that is no use)."""
    if not pid or not netns:
        return False
    try:
        if os.readlink("/proc/{}/exe".format(pid)) != exe:
            return False
        mine, theirs = os.stat("/run/netns/" + netns), os.stat("/proc/{}/ns/net".format(pid))
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    except OSError:
        return False


def _fs_relative(path: Path) -> tuple[str, str] | None:
    """Return (major:minor, path relative to its filesystem's root) for path, from /proc/self/mountinfo."""
    real = os.path.realpath(path)
    best = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        mnt = f[4]
        if real == mnt or real.startswith(mnt.rstrip("/") + "/"):
            if best is None or len(mnt) >= len(best[4]):
                best = f
    if best is None:
        return None
    rest = real[len(best[4].rstrip("/")):]
    return best[2], (best[3].rstrip("/") + rest) or "/"


def pids_using(state_dir: Path) -> set[int]:
    """PIDs whose mount table holds a mount taken from state_dir: lab sshds, their sessions, and containers
    (whose rootfs lives under a lab host's /var/lib/fleet, i.e. under state_dir), whatever netns they are in."""
    rel = _fs_relative(state_dir)
    found: set[int] = set()
    if rel is None:
        return found
    dev, root = rel
    prefix = root.rstrip("/") + "/"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "mountinfo").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            f = line.split(" ", 5)
            if len(f) > 4 and f[2] == dev and (f[3] == root or f[3].startswith(prefix)):
                found.add(int(entry.name))
                break
    return found


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        stat = Path("/proc/{}/stat".format(pid)).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_pids(find: Callable[[], Iterable[int]], log: Callable[[str], None], grace: float = 3.0) -> int:
    """Kill every PID that find() reports, by PID: SIGTERM, wait up to grace, SIGKILL; repeat until find() is empty.

    Returns how many distinct PIDs were signalled. Never signals this process or its parent."""
    spare = {os.getpid(), os.getppid()}
    signalled: set[int] = set()
    for _round in range(5):
        pids = {p for p in find() if p not in spare and _alive(p)}
        if not pids:
            break
        signalled |= pids
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(pids)
                pids = {p for p in pids if _alive(p)}
                if not pids:
                    break
                time.sleep(0.05)
            if not pids:
                break
    if signalled:
        log("stopped {} process(es)".format(len(signalled)))
    return len(signalled)


def _reap(pids: Iterable[int]) -> None:
    """Reap those of pids that are our own exited children (e.g. sshds started by up() in this process)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def _locked_json(path: Path) -> Iterator[dict]:
    """Read-modify-write a small JSON file under an flock; deletes the file when the dict ends up empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            data = {}
        yield data
        if data:
            write_json(path, data)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path) + ".lock")


def claim_mountpoints(lab: str, paths: Iterable[str]) -> None:
    """Make sure each host directory used as a mount point exists; record that lab uses it, and whether a lab made it.

    Labs share these directories, so the record is refcounted: the last lab down removes the ones a lab created."""
    with _locked_json(MOUNTPOINTS_FILE) as data:
        for p in paths:
            entry = data.setdefault(p, {"created": False, "users": []})
            if not os.path.isdir(p):
                os.makedirs(p, mode=0o755)
                entry["created"] = True
            if lab not in entry["users"]:
                entry["users"].append(lab)


def release_mountpoints(lab: str, log: Callable[[str], None]) -> None:
    """Drop lab from the mount-point record; rmdir (only if empty) the directories a lab created and nobody uses."""
    if not MOUNTPOINTS_FILE.exists():
        return
    with _locked_json(MOUNTPOINTS_FILE) as data:
        for p in list(data):
            entry = data[p]
            if lab in entry["users"]:
                entry["users"].remove(lab)
            if entry["users"]:
                continue
            if entry["created"]:
                try:
                    os.rmdir(p)
                    log("removed mount point {}".format(p))
                except OSError as e:
                    log("kept mount point {}: {}".format(p, e.strerror))
            del data[p]
    with contextlib.suppress(OSError):
        MOUNTPOINTS_FILE.parent.rmdir()
