"""Volumes and mounts: the local volume store, docker's ``-v``/``--mount``/VOLUME rules, and copy-up.

Store (``<root>/volumes/<name>/``)::

    volume.json   {"Name", "Driver": "local", "Mountpoint", "CreatedAt", "Labels", "Options", "Scope": "local",
                   "Anonymous": bool}
    _data/        the data, bind-mounted into containers

A mount (``ContainerSpec.mounts``) is ``{"type": "bind"|"volume"|"tmpfs", "source", "target", "readonly",
"copy"}``: for a volume, ``source`` is its name (an anonymous one gets 64 hex); ``copy`` false is
``volume-nocopy``. An empty volume mounted over image content is first filled with that content, as Docker does.
"""

import os
import re
import shutil
import stat

from .. import errors, events
from ..state import locks, store
from ..timestamps import format_ns
from . import records

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANON_RE = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------- parsing (before anything is created)

#: What runc lets a mount cover inside /proc (checkProcMount): the files lxcfs emulates, nothing else.
PROC_MOUNTABLE = frozenset(("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                            "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                            "/proc/sys/kernel/ns_last_pid"))


def refused_destination(norm):
    """Why a user mount may not go at ``norm`` (absolute, normalised), or None: runc's rules for /proc.

    The container's /proc stays the procfs the runtime mounts (a mount over it would leave the container
    without one, or undo the masked paths). /sys, /dev, /dev/pts and /dev/shm may be covered, as with docker,
    where a user mount replaces the default one (``-v /dev/shm:/dev/shm``, ``--mount type=tmpfs,dst=/dev/shm``).
    """
    if norm == "/proc":
        return '"/proc" cannot be mounted because it is not of type proc'
    if norm.startswith("/proc/") and norm not in PROC_MOUNTABLE:
        return '"{}" cannot be mounted because it is inside /proc'.format(norm)
    return None


def _check_target(target, what):
    if not isinstance(target, str) or not target.startswith("/") or "\x00" in target:
        raise errors.InvalidArgument("invalid mount config: {}: mount path must be absolute".format(what))
    norm = os.path.normpath(target)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")  # POSIX keeps a leading "//"; it is "/" here
    if norm == "/":
        raise errors.InvalidArgument("invalid mount config: {}: destination can't be '/'".format(what))
    reason = refused_destination(norm)
    if reason:
        raise errors.InvalidArgument("invalid mount config: {}: {}".format(what, reason))
    return norm


def parse_volume_flag(text):
    """One ``-v`` value: ``/ctr`` (anonymous), ``name:/ctr[:ro]`` or ``/host:/ctr[:ro|rw]``."""
    if not isinstance(text, str) or not text:
        raise errors.InvalidArgument("invalid volume specification: ''")
    parts = text.split(":")
    mode = ""
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 1:
        source, target = "", parts[0]
    else:
        raise errors.InvalidArgument("invalid volume specification: '{}'".format(text))
    if len(parts) > 1 and "" in parts:  # docker's CLI: ":/x" is not an anonymous volume
        raise errors.InvalidArgument("invalid spec: {}: empty section between colons".format(text))
    modes = set(m for m in mode.split(",") if m)
    if not modes <= {"ro", "rw", "z", "Z", "nocopy"} or {"ro", "rw"} <= modes:
        raise errors.InvalidArgument("invalid mode: {} (in -v {})".format(mode, text))
    target = _check_target(target, "-v " + text)
    readonly = "ro" in modes
    if not source:
        return {"type": "volume", "source": None, "target": target, "readonly": readonly, "copy": True}
    if source.startswith("/"):
        return {"type": "bind", "source": os.path.normpath(source), "target": target, "readonly": readonly,
                "create": True}
    if not NAME_RE.match(source):
        raise errors.InvalidArgument('"{}" includes invalid characters for a local volume name, only '
                                     '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                                     'directory, use absolute path (in -v {})'.format(source, text))
    return {"type": "volume", "source": source, "target": target, "readonly": readonly,
            "copy": "nocopy" not in modes}


def parse_mount_flag(text):
    """One ``--mount`` value: ``type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy]…``."""
    fields = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key in ("readonly", "ro", "volume-nocopy") and not sep:
            value = "true"
        elif not sep:
            raise errors.InvalidArgument("invalid field '{}' must be a key=value pair (in --mount {})".format(
                item, text))
        fields[key] = value
    kind = fields.pop("type", "volume")
    source = fields.pop("source", None) or fields.pop("src", None)
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not target:
        raise errors.InvalidArgument("invalid argument for --mount {}: target is required".format(text))
    target = _check_target(target, "--mount " + text)
    flag = lambda name: fields.pop(name, "false").lower() in ("true", "1", "")  # noqa: E731
    readonly = flag("readonly") or flag("ro")
    if kind == "bind":
        if not source or not source.startswith("/"):
            raise errors.InvalidArgument('invalid mount config for type "bind": invalid mount path: \'{}\' mount '
                                         'path must be absolute'.format(source or ""))
        fields.pop("bind-propagation", None)
        mount = {"type": "bind", "source": os.path.normpath(source), "target": target, "readonly": readonly,
                 "create": False}
    elif kind == "volume":
        if source is not None and not NAME_RE.match(source):
            raise errors.InvalidArgument("invalid volume name {!r} (in --mount {})".format(source, text))
        mount = {"type": "volume", "source": source, "target": target, "readonly": readonly,
                 "copy": not flag("volume-nocopy")}
    elif kind == "tmpfs":
        if source:
            raise errors.InvalidArgument('invalid mount config for type "tmpfs": source must not be specified')
        size, mode = fields.pop("tmpfs-size", None), fields.pop("tmpfs-mode", None)
        if size is not None and not re.match(r"^\d+[kmgKMG]?$", size):
            raise errors.InvalidArgument("invalid tmpfs-size {!r} (in --mount {})".format(size, text))
        if mode is not None and not re.match(r"^[0-7]{3,4}$", mode):
            raise errors.InvalidArgument("invalid tmpfs-mode {!r} (in --mount {})".format(mode, text))
        mount = {"type": "tmpfs", "source": None, "target": target, "readonly": readonly, "size": size,
                 "mode": mode}
    else:
        raise errors.InvalidArgument('invalid mount type "{}" (in --mount {}): want bind, volume or tmpfs'.format(
            kind, text))
    if fields:
        raise errors.InvalidArgument("unexpected key '{}' in '{}'".format(sorted(fields)[0], text))
    return mount


def plan(volume_flags=(), mount_flags=(), image_volumes=()):
    """All mounts of a container: ``-v``, ``--mount``, then the image's VOLUMEs not already covered (anonymous).

    Checks every bind source of ``--mount`` now (docker: a missing one is an error; ``-v`` creates it at start).
    """
    mounts = [dict(parse_volume_flag(v), flag="volume") for v in volume_flags or []] + \
        [dict(parse_mount_flag(m), flag="mount") for m in mount_flags or []]
    seen = set()
    for m in mounts:
        if m["target"] in seen:
            raise errors.InvalidArgument("Duplicate mount point: {}".format(m["target"]))
        seen.add(m["target"])
        if m["type"] == "bind" and not m.get("create") and not os.path.exists(m["source"]):
            raise errors.InvalidArgument('invalid mount config for type "bind": bind source path does not exist: '
                                         '{}'.format(m["source"]))
    for target in sorted(image_volumes or []):
        norm = os.path.normpath(target) if isinstance(target, str) and target.startswith("/") else None
        if norm and refused_destination(norm):
            raise errors.InvalidArgument("invalid mount config: the image's VOLUME {}: {}".format(
                target, refused_destination(norm)))
        if norm and norm != "/" and norm not in seen:
            mounts.append({"type": "volume", "source": None, "target": norm, "readonly": False, "copy": True})
            seen.add(norm)
    return mounts


# ---------------------------------------------------------------- the store

class Volumes:
    """The local volumes of one host.

    Every change happens under the host-wide ``volumes`` flock. A volume is made in ``.tmp-<random>/`` (data
    dir and volume.json) and renamed to its name, and removed by renaming it to ``.trash-<random>/`` first, so
    a killed payload never leaves a name taken by a directory without metadata. Whoever holds the lock next
    knows any ``.tmp-*``/``.trash-*`` is a dead writer's and deletes it (``reap``: every listing, create and rm).
    """

    def __init__(self, paths):
        self.paths = paths
        self.root = os.path.join(paths.root, "volumes")

    def _lock(self):
        return locks.locked(self.paths.lock_file("volumes"))

    def _meta(self, name):
        return os.path.join(self.root, name, "volume.json")

    def data_dir(self, name):
        return os.path.join(self.root, name, "_data")

    def get(self, name):
        rec = store.read_json(self._meta(name)) if isinstance(name, str) and NAME_RE.match(name) else None
        if not rec:
            raise errors.NotFound("No such volume: {}".format(name))  # docker CLI's words
        return rec

    def list(self):
        self.reap()
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [rec for rec in (store.read_json(self._meta(n)) for n in names if NAME_RE.match(n)) if rec]

    def reap(self):
        """Delete dead writers' leftovers if the volumes lock is free now (never waits); see the class doc."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        if not any(self._leftover(n) for n in names):
            return
        fd = locks.acquire(self.paths.lock_file("volumes"), blocking=False)
        if fd is None:
            return  # a writer is at work: the next listing reaps
        try:
            self._reap_locked()
        finally:
            os.close(fd)

    def _leftover(self, name):
        return name.startswith((".tmp-", locks.TRASH)) or (
            NAME_RE.match(name) is not None and not os.path.exists(self._meta(name)))

    def _reap_locked(self):
        locks.reap_dirs(self.root, (".tmp-", locks.TRASH))
        for name in os.listdir(self.root):
            if NAME_RE.match(name) and os.path.isdir(os.path.join(self.root, name)) and \
                    not os.path.exists(self._meta(name)):
                # A name dir without volume.json (older payloads made the dir first, or an rmtree was killed).
                if _is_empty(self.data_dir(name)):
                    locks.remove_tree(os.path.join(self.root, name))
                else:  # data without metadata: keep the data, make it a volume again (docker lists every dir)
                    os.makedirs(self.data_dir(name), exist_ok=True)
                    store.write_json_atomic(self._meta(name), self._record(name, anonymous=bool(ANON_RE.match(
                        name))))

    def _record(self, name, labels=None, anonymous=False):
        return {"Name": name, "Driver": "local", "Mountpoint": self.data_dir(name), "CreatedAt": format_ns(),
                "Labels": dict(labels or {}), "Options": {}, "Scope": "local", "Anonymous": bool(anonymous)}

    def create(self, name=None, labels=None, driver="local", options=None, anonymous=False):
        """``volume create``; an existing name is returned as it is (docker's create is idempotent)."""
        if driver not in (None, "", "local"):
            raise errors.InvalidArgument('error looking up volume plugin {}: plugin "{}" not found'.format(
                driver, driver))
        if options:
            raise errors.InvalidArgument("volume driver options are not supported by fleet's local driver: "
                                         "{}".format(", ".join(sorted(options))))
        if name is None:
            name, anonymous = os.urandom(32).hex(), True
        elif not NAME_RE.match(name):
            raise errors.InvalidArgument('volume name "{}" includes invalid characters, only '
                                         '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'.format(name))
        os.makedirs(self.root, exist_ok=True)
        with self._lock():
            self._reap_locked()
            rec = store.read_json(self._meta(name))
            if rec:
                return rec
            rec = self._record(name, labels, anonymous)
            tmp = os.path.join(self.root, ".tmp-" + os.urandom(8).hex())
            try:
                os.mkdir(tmp, 0o755)
                os.mkdir(os.path.join(tmp, "_data"), 0o755)
                store.write_json_atomic(os.path.join(tmp, "volume.json"), rec)
                os.rename(tmp, os.path.join(self.root, name))  # the volume now exists, whole
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            events.record(self.paths, "volume", "create", name, {"driver": "local"})
            return rec

    def users(self, name, configs):
        """IDs of containers (``configs``: {id: config}) whose mounts name volume ``name``."""
        return sorted(cid for cid, cfg in configs.items()
                      if any(m.get("type") == "volume" and m.get("source") == name for m in cfg.get("mounts") or []))

    def remove(self, name, configs, force=False):
        """``volume rm``: refused while any container (running or not) uses it, as Docker."""
        self.get(name)
        users = self.users(name, configs)
        if users:
            raise errors.Conflict("remove {}: volume is in use - [{}]".format(name, ", ".join(users)))
        with self._lock():
            self._reap_locked()
            if not locks.remove_tree(os.path.join(self.root, name)):
                raise errors.NotFound("No such volume: {}".format(name))  # docker CLI's words
        events.record(self.paths, "volume", "destroy", name, {"driver": "local"})
        return name

    def prune(self, configs, all=False):
        """Remove unused anonymous volumes (``all``: unused named ones too); returns (names, bytes reclaimed)."""
        from .changes import tree_size
        removed, reclaimed = [], 0
        for rec in self.list():
            if (rec.get("Anonymous") or all) and not self.users(rec["Name"], configs):
                size = tree_size(self.data_dir(rec["Name"]))
                try:
                    self.remove(rec["Name"], configs)
                except (errors.NotFound, errors.Conflict):
                    continue
                removed.append(rec["Name"])
                reclaimed += size
        return removed, reclaimed

    def resolve(self, mounts, pending=None):
        """Give anonymous volumes names and create missing named ones; returns (mounts, names created now).

        Each returned mount gains ``host_path`` (the volume's ``_data`` or the bind source), what the
        container's init binds; volumes get ``anonymous``. ``pending``: a file to list the volumes about to be
        made in before any is (for whoever cleans up after a killed create).
        """
        out, created = [], []
        mounts = [dict(m, source=os.urandom(32).hex(), anonymous=True) if m["type"] == "volume" and
                  m.get("source") is None else dict(m) for m in mounts]
        new = [m["source"] for m in mounts
               if m["type"] == "volume" and store.read_json(self._meta(m["source"])) is None]
        if pending and new:
            store.write_json_atomic(pending, new)
        try:
            for m in mounts:
                if m["type"] == "volume":
                    existed = store.read_json(self._meta(m["source"])) is not None
                    rec = self.create(m["source"], anonymous=bool(m.get("anonymous")))
                    if not existed:
                        created.append(rec["Name"])
                    m["source"] = rec["Name"]
                    m["anonymous"] = bool(rec.get("Anonymous"))
                    m["host_path"] = self.data_dir(rec["Name"])
                elif m["type"] == "bind":
                    m["host_path"] = m["source"]
                out.append(m)
        except BaseException:
            self.discard(created)
            raise
        return out, created

    def discard(self, names, configs=None):
        """Remove volumes just made for a container whose create failed (best effort); with ``configs``
        ({id: config}) only those no container uses."""
        names = [n for n in names or [] if isinstance(n, str) and NAME_RE.match(n) and not (
            configs is not None and self.users(n, configs))]
        if names:
            with self._lock():
                for name in names:
                    locks.remove_tree(os.path.join(self.root, name))

    def remove_anonymous(self, mounts, configs):
        """``rm -v`` and ``--rm``: the container's anonymous volumes no other container uses; named ones stay."""
        removed = []
        for m in mounts or []:
            if m.get("type") == "volume" and m.get("anonymous") and not self.users(m["source"], configs):
                try:
                    removed.append(self.remove(m["source"], configs))
                except (errors.NotFound, errors.Conflict):
                    continue
        return removed


def all_configs(paths):
    """{container id: config} of every container on the host (who uses which volume)."""
    return {cid: store.read_json(records.Layout(paths, cid).config) or {} for cid in records.list_ids(paths)}


def remove_anonymous_of(paths, mounts, container_id=None):
    """``rm -v`` or ``--rm``: the container's anonymous volumes that no other container uses.

    ``container_id``: the container being removed, still on disk (its volumes go first, so that a kill in
    between leaves a container that ``rm`` finishes, never volumes nothing refers to)."""
    if any(m.get("anonymous") for m in mounts or []):
        configs = all_configs(paths)
        configs.pop(container_id, None)
        return Volumes(paths).remove_anonymous(mounts, configs)
    return []


def check_mounts(mounts):
    """A spec's ``mounts``: a list of plan()/resolve() dicts (InvalidArgument otherwise)."""
    if not isinstance(mounts, list):
        raise errors.InvalidArgument("mounts must be a list")
    seen = set()
    for m in mounts:
        if not isinstance(m, dict) or m.get("type") not in ("bind", "volume", "tmpfs"):
            raise errors.InvalidArgument("invalid mount {!r}: want type bind, volume or tmpfs".format(m))
        target = _check_target(m.get("target"), "mount")
        if target in seen:
            raise errors.InvalidArgument("Duplicate mount point: {}".format(target))
        seen.add(target)
        source = m.get("source")
        if m["type"] == "bind" and not (isinstance(source, str) and source.startswith("/")):
            raise errors.InvalidArgument("invalid bind source {!r}: must be an absolute path".format(source))
        if m["type"] == "volume" and source is not None and not (isinstance(source, str) and NAME_RE.match(source)):
            raise errors.InvalidArgument("invalid volume name {!r}".format(source))
    return mounts


def docker_mounts(mounts):
    """inspect's ``Mounts`` (docker's MountPoint list) and HostConfig ``Binds``/``Mounts`` of resolved mounts."""
    points, binds, host_mounts = [], [], []
    for m in mounts or []:
        rw = not m.get("readonly")
        if m["type"] == "tmpfs":
            points.append({"Type": "tmpfs", "Source": "", "Destination": m["target"], "Mode": "", "RW": rw,
                           "Propagation": ""})
        elif m["type"] == "bind":
            points.append({"Type": "bind", "Source": m["source"], "Destination": m["target"],
                           "Mode": "" if rw else "ro", "RW": rw, "Propagation": "rprivate"})
        else:
            points.append({"Type": "volume", "Name": m["source"], "Source": m.get("host_path") or "",
                           "Destination": m["target"], "Driver": "local", "Mode": "" if rw else "ro", "RW": rw,
                           "Propagation": ""})
        if m.get("flag") == "mount":
            host_mounts.append({"Type": m["type"], "Source": m.get("source") or "", "Target": m["target"],
                                **({"ReadOnly": True} if not rw else {})})
        elif m.get("flag") == "volume" and not m.get("anonymous"):  # docker: `-v /path` is Config.Volumes only
            binds.append("{}:{}{}".format(m["source"], m["target"], "" if rw else ":ro"))
    return points, binds or None, host_mounts or None


# ---------------------------------------------------------------- inside the container's mount namespace

def _is_empty(path):
    try:
        return not os.listdir(path)
    except FileNotFoundError:
        return True


def copy_up(src_dir, dst_dir):
    """Copy the image's content at a mount target into an empty volume (symlinks as links, owners and modes kept)."""
    links = {}  # (dev, ino) -> first copy: hard links stay links (busybox's applets would be 400 copies)
    for dirpath, dirnames, filenames in os.walk(src_dir, followlinks=False):
        rel = os.path.relpath(dirpath, src_dir)
        target = dst_dir if rel == "." else os.path.join(dst_dir, rel)
        if rel != ".":
            st = os.lstat(dirpath)
            os.mkdir(target, 0o700)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, stat.S_IMODE(st.st_mode))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            s, d = os.path.join(dirpath, name), os.path.join(target, name)
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
                os.link(links[(st.st_dev, st.st_ino)], d)
                continue
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    links[(st.st_dev, st.st_ino)] = d
                fd = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    with open(fd, "rb", closefd=False) as fin, open(d, "xb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
                finally:
                    os.close(fd)
                os.chmod(d, stat.S_IMODE(st.st_mode))
            else:
                continue  # devices, fifos, sockets in a volume path: docker copies them; fleet skips them
            os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    st = os.stat(src_dir)  # followed: ``src_dir`` may be a /proc/self/fd/N link to the real directory
    os.chmod(dst_dir, stat.S_IMODE(st.st_mode))
    os.chown(dst_dir, st.st_uid, st.st_gid)


def prepare_bind_sources(mounts):
    """``-v /host:/ctr``: create a missing host directory (docker's -v behaviour); on the host, at start."""
    for m in mounts:
        if m["type"] == "bind" and m.get("create") and not os.path.exists(m["source"]):
            os.makedirs(m["source"], 0o755)
