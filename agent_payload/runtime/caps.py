"""Linux capabilities as Docker sets them: the default set, --cap-add/--cap-drop/--privileged, and applying them."""

from .. import errors
from ..linux.consts import PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_CAPBSET_READ

#: Index = capability number (<linux/capability.h>), up to CAP_CHECKPOINT_RESTORE (Linux 5.9).
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: num for num, name in enumerate(CAP_NAMES)}

#: moby oci/caps/defaults.go (PITFALLS 3.5); as a mask 0x00000000a80425fb.
DOCKER_DEFAULT = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                  "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                  "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
ALL = "ALL"

#: What fleet gives by default: Docker's set, CAP_MKNOD included. That is safe only because every container gets
#: Docker's device cgroup policy (cgroups/devices.py, applied by the shim before the init runs): mknod of any
#: node is allowed, opening anything but the standard nodes is not (PITFALLS 3.5).
DEFAULT = DOCKER_DEFAULT


def last_cap():
    """The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def all_capabilities():
    """Every capability name known to both this table and the kernel (Docker's GetAllCapabilities)."""
    last = last_cap()
    return [name for num, name in enumerate(CAP_NAMES) if num <= last]


def normalize(caps, field):
    """Docker's NormalizeLegacyCapabilities: upper-case, add "CAP_", keep "ALL"; unknown names are InvalidArgument."""
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise errors.InvalidArgument("{} must be a list of capability names".format(field))
    valid = set(all_capabilities())
    out = []
    for cap in caps:
        cap = cap.strip().upper()
        if cap != ALL:
            if not cap.startswith("CAP_"):
                cap = "CAP_" + cap
            if cap not in valid:
                raise errors.InvalidArgument('unknown capability: "{}"'.format(cap))
        out.append(cap)
    return out


def tweak(cap_add=(), cap_drop=(), privileged=False):
    """The container's capability names, exactly as moby's TweakCapabilities computes them."""
    if privileged:
        return all_capabilities()
    adds, drops = normalize(list(cap_add), "cap_add"), normalize(list(cap_drop), "cap_drop")
    if not adds and not drops:
        return list(DEFAULT)
    if ALL in adds:
        return [c for c in all_capabilities() if c not in drops]
    if ALL in drops:
        return [c for c in adds if c != ALL]
    return [c for c in DEFAULT if c not in drops] + adds


def mask(names):
    """A 64-bit capability mask of names."""
    value = 0
    for name in names:
        value |= 1 << CAP_NUMBERS[name]
    return value


def container_mask(spec):
    """The mask a container gets, limited to what this process holds (a payload cannot grant more).

    A capability the user named in ``cap_add`` that this host's payload does not hold is an error rather
    than silently missing; ``ALL`` and ``privileged`` mean "everything available".
    """
    from ..linux import libc

    adds = normalize(list(spec.cap_add), "cap_add")
    held = libc.capget()[1]
    if not spec.privileged and ALL not in adds:
        missing = [n for n in adds if not held & (1 << CAP_NUMBERS[n])]
        if missing:
            raise errors.FailedPrecondition("capability {} is not available to the runtime on this host".format(
                ", ".join(missing)))
    return mask(tweak(spec.cap_add, spec.cap_drop, spec.privileged)) & held


def drop_bounding(keep):
    """Drop every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP, so call before capset)."""
    from ..linux import libc

    for num in range(last_cap() + 1):
        if keep & (1 << num):
            continue
        try:
            if not libc.prctl(PR_CAPBSET_READ, num):
                continue
        except OSError:
            continue  # EINVAL: a number this kernel does not have
        libc.prctl(PR_CAPBSET_DROP, num)


def apply_sets(keep):
    """Effective and permitted := ``keep``, inheritable empty (as Docker since CVE-2022-24769), ambient cleared.

    Called after setuid: with PR_SET_KEEPCAPS the permitted set survived the uid change, so a non-root
    user holds ``keep`` until exec, where the kernel clears it (no file caps, empty inheritable) — the
    same CapEff 0 a non-root Docker user sees. Root gets ``keep`` back from its bounding set at exec.
    """
    from ..linux import libc

    libc.capset(keep, keep, 0)
    try:
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except OSError:
        pass  # EINVAL: a kernel before 4.3 has no ambient set to clear


def mask_names(value):
    """Names of the bits set in a mask (for messages and inspect)."""
    return [name for num, name in enumerate(CAP_NAMES) if value & (1 << num)]
