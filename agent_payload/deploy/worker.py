"""Running a swap or rollback in a DETACHED worker, and following it.

``launch`` forks twice (``setsid`` in between, as the shim's launcher does): the worker is reparented to init,
its stdio is /dev/null and it holds none of the op's descriptors, so the SSH session dying (the op process
killed, its pipes closed) changes nothing for it -- it finishes, or reverts, by itself.

It reports through its progress file ``deploys/work/<project>.<service>.<action>.<deploy_id>.jsonl`` (0600),
one JSON object per line, appended: ``{"worker": [pid, starttime]}`` first, then ``{"event": name, "data":
{...}}`` lines and finally ``{"result": {...}}`` or ``{"error": {"kind", "message"}}``.  ``follow`` replays
that file as events and returns the result (or raises the error), and the op then deletes the file.  A file
left behind (the op was killed before the end) is followed by the same request sent again (same deploy,
service, action and args) instead of starting a second worker.  Files older than a day are removed when a new
worker starts.
"""

import hashlib
import json
import os
import re
import sys
import time
import traceback

from agent_payload import errors
from agent_payload.runtime import process, records
from agent_payload.state import perms

from . import deploys_dir

FIRST_LINE_TIMEOUT = 30.0
POLL = 0.05
MAX_AGE = 86400


def work_dir(paths):
    path = os.path.join(deploys_dir(paths), "work")
    if not os.path.isdir(path):
        perms.makedirs(path, perms.DIR_MODE)
    return path


def progress_path(paths, project, service, action, deploy_id, args=None):
    """The progress file of one request: its deploy, service and action, and a digest of its args."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", deploy_id)[:100]
    digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(work_dir(paths), "{}.{}.{}.{}.{}.jsonl".format(project, service, action, safe, digest))


class Progress:
    """The worker's side of the progress file."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _line(self, obj, sync=False):
        os.write(self.fd, (json.dumps(obj, separators=(",", ":")) + "\n").encode())
        if sync:
            os.fsync(self.fd)

    def event(self, name, data):
        self._line({"event": name, "data": data})

    def phase(self, phase, **data):
        self.event("phase", dict(data, phase=phase))

    def result(self, data):
        self._line({"result": data}, sync=True)

    def error(self, exc):
        if isinstance(exc, errors.AgentError):
            err = {"kind": exc.kind, "message": exc.message}
        else:
            err = {"kind": "Internal", "message": "{}: {}".format(exc.__class__.__name__, exc),
                   "details": {"traceback": traceback.format_exc()}}
        self._line({"error": err}, sync=True)


def _gc(directory):
    now = time.time()
    for name in os.listdir(directory):
        p = os.path.join(directory, name)
        try:
            if now - os.lstat(p).st_mtime > MAX_AGE:
                os.unlink(p)
        except OSError:
            pass


def launch(path, job):
    """Start ``job(progress)`` in a detached worker writing to ``path``; False when ``path`` exists already (a
    worker of the same request ran or runs: follow it)."""
    _gc(os.path.dirname(path))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return True
    try:  # the launcher: a new session, then the worker
        os.setsid()
        if os.fork():
            os._exit(0)
        _run(path, job)
    except BaseException:
        pass
    os._exit(0)


def _run(path, job):
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    process.close_fds_except(2)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # a Ctrl-C or hang-up of the session that started it is not for us
    progress = Progress(path)
    me = os.getpid()
    progress._line({"worker": [me, records.proc_starttime(me)]})
    try:
        progress.result(job(progress))
    except BaseException as exc:  # noqa: BLE001 - every end is written down
        try:
            progress.error(exc)
        except BaseException:
            traceback.print_exc()


def follow(path, emit, poll=POLL):
    """Emit the worker's events from ``path`` (from its start) and return its result; raise its error."""
    offset, pending, worker = 0, b"", None
    started = time.monotonic()
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            raise errors.Conflict("the deploy worker's result was delivered to another request (the same request "
                                  "sent twice at once); see deploy_journal")
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                obj = json.loads(line.decode())
            except ValueError:
                continue
            if "worker" in obj:
                worker = obj["worker"]
            elif "event" in obj:
                emit(obj["event"], obj.get("data"))
            elif "result" in obj:
                return obj["result"]
            elif "error" in obj:
                err = obj["error"] or {}
                cls = getattr(errors, err.get("kind") or "Internal", None)
                if not (isinstance(cls, type) and issubclass(cls, errors.AgentError)):
                    cls = errors.Internal
                raise cls(err.get("message") or "deploy worker failed", details=err.get("details"))
        if chunk:
            continue
        if worker is None:
            if time.monotonic() - started > FIRST_LINE_TIMEOUT:
                raise errors.Internal("the deploy worker never started ({})".format(path))
        elif not records.is_alive(worker[0], worker[1]):
            with open(path, "rb") as f:  # its last words may have landed after our read
                f.seek(offset)
                if f.read():
                    continue
            raise errors.Internal("the deploy worker (pid {}) ended without a result".format(worker[0]))
        time.sleep(poll)


def consumed(path):
    """The op delivered the worker's result (or error): its progress file goes."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
