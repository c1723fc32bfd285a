"""cgroups on systemd hosts: the shim's own scope (cgroups/scope.py, systemd faked) and the v2 layout inside it
(<scope>/supervisor, <scope>/container), on a fake cgroup tree (tests/helpers/cgroupfs.py)."""

import os

import pytest

from agent_payload import errors
from agent_payload.linux import sdbus
from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import limits, scope
from tests.helpers.cgroupfs import FakeKernel

SCOPE = "fleet.slice/fleet-c.scope"


def _read(path):
    with open(path) as f:
        return f.read().strip()


class FakeSystemd:
    """What the shim asks of systemd: StartTransientUnit makes the slice and scope dirs (with the controllers the
    accounting settings enable) and moves the PIDs in, as systemd does."""

    def __init__(self, kernel, top, controllers="cpu io memory pids", exists=False, result="done"):
        self.kernel, self.top, self.controllers = kernel, top, controllers
        self.exists, self.result = exists, result
        self.calls = []

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def subscribe(self):
        self.calls.append(("subscribe",))

    def start_transient_unit(self, name, props, mode="fail"):
        self.calls.append(("start", name, mode, props))
        if self.exists:
            raise sdbus.DBusError(scope.UNIT_EXISTS, "Unit {} already exists.".format(name))
        slice_dir = os.path.join(self.top, "fleet.slice")
        for d in (slice_dir, os.path.join(slice_dir, name)):
            if not os.path.isdir(d):
                os.mkdir(d)
                for f, text in {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0",
                                "cgroup.controllers": self.controllers}.items():
                    with open(os.path.join(d, f), "w") as fh:
                        fh.write(text)
        with open(os.path.join(slice_dir, "cgroup.subtree_control"), "w") as fh:
            fh.write(self.controllers)
        if self.result == "done":
            with open(os.path.join(slice_dir, name, "cgroup.procs"), "w") as fh:
                fh.write(str(dict(props)["PIDs"][1][0]))
        return "/org/freedesktop/systemd1/job/1"

    def wait_job(self, job, deadline, done=None):
        return self.result

    def stop_unit(self, name, mode="replace"):
        self.calls.append(("stop", name))
        self.exists = False
        return "/org/freedesktop/systemd1/job/0"

    def reset_failed_unit(self, name):
        self.calls.append(("reset-failed", name))

    def get_unit(self, name):
        raise sdbus.DBusError(scope.NO_SUCH_UNIT, "Unit {} not loaded.".format(name))


@pytest.fixture
def fake_in_scope(monkeypatch, tmp_path):
    """scope.in_scope reads the fake tree's cgroup.procs instead of /proc/<pid>/cgroup."""
    def in_scope(pid, name):
        for d, _, files in os.walk(str(tmp_path)):
            if name in d.split("/") and "cgroup.procs" in files and str(pid) in _read(os.path.join(d, "cgroup.procs")):
                return True
        return False
    monkeypatch.setattr(scope, "in_scope", in_scope)


def test_v2_shim_scope_supervisor_and_container_layout(tmp_path, monkeypatch, sleeper, fake_in_scope):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "io", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    open(top + "/cgroup.subtree_control", "w").write("memory pids")  # a minimal host: nobody asked for cpu
    h = k.hierarchy(systemd=True)
    shim = sleeper()
    systemd = FakeSystemd(k, top)
    assert scope.place_shim("c", hierarchy=h, pid=shim.pid, connect=systemd) == "fleet-c.scope"
    assert systemd.calls[0] == ("subscribe",)
    _, name, mode, props = systemd.calls[1]
    assert (name, mode) == ("fleet-c.scope", "fail")
    assert dict(props) == {"Description": ("s", "fleet container c"), "Slice": ("s", "fleet.slice"),
                           "PIDs": ("au", [shim.pid]), "Delegate": ("b", True), "CPUAccounting": ("b", True),
                           "MemoryAccounting": ("b", True), "IOAccounting": ("b", True),
                           "TasksAccounting": ("b", True), "CollectMode": ("s", "inactive-or-failed"),
                           "TimeoutStopUSec": ("t", 10000000)}
    # the shim left the scope's own cgroup for <scope>/supervisor, so the scope can hand controllers down
    assert _read(os.path.join(top, SCOPE, "supervisor", "cgroup.procs")) == str(shim.pid)
    assert _read(os.path.join(top, SCOPE, "cgroup.procs")) == ""
    assert _read(os.path.join(top, SCOPE, "cgroup.subtree_control")) == "cpu io memory pids"

    lim = limits.parse(cpus="0.5", cpu_shares=1024, memory="32m", ncpu=2).with_defaults()
    mgr = cgroups.create("c", lim, hierarchy=h)  # --cpus works: systemd enabled cpu for fleet.slice
    leaf = os.path.join(top, SCOPE, "container")
    assert mgr.paths() == [leaf] and _read(leaf + "/cpu.max") == "50000 100000"
    assert not any(w[0] in (top, os.path.join(top, "fleet.slice")) for w in k.writes)  # systemd's, not ours
    assert cgroups.attach("c", hierarchy=h).paths() == [leaf]  # from the id alone
    p = sleeper()
    mgr.add(p.pid)
    mgr.destroy()
    assert not os.path.exists(leaf) and os.path.isdir(os.path.join(top, SCOPE))  # the scope is systemd's to remove
    with pytest.raises(errors.NotFound):
        cgroups.attach("c", hierarchy=h)


def test_v2_refuses_only_what_the_kernel_lacks(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["memory", "pids"])
    h = k.hierarchy(systemd=True)
    with pytest.raises(errors.FailedPrecondition, match=r"--cpus needs the cgroup v2 cpu controller, which this "
                       r"kernel does not offer \(not in .*/unified/cgroup.controllers\)"):
        cgroups.create("c", limits.parse(cpus="1", ncpu=2), hierarchy=h)
    assert k.writes == []


def test_v2_refuses_what_systemd_did_not_delegate(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    h = k.hierarchy(systemd=True)
    cgroups.manager_class(h)("c", h).check(limits.parse(cpus="1", ncpu=2))  # before the scope: the kernel has it
    FakeSystemd(k, top, controllers="memory pids").start_transient_unit("fleet-c.scope", [("PIDs", ("au", [1]))])
    with pytest.raises(errors.FailedPrecondition, match="cpu controller, which systemd did not delegate to "
                       ".*fleet.slice/fleet-c.scope"):
        cgroups.create("c", limits.parse(cpus="1", ncpu=2), hierarchy=h)


def test_v2_container_without_its_scope_is_refused_and_old_layout_still_attached(tmp_path, monkeypatch):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    h = k.hierarchy(systemd=True)
    with pytest.raises(errors.FailedPrecondition, match="systemd scope .*fleet-c.scope of container c does not"):
        cgroups.create("c", None, hierarchy=h)
    old = cgroups.create("c", None, hierarchy=h, parent="fleet.slice")  # a container started by an older payload
    assert cgroups.attach("c", hierarchy=h).paths() == [os.path.join(top, "fleet.slice", "c")] == old.paths()
    old.destroy()


def test_stale_unit_is_stopped_and_the_start_retried_once(tmp_path, monkeypatch, sleeper, fake_in_scope):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    shim = sleeper()
    systemd = FakeSystemd(k, top, exists=True)
    scope.place_shim("c", hierarchy=k.hierarchy(systemd=True), pid=shim.pid, connect=systemd)
    assert [c[0] for c in systemd.calls] == ["subscribe", "start", "stop", "reset-failed", "start"]

    class AlwaysThere(FakeSystemd):
        def stop_unit(self, name, mode="replace"):
            self.calls.append(("stop", name))
            return "/job/0"
    with pytest.raises(errors.FailedPrecondition, match="fleet-d.scope: .*UnitExists"):
        scope.place_shim("d", hierarchy=k.hierarchy(systemd=True), pid=shim.pid,
                         connect=AlwaysThere(k, top, exists=True))


def test_failures_to_place_are_clear_and_hosts_without_systemd_untouched(tmp_path, monkeypatch, sleeper,
                                                                        fake_in_scope):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")
    shim = sleeper()
    with pytest.raises(errors.FailedPrecondition, match="shim of container c to its systemd scope fleet-c.scope: "
                       "systemd's job to start it ended with 'failed'"):
        scope.place_shim("c", hierarchy=k.hierarchy(systemd=True), pid=shim.pid,
                         connect=FakeSystemd(k, top, result="failed"))
    with pytest.raises(errors.FailedPrecondition, match="systemd's D-Bus socket /run/systemd/private"):
        scope.place_shim("c", hierarchy=k.hierarchy(systemd=True), pid=shim.pid,
                         connect=lambda: (_ for _ in ()).throw(FileNotFoundError(2, "No such file or directory")))
    untouched = FakeSystemd(k, top)
    assert scope.place_shim("c", hierarchy=k.hierarchy(systemd=False), pid=shim.pid, connect=untouched) is None
    assert untouched.calls == []


def test_v1_and_hybrid_hosts_get_the_scope_for_the_shim_only(tmp_path, monkeypatch, sleeper, fake_in_scope):
    k = FakeKernel(monkeypatch, tmp_path, v1={"memory": ["memory"], "pids": ["pids"]})
    h = k.hierarchy(systemd=True)
    shim = sleeper()
    top = str(tmp_path / "name=systemd")
    os.mkdir(top)
    scope.place_shim("c", hierarchy=h, pid=shim.pid, connect=FakeSystemd(k, top))
    assert not os.path.exists(os.path.join(top, SCOPE, "supervisor"))
    mgr = cgroups.create("c", limits.parse(memory="32m"), hierarchy=h)
    assert mgr.paths() == [os.path.join(str(tmp_path), m, "fleet", "c") for m in ("memory", "pids")]
    mgr.destroy()


def test_in_scope_reads_proc_cgroup():
    own = open("/proc/self/cgroup").read().splitlines()[0].split(":", 2)[2].strip("/").split("/")
    if own and own[-1]:
        assert scope.in_scope(os.getpid(), own[-1])
    assert not scope.in_scope(os.getpid(), "fleet-nothing.scope")
    assert not scope.in_scope(2 ** 22 + 1, "x")


def test_older_systemd_without_an_optional_property_gets_the_scope_without_it(tmp_path, monkeypatch, sleeper,
                                                                             fake_in_scope):
    k = FakeKernel(monkeypatch, tmp_path, v2_controllers=["cpu", "memory", "pids"])
    top = os.path.join(str(tmp_path), "unified")

    class Systemd235(FakeSystemd):
        def start_transient_unit(self, name, props, mode="fail"):
            if "CollectMode" in dict(props):
                self.calls.append(("start", name, mode, props))
                raise sdbus.DBusError(scope.PROPERTY_READ_ONLY, "Cannot set property CollectMode, or unknown property.")
            return super().start_transient_unit(name, props, mode)
    systemd = Systemd235(k, top)
    scope.place_shim("c", hierarchy=k.hierarchy(systemd=True), pid=sleeper().pid, connect=systemd)
    assert [c[0] for c in systemd.calls] == ["subscribe", "start", "start"]
    assert "CollectMode" not in dict(systemd.calls[2][3]) and dict(systemd.calls[2][3])["Delegate"] == ("b", True)

    class Systemd200(FakeSystemd):
        def start_transient_unit(self, name, props, mode="fail"):
            raise sdbus.DBusError(scope.PROPERTY_READ_ONLY, "Cannot set property Delegate, or unknown property.")
    with pytest.raises(errors.FailedPrecondition, match="fleet-d.scope: .*Cannot set property Delegate"):
        scope.place_shim("d", hierarchy=k.hierarchy(systemd=True), pid=sleeper().pid, connect=Systemd200(k, top))
