"""docker run's host options: --add-host, --dns/--dns-search/--dns-option, --tmpfs, --shm-size, --ulimit, --sysctl,
--device, --group-add, --volumes-from, --link (and the checks of --mac-address, --pull, --platform).  One parse
(``from_flags``) shared by the controller (containeropts.parse checks the values before any host is contacted) and
the payload (create re-checks the request); stdlib only, python3 >= 3.8.

The wire carries the values as typed (lists of strings, --shm-size a string); ``from_flags`` turns them into the
ContainerSpec fields (``FIELDS``), in docker's HostConfig shapes (ExtraHosts, Dns, DnsSearch, DnsOptions, Tmpfs,
ShmSize, Ulimits, Sysctls, Devices, GroupAdd, VolumesFrom, Links).  What needs the host happens in the runtime:
rootfs.py (tmpfs, /dev/shm, device nodes), process.py (sysctls, ulimits, groups), the shim (device cgroup rules,
/etc/hosts with --link's entries).  Every bad value is InvalidArgument in docker's words, naming the
flag and the value: ``invalid argument "VALUE" for "--FLAG" flag: why``.
"""

import os
import re
import socket
import stat

from agent_payload import errors

#: request args (requests.py) -> the flag that sets them
ARGS = {"extra_hosts": "--add-host", "dns": "--dns", "dns_search": "--dns-search", "dns_options": "--dns-option",
        "tmpfs": "--tmpfs", "shm_size": "--shm-size", "ulimits": "--ulimit", "sysctls": "--sysctl",
        "devices": "--device", "group_add": "--group-add", "volumes_from": "--volumes-from", "links": "--link"}
#: ContainerSpec fields and their defaults (what a container created before these flags has)
FIELDS = (("extra_hosts", list), ("dns", list), ("dns_search", list), ("dns_options", list), ("tmpfs", dict),
          ("shm_size", None), ("ulimits", list), ("sysctls", dict), ("devices", list), ("group_add", list),
          ("volumes_from", list), ("links", list))
DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # docker's default /dev/shm (daemon default-shm-size)
HOST_GATEWAY = "host-gateway"
#: go-units ulimit names -> resource module constant names (setrlimit in the init)
ULIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
           "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
           "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
           "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
           "stack": "RLIMIT_STACK"}
#: docker/cli opts.ValidateSysctl: the namespaced sysctls a container may set
SYSCTL_NAMES = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced")
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
#: --tmpfs options that are mount flags (the rest is tmpfs data: size=, mode=, uid=, gid=, nr_inodes=, ...)
TMPFS_FLAGS = ("ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "diratime",
               "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "sync", "async",
               "dirsync", "mand", "nomand", "bind", "rbind", "private", "rprivate", "shared", "rshared", "slave",
               "rslave")
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol")
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")  # docker's defaults for --tmpfs
_DOMAIN_RE = re.compile(r"^(:?(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9\-]*"
                        r"[a-zA-Z0-9])?\.?)$")


def _bad(flag, value, why):
    return errors.InvalidArgument('invalid argument "{}" for "{}" flag: {}'.format(value, flag, why))


def is_ip(text):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except (OSError, ValueError):
            continue
    return False



# ---------------------------------------------------------------------------------------------- the flags

def parse_extra_host(value):
    """docker/cli opts.ValidateExtraHost: ``host:ip`` or ``host=ip`` (ip may be [v6] or host-gateway) -> host:ip."""
    key, sep, ip = value.partition("=")
    if not sep:
        key, sep, ip = value.partition(":")
    if not sep or not key or ":" in key:
        raise _bad("--add-host", value, 'bad format for add-host: "{}"'.format(value))
    if ip != HOST_GATEWAY:
        if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
            ip = ip[1:-1]
        if not is_ip(ip):
            raise _bad("--add-host", value, 'invalid IP address in add-host: "{}"'.format(ip))
    return "{}:{}".format(key, ip)


def parse_dns_server(value):
    if not is_ip(value):
        raise _bad("--dns", value, "{} is not an ip address".format(value))
    return value


def parse_dns_search(value):
    """docker/cli opts.ValidateDNSSearch: a domain name, or "." (no search domain at all)."""
    domain = value.strip()
    if domain == ".":
        return domain
    if domain.endswith("."):
        domain = domain[:-1]
    if not _DOMAIN_RE.match(domain) or len(domain) > 255:
        raise _bad("--dns-search", value, "{} is not a valid domain".format(value))
    return value.strip()


def parse_size(value, flag):
    """go-units RAMInBytes (as --memory)."""
    from .humanize import ram_in_bytes
    return ram_in_bytes(value, flag)


def parse_shm_size(value):
    """--shm-size: a size > 0 (0 or none: docker's 64m)."""
    if value is None:
        return None
    size = parse_size(value, "--shm-size")
    if size < 0:
        raise _bad("--shm-size", value, "SHM size can not be less than 0")
    return size or None


def parse_tmpfs(value):
    """``/path[:opts]`` -> (path, opts): opts comma separated mount flags and tmpfs data (docker's HostConfig.Tmpfs)."""
    path, _, opts = value.partition(":")
    if not path.startswith("/") or "\x00" in value:
        raise _bad("--tmpfs", value, 'invalid mount path "{}": mount path must be absolute'.format(path))
    norm = os.path.normpath(path)
    if norm == "/" or norm == "/proc" or norm.startswith("/proc/"):
        raise _bad("--tmpfs", value, 'invalid mount path "{}"'.format(path))
    for opt in [o for o in opts.split(",") if o]:
        key = opt.split("=", 1)[0]
        if key not in TMPFS_FLAGS and key not in TMPFS_DATA:
            raise _bad("--tmpfs", value, "invalid tmpfs option {!r}".format(opt))
        if key == "size":
            parse_size(opt.split("=", 1)[1] if "=" in opt else "", "--tmpfs")
    return path, opts


def tmpfs_mount(opts):
    """(mount flag names, tmpfs data string) of a --tmpfs entry: docker's noexec,nosuid,nodev unless overridden."""
    flags = list(TMPFS_DEFAULTS)
    data = []
    opposite = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}
    for opt in [o for o in (opts or "").split(",") if o]:
        key, _, val = opt.partition("=")
        if key in opposite:
            flags = [f for f in flags if f != opposite[key]]
        elif key in TMPFS_DATA:
            if key == "size":
                data.append("size={}".format(parse_size(val, "--tmpfs")))
            else:
                data.append("{}={}".format(key, val))
        elif key not in flags:
            flags.append(key)
    return flags, ",".join(data)


def parse_ulimit(value):
    """go-units ParseUlimit: ``name=soft[:hard]`` -> docker's {"Name", "Hard", "Soft"}."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise _bad("--ulimit", value, "invalid ulimit argument: {}".format(value))
    if name not in ULIMITS:
        raise _bad("--ulimit", value, "invalid ulimit type: {}".format(name))
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = int(soft_text, 10)
        hard = int(hard_text, 10) if hard_text else soft
    except ValueError:
        raise _bad("--ulimit", value, "invalid ulimit argument: {}".format(value))
    if soft > hard:
        raise _bad("--ulimit", value, "ulimit soft limit must be less than or equal to hard limit: {} > {}".format(
            soft, hard))
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_sysctl(value):
    """docker/cli opts.ValidateSysctl: ``name=value``, namespaced names only -> (name, value)."""
    name, sep, val = value.partition("=")
    if not sep or not (name in SYSCTL_NAMES or name.startswith(SYSCTL_PREFIXES)) or ".." in name or "/" in name:
        raise _bad("--sysctl", value, "sysctl '{}' is not allowed".format(value))
    return name, val


def _device_mode(text):
    return bool(text) and len(text) <= 3 and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def parse_device(value):
    """docker/cli parseDevice: ``/dev/x[:/dev/y][:rwm]`` -> {"PathOnHost", "PathInContainer", "CgroupPermissions"}."""
    parts = value.split(":")
    src, dst, perms = parts[0], parts[0], "rwm"
    if len(parts) == 3:
        dst = parts[1]
        if not _device_mode(parts[2]):
            raise _bad("--device", value, "bad mode specified: {}".format(parts[2]))
        perms = parts[2]
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) != 1 or not src:
        raise _bad("--device", value, "bad format for path: {}".format(value))
    for path in (src, dst):
        if not path.startswith("/"):
            raise _bad("--device", value, "bad format for path: {}".format(path))
    if not os.path.normpath(dst).startswith("/dev/"):  # fleet makes nodes on the container's /dev tmpfs only
        raise _bad("--device", value, "the container path {} is not under /dev".format(dst))
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def parse_group_add(value):
    if not value or ":" in value or "\x00" in value:
        raise _bad("--group-add", value, "invalid group name")
    return value


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def check_mac(value):
    """--mac-address: six hex octets (docker/cli opts.ValidateMACAddress, via net.ParseMAC); lower-case ':' form."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise errors.InvalidArgument('invalid argument "{}" for "--mac-address" flag: {} is not a valid mac '
                                     'address'.format(value, value))
    return value.lower().replace("-", ":")


PULL_POLICIES = ("always", "missing", "never")
_PLATFORM_RE = re.compile(r"^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$")


def check_pull(value):
    """--pull: docker's three policies (None: missing)."""
    if value is not None and value not in PULL_POLICIES:
        raise errors.InvalidArgument('invalid pull option: \'{}\': must be one of "always", "missing" or '
                                     '"never"'.format(value))
    return value or "missing"


def check_platform(value):
    """--platform's syntax, os/arch[/variant] (the payload also checks it names its host's own platform)."""
    if value is not None and not _PLATFORM_RE.match(value.lower()):
        raise errors.InvalidArgument('invalid argument "{}" for "--platform" flag: expected os/arch[/variant]'.format(
            value))
    return value


def parse_volumes_from(value):
    """--volumes-from CONTAINER[:ro|rw] (docker's daemon: "invalid mode" for another suffix)."""
    name, sep, mode = value.partition(":")
    if not name or (sep and mode not in ("ro", "rw")):
        raise _bad("--volumes-from", value, "invalid mode: {}".format(mode) if name else "empty container name")
    return value


def parse_link(value):
    """--link NAME[:ALIAS] (docker/cli opts.ValidateLink) -> "NAME:ALIAS" (the alias defaults to the name)."""
    parts = value.split(":")
    if not parts[0] or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        raise _bad("--link", value, "bad format for links: {}".format(value))
    return "{}:{}".format(parts[0].lstrip("/"), parts[-1].lstrip("/"))


def link_lines(links, lookup, network, me):
    """/etc/hosts lines of --link: ``IP\tALIAS ID12 NAME`` (docker's), each linked container running and on the
    container's network; ``lookup(name)`` is its record or None."""
    out = []
    for link in links or []:
        name, _, alias = link.partition(":")
        rec = lookup(name)
        if not rec or rec.get("status") != "running":
            raise errors.FailedPrecondition("Cannot link to a non running container: /{} AS /{}/{}".format(
                name, me, alias))
        ips = [ep["ip"] for ep in (rec.get("network_settings") or {}).get("endpoints") or []
               if ep.get("network") == network]
        if not ips:
            raise errors.FailedPrecondition("Cannot link to /{}, as it does not belong to the network {}".format(
                name, network))
        out.append("{}\t{} {} {}\n".format(ips[0], alias, rec["id"][:12], rec.get("name") or name))
    return "".join(out)


def _strs(values, flag):
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise errors.InvalidArgument("argument {} must be a list of strings".format(flag))
    return values


def from_flags(extra_hosts=None, dns=None, dns_search=None, dns_options=None, tmpfs=None, shm_size=None,
               ulimits=None, sysctls=None, devices=None, group_add=None, volumes_from=None, links=None):
    """The request's values as typed -> ContainerSpec fields (``FIELDS``); the first bad one raises."""
    out = {"extra_hosts": [parse_extra_host(v) for v in _strs(extra_hosts, "extra_hosts")],
           "dns": [parse_dns_server(v) for v in _strs(dns, "dns")],
           "dns_search": [parse_dns_search(v) for v in _strs(dns_search, "dns_search")],
           "dns_options": list(_strs(dns_options, "dns_options"))}
    mounts = {}
    for value in _strs(tmpfs, "tmpfs"):
        path, opts = parse_tmpfs(value)
        mounts[path] = opts
    out["tmpfs"] = mounts
    if shm_size is not None and not isinstance(shm_size, (str, int)):
        raise errors.InvalidArgument("argument shm_size must be a string")
    out["shm_size"] = parse_shm_size(shm_size)
    by_name = {}
    for value in _strs(ulimits, "ulimits"):
        entry = parse_ulimit(value)
        by_name[entry["Name"]] = entry  # a later one wins, as docker's map
    out["ulimits"] = list(by_name.values())
    out["sysctls"] = dict(parse_sysctl(v) for v in _strs(sysctls, "sysctls"))
    out["devices"] = [parse_device(v) for v in _strs(devices, "devices")]
    out["group_add"] = [parse_group_add(v) for v in _strs(group_add, "group_add")]
    out["volumes_from"] = [parse_volumes_from(v) for v in _strs(volumes_from, "volumes_from")]
    out["links"] = [parse_link(v) for v in _strs(links, "links")]
    return out


# ------------------------------------------------------------------------------------------- block I/O

#: request args (and cgroups.limits.Limits fields) of the block-IO flags -> the flag; the lists are PATH:VALUE
BLKIO_ARGS = {"blkio_weight": "--blkio-weight", "blkio_weight_device": "--blkio-weight-device",
              "device_read_bps": "--device-read-bps", "device_write_bps": "--device-write-bps",
              "device_read_iops": "--device-read-iops", "device_write_iops": "--device-write-iops"}
BLKIO_LISTS = tuple(k for k in BLKIO_ARGS if k != "blkio_weight")
_RATE_HELP = {"bps": "<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb",
              "iops": "<number>. Number must be a positive integer"}


def _device_value(flag, value):
    """PATH:VALUE with PATH under /dev/ (docker/cli opts ValidateThrottle*Device / ValidateWeightDevice)."""
    if not isinstance(value, str):
        raise errors.InvalidArgument('invalid argument {!r} for "{}" flag: want PATH:VALUE'.format(value, flag))
    path, sep, rest = value.rpartition(":")
    if not sep or not path:
        raise _bad(flag, value, "bad format: {}".format(value))
    if not path.startswith("/dev/") or "\x00" in path:
        raise _bad(flag, value, "bad format for device path: {}".format(value))
    return path, rest


def parse_blkio_weight(value, flag="--blkio-weight"):
    """--blkio-weight: 10..1000, 0 = not set (docker's daemon: "Range of blkio weight is from 10 to 1000")."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise _bad(flag, value, "strconv.ParseUint: parsing {!r}: invalid syntax".format(text))
    weight = int(text)
    if weight > 65535:
        raise _bad(flag, value, "strconv.ParseUint: parsing {!r}: value out of range".format(text))
    if weight and not 10 <= weight <= 1000:
        raise _bad(flag, value, "Range of blkio weight is from 10 to 1000")
    return weight or None


def parse_weight_device(value, flag="--blkio-weight-device"):
    """--blkio-weight-device PATH:WEIGHT (10..1000, or 0) -> {"Path", "Weight"} (HostConfig.BlkioWeightDevice)."""
    path, text = _device_value(flag, value)
    if not text.isdigit() or (int(text) and not 10 <= int(text) <= 1000):
        raise _bad(flag, value, "invalid weight for device: {}".format(value))
    return {"Path": path, "Weight": int(text)}


def parse_throttle_device(value, flag, unit):
    """--device-{read,write}-{bps,iops} PATH:RATE -> {"Path", "Rate"}: bps a size with units (1mb, 512k), iops
    a plain number (HostConfig.BlkioDevice*Bps/IOps)."""
    path, text = _device_value(flag, value)
    why = "invalid rate for device: {}. The correct format is <device-path>:{}".format(value, _RATE_HELP[unit])
    if unit == "iops":
        if not text.isdigit():
            raise _bad(flag, value, why)
        return {"Path": path, "Rate": int(text)}
    try:
        rate = parse_size(text, flag)
    except errors.InvalidArgument:
        raise _bad(flag, value, why)
    if rate < 0:
        raise _bad(flag, value, why)
    return {"Path": path, "Rate": rate}


def blkio_from_flags(blkio_weight=None, blkio_weight_device=None, device_read_bps=None, device_write_bps=None,
                     device_read_iops=None, device_write_iops=None):
    """The block-IO flags as typed -> {arg: value} in HostConfig's shapes (None: not given); the first bad raises.
    A device given twice keeps its last value (docker's per-device maps)."""
    out = {"blkio_weight": parse_blkio_weight(blkio_weight)}
    given = {"blkio_weight_device": blkio_weight_device, "device_read_bps": device_read_bps,
             "device_write_bps": device_write_bps, "device_read_iops": device_read_iops,
             "device_write_iops": device_write_iops}
    for arg, values in given.items():
        flag = BLKIO_ARGS[arg]
        entries = {}
        for value in _strs(values, arg):
            entry = (parse_weight_device(value, flag) if arg == "blkio_weight_device" else
                     parse_throttle_device(value, flag, arg.rpartition("_")[2]))
            entries.pop(entry["Path"], None)
            entries[entry["Path"]] = entry
        out[arg] = list(entries.values()) or None
    return out


# ------------------------------------------------------------------------------------- payload-side checks

def check_spec(spec):
    """A stored spec's host options (config.json): type checks, and the network-dependent sysctl rule."""
    for field, default in FIELDS:
        value = getattr(spec, field)
        want = dict if default is dict else list if default is list else int
        if field == "shm_size" and value is None:
            continue
        if not isinstance(value, want) or isinstance(value, bool):
            raise errors.InvalidArgument("{} must be a {}".format(field, want.__name__))
    check_network(spec.sysctls, spec.network, spec.links)
    return spec


def check_network(sysctls, network, links=()):
    """net.* sysctls need a network namespace of the container's own (runc: not in the host's); so do links."""
    if (network or "bridge") == "host" and links:
        raise errors.InvalidArgument("conflicting options: host type networking can't be used with links. This "
                                     "would result in undefined behavior")
    if (network or "bridge") == "host":
        for name in sorted(sysctls or {}):
            if name.startswith("net."):
                raise errors.InvalidArgument('sysctl "{}" not allowed in host network namespace'.format(name))


def device_node(entry):
    """(type "c"/"b", major, minor, mode, uid, gid) of a --device's host node; InvalidArgument naming it."""
    path = entry["PathOnHost"]
    try:
        st = os.stat(path)
    except OSError as exc:
        raise errors.InvalidArgument('error gathering device information while adding custom device "{}": {}'.format(
            path, (exc.strerror or str(exc)).lower()))
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise errors.InvalidArgument('error gathering device information while adding custom device "{}": not a '
                                     'device node'.format(path))
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def apply_sysctls(sysctls):
    """In the init, in the container's namespaces (net, ipc) and before pivot_root: write each /proc/sys entry."""
    for name, value in sorted((sysctls or {}).items()):
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise errors.InvalidArgument('sysctl "{}={}": {}'.format(name, value, (exc.strerror or str(exc)).lower()))


def apply_ulimits(ulimits, resource):
    """In the init, while it still holds CAP_SYS_RESOURCE: setrlimit for each --ulimit (-1: unlimited)."""
    for entry in ulimits or []:
        soft = resource.RLIM_INFINITY if entry["Soft"] < 0 else entry["Soft"]
        hard = resource.RLIM_INFINITY if entry["Hard"] < 0 else entry["Hard"]
        resource.setrlimit(getattr(resource, ULIMITS[entry["Name"]]), (soft, hard))


# ------------------------------------------------------------------------------- /etc/hosts, resolv.conf

def hosts_lines(extra_hosts, gateway=None):
    """/etc/hosts lines of --add-host (``ip\\thost``); host-gateway is ``gateway`` (the default bridge's)."""
    out = []
    for entry in extra_hosts or []:
        host, _, ip = entry.partition(":")
        if ip == HOST_GATEWAY:
            if not gateway:
                continue
            ip = gateway
        out.append("{}\t{}\n".format(ip, host))
    return "".join(out)


def resolv_text(base, dns=(), search=(), options=()):
    """docker's resolv.conf: the base's lines, nameservers replaced by --dns, search by --dns-search ("." none),
    options by --dns-option."""
    lines = base.splitlines(True)
    if dns:
        lines = [ln for ln in lines if ln.split()[:1] != ["nameserver"]]
        lines += ["nameserver {}\n".format(s) for s in dns]
    if search:
        lines = [ln for ln in lines if ln.split()[:1] not in (["search"], ["domain"])]
        domains = [d for d in search if d != "."]
        if domains:
            lines.append("search {}\n".format(" ".join(domains)))
    if options:
        lines = [ln for ln in lines if ln.split()[:1] != ["options"]]
        lines.append("options {}\n".format(" ".join(options)))
    return "".join(lines)
