"""Container records on disk: layout of a container dir, config/state JSON under a per-container flock, removal."""

import os
import re
import shutil
import signal
import time

from .. import errors
from ..state import locks, perms, store

ID_RE = re.compile(r"^[0-9a-f]{64}$")
TOMBSTONES = ".removed"  # auto-removed containers keep state + log here briefly (for wait/logs of `run --rm`)
TOMBSTONE_TTL = 600
LOCK_PREFIX = "container-"


def new_id():
    """A random 64-hex container ID."""
    return os.urandom(32).hex()


def format_ns(ns=None):
    """RFC 3339 UTC with nanoseconds, as Docker's json-file log: ``2026-11-28T01:02:03.123456789Z``."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1000000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".{:09d}Z".format(frac)


_STAMP_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{0,9}))?Z?$")


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; calendar.timegm's job
    without importing calendar, datetime and locale on every command)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_ns(text):
    """Inverse of ``format_ns`` (accepts 0-9 fractional digits); returns epoch nanoseconds."""
    m = _STAMP_RE.match(text)
    if not m:
        raise ValueError("not an RFC 3339 UTC time stamp: {!r}".format(text))
    y, mo, d, h, mi, s = (int(v) for v in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError("not an RFC 3339 UTC time stamp: {!r}".format(text))
    sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    return sec * 1000000000 + int(((m.group(7) or "") + "000000000")[:9])


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


def reap(paths):
    """Delete what killed payloads left in containers/ and locks/; never waits (a busy lock skips that part).

    * a container dir without config.json: creation writes config.json last, all under ``names_lock``, so once
      we hold that lock such a dir is a dead creator's (or one a removal is deleting anyway);
    * ``.trash-*`` dirs whose remover died (``locks.remove_tree``);
    * ``container-<id>.lock`` files of containers that no longer exist;
    * temp files of atomic writes (config, state) whose writer was killed.
    """
    try:
        entries = os.listdir(paths.containers)
    except FileNotFoundError:
        entries = []
    partial = [e for e in entries if ID_RE.match(e) and not os.path.exists(os.path.join(paths.containers, e,
                                                                                         "config.json"))]
    if partial:
        fd = locks.acquire(paths.lock_file("containers"), blocking=False)
        if fd is not None:
            try:
                for cid in partial:
                    lay = Layout(paths, cid)
                    if not os.path.exists(lay.config):
                        made = store.read_json(lay.pending_volumes)
                        if made:  # the dead create's new volumes, unless a container uses them since
                            from . import volumes
                            volumes.Volumes(paths).discard(made, volumes.all_configs(paths))
                        locks.remove_tree(lay.dir)
            finally:
                os.close(fd)
    if any(e.startswith(locks.TRASH) for e in entries):
        locks.reap_dirs(paths.containers)
    for cid in entries:
        if ID_RE.match(cid):
            locks.reap_temp_files(os.path.join(paths.containers, cid))
    try:
        lock_names = os.listdir(paths.locks)
    except FileNotFoundError:
        lock_names = []
    for name in lock_names:
        cid = name[len(LOCK_PREFIX):-len(".lock")] if name.startswith(LOCK_PREFIX) and name.endswith(".lock") else ""
        if ID_RE.match(cid) and not os.path.isdir(paths.container_dir(cid)):
            locks.reap(lock_path(paths, cid), lambda cid=cid: not os.path.isdir(paths.container_dir(cid)))


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


def write_state(paths, container_id, state):
    """Persist state.json atomically; callers hold ``container_lock``."""
    store.write_json_atomic(Layout(paths, container_id).state, state)


def initial_state():
    """The state of a container that was never started."""
    return {"status": "created", "pid": 0, "pid_start": None, "shim_pid": 0, "shim_start": None,
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


def reconcile(paths, container_id, state):
    """Fix a "running" or "restarting" state whose shim is gone (crashed, killed); call with ``container_lock`` held.

    The exit status is unknown then: record ``exit_code`` -1 and an error note, and kill an orphaned
    container process (its output has nowhere to go and nobody would ever reap or record it).
    """
    if state.get("status") not in ("running", "restarting") or is_alive(state.get("shim_pid"),
                                                                        state.get("shim_start")):
        return state
    signal_process(state.get("pid"), state.get("pid_start"), signal.SIGKILL)
    from .resources import destroy_cgroup  # cgroups import records: late, to keep the layering acyclic
    destroy_cgroup(container_id)  # kills what is left (a frozen init dies only once thawed) and removes it
    try:
        from .. import net
        net.teardown(paths, container_id, state.get("network_settings"))  # rules, veths, addresses, netns
    except errors.AgentError:
        pass  # best effort: what is left is reaped by the next start of the same container or IPAM reap
    state = dict(state, status="exited", exit_code=-1, finished_at=format_ns(), paused=False,
                 error="shim (pid {}) exited unexpectedly; container exit status unknown".format(state.get("shim_pid")))
    write_state(paths, container_id, state)
    return state


def load(paths, container_id):
    """Read config + (reconciled) state under the container lock; NotFound if the container is gone."""
    with container_lock(paths, container_id):
        config = read_config(paths, container_id)
        state = reconcile(paths, container_id, read_state(paths, container_id))
    return config, state


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
    base = os.path.join(paths.containers, TOMBSTONES)
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return
    cutoff = time.time() - ttl
    for entry in entries:
        path = os.path.join(base, entry)
        try:
            if os.stat(path).st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
