"""The payload runtime on this machine, for integration tests: busybox layers, a private FLEET_ROOT with a
``Runtime`` (fixtures ``env`` and ``layers``), container specs, runs, logs, polling and cleanup of every process.

Test modules take the fixtures by assignment (``env, layers = runtime.env, runtime.layers``).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from agent_payload.runtime import records
from agent_payload.runtime.containers import Runtime
from agent_payload.runtime.spec import ContainerSpec
from agent_payload.state.paths import Paths

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSYBOX = "/usr/bin/busybox"
IMAGE_ID = "sha256:" + "ab" * 32
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and /usr/bin/busybox (busybox-static)")
integration = [pytest.mark.integration, needs_root]


def _busybox_layer(path):
    os.makedirs(os.path.join(path, "bin"))
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(path, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    os.makedirs(os.path.join(path, "etc"))
    with open(os.path.join(path, "etc", "layer"), "w") as f:
        f.write("bottom\n")
    with open(os.path.join(path, "etc", "only-bottom"), "w") as f:
        f.write("yes\n")


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """Two lower dirs: busybox at the bottom, /etc files on top (one shadows a bottom file)."""
    base = tmp_path_factory.mktemp("layers")
    bottom, top = str(base / "bottom"), str(base / "top")
    _busybox_layer(bottom)
    os.makedirs(os.path.join(top, "etc"))
    with open(os.path.join(top, "etc", "layer"), "w") as f:
        f.write("top\n")
    with open(os.path.join(top, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(top, "etc", "notexec"), "w") as f:
        f.write("#!/bin/sh\necho no\n")
    os.chmod(os.path.join(top, "etc", "notexec"), 0o644)
    yield [bottom, top]
    shutil.rmtree(str(base), ignore_errors=True)


def _shims_of(paths, container_ids):
    """(pid, starttime) of live shims of our IDs, from their shim.pid files (even shims no state.json records)."""
    from agent_payload.runtime import shim
    found = []
    for cid in container_ids:
        pid, start = shim.read_pidfile(records.Layout(paths, cid))
        if pid is not None and records.is_alive(pid, start):
            found.append((pid, start))
    return found


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/{}/stat".format(entry)) as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append((int(entry), records.proc_starttime(int(entry))))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _cleanup(paths):
    """Kill every container process and shim under ``paths`` (by PID, identity-checked), recorded or not."""
    ids = set(os.listdir(paths.containers)) if os.path.isdir(paths.containers) else set()
    states = [{"shim_pid": pid, "shim_start": start} for pid, start in _shims_of(paths, ids)]
    for shim_pid, shim_start in [(s["shim_pid"], s["shim_start"]) for s in states]:
        for pid, start in _children(shim_pid):
            records.signal_process(pid, start, signal.SIGKILL)
    for cid in records.list_ids(paths):
        state = records.store.read_json(records.Layout(paths, cid).state) or {}
        states.append(state)
        records.signal_process(state.get("pid"), state.get("pid_start"), signal.SIGKILL)
    for state in states:
        deadline = time.monotonic() + 5
        while records.is_alive(state.get("shim_pid"), state.get("shim_start")) and time.monotonic() < deadline:
            time.sleep(0.05)
        records.signal_process(state.get("shim_pid"), state.get("shim_start"), signal.SIGKILL)
    from agent_payload.runtime.reaper import destroy_cgroup
    for cid in ids | set(records.list_ids(paths)):
        if not cid.startswith("."):  # .removed/ holds tombstones, not containers
            destroy_cgroup(cid)  # no cgroup may outlive the test


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private FLEET_ROOT and a Runtime; kills and removes everything afterwards."""
    root = tmp_path / "root"
    monkeypatch.setenv("FLEET_ROOT", str(root))
    paths = Paths(root=str(root))
    rt = Runtime(paths)
    rt.tmp_path = tmp_path
    try:
        yield rt
    finally:
        _cleanup(paths)
        for entry in os.listdir(str(tmp_path)):
            shutil.rmtree(os.path.join(str(tmp_path), entry), ignore_errors=True)
            if os.path.lexists(os.path.join(str(tmp_path), entry)):
                os.unlink(os.path.join(str(tmp_path), entry))
    assert not _overlay_mounts(str(tmp_path)), "overlay mount leaked onto the host"


def _overlay_mounts(fragment=""):
    with open("/proc/mounts") as f:
        return [line for line in f if line.startswith("overlay ") and fragment in line]


def _spec(layers, argv, **kw):
    kw.setdefault("network", "none")  # no bridge on this machine's own network namespace
    return ContainerSpec(image="busybox:test", image_id=IMAGE_ID, lowerdirs=list(layers), argv=argv, **kw)


def _run(rt, layers, argv, timeout=20, **kw):
    rec = rt.create(_spec(layers, argv, **kw))
    rt.start(rec["id"])
    code = rt.wait(rec["id"], timeout=timeout)
    return rec, code


def _output(rt, cid, stream=None):
    return "".join(ev["line"] for ev in rt.logs(cid) if stream in (None, ev["stream"]))


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def hook_root(tmp_path, monkeypatch):
    """Boot hooks (restart policies) go under a private root, never this machine's /etc: cron flavour, as on a host
    without systemd.  Autouse in the modules that take it (``hook_root = runtime.hook_root``)."""
    root = tmp_path / "hookroot"
    (root / "etc" / "cron.d").mkdir(parents=True)
    monkeypatch.setenv("FLEET_HOOK_ROOT", str(root))
    return root


@contextlib.contextmanager
def scratch_netns(prefix, lo_up=False):
    """A network namespace of this test process (``<prefix><pid>``), deleted on the way out even on failure."""
    name = "{}{}".format(prefix, os.getpid() % 100000)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        if lo_up:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
