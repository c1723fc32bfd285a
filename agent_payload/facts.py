"""Host facts: kernel, distro, python, cgroup version, overlay and namespace support, free disk."""

import os
import platform
import socket
import sys

NAMESPACES = ("mnt", "uts", "ipc", "pid", "net", "cgroup", "user")


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def distro():
    """PRETTY_NAME from /etc/os-release, as most tools report it."""
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def cgroup_version(mountinfo=None):
    """Return "v2" (unified), "v1" (legacy) or "hybrid" (v1 controllers plus a cgroup2 mount), or "none"."""
    text = _read("/proc/self/mountinfo") if mountinfo is None else mountinfo
    v1 = v2_root = v2_any = False
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or not rfields:
            continue
        mountpoint, fstype = fields[4], rfields[0]
        if fstype == "cgroup2":
            v2_any = True
            v2_root = v2_root or mountpoint == "/sys/fs/cgroup"
        elif fstype == "cgroup":
            v1 = True
    if v2_root:
        return "v2"
    if v1:
        return "hybrid" if v2_any else "v1"
    return "none"


OVERLAY_MODULE = "kernel/fs/overlayfs/overlay.ko"  # its path under /lib/modules/<release>, before any .xz/.zst/.gz
MODULES_DIR = "/lib/modules"


def _lists_overlay(text):
    """True if a modules.dep/modules.builtin text names the overlay module (``kernel/fs/overlayfs/overlay.ko[.xz]``)."""
    for line in text.splitlines():
        name = line.split(":", 1)[0].strip()
        if name == OVERLAY_MODULE or name.startswith(OVERLAY_MODULE + "."):
            return True
    return False


def overlay_state(filesystems=None, modules_dir=None, release=None):
    """Overlay support as it is: "loaded" (overlay in /proc/filesystems), "loadable" (the running kernel's module
    is installed, or listed in modules.dep/modules.builtin: the first overlay mount loads it) or "absent".
    Arguments are injectable for tests."""
    text = _read("/proc/filesystems") if filesystems is None else filesystems
    if any(line.split()[-1] == "overlay" for line in text.splitlines() if line.strip()):
        return "loaded"
    base = os.path.join(MODULES_DIR if modules_dir is None else modules_dir,
                        platform.release() if release is None else release)
    for suffix in ("", ".xz", ".zst", ".gz"):
        if os.path.isfile(os.path.join(base, OVERLAY_MODULE + suffix)):
            return "loadable"
    for index in ("modules.dep", "modules.builtin"):
        if _lists_overlay(_read(os.path.join(base, index))):
            return "loadable"
    return "absent"


def overlay_supported():
    """True if containers can get an overlay root here: the filesystem is loaded or its module is loadable."""
    return overlay_state() != "absent"


def gather(paths):
    """Collect the facts dictionary the ``facts`` op returns."""
    root = paths.root
    probe = root if os.path.isdir(root) else "/"
    st = os.statvfs(probe)
    overlay = overlay_state()
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "distro": distro(),
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "cgroup": cgroup_version(),
        "overlay": overlay != "absent",  # the field's old meaning: usable (kept for scripts reading it)
        "overlay_state": overlay,
        "namespaces": [ns for ns in NAMESPACES if os.path.exists("/proc/self/ns/" + ns)],
        "disk_free": st.f_bavail * st.f_frsize,
        "root": root,
    }
