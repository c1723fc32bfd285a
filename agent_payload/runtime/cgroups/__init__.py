"""cgroup manager for containers: hierarchy detection, the Manager protocol, the public API (checked I/O: fs.py).

Public API (everything a caller needs; v1 and v2 behave the same behind it)::

    from agent_payload.runtime import cgroups
    from agent_payload.runtime.cgroups import limits

    lim = limits.parse(memory="32m", memory_swap=None, cpus="0.5", cpu_shares=None, pids_limit=10).with_defaults()
    mgr = cgroups.create(container_id, lim)   # mkdir fleet/<id> (every controller), apply limits
    mgr.apply_devices(devices.rules_for(privileged))  # Docker's device policy (v1 files / v2 eBPF), before add
    mgr.add(pid)                              # move a process (and its future children) in
    mgr.apply(lim.updated(limits.parse(memory="64m", update=True)))  # live update
    mgr.freeze(); mgr.thaw()                  # pause / unpause; waits for FROZEN
    mgr.stats()                               # {cpu_usage_ns, memory_usage, memory_limit, pids_current,
                                              #  blkio_read, blkio_write}; None where a controller is absent
    mgr.oom_killed(); mgr.pids(); mgr.kill_all(signal.SIGKILL)
    mgr.destroy()                             # kill leftovers, rmdir; idempotent
    mgr = cgroups.attach(container_id)        # any later payload process: state derives from the id alone

Intended call sites (wired by the runtime, not here):
  * ``create``/``start``: validate with ``limits.parse(...).with_defaults()`` before anything changes and store
    ``Limits.to_dict()`` in config.json; in the shim, ``cgroups.create(id, limits)`` then ``mgr.add(init_pid)``
    before the init is released to exec (so the container never runs unconfined), or, where ``places_self``
    (v1: no RCU grace period), the init's own ``mgr.add_self()`` as its first step; destroy on start failure.
  * shim, after reaping the init: ``oom = mgr.oom_killed()`` (for inspect's State.OOMKilled) *then*
    ``mgr.destroy()``; ``rm -f``/``reconcile`` of a dead shim: ``cgroups.attach(id)`` (NotFound = nothing left)
    then ``destroy()``.
  * ``update``: ``Limits.from_dict(config).updated(limits.parse(update=True, **flags))`` (raises before any
    change; persist the result), then
    ``attach(id).apply(...)`` for a running container; ``stats``: ``attach(id).stats()`` and
    ``system_cpu_usage_ns()`` twice for Docker's CPU %; ``pause``/``unpause``: ``attach(id).freeze()/thaw()``;
    ``exec``: ``attach(id).add(pid)``.

Layout: v1 (and hybrid hosts: v1 controllers plus a cgroup2 mount, used for resource control as runc does)
``<mount of each controller>/fleet/<id>`` for memory, cpu, cpuacct, pids, freezer, blkio (absent ones skipped);
v2 ``<cgroup2 mount>/fleet/<id>``, or where systemd runs ``fleet.slice/fleet-<id>.scope/container``: the shim
first asks systemd for that scope (``scope.place_shim``: Delegate=yes, CPU/IO/Memory/Tasks accounting, so systemd
enables those controllers down to it) and moves itself to ``<scope>/supervisor``; we never write the root's
cgroup.subtree_control (systemd owns it). On v1/hybrid systemd hosts the scope holds the shim only.
``$FLEET_CGROUP_PARENT`` (a relative path) overrides the parent (then ``<parent>/<id>``, no scope layout).
Only leaves hold processes (v2's no-internal-process rule). The shared parent is left in place unless this very
Manager created it (``destroy`` then tries to remove it, which fails harmlessly while other containers use it).
"""

import os

from ... import errors
from .base import (CONTROLLERS_V1, CONTROLLERS_V2, DEFAULT_PARENT, ID_RE, KNOWN_V1, MOUNTINFO,  # noqa: F401
                   PARENT_ENV, SYSTEMD_DIR, SYSTEMD_PARENT, VERSION_ENV, Hierarchy, Manager, Mount,
                   check_container_id, detect, host_memory, parse_mountinfo, resolve_parent, system_cpu_usage_ns)


def manager_class(hierarchy):
    """V2Manager on pure v2 hosts, V1Manager on v1 and hybrid ones (runc's choice; ``$FLEET_CGROUP_VERSION=2``
    picks the cgroup2 mount of a hybrid host, limited to the controllers it offers); FailedPrecondition if none."""
    if hierarchy.mode == "v2" or (hierarchy.mode == "hybrid" and os.environ.get(VERSION_ENV) == "2"):
        from .v2 import V2Manager  # only the host's manager is imported
        return V2Manager
    if hierarchy.mode in ("v1", "hybrid"):
        from .v1 import V1Manager
        return V1Manager
    raise errors.FailedPrecondition("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")


def create(container_id, limits=None, hierarchy=None, parent=None):
    """Create the container's cgroup(s) on this host and apply ``limits``; returns the Manager."""
    hierarchy = hierarchy or detect()
    return manager_class(hierarchy).create(container_id, limits, hierarchy=hierarchy, parent=parent)


def attach(container_id, hierarchy=None, parent=None):
    """The Manager of an existing container cgroup (NotFound if there is none)."""
    hierarchy = hierarchy or detect()
    return manager_class(hierarchy).attach(container_id, hierarchy=hierarchy, parent=parent)


def without_unsupported_weights(limits, hierarchy=None):
    """``limits`` without --blkio-weight/--blkio-weight-device where the host cannot weigh block IO (cgroup v1
    without CFQ's blkio.weight or BFQ's blkio.bfq.weight): docker warns "Weight discarded" and drops them too."""
    if limits.blkio_weight is None and not limits.blkio_weight_device:
        return limits
    hierarchy = hierarchy or detect()
    mount = hierarchy.v1.get("blkio") if hierarchy.mode != "v2" else None
    if mount is None or any(os.path.exists(os.path.join(mount.mount_point, name))
                            for name in ("blkio.weight", "blkio.bfq.weight")):
        return limits
    return limits.replace(blkio_weight=None, blkio_weight_device=None)
