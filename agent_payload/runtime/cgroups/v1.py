"""cgroup v1 manager: one ``<controller mount>/<parent>/<id>`` per controller (memory, cpu, cpuacct, pids, ...)."""

import errno
import os
import time

from ... import errors
from . import devices, fs
from .base import CONTROLLERS_V1, Manager, host_memory

# kernel v1 "no limit" for memory.limit_in_bytes reads as PAGE_COUNTER_MAX pages (about 2^63); writing -1 sets it
UNLIMITED = -1
_NEEDS = (("memory", "--memory", "memory"), ("memory_swap", "--memory-swap", "memory"),
          ("nano_cpus", "--cpus", "cpu"), ("cpu_shares", "--cpu-shares", "cpu"), ("pids_limit", "--pids-limit", "pids"),
          ("memory_reservation", "--memory-reservation", "memory"),
          ("oom_kill_disable", "--oom-kill-disable", "memory"),
          ("cpuset_cpus", "--cpuset-cpus", "cpuset"), ("cpuset_mems", "--cpuset-mems", "cpuset"),
          ("blkio_weight", "--blkio-weight", "blkio"), ("blkio_weight_device", "--blkio-weight-device", "blkio"),
          ("device_read_bps", "--device-read-bps", "blkio"), ("device_write_bps", "--device-write-bps", "blkio"),
          ("device_read_iops", "--device-read-iops", "blkio"), ("device_write_iops", "--device-write-iops", "blkio"))
_THROTTLE = {"device_read_bps": "blkio.throttle.read_bps_device", "device_write_bps": "blkio.throttle.write_bps_device",
             "device_read_iops": "blkio.throttle.read_iops_device",
             "device_write_iops": "blkio.throttle.write_iops_device"}


class V1Manager(Manager):
    """A container's cgroups on a v1 (or hybrid) host; controllers that are not mounted are skipped."""

    version = 1

    def __init__(self, container_id, hierarchy, parent=None):
        super().__init__(container_id, hierarchy, parent)
        # controller -> leaf dir; co-mounted controllers (cpu,cpuacct) share one dir; "devices" carries the
        # device policy (apply_devices), so it is one of ours whenever it is mounted
        self.dirs = {c: os.path.join(hierarchy.v1[c].mount_point, self.parent, self.id)
                     for c in CONTROLLERS_V1 + ("devices", "cpuset") if c in hierarchy.v1}

    # A write to cgroup.procs takes the global cgroup_threadgroup_rwsem for writing, which waits for an RCU grace
    # period (~10 ms, once per burst of writes); a thread writing "0" to "tasks" moves only itself and takes no
    # such lock. A single-threaded process (a freshly forked init) is then entirely in the cgroup.
    places_self = True

    def add_self(self):
        """Move the calling process (it must have one thread) in through each hierarchy's ``tasks`` file."""
        for path in self.paths():
            fs._write(path, "tasks", "0", self._is_cgroupfs)

    def paths(self):
        """Unique leaf dirs, in controller order."""
        out = []
        for path in self.dirs.values():
            if path not in out:
                out.append(path)
        return out

    def check(self, limits):
        """FailedPrecondition naming the flag if a set limit's controller is not mounted."""
        for field, flag, ctrl in _NEEDS:
            if getattr(limits, field) is not None and ctrl not in self.dirs:
                raise errors.FailedPrecondition("{} needs the cgroup v1 {} controller, which is not mounted on "
                                                "this host".format(flag, ctrl))

    def _make(self):
        if not self.dirs:
            raise errors.FailedPrecondition("none of the cgroup v1 controllers {} is mounted".format(
                ", ".join(CONTROLLERS_V1)))
        mounts = {leaf: self.hierarchy.v1[c].mount_point for c, leaf in self.dirs.items()}
        for path in self.paths():
            for attempt in range(3):
                try:
                    self._created_parents += fs.mkdir_p(mounts[path], self.parent, self._is_cgroupfs)
                    fs.mkdir(os.path.dirname(path), self.id, self._is_cgroupfs)
                    if path == self.dirs.get("cpuset"):
                        self._inherit_cpuset(mounts[path])
                    if path == self.dirs.get("blkio"):
                        self._count_block_io()
                    break
                except errors.FailedPrecondition as exc:
                    # a concurrent destroy() removed the shared parent between our two mkdirs: redo
                    if exc.errno != errno.ENOENT or attempt == 2:
                        raise

    def _count_block_io(self, sys_block="/sys/block"):
        """Make the kernel count this cgroup's block IO on every disk (stats' BLOCK I/O): on recent kernels (seen
        on 6.18) v1's blkio.throttle.io_service_bytes counts only on a disk whose throttling was ever configured, so
        the zero rate ("no limit") of blkio.throttle.read_bps_device is written for each disk: it limits nothing
        but turns the counting on. Disks that refuse (no request queue) are skipped."""
        try:
            names = sorted(os.listdir(sys_block))
        except OSError:
            return
        for name in names:
            if name.startswith(("loop", "ram", "zram")):
                continue
            dev = (fs.read(os.path.join(sys_block, name), "dev", "") or "").strip()
            if not dev:
                continue
            try:
                self._w("blkio", "blkio.throttle.read_bps_device", "{} 0".format(dev))
            except errors.AgentError:
                pass

    def _inherit_cpuset(self, mount):
        """A new v1 cpuset cgroup starts with empty cpus and mems (no task may join it): copy each level's from
        its parent, top down, as runc's cpuset manager does."""
        cur = mount
        for part in self.parent.split("/") + [self.id]:
            child = os.path.join(cur, part)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (fs.read(child, name, "") or "").strip():
                    fs._write(child, name, (fs.read(cur, name, "") or "").strip(), self._is_cgroupfs)
            cur = child

    # ------------------------------------------------------------ limits

    def _w(self, ctrl, name, value):
        fs._write(self.dirs[ctrl], name, value, self._is_cgroupfs)

    def apply(self, limits):
        """Write the set fields of ``limits``; memory and memsw in the order the kernel accepts (as runc)."""
        self.check(limits)
        if limits.memory is not None or limits.memory_swap is not None:
            self._apply_memory(limits.memory, limits.memory_swap)
        if limits.nano_cpus is not None:
            self._w("cpu", "cpu.cfs_period_us", 100000)
            self._w("cpu", "cpu.cfs_quota_us", limits.cpu_quota)
        if limits.cpu_shares is not None:
            self._w("cpu", "cpu.shares", limits.cpu_shares)
        if limits.pids_limit is not None:
            self._w("pids", "pids.max", "max" if limits.pids_limit < 0 else limits.pids_limit)
        if limits.memory_reservation is not None:
            self._w("memory", "memory.soft_limit_in_bytes", limits.memory_reservation)
        if limits.oom_kill_disable:
            self._w("memory", "memory.oom_control", 1)
        if limits.cpuset_cpus is not None:
            self._w("cpuset", "cpuset.cpus", limits.cpuset_cpus)
        if limits.cpuset_mems is not None:
            self._w("cpuset", "cpuset.mems", limits.cpuset_mems)
        self._apply_blkio(limits)

    def _apply_blkio(self, limits):
        """runc's v1 blkio: blkio.weight (or BFQ's blkio.bfq.weight) and its _device file, then one
        blkio.throttle.* line per device ("MAJ:MIN RATE", 0 = no limit). A kernel without a weight file (no CFQ/BFQ)
        ignores the weights, as docker discards them there."""
        from .limits import block_device

        if limits.blkio_weight is None and not limits.blkio_devices():
            return
        d = self.dirs["blkio"]
        bfq = os.path.exists(os.path.join(d, "blkio.bfq.weight"))
        weight = "blkio.bfq.weight" if bfq else "blkio.weight"
        has_weight = bfq or os.path.exists(os.path.join(d, weight))
        if limits.blkio_weight is not None and has_weight:
            self._w("blkio", weight, limits.blkio_weight)
        for field, entry in limits.blkio_devices():
            major, minor = block_device(entry["Path"], "--" + field.replace("_", "-"))
            if field == "blkio_weight_device":
                if has_weight and entry["Weight"]:
                    self._w("blkio", weight + "_device", "{}:{} {}".format(major, minor, entry["Weight"]))
            else:
                self._w("blkio", _THROTTLE[field], "{}:{} {}".format(major, minor, entry["Rate"]))

    def _apply_memory(self, memory, swap):
        """v1 demands memsw >= memory at every instant: raise memsw first when growing, last when shrinking."""
        memdir = self.dirs["memory"]
        has_swap = os.path.exists(os.path.join(memdir, "memory.memsw.limit_in_bytes"))
        if memory is not None and memory < 0 and swap is None:
            swap = UNLIMITED  # unlimited memory implies unlimited swap (runc)
        if not has_swap:
            swap = None  # no swap accounting (swapaccount=0): Docker limits memory without swap
        if memory is not None and swap is not None:
            current = fs.read_int(memdir, "memory.limit_in_bytes")
            if swap < 0 or current < swap:
                self._w("memory", "memory.memsw.limit_in_bytes", swap)
                self._w("memory", "memory.limit_in_bytes", memory)
            else:
                self._w("memory", "memory.limit_in_bytes", memory)
                self._w("memory", "memory.memsw.limit_in_bytes", swap)
        elif memory is not None:
            self._w("memory", "memory.limit_in_bytes", memory)
        elif swap is not None:
            self._w("memory", "memory.memsw.limit_in_bytes", swap)

    def apply_devices(self, rules):
        """The device policy (``devices.rules_for``): deny-all then one devices.allow line per rule (as runc's
        v1 devices controller); FailedPrecondition if the devices controller is not mounted (Docker refuses too).
        """
        if "devices" not in self.dirs:
            raise errors.FailedPrecondition("the cgroup v1 devices controller is not mounted: cannot confine "
                                            "the container's device access")
        for name, value in devices.v1_writes(rules):
            self._w("devices", name, value)

    # ------------------------------------------------------------ freezer

    def can_freeze(self):
        """True if the freezer controller is mounted."""
        return "freezer" in self.dirs

    def _state(self):
        return (fs.read(self.dirs["freezer"], "freezer.state", "") or "").strip()

    def is_frozen(self):
        """True if freezer.state is FROZEN or FREEZING."""
        return self.can_freeze() and self._state() in ("FROZEN", "FREEZING")

    def freeze(self, timeout=10.0):
        """Write FROZEN and wait for freezer.state to say FROZEN; re-write while FREEZING (as runc), thaw on
        timeout and raise Unavailable."""
        if not self.can_freeze():
            raise errors.FailedPrecondition("pause needs the cgroup v1 freezer controller, which is not mounted")
        deadline = time.monotonic() + timeout
        while True:
            self._w("freezer", "freezer.state", "FROZEN")
            if fs.poll(lambda: self._state() == "FROZEN", 0.1, 0.002):
                return
            if time.monotonic() >= deadline:
                self.thaw()
                raise errors.Unavailable("cgroup {} did not freeze within {:.0f}s".format(
                    self.dirs["freezer"], timeout))

    def thaw(self):
        """Write THAWED to freezer.state."""
        if not self.can_freeze():
            raise errors.FailedPrecondition("unpause needs the cgroup v1 freezer controller, which is not mounted")
        self._w("freezer", "freezer.state", "THAWED")

    # ------------------------------------------------------------ observation

    def stats(self):
        """docker-stats numbers from cpuacct, memory, pids and blkio (None for an absent controller)."""
        d = self.dirs
        out = {"cpu_usage_ns": None, "memory_usage": None, "memory_limit": None, "pids_current": None,
               "blkio_read": None, "blkio_write": None}
        if "cpuacct" in d:
            out["cpu_usage_ns"] = fs.read_int(d["cpuacct"], "cpuacct.usage")
        if "memory" in d:
            usage = fs.read_int(d["memory"], "memory.usage_in_bytes")
            if usage is not None:
                inactive = fs.read_keyed(d["memory"], "memory.stat").get("total_inactive_file", 0)
                out["memory_usage"] = usage - inactive if inactive < usage else usage
            limit = fs.read_int(d["memory"], "memory.limit_in_bytes")
            if limit is not None:
                host = host_memory()
                out["memory_limit"] = host if limit < 0 or limit > host else limit
        if "pids" in d:
            out["pids_current"] = fs.read_int(d["pids"], "pids.current")
        if "blkio" in d:
            out["blkio_read"], out["blkio_write"] = _blkio(d["blkio"])
        return out

    def oom_killed(self):
        """memory.oom_control's ``oom_kill`` counter > 0 (Linux >= 4.13). Older kernels lack it: then the
        heuristic ``under_oom`` or (memory.failcnt > 0 and max usage reached the limit) is used, which can
        report a cgroup that merely hit its limit and reclaimed."""
        if "memory" not in self.dirs:
            return False
        d = self.dirs["memory"]
        ctl = fs.read_keyed(d, "memory.oom_control")
        if "oom_kill" in ctl:
            return ctl["oom_kill"] > 0
        if ctl.get("under_oom"):
            return True
        failcnt = fs.read_int(d, "memory.failcnt") or 0
        peak, limit = fs.read_int(d, "memory.max_usage_in_bytes"), fs.read_int(d, "memory.limit_in_bytes")
        return failcnt > 0 and peak is not None and limit is not None and 0 <= limit <= peak


def _blkio(directory):
    """(read, write) bytes summed over devices, from the first io_service_bytes file the kernel offers."""
    for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive",
                 "blkio.throttle.io_service_bytes"):
        text = fs.read(directory, name, None)
        if text is None:
            continue
        read = write = 0
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                if parts[1] == "Read":
                    read += int(parts[2])
                else:
                    write += int(parts[2])
        return read, write
    return None, None
