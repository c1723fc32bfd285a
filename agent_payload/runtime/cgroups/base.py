"""What every cgroup manager shares: hierarchy detection, the Manager protocol, ids and parents, host counters.

v1.py and v2.py subclass ``Manager``; the package (``__init__``) picks one for the host and is the public API.
"""

import os
import errno as _errno
import re
import signal
import time

from ... import errors
from . import fs

CONTROLLERS_V1 = ("memory", "cpu", "cpuacct", "pids", "freezer", "blkio")
KNOWN_V1 = CONTROLLERS_V1 + ("cpuset", "devices", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc")
CONTROLLERS_V2 = ("cpu", "memory", "pids", "io", "cpuset")
DEFAULT_PARENT = "fleet"
SYSTEMD_PARENT = "fleet.slice"
CONTAINER_LEAF = "container"  # in a systemd scope (v2): <scope>/container holds the container's processes
SUPERVISOR_LEAF = "supervisor"  # and <scope>/supervisor the shim
PARENT_ENV = "FLEET_CGROUP_PARENT"
VERSION_ENV = "FLEET_CGROUP_VERSION"  # "2": containers on a hybrid host's cgroup2 mount instead of v1
SYSTEMD_DIR = "/run/systemd/system"
MOUNTINFO = "/proc/self/mountinfo"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PARENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


# ---------------------------------------------------------------------------------------------- detection

class Mount:
    """One cgroup(2) line of mountinfo."""

    def __init__(self, mount_point, root, fstype, dev, options):
        self.mount_point = mount_point
        self.root = root
        self.fstype = fstype
        self.dev = dev
        self.options = options

    def __repr__(self):
        return "Mount({!r}, {}, {})".format(self.mount_point, self.fstype, sorted(self.options))


def _unescape(field):
    # mountinfo octal-escapes space, tab, newline and backslash
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """cgroup and cgroup2 mounts from /proc/self/mountinfo text, in mount order."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        major, _, minor = fields[2].partition(":")
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]), tail[0],
                            os.makedev(int(major), int(minor)), set(tail[2].split(","))))
    return mounts


class Hierarchy:
    """What the host has: ``mode`` ("v1", "v2", "hybrid"), v1 controller mounts, the cgroup2 mount, systemd."""

    def __init__(self, mounts, systemd):
        self.systemd = systemd
        self.v1 = {}
        v2 = [m for m in mounts if m.fstype == "cgroup2"]
        for m in mounts:
            if m.fstype != "cgroup":
                continue
            for ctrl in sorted(m.options & set(KNOWN_V1)):
                if ctrl not in self.v1 or (m.root == "/" and self.v1[ctrl].root != "/"):
                    self.v1[ctrl] = m  # first mount wins, but a whole-tree mount beats a bind of a subtree
        pref = [m for m in v2 if m.mount_point == "/sys/fs/cgroup"] + \
               [m for m in v2 if m.mount_point == "/sys/fs/cgroup/unified"] + v2
        self.v2 = pref[0] if pref else None
        self.devices = frozenset(m.dev for m in mounts)
        if self.v2 is not None and (not self.v1 or self.v2.mount_point == "/sys/fs/cgroup"):
            self.mode = "v2"
        elif self.v1:
            self.mode = "hybrid" if self.v2 is not None else "v1"
        else:
            self.mode = None

    def is_cgroupfs(self, dev):
        """True if ``dev`` (an st_dev) is the device of a mounted cgroup or cgroup2 filesystem."""
        return dev in self.devices

    def __repr__(self):
        return "Hierarchy(mode={!r}, v1={}, v2={!r}, systemd={})".format(
            self.mode, sorted(self.v1), self.v2 and self.v2.mount_point, self.systemd)


def detect(mountinfo=MOUNTINFO, systemd_dir=SYSTEMD_DIR):
    """The host's cgroup Hierarchy, read from ``mountinfo`` (paths injectable for tests)."""
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read())
    return Hierarchy(mounts, os.path.isdir(systemd_dir))


class Manager:
    """The protocol: one container's cgroup(s). Subclasses: ``v1.V1Manager``, ``v2.V2Manager``.

    Build one with ``create`` (makes the cgroup) or ``attach`` (finds an existing one); everything a
    Manager needs derives from (hierarchy, parent, container id), so any payload process can attach.
    """

    version = None
    default_parent = DEFAULT_PARENT

    def __init__(self, container_id, hierarchy, parent=None):
        self.id = check_container_id(container_id)
        self.hierarchy = hierarchy
        self.parent = resolve_parent(parent, self._default_parent(hierarchy))
        self._is_cgroupfs = hierarchy.is_cgroupfs
        self._created_parents = []  # dirs this instance made; destroy() may remove them, never others

    @classmethod
    def _default_parent(cls, hierarchy):
        return cls.default_parent

    @classmethod
    def create(cls, container_id, limits=None, hierarchy=None, parent=None):
        """Make ``<parent>/<id>`` and apply ``limits``; an existing empty cgroup is reused, a populated one is a
        Conflict. Limits needing an absent controller fail before anything is created; any later failure
        removes what was made."""
        from .limits import Limits
        mgr = cls(container_id, hierarchy or detect(), parent)
        limits = limits if limits is not None else Limits()
        if not isinstance(limits, Limits):
            raise errors.InvalidArgument("limits must be a cgroups.limits.Limits")
        mgr.check(limits)
        if mgr.exists() and mgr.pids():
            raise errors.Conflict("cgroup of container {} already exists and has processes".format(container_id))
        try:
            mgr._make()
            mgr.check(limits)  # again: intermediate cgroups may have withheld a controller
            mgr.apply(limits)
        except BaseException:
            try:
                mgr.destroy()
            except errors.AgentError:
                pass  # report the original error
            raise
        return mgr

    @classmethod
    def attach(cls, container_id, hierarchy=None, parent=None):
        """The Manager of an existing cgroup of ``container_id``; NotFound if none of its dirs exist."""
        mgr = cls(container_id, hierarchy or detect(), parent)
        if not mgr.exists():
            raise errors.NotFound("no cgroup for container {}".format(container_id))
        return mgr

    # ------------------------------------------------------------ implemented by v1/v2

    def paths(self):
        """Leaf directories of this container (one per hierarchy/controller mount)."""
        raise NotImplementedError

    def exists(self):
        """True if any leaf directory exists."""
        return any(os.path.isdir(p) for p in self.paths())

    def check(self, limits):
        """Raise FailedPrecondition, naming the flag, if ``limits`` needs a controller this host lacks."""
        raise NotImplementedError

    def _make(self):
        raise NotImplementedError

    def enter_scope(self, pid):
        """After systemd put the shim ``pid`` in its scope: whatever this layout needs inside the scope (v2)."""

    def apply(self, limits):
        """Write the set fields of ``limits`` (a Limits; None fields stay as they are) to the live cgroup."""
        raise NotImplementedError

    def add(self, pid):
        """Move process ``pid`` (with all its threads) into the container's cgroup(s)."""
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise errors.InvalidArgument("invalid pid {!r}".format(pid))
        for path in self.paths():
            fs._write(path, "cgroup.procs", str(pid), self._is_cgroupfs)

    #: True where a single-threaded process moving itself in (``add_self``) is cheaper than ``add`` from outside
    places_self = False

    def add_self(self):
        """Move the calling process, which must have one thread, into the container's cgroup(s)."""
        for path in self.paths():
            fs._write(path, "cgroup.procs", "0", self._is_cgroupfs)  # 0: the writer itself

    def pids(self):
        """Sorted PIDs in the cgroup ([] if it does not exist)."""
        for path in self.paths():
            text = fs.read(path, "cgroup.procs", None)
            if text is not None:
                return sorted(int(p) for p in text.split())
        return []

    def can_freeze(self):
        """True if this cgroup can be frozen (v1 freezer mounted / v2 cgroup.freeze present)."""
        raise NotImplementedError

    def freeze(self, timeout=10.0):
        """Freeze every process (``pause``) and wait until the kernel reports FROZEN."""
        raise NotImplementedError

    def thaw(self):
        """Undo ``freeze`` (``unpause``)."""
        raise NotImplementedError

    def is_frozen(self):
        """True if the cgroup is frozen (or freezing); False if absent."""
        raise NotImplementedError

    def stats(self):
        """What ``docker stats`` shows: {cpu_usage_ns, memory_usage, memory_limit, pids_current, blkio_read,
        blkio_write}; a value is None when its controller is absent. memory_usage excludes inactive file cache
        as the docker CLI computes it; memory_limit is capped at the host's memory as the daemon does."""
        raise NotImplementedError

    def oom_killed(self):
        """True if the kernel OOM-killed a process of this cgroup because of its memory limit."""
        raise NotImplementedError

    def _cgroup_kill(self):
        """SIGKILL everything atomically if the kernel can (v2 cgroup.kill); False if not supported."""
        return False

    # ------------------------------------------------------------ shared

    def kill_all(self, sig=signal.SIGKILL):
        """Send ``sig`` to every process; SIGKILL via cgroup.kill when present, else freeze, signal, thaw (so
        nothing can fork past us, as runc's signalAllProcesses)."""
        if sig == signal.SIGKILL and self._cgroup_kill():
            return
        froze = False
        if self.can_freeze() and not self.is_frozen():
            try:
                self.freeze()
                froze = True
            except errors.AgentError:
                pass  # a cgroup that will not freeze still gets the signal
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if froze:
                self.thaw()

    def destroy(self, timeout=10.0):
        """Kill what is left, rmdir the leaves, then the parents this instance created; idempotent.

        Raises Unavailable if processes survive ``timeout`` s (e.g. stuck in uninterruptible sleep).
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.pids():
                self.kill_all(signal.SIGKILL)
            if self.is_frozen():
                self.thaw()  # v1: a frozen task dies only once thawed
            busy = []
            for path in self.paths():
                try:
                    fs.rmdir(os.path.dirname(path), os.path.basename(path), self._is_cgroupfs)
                except errors.FailedPrecondition as exc:
                    if exc.errno != _errno.EBUSY:
                        raise
                    busy.append(path)
            if not busy:
                break
            if time.monotonic() >= deadline:
                raise errors.Unavailable("cgroup {} still busy after {:.0f}s (pids {})".format(
                    ", ".join(busy), timeout, self.pids()))
            time.sleep(0.02)
        for path in reversed(self._created_parents):
            try:
                fs.rmdir(os.path.dirname(path), os.path.basename(path), self._is_cgroupfs)
            except errors.FailedPrecondition:
                pass  # another container's cgroup lives there now
        self._created_parents = []

    def __repr__(self):
        return "{}({!r}, {})".format(type(self).__name__, self.id, self.paths())


def check_container_id(container_id):
    """The id as a safe single path component, or InvalidArgument."""
    if not isinstance(container_id, str) or not ID_RE.match(container_id):
        raise errors.InvalidArgument("invalid container id for a cgroup name: {!r}".format(container_id))
    return container_id


def scope_name(container_id):
    """The systemd scope of a container's shim (and, on v2, of the container): ``fleet-<id>.scope``."""
    return "fleet-{}.scope".format(check_container_id(container_id))


def resolve_parent(parent, default):
    """The relative parent path: ``parent``, else $FLEET_CGROUP_PARENT, else ``default``; validated."""
    value = parent if parent is not None else os.environ.get(PARENT_ENV) or default
    value = value.strip("/")
    if not _PARENT_RE.match(value) or any(part in (".", "..") for part in value.split("/")):
        raise errors.InvalidArgument("invalid cgroup parent {!r}: want a relative path like 'fleet'".format(value))
    return value


def host_memory():
    """MemTotal in bytes (Docker shows it as the limit of an unlimited container)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def system_cpu_usage_ns():
    """Host CPU time in ns from /proc/stat's "cpu" line (Docker's SystemUsage, the CPU % denominator)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(v) for v in line.split()[1:8])
                return ticks * 1000000000 // os.sysconf("SC_CLK_TCK")
    return 0
