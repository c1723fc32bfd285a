"""Docker's resource flags (--memory, --memory-swap, --cpus, --cpu-shares, --pids-limit): parsing and validation."""

import os
import re

from ... import errors
from ...record import Record

MIN_MEMORY = 6 * 1024 * 1024  # moby daemon/daemon_unix.go linuxMinMemory
MIN_CPU_SHARES = 2  # kernel clamps cpu.shares to [2, 262144]; Docker adjusts with a warning
MAX_CPU_SHARES = 262144
CPU_PERIOD = 100000  # µs; Docker's fixed period for --cpus
UNLIMITED = -1

# go-units RAMInBytes: "32m", "1.5g", "512MiB", "100 kb"; binary multiples; bare number = bytes
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_FIELDS = ("memory", "memory_swap", "nano_cpus", "cpu_shares", "pids_limit")


def _bad(flag, value, why):
    return errors.InvalidArgument('invalid argument "{}" for "{}" flag: {}'.format(value, flag, why))


def parse_size(value, flag="--memory"):
    """Bytes for a docker size (``32m``, ``1g``, ``1048576``); ints pass through. Raises InvalidArgument."""
    if isinstance(value, bool):
        raise _bad(flag, value, "invalid size: '{}'".format(value))
    if isinstance(value, int):
        return value
    text = str(value).strip()
    m = _SIZE_RE.match(text)
    if not m:
        raise _bad(flag, value, "invalid size: '{}'".format(value))
    try:
        number = float(m.group(1))
    except ValueError:  # "1.2.3" matches go-units' regex but is no number
        raise _bad(flag, value, "invalid size: '{}'".format(value))
    return int(number * _UNITS.get((m.group(2) or "").lower(), 1))


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
    ``cpu_shares`` v1 shares (v2 weight derived), ``pids_limit`` -1 = unlimited.
    """

    FIELDS = (("memory", None), ("memory_swap", None), ("nano_cpus", None), ("cpu_shares", None),
              ("pids_limit", None), ("warnings", ()))
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
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise errors.InvalidArgument("resource limit {} must be an integer, not {!r}".format(key, value))
        return cls(**data)

    def host_config(self):
        """The HostConfig fields ``docker inspect`` shows (0 where unset, as Docker)."""
        return {"Memory": self.memory or 0, "MemorySwap": self.memory_swap or 0, "NanoCpus": self.nano_cpus or 0,
                "CpuShares": self.cpu_shares or 0,
                "PidsLimit": None if self.pids_limit in (None, UNLIMITED) else self.pids_limit}


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


def parse(memory=None, memory_swap=None, cpus=None, cpu_shares=None, pids_limit=None, ncpu=None, update=False):
    """Limits from docker's flag values (strings as typed, or numbers); None = flag not given.

    Validates everything before returning; each InvalidArgument names the flag and the value. With ``update``
    (``docker update``) --memory-swap alone is fine: ``Limits.updated`` checks it against the current memory. ``ncpu``
    overrides the host CPU count (for tests). Zero means "not set" for --memory, --cpus and --cpu-shares,
    as in Docker; --pids-limit 0 or -1 means unlimited (-1).
    """
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
    return Limits(memory=mem, memory_swap=swap, nano_cpus=nano, cpu_shares=shares, pids_limit=pids,
                  warnings=tuple(warnings))


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
