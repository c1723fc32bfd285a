"""cgroup v2 manager: one leaf ``<cgroup2 mount>/<parent>/<id>`` in a subtree whose controllers we enable top-down;
where systemd runs, ``fleet.slice/fleet-<id>.scope/container`` in the shim's delegated scope."""

import errno
import os

from ... import errors
from . import devices, fs
from .base import (CONTAINER_LEAF, CONTROLLERS_V2, DEFAULT_PARENT, PARENT_ENV, SUPERVISOR_LEAF, SYSTEMD_PARENT,
                   Manager, check_container_id, detect, host_memory, scope_name)

_NEEDS = (("memory", "--memory", "memory"), ("memory_swap", "--memory-swap", "memory"),
          ("nano_cpus", "--cpus", "cpu"), ("cpu_shares", "--cpu-shares", "cpu"), ("pids_limit", "--pids-limit", "pids"),
          ("memory_reservation", "--memory-reservation", "memory"), ("cpuset_cpus", "--cpuset-cpus", "cpuset"),
          ("cpuset_mems", "--cpuset-mems", "cpuset"), ("blkio_weight", "--blkio-weight", "io"),
          ("blkio_weight_device", "--blkio-weight-device", "io"), ("device_read_bps", "--device-read-bps", "io"),
          ("device_write_bps", "--device-write-bps", "io"), ("device_read_iops", "--device-read-iops", "io"),
          ("device_write_iops", "--device-write-iops", "io"))
_IO_MAX = {"device_read_bps": "rbps", "device_write_bps": "wbps", "device_read_iops": "riops",
           "device_write_iops": "wiops"}


class V2Manager(Manager):
    """A container's cgroup on the unified hierarchy.

    Where systemd runs, it owns the root: the shim asked it for ``fleet-<id>.scope`` in ``fleet.slice`` with
    Delegate=yes and CPU/IO/Memory/Tasks accounting (scope.py), so systemd enabled those controllers down to
    the scope and hands the scope's subtree to us; the container is ``<scope>/container``, the shim
    ``<scope>/supervisor``, and systemd's daemon-reload never rewrites what we write below the scope. With
    ``$FLEET_CGROUP_PARENT`` on a systemd host we only use what systemd enabled in the root. Without systemd we
    own the tree and enable the controllers we need from the root down. Processes only ever go into leaves
    (no-internal-process rule).
    """

    version = 2

    def __init__(self, container_id, hierarchy, parent=None):
        # where systemd runs (and no parent was asked for) the container lives in the shim's delegated scope:
        # <mount>/fleet.slice/fleet-<id>.scope/container, the shim in .../supervisor (scope.py)
        self.scope = None
        if hierarchy.systemd and parent is None and not os.environ.get(PARENT_ENV):
            parent = "{}/{}".format(SYSTEMD_PARENT, scope_name(check_container_id(container_id)))
        super().__init__(container_id, hierarchy, parent)
        if hierarchy.v2 is None:
            raise errors.FailedPrecondition("no cgroup2 hierarchy is mounted")
        self.mount = hierarchy.v2.mount_point
        self.own_root = not hierarchy.systemd
        if hierarchy.systemd and self.parent == "{}/{}".format(SYSTEMD_PARENT, scope_name(self.id)):
            self.scope = os.path.join(self.mount, self.parent)
            self.path = os.path.join(self.scope, CONTAINER_LEAF)
        else:
            self.path = os.path.join(self.mount, self.parent, self.id)

    @classmethod
    def _default_parent(cls, hierarchy):
        return SYSTEMD_PARENT if hierarchy.systemd else DEFAULT_PARENT

    @classmethod
    def attach(cls, container_id, hierarchy=None, parent=None):
        """As Manager.attach; a container started before shims had scopes is found in ``fleet.slice/<id>``."""
        hierarchy = hierarchy or detect()
        try:
            return super().attach(container_id, hierarchy, parent)
        except errors.NotFound:
            if parent is not None or not hierarchy.systemd or os.environ.get(PARENT_ENV):
                raise
            return super().attach(container_id, hierarchy, SYSTEMD_PARENT)

    def paths(self):
        """The one leaf dir."""
        return [self.path]

    def _controllers(self, directory, name="cgroup.controllers"):
        return set((fs.read(directory, name, "") or "").split())

    def available(self):
        """Controllers the leaf has (or, before it exists, the ones our subtree can get: the scope's, which
        systemd delegates; without a scope yet, the kernel's, which the scope's accounting will ask for)."""
        if os.path.isdir(self.path):
            return self._controllers(self.path)
        if self.scope is not None and os.path.isdir(self.scope):
            return self._controllers(self.scope)
        if self.own_root or self.scope is not None:
            return self._controllers(self.mount)
        return self._controllers(self.mount, "cgroup.subtree_control")

    def check(self, limits):
        """FailedPrecondition naming the flag if a set limit's controller is not available to our subtree: the
        kernel lacks it, or (a scope) systemd did not delegate it, or (``$FLEET_CGROUP_PARENT`` on a systemd
        host) systemd has not enabled it in the root."""
        have = None
        for field, flag, ctrl in _NEEDS:
            if getattr(limits, field) is None:
                continue
            have = self.available() if have is None else have
            if ctrl in have:
                continue
            if ctrl not in self._controllers(self.mount):
                where = "this kernel does not offer (not in {}/cgroup.controllers)".format(self.mount)
            elif self.scope is not None:
                where = "systemd did not delegate to {}".format(self.scope)
            elif self.own_root:
                where = "is not available under {}".format(self.mount)
            else:
                where = ("is not available under {} (systemd owns the root: enable it there, e.g. with a unit "
                         "using {}Accounting=yes)".format(self.mount, ctrl.capitalize()))
            raise errors.FailedPrecondition("{} needs the cgroup v2 {} controller, which {}".format(flag, ctrl, where))

    def enter_scope(self, pid):
        """The shim's side of the delegation: move ``pid`` (the shim, which systemd put in the scope) to
        ``<scope>/supervisor`` and enable the scope's controllers for its children, so ``<scope>/container`` can
        have them (a cgroup with processes cannot: the no-internal-process rule)."""
        if self.scope is None:
            return
        fs.mkdir(self.scope, SUPERVISOR_LEAF, self._is_cgroupfs)
        fs._write(os.path.join(self.scope, SUPERVISOR_LEAF), "cgroup.procs", pid, self._is_cgroupfs)
        self._enable(self.scope, [c for c in CONTROLLERS_V2 if c in self._controllers(self.scope)])

    def _enable(self, directory, wanted):
        """Enable ``wanted`` controllers for ``directory``'s children (all at once, else one by one)."""
        missing = [c for c in wanted if c not in self._controllers(directory, "cgroup.subtree_control")]
        if not missing:
            return
        try:
            fs._write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing), self._is_cgroupfs)
            return
        except errors.FailedPrecondition as exc:
            if exc.errno == errno.EBUSY:
                raise errors.FailedPrecondition(
                    "cannot enable controllers in {}: it holds processes (cgroup v2 no-internal-process rule); "
                    "set $FLEET_CGROUP_PARENT to a cgroup without processes".format(directory), errno=exc.errno)
        except errors.InvalidArgument:
            pass
        for c in missing:  # one was refused (e.g. threaded-only): keep the others; check() reports what is missing
            try:
                fs._write(directory, "cgroup.subtree_control", "+" + c, self._is_cgroupfs)
            except errors.AgentError:
                pass

    def _make(self):
        wanted = [c for c in CONTROLLERS_V2 if c in self.available()]
        if self.scope is not None:  # systemd made it (and removes it when the shim is gone): only our leaf
            if not os.path.isdir(self.scope):
                raise errors.FailedPrecondition("cgroup: the systemd scope {} of container {} does not exist (its "
                                                "shim creates it)".format(self.scope, self.id))
            self._enable(self.scope, wanted)
            fs.mkdir(self.scope, CONTAINER_LEAF, self._is_cgroupfs)
            return
        if self.own_root:
            self._enable(self.mount, wanted)
        for attempt in range(3):
            try:
                cur = self.mount
                for part in self.parent.split("/"):
                    if fs.mkdir(cur, part, self._is_cgroupfs):
                        self._created_parents.append(os.path.join(cur, part))
                    cur = os.path.join(cur, part)
                    have = self._controllers(cur)
                    self._enable(cur, [c for c in wanted if c in have])
                fs.mkdir(cur, self.id, self._is_cgroupfs)
                return
            except errors.FailedPrecondition as exc:
                # a concurrent destroy() removed the shared parent between our mkdirs: redo
                if exc.errno != errno.ENOENT or attempt == 2:
                    raise

    # ------------------------------------------------------------ limits

    def _w(self, name, value):
        fs._write(self.path, name, value, self._is_cgroupfs)

    def apply(self, limits):
        """Write the set fields of ``limits`` (memory.max, memory.swap.max, cpu.max, cpu.weight, pids.max)."""
        self.check(limits)
        memory, swap = limits.memory, limits.memory_swap
        if memory is not None:
            self._w("memory.max", "max" if memory < 0 else memory)
        if swap is not None or (memory is not None and memory < 0):
            if os.path.exists(os.path.join(self.path, "memory.swap.max")):
                self._w("memory.swap.max", self._swap_max(memory, swap))
        if limits.nano_cpus is not None:
            quota = limits.cpu_quota
            self._w("cpu.max", "{} {}".format("max" if quota < 0 else quota, 100000))
        if limits.cpu_shares is not None:
            self._w("cpu.weight", limits.cpu_weight)
        if limits.pids_limit is not None:
            self._w("pids.max", "max" if limits.pids_limit < 0 else limits.pids_limit)
        if limits.memory_reservation is not None:
            self._w("memory.low", limits.memory_reservation)  # runc's MemoryReservation on v2
        if limits.cpuset_cpus is not None:
            self._w("cpuset.cpus", limits.cpuset_cpus)
        if limits.cpuset_mems is not None:
            self._w("cpuset.mems", limits.cpuset_mems)
        # --oom-kill-disable: v2 has no such switch; docker warns and discards it (Limits.for_host)
        self._apply_io(limits)

    def _apply_io(self, limits):
        """runc's v2 io: the weight in io.bfq.weight where BFQ runs (per-device weights only there), else
        converted into io.weight; one io.max line per throttled device ("MAJ:MIN rbps=RATE", 0 = "max")."""
        from .limits import block_device

        if limits.blkio_weight is None and not limits.blkio_devices():
            return
        bfq = os.path.exists(os.path.join(self.path, "io.bfq.weight"))
        if limits.blkio_weight is not None:
            if bfq:
                self._w("io.bfq.weight", limits.blkio_weight)
            elif os.path.exists(os.path.join(self.path, "io.weight")):
                self._w("io.weight", blkio_to_io_weight(limits.blkio_weight))
        for field, entry in limits.blkio_devices():
            major, minor = block_device(entry["Path"], "--" + field.replace("_", "-"))
            if field == "blkio_weight_device":
                if bfq and entry["Weight"]:
                    self._w("io.bfq.weight", "{}:{} {}".format(major, minor, entry["Weight"]))
            else:
                self._w("io.max", "{}:{} {}={}".format(major, minor, _IO_MAX[field], entry["Rate"] or "max"))

    def _swap_max(self, memory, swap):
        """Docker's memory+swap total -> v2's swap-only limit (runc ConvertMemorySwapToCgroupV2Value)."""
        if swap is None or swap < 0:
            return "max"
        if memory is None:
            memory = fs.read_int(self.path, "memory.max")
        if memory is None or memory < 0:
            raise errors.InvalidArgument("--memory-swap {} needs a memory limit".format(swap))
        if swap < memory:
            raise errors.InvalidArgument("--memory-swap {} is below the memory limit {}".format(swap, memory))
        return swap - memory

    def apply_devices(self, rules):
        """The device policy as an eBPF program attached to the leaf (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI as
        runc, so a parent's program still applies too); programs attached before are detached after the new one
        is in place. Allow-all (``--privileged``) attaches nothing. The kernel frees the program together with
        the cgroup, so ``destroy`` needs no extra step. Returns the new program's ID (None for allow-all).
        """
        from ...linux import bpf

        dfd = fs.open_dir(self.path, self._is_cgroupfs)
        try:
            old = bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE)
            new_id = None
            if not devices.allows_all(rules):
                pfd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, devices.program(rules),
                                    expected_attach_type=bpf.BPF_CGROUP_DEVICE)
                try:
                    bpf.prog_attach(dfd, pfd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
                    new_id = bpf.prog_id(pfd)
                finally:
                    os.close(pfd)
            for prog in old:
                try:
                    pfd = bpf.prog_fd_by_id(prog)
                except FileNotFoundError:
                    continue
                try:
                    bpf.prog_detach(dfd, pfd, bpf.BPF_CGROUP_DEVICE)
                finally:
                    os.close(pfd)
            return new_id
        except OSError as exc:
            raise errors.FailedPrecondition("cgroup {}: cannot set the device policy (eBPF): {}".format(
                self.path, exc.strerror or exc), errno=exc.errno)
        finally:
            os.close(dfd)

    # ------------------------------------------------------------ freezer

    def can_freeze(self):
        """True if the leaf has cgroup.freeze (Linux >= 5.2)."""
        return os.path.exists(os.path.join(self.path, "cgroup.freeze"))

    def is_frozen(self):
        """True if freezing was requested (cgroup.freeze is 1)."""
        return (fs.read(self.path, "cgroup.freeze", "0") or "0").strip() == "1"

    def _events(self):
        return fs.read_keyed(self.path, "cgroup.events")

    def freeze(self, timeout=10.0):
        """Write 1 to cgroup.freeze and wait for cgroup.events ``frozen 1``; thaw and raise on timeout."""
        if not self.can_freeze():
            raise errors.FailedPrecondition("pause needs cgroup.freeze in {} (Linux >= 5.2)".format(self.path))
        self._w("cgroup.freeze", "1")
        if not fs.poll(lambda: self._events().get("frozen") == 1, timeout, 0.002):
            self.thaw()
            raise errors.Unavailable("cgroup {} did not freeze within {:.0f}s".format(self.path, timeout))

    def thaw(self):
        """Write 0 to cgroup.freeze and wait (briefly) for ``frozen 0``."""
        if not self.can_freeze():
            raise errors.FailedPrecondition("unpause needs cgroup.freeze in {} (Linux >= 5.2)".format(self.path))
        self._w("cgroup.freeze", "0")
        fs.poll(lambda: self._events().get("frozen") == 0, 1.0, 0.002)

    def _cgroup_kill(self):
        if not os.path.exists(os.path.join(self.path, "cgroup.kill")):
            return False
        self._w("cgroup.kill", "1")
        fs.poll(lambda: not self.pids(), 2.0, 0.005)
        return True

    # ------------------------------------------------------------ observation

    def stats(self):
        """docker-stats numbers from cpu.stat, memory.*, pids.current and io.stat (None where absent)."""
        out = {"cpu_usage_ns": None, "memory_usage": None, "memory_limit": None, "pids_current": None,
               "blkio_read": None, "blkio_write": None}
        usec = fs.read_keyed(self.path, "cpu.stat").get("usage_usec")
        out["cpu_usage_ns"] = None if usec is None else usec * 1000
        usage = fs.read_int(self.path, "memory.current")
        if usage is not None:
            inactive = fs.read_keyed(self.path, "memory.stat").get("inactive_file", 0)
            out["memory_usage"] = usage - inactive if inactive < usage else usage
            limit = fs.read_int(self.path, "memory.max")
            host = host_memory()
            out["memory_limit"] = host if limit is None or limit < 0 or limit > host else limit
        out["pids_current"] = fs.read_int(self.path, "pids.current")
        text = fs.read(self.path, "io.stat", None)
        if text is not None:
            read = write = 0
            for line in text.splitlines():
                for kv in line.split()[1:]:
                    key, _, value = kv.partition("=")
                    if key == "rbytes":
                        read += int(value)
                    elif key == "wbytes":
                        write += int(value)
            out["blkio_read"], out["blkio_write"] = read, write
        return out

    def oom_killed(self):
        """memory.events ``oom_kill`` > 0 (counts this cgroup and its descendants); False without the memory
        controller, which then imposed no limit to be killed for."""
        return fs.read_keyed(self.path, "memory.events").get("oom_kill", 0) > 0


def blkio_to_io_weight(weight):
    """runc's ConvertBlkIOToIOWeightValue: blkio weight [10..1000] -> io.weight [1..10000]."""
    return 1 + (weight - 10) * 9999 // 990
