"""A real dockerd as the reference for Docker-compatibility tests, started and stopped without side effects.

The binaries are Debian's docker.io (dockerd and its docker client, version-consistent), containerd, runc and tini,
unpacked (never installed) by scripts/fetch-dockerd into ``DOCKER_ROOT``. ``Dockerd`` runs one daemon with its own
``--data-root``, ``--exec-root``, socket, pidfile, config file and key file, ``--iptables=false
--ip-forward=false --bridge=none --ip-masq=false`` (no docker0, no firewall rules, no sysctl), its containers'
cgroups under a parent of its own, and the unpacked bin directory first in *its* PATH only, so the containerd it
manages is the unpacked one. Registry traffic goes to the lab registry (``--insecure-registry``, no mirrors); any
other registry host is sent to a dead loopback proxy, so a reference that is not fully qualified can never reach
the Internet. ``stop`` removes the containers, stops dockerd by its PID (SIGTERM, then SIGKILL), makes sure no
process of its (containerd, shims, containers) is left, unmounts what is left under its roots and removes them.
``host_traces`` snapshots what a dockerd could change on the host's network (links, nft and iptables rules,
ip_forward) so a fixture can assert it changed nothing.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DOCKER_ROOT = Path(os.environ.get("FLEET_DOCKERD_ROOT", "/var/cache/fleet-ci/docker"))
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens; a request meant for the Internet fails here


def binaries(root=DOCKER_ROOT):
    """(dockerd, docker) paths in the unpacked tree, or None when scripts/fetch-dockerd has not been run."""
    dockerd, docker = Path(root) / "usr/sbin/dockerd", Path(root) / "usr/bin/docker"
    if dockerd.is_file() and os.access(dockerd, os.X_OK) and docker.is_file() and os.access(docker, os.X_OK):
        return dockerd, docker
    return None


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def host_traces():
    """What a dockerd leaves on the host's network when it is not kept off it: docker0/docker_gwbridge/br-<id>
    links, DOCKER chains and tables (nft and iptables-save, whichever backend), and net.ipv4.ip_forward.
    Only docker's own names are kept, so other test sessions' labs on the machine do not count."""
    links = {line.split(": ")[1].split("@")[0] for line in _run(["ip", "-o", "link"]).splitlines()
             if ": " in line}
    docker_link = re.compile(r"^(docker\w*|br-[0-9a-f]{12})$")
    rules = [line.strip() for line in (_run(["nft", "list", "ruleset"]) + _run(["iptables-save"])
                                       + _run(["ip6tables-save"])).splitlines()]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read().strip()
    return {"links": sorted(n for n in links if docker_link.match(n)),
            "rules": sorted({r for r in rules if "docker" in r.lower()}),
            "ip_forward": forward}


class DockerdError(Exception):
    pass


class Dockerd:
    """One dockerd under ``base`` (a fresh directory), with its docker client."""

    def __init__(self, base, insecure_registries=(), root=DOCKER_ROOT):
        found = binaries(root)
        if not found:
            raise DockerdError("no dockerd under {} (run scripts/fetch-dockerd)".format(root))
        self.dockerd_bin, self.docker_bin = found
        self.root = Path(root)
        self.base = Path(base)
        self.data_root, self.exec_root = self.base / "data", self.base / "exec"
        self.socket, self.pidfile = self.base / "docker.sock", self.base / "docker.pid"
        self.config_file, self.log_file = self.base / "daemon.json", self.base / "dockerd.log"
        self.client_config = self.base / "client"
        # the containers' cgroups, under a parent per daemon (not the shared "docker")
        self.cgroup_parent = "fleet-ci-dockerd-{}".format(os.getpid())
        self.insecure = list(insecure_registries)
        self.proc = None
        self.pid = None
        # directories dockerd 20.10 and containerd 1.6 make outside the roots they were given (hard-coded paths)
        self._made_outside = [p for p in ("/run/docker/plugins", "/run/docker", "/run/containerd/s",
                                          "/run/containerd") if not os.path.exists(p)]

    def _env(self):
        path = "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".format(
            self.root / "usr/bin", self.root / "usr/sbin")
        hosts = sorted({r.rsplit(":", 1)[0] for r in self.insecure} | {"127.0.0.1", "localhost"})
        return {"PATH": path, "HOME": str(self.base), "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
                "NO_PROXY": ",".join(hosts)}

    def start(self, timeout=60):
        self.base.mkdir(parents=True, exist_ok=True)
        self.client_config.mkdir(exist_ok=True)
        # the trust key 20.10 would write to /etc/docker/key.json is kept here (a config-file-only option)
        self.config_file.write_text(json.dumps({"deprecated-key-path": str(self.base / "key.json"),
                                                "registry-mirrors": []}))
        cmd = [str(self.dockerd_bin), "--config-file", str(self.config_file),
               "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
               "-H", "unix://{}".format(self.socket), "--pidfile", str(self.pidfile),
               "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
               "--userland-proxy=false", "--cgroup-parent", "/" + self.cgroup_parent,
               "--log-level", "info"]
        for reg in self.insecure:
            cmd += ["--insecure-registry", reg]
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self._env(), start_new_session=True)
        finally:
            log.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise DockerdError("dockerd exited {} before it answered:\n{}".format(
                    self.proc.returncode, self.log_tail()))
            if self._answers():
                return self
            if time.monotonic() > deadline:
                raise DockerdError("dockerd did not answer on {} within {}s:\n{}".format(
                    self.socket, timeout, self.log_tail()))
            time.sleep(0.05)

    def _answers(self):
        """True when GET /_ping on the socket answers 200 OK."""
        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b" 200 " in s.recv(64).split(b"\r\n", 1)[0]
        except OSError:
            return False

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _client(self, args):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.base),
               "DOCKER_CONFIG": str(self.client_config)}
        return [str(self.docker_bin), "-H", "unix://{}".format(self.socket)] + list(args), env

    def docker(self, *args, input=None, timeout=120):
        """Run the docker client against this daemon; returns the CompletedProcess (bytes)."""
        cmd, env = self._client(args)
        return subprocess.run(cmd, capture_output=True, input=input, timeout=timeout, env=env)

    def popen(self, *args, **kw):
        """The docker client against this daemon as a Popen (for signals), stdout and stderr piped."""
        cmd, env = self._client(args)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, **kw)

    def check(self, *args, **kw):
        proc = self.docker(*args, **kw)
        if proc.returncode != 0:
            raise DockerdError("docker {} exited {}:\n{}{}".format(" ".join(args), proc.returncode,
                                                                   proc.stdout.decode(errors="replace"),
                                                                   proc.stderr.decode(errors="replace")))
        return proc

    # -- teardown ---------------------------------------------------------------------------------------------

    def _own_pids(self):
        """PIDs of processes started for this daemon: dockerd, its containerd and shims (their command lines
        name its roots or socket), and every process in its containers' cgroups."""
        marks = [str(self.base) + "/"]
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/{}/cmdline".format(entry), "rb") as f:
                    cmdline = f.read().decode(errors="replace")
            except OSError:
                continue
            if any(m in cmdline for m in marks):
                pids.add(int(entry))
        for procs in Path("/sys/fs/cgroup").glob("*/{}/**/cgroup.procs".format(self.cgroup_parent)):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                pass
        return pids

    def _cgroup_dirs(self):
        return sorted((p for p in Path("/sys/fs/cgroup").glob("*/{}".format(self.cgroup_parent))), key=str)

    def stop(self, timeout=30):
        """Remove the containers, stop dockerd by PID, leave no process, mount, cgroup or directory behind.
        Returns a list of problems found on the way (leftovers that had to be killed or unmounted)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", timeout=60).stdout.split()
            if ids:
                self.docker("rm", "-f", *[i.decode() for i in ids], timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append("dockerd {} ignored SIGTERM for {}s".format(self.pid, timeout))
                self.proc.kill()
                self.proc.wait(10)
        deadline = time.monotonic() + 10
        left = self._own_pids()
        while left and time.monotonic() < deadline:  # containerd stops after dockerd; let it finish first
            time.sleep(0.05)
            left = self._own_pids()
        if left:
            problems.append("left running after dockerd stopped, killed: {}".format(sorted(left)))
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self._own_pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        mounts = self._mounts()
        if mounts:
            problems.append("left mounted, unmounted: {}".format(mounts))
            for m in mounts:
                subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        for cg in self._cgroup_dirs():
            for sub in sorted((d for d in cg.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                              reverse=True):
                _rmdir(sub)
            _rmdir(cg)
        left_cg = self._cgroup_dirs()
        if left_cg:
            problems.append("cgroups left: {}".format(left_cg))
        stale = [p for p in self._shim_sockets() if p.exists()]
        if stale:
            problems.append("shim sockets left, removed: {}".format([str(p) for p in stale]))
            for p in stale:
                p.unlink()
        for path in self._made_outside:
            _rmdir(Path(path))  # only when empty: another daemon on the machine may be using it now
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        return problems

    def _shim_sockets(self):
        """The sockets containerd 1.6 gives its shims, in /run/containerd/s whatever the roots (named by the
        sha256 of containerd's address, namespace and container ID): a killed shim leaves its socket there."""
        address = self.exec_root / "containerd" / "containerd.sock"
        containers = self.data_root / "containers"
        ids = os.listdir(str(containers)) if containers.is_dir() else []
        return [Path("/run/containerd/s") / hashlib.sha256("{}/moby/{}".format(address, cid).encode()).hexdigest()
                for cid in ids]

    def _mounts(self):
        roots = (str(self.data_root) + "/", str(self.exec_root) + "/")
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = line.split()[4].encode().decode("unicode_escape")
                if target.startswith(roots) or target in (str(self.data_root), str(self.exec_root)):
                    out.append(target)
        return sorted(out, key=len, reverse=True)


def _rmdir(path):
    try:
        os.rmdir(str(path))
    except OSError:
        pass


def require_binaries():
    """Skip the calling fixture's tests without the unpacked binaries (or root); under CI that is a failure."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    if not binaries():
        reason = ("no dockerd for the reference tests under {} (scripts/fetch-dockerd unpacks Debian's docker.io "
                  "there; scripts/test runs it)".format(DOCKER_ROOT))
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + " under CI=true")
        pytest.skip(reason)


@contextlib.contextmanager
def running(base, insecure_registries=()):
    """A started ``Dockerd`` for a fixture (``require_binaries`` first); on the way out it is stopped by PID and
    must have left nothing behind: no process, mount or cgroup, and no docker link, nft/iptables rule or
    ip_forward change on the host."""
    before = host_traces()
    daemon = Dockerd(base, insecure_registries=insecure_registries)
    problems = []
    try:
        daemon.start()
        yield daemon
    finally:
        problems = daemon.stop()
    assert problems == [], "dockerd left these behind:\n{}\n{}".format("\n".join(problems), daemon.log_tail())
    assert host_traces() == before, "dockerd changed the host's network"
