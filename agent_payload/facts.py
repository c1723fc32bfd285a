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


def overlay_supported():
    """True if the kernel lists overlay in /proc/filesystems (the module may also autoload on mount)."""
    return any(line.split()[-1] == "overlay" for line in _read("/proc/filesystems").splitlines() if line.strip())


def gather(paths):
    """Collect the facts dictionary the ``facts`` op returns."""
    root = paths.root
    probe = root if os.path.isdir(root) else "/"
    st = os.statvfs(probe)
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "distro": distro(),
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "cgroup": cgroup_version(),
        "overlay": overlay_supported(),
        "namespaces": [ns for ns in NAMESPACES if os.path.exists("/proc/self/ns/" + ns)],
        "disk_free": st.f_bavail * st.f_frsize,
        "root": root,
    }
