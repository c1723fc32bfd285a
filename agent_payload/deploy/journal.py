"""The host's deploy journal: ``<root>/deploys/journal.jsonl`` (0600), one JSON line per swap or rollback.

Each line is written with one ``write`` on an O_APPEND descriptor under a flock of the file and fsynced, so
concurrent writers never interleave and a crash loses at most the line being written (a torn last line is
skipped when read, and the next line starts on a line of its own).
"""

import fcntl
import json
import os

from . import deploys_dir

FIELDS = ("time", "controller", "deploy_id", "project", "service", "from", "to", "result", "action", "reason")


def path_of(paths):
    return os.path.join(deploys_dir(paths), "journal.jsonl")


def append(paths, entry):
    """Append ``entry`` (a dict with FIELDS) as one line."""
    line = (json.dumps({k: entry.get(k) for k in FIELDS}, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path_of(paths), os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # appenders one at a time: the torn-line check reads a finished file
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            line = b"\n" + line  # the last line was torn by a crash: ours starts on a line of its own
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(paths, project=None, service=None, last=None):
    """The entries, oldest first, of ``project``/``service`` when given; ``last``: only the N newest."""
    try:
        with open(path_of(paths), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if not isinstance(entry, dict):
            continue
        if project is not None and entry.get("project") != project:
            continue
        if service is not None and entry.get("service") != service:
            continue
        out.append(entry)
    if last is not None:
        out = out[-last:] if last else []
    return out
