"""Docker's resource flags (--memory, --memory-swap, --cpus, --cpu-shares, --pids-limit, --memory-reservation,
--cpuset-cpus, --cpuset-mems, --oom-kill-disable, and the block-IO ones: --blkio-weight, --blkio-weight-device,
--device-{read,write}-{bps,iops}): parsing and validation."""

import os

from ... import errors
from ...record import Record

MIN_MEMORY = 6 * 1024 * 1024  # moby daemon/daemon_unix.go linuxMinMemory
MIN_CPU_SHARES = 2  # kernel clamps cpu.shares to [2, 262144]; Docker adjusts with a warning
MAX_CPU_SHARES = 262144
CPU_PERIOD = 100000  # µs; Docker's fixed period for --cpus
UNLIMITED = -1

BLKIO_LISTS = ("blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops")
_FIELDS = ("memory", "memory_swap", "nano_cpus", "cpu_shares", "pids_limit", "memory_reservation", "cpuset_cpus",
           "cpuset_mems", "oom_kill_disable", "blkio_weight") + BLKIO_LISTS
_TYPES = dict({"cpuset_cpus": str, "cpuset_mems": str, "oom_kill_disable": bool},
              **{k: list for k in BLKIO_LISTS})  # the others: int


def _bad(flag, value, why):
    return errors.InvalidArgument('invalid argument "{}" for "{}" flag: {}'.format(value, flag, why))


def parse_size(value, flag="--memory"):
    """Bytes for a docker size (``32m``, ``1g``, ``1048576``); ints pass through. Raises InvalidArgument."""
    from ...humanize import ram_in_bytes

    return ram_in_bytes(value, flag)


def _parse_int(value, flag):
    if isinstance(value, bool):
        raise _bad(flag, value, "not an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise _bad(flag, value, "not an integer")


def host_cpus():
    """CPUs this process may run on (what Docker's sysinfo.NumCPU reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Limits(Record):
    """Resource limits of one container, in Docker's HostConfig units; ``None`` means "not set / unchanged".

    ``memory``/``memory_swap`` are bytes (``memory_swap`` -1 = unlimited swap), ``nano_cpus`` is --cpus x 1e9,
    ``cpu_shares`` v1 shares (v2 weight derived), ``pids_limit`` -1 = unlimited. Block IO as HostConfig has it:
    ``blkio_weight`` 10..1000, ``blkio_weight_device`` [{"Path", "Weight"}], ``device_{read,write}_{bps,iops}``
    [{"Path", "Rate"}] (the device's major:minor is looked up when applied, as docker does at start).
    """

    FIELDS = (("memory", None), ("memory_swap", None), ("nano_cpus", None), ("cpu_shares", None),
              ("pids_limit", None), ("memory_reservation", None), ("cpuset_cpus", None), ("cpuset_mems", None),
              ("oom_kill_disable", None), ("blkio_weight", None), ("blkio_weight_device", None),
              ("device_read_bps", None), ("device_write_bps", None), ("device_read_iops", None),
              ("device_write_iops", None), ("warnings", ()))
    COMPARE_SKIP = ("warnings",)

    # ---------------------------------------------------------------- derived cgroup values

    @property
    def cpu_quota(self):
        """cfs quota in µs for ``nano_cpus`` over ``CPU_PERIOD`` (-1 = unlimited), or None if not set."""
        if self.nano_cpus is None:
            return None
        if self.nano_cpus <= 0:
            return UNLIMITED
        return self.nano_cpus * CPU_PERIOD // 1000000000

    @property
    def cpu_weight(self):
        """cgroup v2 cpu.weight for ``cpu_shares``, converted as runc does (1 + (shares-2)*9999/262142)."""
        return shares_to_weight(self.cpu_shares)

    def is_empty(self):
        """True when no limit is set at all."""
        return not self.to_dict()

    # ---------------------------------------------------------------- combination

    def with_defaults(self):
        """Docker's create-time defaults: ``--memory`` without ``--memory-swap`` allows as much swap as memory."""
        if self.memory is not None and self.memory > 0 and self.memory_swap is None:
            return self.replace(memory_swap=2 * self.memory)
        return self

    def updated(self, change):
        """The limits after ``docker update`` with ``change`` (its None fields keep ours); validated as Docker does."""
        merged = Limits(**{f: getattr(change, f) if getattr(change, f) is not None else getattr(self, f)
                           for f in _FIELDS},
                        warnings=tuple(change.warnings))
        if change.memory is not None and change.memory_swap is None and self.memory_swap is not None \
                and self.memory_swap > 0 and change.memory > self.memory_swap:
            raise _bad("--memory", change.memory, "Memory limit should be smaller than already set memoryswap "
                       "limit, update the memoryswap at the same time")
        _check_swap(merged.memory, merged.memory_swap, change.memory_swap)
        if merged.memory and merged.memory_reservation and merged.memory < merged.memory_reservation:
            raise _bad("--memory-reservation", change.memory_reservation or merged.memory_reservation,
                       "Minimum memory limit can not be less than memory reservation limit, see usage")
        return merged

    # ---------------------------------------------------------------- persistence

    def to_dict(self):
        """JSON-able dict (set fields only) for the container config."""
        return {f: getattr(self, f) for f in _FIELDS
                if getattr(self, f) is not None}

    @classmethod
    def from_dict(cls, data):
        """Inverse of ``to_dict`` (unknown keys rejected)."""
        data = dict(data or {})
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise errors.InvalidArgument("unknown resource limit(s): {}".format(", ".join(sorted(unknown))))
        for key, value in data.items():
            want = _TYPES.get(key, int)
            if value is not None and (isinstance(value, bool) != (want is bool) or not isinstance(value, want)):
                raise errors.InvalidArgument("resource limit {} must be {}, not {!r}".format(
                    key, {int: "an integer", str: "a string", bool: "a boolean", list: "a list"}[want], value))
            if want is list and value is not None:
                data[key] = [_device_entry(key, e) for e in value]
        return cls(**data)

    def host_config(self):
        """The HostConfig fields ``docker inspect`` shows (0 where unset, as Docker)."""
        return {"Memory": self.memory or 0, "MemorySwap": self.memory_swap or 0, "NanoCpus": self.nano_cpus or 0,
                "CpuShares": self.cpu_shares or 0,
                "PidsLimit": None if self.pids_limit in (None, UNLIMITED) else self.pids_limit}

    def host_config_more(self):
        """The HostConfig fields of --memory-reservation, --cpuset-cpus/-mems, --oom-kill-disable (docker's zeros)."""
        return {"MemoryReservation": self.memory_reservation or 0, "CpusetCpus": self.cpuset_cpus or "",
                "CpusetMems": self.cpuset_mems or "", "OomKillDisable": bool(self.oom_kill_disable)}

    def host_config_blkio(self):
        """HostConfig's BlkioWeight, BlkioWeightDevice, BlkioDevice{Read,Write}{Bps,IOps} (docker CLI's 0 and [])."""
        return {"BlkioWeight": self.blkio_weight or 0,
                "BlkioWeightDevice": [dict(e) for e in self.blkio_weight_device or []],
                "BlkioDeviceReadBps": [dict(e) for e in self.device_read_bps or []],
                "BlkioDeviceWriteBps": [dict(e) for e in self.device_write_bps or []],
                "BlkioDeviceReadIOps": [dict(e) for e in self.device_read_iops or []],
                "BlkioDeviceWriteIOps": [dict(e) for e in self.device_write_iops or []]}

    def blkio_devices(self):
        """(limits field, entry) of every per-device block-IO setting, in flag order."""
        return [(field, entry) for field in BLKIO_LISTS for entry in getattr(self, field) or []]


def _device_entry(field, entry):
    """One stored per-device entry, checked: {"Path": "/dev/...", "Weight"|"Rate": int >= 0}."""
    key = "Weight" if field == "blkio_weight_device" else "Rate"
    if not isinstance(entry, dict) or set(entry) != {"Path", key} or not isinstance(entry["Path"], str) \
            or not entry["Path"].startswith("/dev/") or isinstance(entry[key], bool) \
            or not isinstance(entry[key], int) or entry[key] < 0:
        raise errors.InvalidArgument("resource limit {} has a bad entry {!r}: want {{Path, {}}}".format(
            field, entry, key))
    return {"Path": entry["Path"], key: entry[key]}


def block_device(path, flag):
    """(major, minor) of the block device at ``path`` on this host; InvalidArgument naming the flag if it is
    missing, no block device, or a partition (the kernel throttles and weighs whole disks only)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        raise errors.InvalidArgument('invalid argument for "{}" flag: {}: {}'.format(
            flag, path, (exc.strerror or str(exc)).lower()))
    if not stat.S_ISBLK(st.st_mode):
        raise errors.InvalidArgument('invalid argument for "{}" flag: {} is not a block device'.format(flag, path))
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if os.path.exists("/sys/dev/block/{}:{}/partition".format(major, minor)):
        raise errors.InvalidArgument('invalid argument for "{}" flag: {} is a partition: block-IO limits apply '
                                     'to whole disks'.format(flag, path))
    return major, minor


def check_block_devices(limits):
    """Every device a Limits names exists here as a whole-disk block device (InvalidArgument naming the flag)."""
    for field, entry in limits.blkio_devices():
        block_device(entry["Path"], "--" + field.replace("_", "-"))


def shares_to_weight(shares):
    """runc's ConvertCPUSharesToCgroupV2Value: shares [2..262144] -> weight [1..10000]; None/0 -> None."""
    if not shares:
        return None
    return 1 + ((shares - 2) * 9999) // 262142


def _check_swap(memory, swap, swap_raw):
    if swap is None or swap == UNLIMITED or swap == 0:
        return
    if memory is None or memory <= 0:
        raise _bad("--memory-swap", swap_raw if swap_raw is not None else swap,
                   "You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap < memory:
        raise _bad("--memory-swap", swap_raw if swap_raw is not None else swap,
                   "Minimum memoryswap limit should be larger than memory limit, see usage")


def parse(memory=None, memory_swap=None, cpus=None, cpu_shares=None, pids_limit=None, memory_reservation=None,
          cpuset_cpus=None, cpuset_mems=None, oom_kill_disable=None, ncpu=None, update=False, **blkio):
    """Limits from docker's flag values (strings as typed, or numbers); None = flag not given.

    Validates everything before returning; each InvalidArgument names the flag and the value. With ``update``
    (``docker update``) --memory-swap alone is fine: ``Limits.updated`` checks it against the current memory. ``ncpu``
    overrides the host CPU count (for tests). Zero means "not set" for --memory, --cpus and --cpu-shares,
    as in Docker; --pids-limit 0 or -1 means unlimited (-1). ``blkio``: hostopts.BLKIO_ARGS as typed (the
    controller's parse, hostopts.blkio_from_flags; the devices are checked where they are applied).
    """
    from ... import hostopts

    unknown = set(blkio) - set(hostopts.BLKIO_ARGS)
    if unknown:
        raise TypeError("unknown limit flags: {}".format(", ".join(sorted(unknown))))
    block = hostopts.blkio_from_flags(**blkio)
    warnings = []
    mem = None
    if memory is not None:
        mem = parse_size(memory, "--memory")
        if mem < 0:
            raise _bad("--memory", memory, "memory limit must not be negative")
        if mem == 0:
            mem = None
        elif mem < MIN_MEMORY:
            raise _bad("--memory", memory, "Minimum memory limit allowed is 6MB")

    swap = None
    if memory_swap is not None:
        if str(memory_swap).strip() == "-1":
            swap = UNLIMITED
        else:
            swap = parse_size(memory_swap, "--memory-swap")
            if swap < 0:
                raise _bad("--memory-swap", memory_swap, "use -1 for unlimited swap")
            swap = swap or None
    if not update or mem is not None:
        _check_swap(mem, swap, memory_swap)

    nano = None
    if cpus is not None:
        nano = _parse_cpus(cpus, ncpu if ncpu is not None else host_cpus())

    shares = None
    if cpu_shares is not None:
        shares = _parse_int(cpu_shares, "--cpu-shares")
        if shares < 0:
            raise _bad("--cpu-shares", cpu_shares, "CPU shares must not be negative")
        if shares == 0:
            shares = None
        elif shares < MIN_CPU_SHARES:
            warnings.append("Your kernel does not support CPU shares lower than 2, adjusting to 2")
            shares = MIN_CPU_SHARES
        elif shares > MAX_CPU_SHARES:
            warnings.append("Your kernel does not support CPU shares higher than 262144, adjusting to 262144")
            shares = MAX_CPU_SHARES

    pids = None
    if pids_limit is not None:
        pids = _parse_int(pids_limit, "--pids-limit")
        if pids < UNLIMITED:
            raise _bad("--pids-limit", pids_limit, "must be a positive number, or -1 or 0 for unlimited")
        if pids == 0:
            pids = UNLIMITED
    reservation = None
    if memory_reservation is not None:
        reservation = parse_size(memory_reservation, "--memory-reservation")
        if reservation < 0:
            raise _bad("--memory-reservation", memory_reservation, "memory reservation must not be negative")
        if 0 < reservation < MIN_MEMORY:  # moby verifyPlatformContainerResources
            raise _bad("--memory-reservation", memory_reservation, "Minimum memory reservation allowed is 6MB")
        reservation = reservation or None
        if mem is not None and reservation is not None and mem < reservation:
            raise _bad("--memory-reservation", memory_reservation, "Minimum memory limit can not be less than "
                       "memory reservation limit, see usage")
    cpus_set = None if cpuset_cpus is None else parse_cpuset(cpuset_cpus, "--cpuset-cpus", "cpus")
    mems_set = None if cpuset_mems is None else parse_cpuset(cpuset_mems, "--cpuset-mems", "mems")
    return Limits(memory=mem, memory_swap=swap, nano_cpus=nano, cpu_shares=shares, pids_limit=pids,
                  memory_reservation=reservation, cpuset_cpus=cpus_set, cpuset_mems=mems_set,
                  oom_kill_disable=True if oom_kill_disable else None, warnings=tuple(warnings), **block)


def _online(kind):
    """The host's online CPUs or memory nodes as a set (sysfs), None if unknown."""
    path = "/sys/devices/system/{}/online".format("cpu" if kind == "cpus" else "node")
    try:
        with open(path) as f:
            return _uint_list(f.read().strip())
    except (OSError, ValueError):
        return {0} if kind == "mems" else None


def _uint_list(text):
    """moby parsers.ParseUintList: "0-3,5" -> {0, 1, 2, 3, 5}; ValueError on a bad list."""
    out = set()
    if not text:
        raise ValueError(text)
    for part in text.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(text)
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(text)
        out.update(range(first, last + 1))
    return out


def parse_cpuset(value, flag, kind):
    """--cpuset-cpus/--cpuset-mems: docker's list syntax, every member available on this host; "" = not set."""
    text = str(value).strip()
    if not text:
        return None
    try:
        wanted = _uint_list(text)
    except ValueError:
        raise _bad(flag, value, "Invalid value {} for cpuset {}".format(text, kind))
    available = _online(kind)
    if available is not None and not wanted <= available:
        raise _bad(flag, value, "Requested {} are not available - requested {}, available: {}".format(
            "CPUs" if kind == "cpus" else "memory nodes", text, _ranges(available)))
    return text


def _ranges(numbers):
    out, nums = [], sorted(numbers)
    start = prev = None
    for n in nums + [None]:
        if start is None:
            start = prev = n
        elif n is not None and n == prev + 1:
            prev = n
        else:
            out.append(str(start) if start == prev else "{}-{}".format(start, prev))
            start = prev = n
    return ",".join(out)


def _parse_cpus(value, ncpu):
    """--cpus as nano CPUs: a decimal >= 0.01 and <= host CPUs (0 = not set)."""
    if isinstance(value, bool):
        raise _bad("--cpus", value, "failed to parse {} as a rational number".format(value))
    try:
        import fractions  # only for --cpus, not on every start
        rat = fractions.Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise _bad("--cpus", value, "failed to parse {} as a rational number".format(value))
    nano = rat * 1000000000
    if nano.denominator != 1:  # moby opts.NanoCPUs: "value is too precise"
        raise _bad("--cpus", value, "value is too precise")
    nano = int(nano)
    if nano < 0:
        raise _bad("--cpus", value, "CPUs must not be negative")
    if nano == 0:
        return None
    if nano < 10000000 or nano > ncpu * 1000000000:
        raise _bad("--cpus", value, "range of CPUs is from 0.01 to {0}.00, as there are only {0} CPUs "
                   "available".format(ncpu))
    return nano
