"""Container records on disk: layout of a container dir, config/state JSON under a per-container flock, removal.

Plain record I/O only: reconciling a dead shim's state (kill, cgroup, network) and reaping leftovers is reaper.py's."""

import os
import re

from .. import errors, fs
from ..state import locks, perms, store
from . import states
from ..timestamps import days_from_civil, format_ns, parse_ns  # noqa: F401  (records.format_ns: callers' spelling)

ID_RE = re.compile(r"^[0-9a-f]{64}$")
TOMBSTONES = ".removed"  # auto-removed containers keep state + log here briefly (for wait/logs of `run --rm`)
TOMBSTONE_TTL = 600
LOCK_PREFIX = "container-"


def new_id():
    """A random 64-hex container ID."""
    return os.urandom(32).hex()


class Layout:
    """Files of one container under ``Paths.container_dir(id)``."""

    def __init__(self, paths, container_id):
        self.id = container_id
        self.dir = paths.container_dir(container_id)
        j = lambda name: os.path.join(self.dir, name)  # noqa: E731
        self.config = j("config.json")
        self.state = j("state.json")
        self.log = j(container_id + "-json.log")
        self.shim_log = j("shim.log")
        self.shim_pid = j("shim.pid")
        self.layers = j("l")  # short symlinks l/0..l/N -> lowerdirs, keeps the overlay option string small
        self.diff = j("diff")  # overlay upperdir: survives the container for diff/commit
        self.work = j("work")
        self.rootfs = j("rootfs")
        self.hostname = j("hostname")
        self.hosts = j("hosts")
        self.resolv = j("resolv.conf")
        self.pending_volumes = j("volumes.pending")  # volumes a create is making (gone once config.json is)


def container_lock(paths, container_id, shared=False):
    """The per-container flock guarding config/state read-modify-write.

    An exclusive holder deletes the lock file on the way out once the container's directory is gone (removed,
    or never there: ``wait`` on an auto-removed container), so locks/ holds one file per existing container.
    """
    directory = paths.container_dir(container_id)
    return locks.locked(lock_path(paths, container_id), shared=shared,
                        remove_if=None if shared else lambda: not os.path.isdir(directory))


def lock_path(paths, container_id):
    return paths.lock_file(LOCK_PREFIX + container_id)


def names_lock(paths):
    """The host-wide flock serialising name allocation and container creation."""
    return locks.locked(paths.lock_file("containers"))


def list_ids(paths):
    """IDs of all containers that have a config (partially created or trashed dirs are skipped)."""
    try:
        entries = os.listdir(paths.containers)
    except FileNotFoundError:
        return []
    return [e for e in entries if ID_RE.match(e) and os.path.exists(os.path.join(paths.containers, e, "config.json"))]


def read_config(paths, container_id):
    """config.json of a container, or NotFound."""
    cfg = store.read_json(Layout(paths, container_id).config)
    if cfg is None:
        raise errors.NotFound("No such container: {}".format(container_id))
    return cfg


def read_state(paths, container_id):
    """state.json of a container (a fresh "created" state if absent)."""
    return store.read_json(Layout(paths, container_id).state) or initial_state()


def write_state(paths, container_id, state, durable=True):
    """Persist state.json atomically; callers hold ``container_lock``. ``durable=False`` (no fsync) only for a
    state the caller removes at once (``--rm``): a crash loses nothing a durable write would have kept."""
    store.write_json_atomic(Layout(paths, container_id).state, state, durable=durable)


def move(paths, container_id, state, to, durable=True, **fields):
    """Move a container to state ``to`` (states.transition: refused with a Conflict if the table forbids it),
    set ``fields`` and persist; returns the new state. The one way a status is written: callers hold
    ``container_lock`` around the read that produced ``state`` and this write."""
    state = states.transition(state, to, container_id, **fields)
    write_state(paths, container_id, state, durable=durable)
    return state


def initial_state():
    """The state of a container that was never started."""
    return {"status": states.CREATED, "pid": 0, "pid_start": None, "shim_pid": 0, "shim_start": None,
            "started_at": None, "finished_at": None, "exit_code": None, "error": None}


def proc_starttime(pid):
    """Start time (clock ticks, /proc/<pid>/stat field 22) of a live, non-zombie process; None otherwise."""
    if not pid or pid <= 0:
        return None
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid, starttime):
    """True if ``pid`` is alive and is the same process we recorded (guards against PID reuse)."""
    current = proc_starttime(pid)
    return current is not None and (starttime is None or current == starttime)


def signal_process(pid, starttime, signum):
    """Send ``signum`` to ``pid`` only if it is still the recorded process; returns whether it was sent."""
    if not is_alive(pid, starttime):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def make_record(paths, config, state):
    """The public container record: config fields plus state fields plus the log path."""
    rec = dict(config)
    rec.update(state)
    rec["log_path"] = Layout(paths, config["id"]).log
    return rec


def remove_dir(paths, container_id, tombstone=False):
    """Delete a container dir (caller holds its lock); with ``tombstone`` keep state + log under ``.removed``.

    The dir is renamed out of the container namespace first (never half-visible); releasing the container lock
    then deletes the lock file. Returns False if the directory was already gone.
    """
    lay = Layout(paths, container_id)
    if tombstone and os.path.isdir(lay.dir):
        tomb = os.path.join(paths.containers, TOMBSTONES, container_id)
        perms.makedirs(tomb)  # 0700: the config inside carries the container's env
        for src in (lay.state, lay.config, lay.log):
            if os.path.exists(src):
                os.rename(src, os.path.join(tomb, os.path.basename(src)))
    return locks.remove_tree(lay.dir)


def tombstone(paths, container_id):
    """(state, log path) of a recently auto-removed container, or None."""
    tomb = os.path.join(paths.containers, TOMBSTONES, container_id)
    state = store.read_json(os.path.join(tomb, "state.json"))
    if state is None:
        return None
    return state, os.path.join(tomb, container_id + "-json.log")


def gc_tombstones(paths, ttl=TOMBSTONE_TTL):
    """Delete tombstones older than ``ttl`` seconds."""
    fs.remove_stale(os.path.join(paths.containers, TOMBSTONES), ttl)
