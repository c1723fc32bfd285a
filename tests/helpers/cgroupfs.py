"""A fake cgroupfs on a tmp dir for the cgroup managers' unit tests (no root, no kernel): FakeKernel, sleeper."""

import errno
import os
import signal
import subprocess

import pytest

from agent_payload.runtime import cgroups
from agent_payload.runtime.cgroups import fs

V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0", "memory.failcnt": "0",
               "memory.stat": "cache 0\ntotal_inactive_file 0\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.shares": "1024"},
    "cpuacct": {"cpuacct.usage": "0"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.throttle.io_service_bytes_recursive": "Total 0\n"},
}
V2_FILES = {
    "memory": {"memory.max": "max", "memory.swap.max": "max", "memory.current": "0", "memory.stat": "anon 0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.stat": ""},
}
V2_CORE = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0", "cgroup.kill": "",
           "cgroup.events": "populated 0\nfrozen 0\n", "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"}


def _alive(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class FakeKernel:
    """Just enough cgroupfs semantics on a tmp dir: files appear on mkdir, rmdir of a dir with live pids is EBUSY,
    cgroup.procs adds, subtree_control takes +/- tokens (EBUSY with processes), cgroup.kill kills. Records writes."""

    def __init__(self, monkeypatch, root, v1=None, v2_controllers=None):
        self.root, self.v1, self.v2 = str(root), v1, v2_controllers
        self.writes = []
        self._real_write, self._real_mkdir, self._real_rmdir = fs._write, fs.mkdir, fs.rmdir
        monkeypatch.setattr(fs, "_write", self.write)
        monkeypatch.setattr(fs, "mkdir", self.mkdir)
        monkeypatch.setattr(fs, "rmdir", self.rmdir)
        dev = os.stat(self.root).st_dev
        lines = []
        if v1:
            for i, (mnt, ctrls) in enumerate(v1.items()):
                self._populate(os.path.join(self.root, mnt), ctrls)
                lines.append("{} 1 {}:{} / {}/{} rw - cgroup cgroup rw,{}".format(
                    40 + i, os.major(dev), os.minor(dev), self.root, mnt, ",".join(ctrls)))
        if v2_controllers is not None:
            top = os.path.join(self.root, "unified")
            os.makedirs(top)
            self._files(top, dict(V2_CORE, **{"cgroup.controllers": " ".join(v2_controllers)}))
            lines.append("60 1 {}:{} / {} rw - cgroup2 cgroup2 rw".format(os.major(dev), os.minor(dev), top))
        self.mountinfo = os.path.join(self.root, "mountinfo")
        with open(self.mountinfo, "w") as f:
            f.write("\n".join(lines) + "\n")

    def hierarchy(self, systemd=False):
        return cgroups.Hierarchy(cgroups.parse_mountinfo(open(self.mountinfo).read()), systemd)

    def _files(self, directory, files):
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)

    def _populate(self, directory, ctrls):
        os.makedirs(directory, exist_ok=True)
        self._files(directory, {"cgroup.procs": "", "tasks": ""})
        for c in ctrls:
            self._files(directory, V1_FILES[c])

    def mkdir(self, parent, name, is_cgroupfs):
        created = self._real_mkdir(parent, name, is_cgroupfs)
        path = os.path.join(parent, name)
        if created and self.v1:
            mnt = os.path.relpath(path, self.root).split("/")[0]
            self._populate(path, self.v1[mnt])
        elif created:
            ctrls = fs.read(parent, "cgroup.subtree_control").split()
            self._files(path, dict(V2_CORE, **{"cgroup.controllers": " ".join(ctrls)}))
            for c in ctrls:
                self._files(path, V2_FILES[c])
        return created

    def _pids(self, directory):
        return [int(p) for p in fs.read(directory, "cgroup.procs", "").split() if _alive(int(p))]

    def rmdir(self, parent, name, is_cgroupfs):
        path = os.path.join(parent, name)
        if not os.path.isdir(path):
            return False
        if self._pids(path) or any(os.path.isdir(os.path.join(path, e)) for e in os.listdir(path)):
            raise fs.fail(OSError(errno.EBUSY, os.strerror(errno.EBUSY)), path)
        for entry in os.listdir(path):
            os.unlink(os.path.join(path, entry))
        return self._real_rmdir(parent, name, is_cgroupfs)

    def _leave(self, directory, pid):
        """A process is in one cgroup per hierarchy: moving it in takes it out of the others of that mount."""
        mount = os.path.join(self.root, os.path.relpath(directory, self.root).split("/")[0])
        for d, _, files in os.walk(mount):
            if d != directory and "cgroup.procs" in files:
                left = [p for p in self._pids(d) if p != pid]
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(" ".join(str(p) for p in left))

    def write(self, directory, name, data, is_cgroupfs):
        self.writes.append((os.path.relpath(directory, self.root), name, str(data)))
        if name == "cgroup.procs":
            self._leave(directory, int(data))
            data = " ".join(str(p) for p in sorted(set(self._pids(directory)) | {int(data)}))
        elif name == "cgroup.subtree_control":
            if self._pids(directory):
                raise fs.fail(OSError(errno.EBUSY, os.strerror(errno.EBUSY)), os.path.join(directory, name))
            have = fs.read(directory, "cgroup.controllers").split()
            cur = set(fs.read(directory, name).split())
            for tok in str(data).split():
                if tok[1:] not in have:
                    raise fs.fail(OSError(errno.ENOENT, os.strerror(errno.ENOENT)), os.path.join(directory, name))
                (cur.add if tok[0] == "+" else cur.discard)(tok[1:])
            data = " ".join(sorted(cur))
        elif name == "cgroup.kill":
            for pid in self._pids(directory):
                os.kill(pid, signal.SIGKILL)
        self._real_write(directory, name, data, is_cgroupfs)


@pytest.fixture
def sleeper():
    procs = []

    def start():
        p = subprocess.Popen(["sleep", "60"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
