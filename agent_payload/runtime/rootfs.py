"""The container's root filesystem: files prepared at create time, and the mounts done inside its mount namespace."""

import errno
import os
import stat

from .. import errors, fs, hostopts
from ..linux import libc
from ..linux.consts import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                            MS_REMOUNT, MS_SLAVE, MS_STRICTATIME)

from ..net import etcfiles
from ..state import store
from . import volumes  # copy-up runs in the init: imported now, before pivot_root hides the payload

#: --tmpfs flag names -> (set, clear) bits of mount(2)
_TMPFS_BITS = {"ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
               "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID), "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
               "noatime": (1024, 0), "nodiratime": (2048, 0), "relatime": (1 << 21, 0),
               "strictatime": (MS_STRICTATIME, 0), "sync": (16, 0), "dirsync": (128, 0), "mand": (64, 0)}

# moby oci/defaults.go (PITFALLS 3.4)
MASKED_PATHS = ("proc/asound", "proc/acpi", "proc/interrupts", "proc/kcore", "proc/keys", "proc/latency_stats",
                "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi", "sys/firmware",
                "sys/devices/virtual/powercap")
READONLY_PATHS = ("proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger")
# name -> (major, minor); mode 0666 as runc's default device list
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
DEV_LINKS = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
CGROUP_ROOT = "/sys/fs/cgroup"
# runc libcontainer/devices GetDevices skips these when copying the host's /dev for --privileged
HOST_DEV_SKIP_DIRS = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")
HOST_DEV_SKIP_FILES = ("console", "ptmx")  # console only with a tty; ptmx is our link to pts/ptmx
MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS for one resolution
# statvfs f_flag bit -> the mount flag a read-only bind remount must keep (runc's getBindMountRemountFlags)
_KEEP_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
               (os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))


# ---------------------------------------------------------------- host side, at create time

def overlay_options(layer_count):
    """Overlay mount data relative to the container dir: top layer first, via the short ``l/<n>`` links."""
    lower = ":".join("l/{}".format(i) for i in reversed(range(layer_count)))
    return "lowerdir={},upperdir=diff,workdir=work".format(lower)


def prepare(layout, lowerdirs, hostname, config=None):
    """Create the container dir's rootfs pieces: layer links, upper/work/mountpoint, hostname/hosts/resolv.conf
    (``config``'s --add-host and --dns* applied; host-gateway entries wait for the start, which knows the bridge)."""
    os.makedirs(layout.layers, exist_ok=True)
    for i, d in enumerate(lowerdirs):
        os.symlink(d, os.path.join(layout.layers, str(i)))
    for d in (layout.diff, layout.work, layout.rootfs):
        os.makedirs(d, exist_ok=True)
    # bind-mounted into the container, where any user reads them (nginx's workers): 0644 (state/perms.py)
    store.write_bytes_atomic(layout.hostname, (hostname + "\n").encode(), mode=0o644)
    # hosts and resolv.conf are written again by every start (Sandbox.write_files), the log is opened with
    # O_APPEND|O_CREAT by the shim: none needs an fsync (the hostname does: nothing rewrites it)
    hosts, resolv = etcfiles.container_files(dict(config or {}, hostname=hostname))
    store.write_bytes_atomic(layout.hosts, hosts.encode(), mode=0o644, durable=False)
    store.write_bytes_atomic(layout.resolv, resolv.encode(), mode=0o644, durable=False)
    store.write_bytes_atomic(layout.log, b"", mode=0o640, durable=False)


# ---------------------------------------------------------------- container side, in the new mount namespace

def _open_in(root_fd, relpath, kind):
    """Open ``relpath`` under ``root_fd`` as an O_PATH fd without following any symlink (CVE-2021-30465).

    Missing components are created (``kind`` "dir" or "file" for the last one); a symlink as the final
    *file* component is replaced by an empty file (e.g. an image's /etc/resolv.conf -> ../run/...);
    a symlink anywhere else is refused.
    """
    parts = [p for p in relpath.split("/") if p]
    dirs, last = (parts, None) if kind == "dir" or not parts else (parts[:-1], parts[-1])
    try:
        fd = fs.open_beneath(root_fd, dirs, os.O_PATH, mode=0o755)
        if last is None:
            return fd
        try:
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                nfd = os.open(last, flags, dir_fd=fd)
            except FileNotFoundError:
                os.close(os.open(last, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644, dir_fd=fd))
                nfd = os.open(last, flags, dir_fd=fd)
            if stat.S_ISLNK(os.fstat(nfd).st_mode):
                os.close(nfd)
                os.unlink(last, dir_fd=fd)
                os.close(os.open(last, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644, dir_fd=fd))
                nfd = os.open(last, flags, dir_fd=fd)
            return nfd
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise OSError(exc.errno, "refusing to mount over a symlink or non-directory", relpath)
        raise


def _fdpath(fd):
    return "/proc/self/fd/{}".format(fd)


def _mount_at(root_fd, relpath, kind, source, fstype, flags=0, data=None):
    """Mount onto ``relpath`` inside the rootfs, resolved safely and addressed through /proc/self/fd."""
    fd = _open_in(root_fd, relpath, kind)
    try:
        libc.mount(source, _fdpath(fd), fstype, flags, data)
    finally:
        os.close(fd)


def _setup_dev(rootfs, shm_size=None):
    """A fresh tmpfs /dev with the default device nodes, devpts, shm (``shm_size`` bytes, docker's 64m by
    default), mqueue and the usual links."""
    dev = os.path.join(rootfs, "dev")
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(dev, name)
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for sub in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(dev, sub), 0o755)
    libc.mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620,gid=5")
    libc.mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "mode=1777,size={}".format(shm_size or hostopts.DEFAULT_SHM_SIZE))
    libc.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name, target in DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))


def _dev_null_fd(rootfs):
    """O_PATH fd of our own /dev/null, checked to be char device 1:3 (CVE-2025-31133)."""
    fd = os.open(os.path.join(rootfs, "dev", "null"), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise OSError(errno.EINVAL, "/dev/null of the container is not the null device")
    return fd


def _mask(root_fd, rootfs, rels):
    """Hide each of ``rels`` (relative to the root): a directory under a read-only tmpfs, a file under /dev/null."""
    null_fd = None
    try:
        for rel in rels:
            try:
                fd = os.open(rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
            except FileNotFoundError:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    libc.mount("tmpfs", _fdpath(fd), "tmpfs", MS_RDONLY, None)
                else:
                    if null_fd is None:
                        null_fd = _dev_null_fd(rootfs)
                    libc.mount(_fdpath(null_fd), _fdpath(fd), None, MS_BIND)
            finally:
                os.close(fd)
    finally:
        if null_fd is not None:
            os.close(null_fd)


def _masked_under(root_fd, mounts):
    """The masked paths a user mount covers (``-v /sys:/sys``): runc masks after the user's mounts, so must we."""
    targets = ["/" + resolve_in_root(root_fd, m["target"]) + "/" for m in mounts or []]
    return [rel for rel in MASKED_PATHS if any(("/" + rel + "/").startswith(t) for t in targets)]


def _mask_and_protect(root_fd, rootfs):
    """Mask sensitive /proc and /sys entries and make kernel tunables read-only, as Docker's defaults."""
    _mask(root_fd, rootfs, MASKED_PATHS)
    for rel in READONLY_PATHS:
        try:
            fd = os.open(rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
        except FileNotFoundError:
            continue
        try:
            libc.mount(_fdpath(fd), _fdpath(fd), None, MS_BIND | MS_REC)
        finally:
            os.close(fd)
        _remount_ro(root_fd, rel, MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _remount_ro(root_fd, rel, flags):
    """Make the bind mount now at ``rel`` read-only (re-opened: an fd from before the bind names the old mount)."""
    fd = os.open(rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    try:
        libc.mount(None, _fdpath(fd), None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)
    finally:
        os.close(fd)


def _mount_sys(root_fd, privileged=False):
    """A read-only sysfs (read-write if privileged); else a bind of the host's /sys where sysfs cannot be mounted."""
    flags = (0 if privileged else MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        _mount_at(root_fd, "sys", "dir", "sysfs", "sysfs", flags)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        fd = _open_in(root_fd, "sys", "dir")
        try:
            libc.mount("/sys", _fdpath(fd), None, MS_BIND | MS_REC)
        finally:
            os.close(fd)
        if not privileged:
            _remount_ro(root_fd, "sys", flags)


def _mountinfo_cgroups():
    """``(mountpoint, fstype, super options)`` of the cgroup hierarchies under /sys/fs/cgroup, from mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            mountpoint, fstype, superopts = fields[4], fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2") and (
                    mountpoint == CGROUP_ROOT or mountpoint.startswith(CGROUP_ROOT + "/")):
                out.append((mountpoint.replace("\\040", " "), fstype, superopts))
    return out


def _mount_cgroup(root_fd, privileged):
    """The container's own view of its cgroups at /sys/fs/cgroup: fresh cgroup mounts made inside its cgroup namespace.

    A cgroup mount made in a cgroup namespace is rooted at the namespace's cgroup, so the container sees
    its own subtree only (as Docker with ``--cgroupns=private``). v2: one cgroup2 mount; v1/hybrid: a tmpfs
    holding one mount per hierarchy plus the host's alias links (cpu -> cpu,cpuacct). Read-only unless
    privileged. If the kernel refuses a hierarchy, the whole directory becomes an empty read-only tmpfs.
    """
    hierarchies = _mountinfo_cgroups()
    try:
        fd = os.open("sys/fs/cgroup", os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    except OSError:
        return  # a kernel without cgroups
    os.close(fd)
    cg_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    ro = 0 if privileged else MS_RDONLY
    unified = [h for h in hierarchies if h[0] == CGROUP_ROOT and h[1] == "cgroup2"]
    if unified:
        _mount_at(root_fd, "sys/fs/cgroup", "dir", "cgroup", "cgroup2", cg_flags)
        if ro:
            _remount_ro(root_fd, "sys/fs/cgroup", cg_flags)
        return
    _mount_at(root_fd, "sys/fs/cgroup", "dir", "tmpfs", "tmpfs", cg_flags, "mode=755")
    mounted = []
    cg_fd = os.open("sys/fs/cgroup", os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    try:
        for mountpoint, fstype, superopts in hierarchies:
            rel = mountpoint[1:]
            opts = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro"))
            _mount_at(root_fd, rel, "dir", "cgroup", fstype, cg_flags, opts or None)
            mounted.append(rel)
        for name in os.listdir(CGROUP_ROOT):
            host = os.path.join(CGROUP_ROOT, name)
            if os.path.islink(host) and "/" not in os.readlink(host):
                os.symlink(os.readlink(host), name, dir_fd=cg_fd)
    except OSError:
        libc.umount2(_fdpath(cg_fd), MNT_DETACH)  # the tmpfs and every hierarchy on it
        _mount_at(root_fd, "sys/fs/cgroup", "dir", "tmpfs", "tmpfs", cg_flags | MS_RDONLY, "mode=755")
        return
    finally:
        os.close(cg_fd)
    if ro:
        for rel in mounted:
            _remount_ro(root_fd, rel, cg_flags)
        _remount_ro(root_fd, "sys/fs/cgroup", cg_flags)


def _copy_host_devices(rootfs, host_dev="/dev", rel=""):
    """``--privileged``: the host's device nodes in the container's /dev, as runc's HostDevices (same skips)."""
    try:
        entries = sorted(os.listdir(os.path.join(host_dev, rel)))
    except OSError:
        return
    for name in entries:
        src = os.path.join(host_dev, rel, name)
        dst = os.path.join(rootfs, "dev", rel, name)
        try:
            st = os.lstat(src)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if name in HOST_DEV_SKIP_DIRS and not rel:
                continue
            if not os.path.lexists(dst):
                os.mkdir(dst, 0o755)
            _copy_host_devices(rootfs, host_dev, os.path.join(rel, name))
        elif (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and name not in HOST_DEV_SKIP_FILES:
            if os.path.lexists(dst):
                continue
            os.mknod(dst, stat.S_IMODE(st.st_mode) | stat.S_IFMT(st.st_mode), st.st_rdev)
            os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, stat.S_IMODE(st.st_mode))


def hostopts_devices(rootfs, entries):
    """--device: each host node again in the container's /dev (its type, numbers, mode and owner)."""
    for entry in entries or []:
        kind, major, minor, mode, uid, gid = hostopts.device_node(entry)
        rel = os.path.normpath(entry["PathInContainer"]).lstrip("/")  # under dev/ (hostopts.parse_device)
        dst = os.path.join(rootfs, rel)  # /dev is our fresh tmpfs: no symlink of the image's is in the way
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        if os.path.lexists(dst):
            os.unlink(dst)
        os.mknod(dst, mode | (stat.S_IFCHR if kind == "c" else stat.S_IFBLK), os.makedev(major, minor))
        os.chown(dst, uid, gid)
        os.chmod(dst, mode)


def resolve_in_root(root_fd, path):
    """``path`` with every symlink resolved as if ``root_fd`` were "/" (securejoin): never leaves the root.

    Returns a relative path without symlinks or ".." (missing components kept as they are, for
    ``_open_in`` to create). A symlink swapped in later makes ``_open_in`` fail, never escape.
    """
    todo = [p for p in path.split("/") if p]
    done, hops = [], 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            parent = fs.open_beneath(root_fd, done)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)  # below a missing (or non-directory) component: _open_in decides
            continue
        try:
            link = os.readlink(part, dir_fd=parent)
        except OSError:  # EINVAL: not a symlink; ENOENT: to be created
            done.append(part)
            continue
        finally:
            os.close(parent)
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        if link.startswith("/"):
            done = []
        todo = [p for p in link.split("/") if p] + todo
    return "/".join(done)


def _remount_bind_ro(root_fd, rel, kind):
    """Read-only remount of the bind now at ``rel``, keeping its nosuid/nodev/noexec/atime flags (as runc)."""
    fd = _open_in(root_fd, rel, kind)
    try:
        keep = os.statvfs(_fdpath(fd)).f_flag
        flags = 0
        for st_flag, ms_flag in _KEEP_FLAGS:
            if keep & st_flag:
                flags |= ms_flag
        libc.mount(None, _fdpath(fd), None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)
    finally:
        os.close(fd)


def _mount_one(root_fd, m):
    """One user mount (runtime/volumes.py's dict, resolved): copy-up, bind or tmpfs, then read-only."""
    rel = resolve_in_root(root_fd, m["target"])
    reason = volumes.refused_destination("/" + rel)  # again once resolved: an image symlink or VOLUME into /proc
    if reason:
        raise errors.InvalidArgument("invalid mount config for {} {}: {}".format(m["type"], m["target"], reason))
    if m["type"] == "tmpfs":
        data = ",".join("{}={}".format(k, m[k]) for k in ("size", "mode") if m.get(k))
        _mount_at(root_fd, rel, "dir", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | (MS_RDONLY if m.get("readonly")
                                                                                  else 0), data or None)
        return
    source = m["host_path"]
    kind = "dir" if os.path.isdir(source) else "file"
    fd = _open_in(root_fd, rel, kind)
    try:
        if m["type"] == "volume" and m.get("copy", True) and kind == "dir" and not os.listdir(source):
            if os.listdir(_fdpath(fd)):  # an empty volume over image content: filled with it first, as Docker
                volumes.copy_up(_fdpath(fd), source)
        libc.mount(source, _fdpath(fd), None, MS_BIND | MS_REC)
    finally:
        os.close(fd)
    if m.get("readonly"):
        _remount_bind_ro(root_fd, rel, kind)


def mount_tmpfs(root_fd, tmpfs):
    """--tmpfs ``{path: options}``: docker's noexec,nosuid,nodev unless the options say otherwise."""
    for target in sorted(tmpfs or {}, key=lambda t: len([p for p in t.split("/") if p])):
        names, data = hostopts.tmpfs_mount(tmpfs[target])
        flags = 0
        for name in names:
            set_bits, clear_bits = _TMPFS_BITS.get(name, (0, 0))
            flags = (flags | set_bits) & ~clear_bits
        rel = resolve_in_root(root_fd, target)
        reason = volumes.refused_destination("/" + rel)
        if reason:
            raise errors.InvalidArgument("invalid mount config for tmpfs {}: {}".format(target, reason))
        _mount_at(root_fd, rel, "dir", "tmpfs", "tmpfs", flags, data or None)


def mount_user(root_fd, mounts):
    """``-v``/``--mount``/VOLUME mounts, parents first (docker sorts by the target's depth)."""
    for m in sorted(mounts or [], key=lambda m: len([p for p in m["target"].split("/") if p])):
        try:
            _mount_one(root_fd, m)
        except OSError as exc:
            raise OSError(exc.errno, "mounting {} on {}: {}".format(
                m.get("host_path") or m["type"], m["target"], exc.strerror or exc))


def setup(layout, layer_count, privileged=False, mounts=(), spec=None):
    """Build the container's root and pivot into it; call in fresh mount and cgroup namespaces (the init, pre-exec).

    Order as runc: private propagation, overlay, /proc, /dev, /sys, /sys/fs/cgroup, masks (or, privileged,
    the host's devices and no masks), bind-mounted /etc files, the user's mounts (``mounts``: resolved
    runtime/volumes.py dicts, sources are host paths), pivot_root.  ``spec`` (the ContainerSpec) brings
    --shm-size, --device and --tmpfs.
    """
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate back to the host
    os.chdir(layout.dir)  # overlay resolves the relative l/<n>, diff and work against our cwd
    libc.mount("overlay", "rootfs", "overlay", 0, overlay_options(layer_count))
    rootfs = layout.rootfs
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mount_at(root_fd, "proc", "dir", "proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
        _mount_at(root_fd, "dev", "dir", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
        _setup_dev(rootfs, spec.shm_size if spec is not None else None)
        if spec is not None:
            hostopts_devices(rootfs, spec.devices)
        _mount_sys(root_fd, privileged)
        _mount_cgroup(root_fd, privileged)
        if privileged:
            _copy_host_devices(rootfs)
        else:
            _mask_and_protect(root_fd, rootfs)
        for src, rel in ((layout.hostname, "etc/hostname"), (layout.hosts, "etc/hosts"),
                         (layout.resolv, "etc/resolv.conf")):
            _mount_at(root_fd, rel, "file", src, None, MS_BIND)
        mount_user(root_fd, mounts)
        if spec is not None:
            mount_tmpfs(root_fd, spec.tmpfs)
        if not privileged:
            _mask(root_fd, rootfs, _masked_under(root_fd, mounts))
    finally:
        os.close(root_fd)
    pivot(rootfs)


def make_root_readonly():
    """``--read-only``: the container's / (the overlay) read-only; /dev, /proc and the /etc binds are other mounts.

    Call after pivot_root, once the working directory exists (runc's setReadonly: a bind remount of "/").
    """
    libc.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def pivot(rootfs):
    """pivot_root(".", ".") as runc: no put_old dir is needed, the old root is stacked and detached."""
    old_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        libc.pivot_root(".", ".")
        os.fchdir(old_fd)
        libc.mount(None, ".", None, MS_SLAVE | MS_REC)  # keep the unmount from propagating anywhere
        libc.umount2(".", MNT_DETACH)
    finally:
        os.close(old_fd)
    os.chdir("/")
