"""The shim's own systemd scope: where systemd is PID 1, every shim leaves its caller's cgroup.

A shim is forked from whatever started the container: a payload command over SSH (in ``ssh.service`` or a
login's ``session-N.scope``, which logind kills at logout with ``KillUserProcesses=yes``) or the boot unit
(``fleet-boot.service``, whose end kills what is left in its cgroup).  So first thing, the shim asks systemd
(D-Bus on its private socket, linux/sdbus.py) for a transient scope of its own, as runc's systemd driver does
for a container::

    StartTransientUnit("fleet-<id>.scope", "fail",
                       [Description, Slice=fleet.slice, PIDs=[shim], Delegate=yes, CPUAccounting=yes,
                        MemoryAccounting=yes, IOAccounting=yes, TasksAccounting=yes,
                        CollectMode=inactive-or-failed, TimeoutStopUSec=10s], [])

and waits (with a deadline) until the job is done and the shim's /proc/self/cgroup shows the scope.  The
accounting settings make systemd enable the cpu, io, memory and pids controllers from the root down to the
scope (a minimal host may have enabled only memory and pids), and Delegate=yes hands the scope's subtree to us.
On cgroup v2 the shim then moves to ``<scope>/supervisor`` and the container gets ``<scope>/container``
(v2.V2Manager.enter_scope); on v1 and hybrid hosts the container's cgroups stay where they were
(``<controller>/fleet/<id>``) and the scope only holds the shim.  When the shim exits the scope is empty and
systemd removes it; at shutdown systemd stops it (SIGTERM, SIGKILL after TimeoutStopUSec, docker's stop grace).

A unit of the same name left by a dead shim (its container's processes kept it alive) is stopped and the start
retried once; a property an older systemd does not know (CollectMode, ...) is left out and the start retried.
Any failure to place the shim fails the container's start with a message naming the scope.
"""

import os
import time

from ... import errors
from ...linux import sdbus
from .base import SYSTEMD_PARENT, detect, scope_name

PLACE_TIMEOUT = 60.0  # a TCG-emulated guest takes seconds for what takes milliseconds elsewhere
STOP_TIMEOUT_USEC = 10 * 1000 * 1000  # docker stop's default grace before SIGKILL
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
PROPERTY_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"  # also systemd's answer to an unknown property
# what an older systemd may not know (CollectMode: v236, IOAccounting: v230): the scope does without them there
OPTIONAL = ("CollectMode", "TimeoutStopUSec", "IOAccounting", "TasksAccounting")


def scope_properties(container_id, pid):
    """The a(sv) properties of the shim's transient scope."""
    return [("Description", ("s", "fleet container {}".format(container_id))),
            ("Slice", ("s", SYSTEMD_PARENT)),
            ("PIDs", ("au", [pid])),
            ("Delegate", ("b", True)),
            ("CPUAccounting", ("b", True)),
            ("MemoryAccounting", ("b", True)),
            ("IOAccounting", ("b", True)),
            ("TasksAccounting", ("b", True)),
            ("CollectMode", ("s", "inactive-or-failed")),
            ("TimeoutStopUSec", ("t", STOP_TIMEOUT_USEC))]


def in_scope(pid, name):
    """True if ``/proc/<pid>/cgroup`` puts the process in (or below) the unit ``name``."""
    try:
        with open("/proc/{}/cgroup".format(pid)) as f:
            text = f.read()
    except OSError:
        return False
    return any(name in line.split(":", 2)[-1].strip().split("/") for line in text.splitlines())


def place_shim(container_id, hierarchy=None, pid=None, connect=None, timeout=PLACE_TIMEOUT):
    """Put the shim ``pid`` (default: this process) in ``fleet-<id>.scope`` where systemd is PID 1, and lay out
    the scope for the container's cgroup; returns the scope's name, or None on a host without systemd.

    ``connect()`` returns an sdbus.Systemd-like object (tests inject one).  Raises FailedPrecondition naming
    the scope if systemd refuses or does not finish in ``timeout`` seconds.
    """
    from . import manager_class
    hierarchy = hierarchy or detect()
    if not hierarchy.systemd:
        return None
    pid = os.getpid() if pid is None else pid
    name = scope_name(container_id)
    deadline = time.monotonic() + timeout
    try:
        with (connect or sdbus.Systemd)() as systemd:
            _start_scope(systemd, container_id, name, pid, deadline, timeout)
    except sdbus.DBusError as exc:
        raise errors.FailedPrecondition("cannot move the shim of container {} to its systemd scope {}: {}".format(
            container_id, name, exc))
    except OSError as exc:
        raise errors.FailedPrecondition("cannot move the shim of container {} to its systemd scope {}: systemd's "
                                        "D-Bus socket {}: {}".format(container_id, name, sdbus.SYSTEMD_PRIVATE,
                                                                     exc.strerror or exc), errno=exc.errno)
    manager_class(hierarchy)(container_id, hierarchy).enter_scope(pid)
    return name


def _start_scope(systemd, container_id, name, pid, deadline, timeout):
    systemd.subscribe()
    props = scope_properties(container_id, pid)
    stale_removed = False
    while True:
        try:
            job = systemd.start_transient_unit(name, props)
            break
        except sdbus.DBusError as exc:
            if exc.name == UNIT_EXISTS and not stale_removed:
                remove_stale(systemd, name, deadline)  # a dead shim's scope (its container's processes kept it)
                stale_removed = True
                continue
            unknown = _unknown_optional(exc, props)
            if unknown is None:
                raise
            props = [p for p in props if p[0] != unknown]  # an older systemd: do without it
    result = systemd.wait_job(job, deadline, done=lambda: in_scope(pid, name))
    if result is None:
        raise sdbus.DBusError(None, "systemd did not start the scope within {:.0f}s".format(timeout))
    if result != "done":
        raise sdbus.DBusError(None, "systemd's job to start it ended with '{}'".format(result))
    while not in_scope(pid, name):  # "done" came first: the move is visible a moment later at the latest
        if time.monotonic() >= deadline:
            raise sdbus.DBusError(None, "systemd started the scope but process {} is not in it".format(pid))
        time.sleep(0.01)


def _unknown_optional(exc, props):
    """The optional property an older systemd refused ("Cannot set property X, or unknown property."), or None."""
    if exc.name != PROPERTY_READ_ONLY:
        return None
    for prop, _ in props:
        if prop in OPTIONAL and "property {},".format(prop) in (exc.message or ""):
            return prop
    return None


def remove_stale(systemd, name, deadline):
    """Stop the unit ``name`` (killing what is left in it) and wait until systemd has forgotten it."""
    try:
        job = systemd.stop_unit(name)
        systemd.wait_job(job, deadline)
    except sdbus.DBusError as exc:
        if exc.name != NO_SUCH_UNIT:
            raise
    while True:
        try:
            systemd.reset_failed_unit(name)
        except sdbus.DBusError:
            pass  # not failed, or already gone
        try:
            systemd.get_unit(name)
        except sdbus.DBusError as exc:
            if exc.name == NO_SUCH_UNIT:
                return
            raise
        if time.monotonic() >= deadline:
            raise sdbus.DBusError(None, "a stale unit {} is still loaded after being stopped".format(name))
        time.sleep(0.05)
