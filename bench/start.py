#!/usr/bin/env python3
"""Container start: the payload's `run --rm busybox true` against podman (no network, bridge) and runc.

A busybox image (the host's static /bin/busybox plus a hard link per applet, one gzip layer) is built
deterministically into /var/cache/fleet-bench/ as an OCI layout, pushed with skopeo into Debian's
docker-registry on a free 127.0.0.1 port, pulled once into a private fleet store and a private podman store,
and unpacked once into a runc bundle.  Then N interleaved rounds (the order rotates each round) time:

  fleet         `python3 -S -E <FLEET_ROOT>/payload/<sha256>.pyz run --rm --network none REF true`: the zipapp
                built from this checkout (fleet.transport.payload.build) where a host keeps it, run as a host
                runs it, private FLEET_ROOT and FLEET_CONFIG_DIR; a warm payload server, where the payload has
                one, is used as a host would use it (the warm-up round starts it).
  fleet-bridge  the same on fleet's default bridge (fleet0: netns, veth, address, NAT rules), fleet's own
                bridge and nft table removed again at the end if they were not there before.
  fleet-cold, fleet-bridge-cold  the same two with FLEET_WARM=0: no warm server, every run pays the
                interpreter's start and the payload's imports.
  podman-none   `podman run --rm --network none REF true` (private --root/--runroot/--tmpdir, overlay).
  podman-bridge `podman run --rm REF true` on podman's default bridge (a private network config dir, a subnet
                no route uses); n/a, with the reason, when that network cannot come up here.
  runc          `runc run --bundle B ID` of `runc spec` with root.path at the unpacked rootfs, terminal off,
                args ["true"], rw root and the namespaces podman --network none really creates (measured).
  python        `python3 -S -E -c pass`: the interpreter's own start, the floor under fleet.

Prints the medians and ratios and appends one row to bench/RESULTS.md (targets: fleet/podman-none <= 0.25x,
fleet/podman-bridge <= 0.33x).  Then, as diagnostics only: fleet's top imports (`-X importtime`), its syscall
counts (`strace -f -c`: forks, execs, mounts), an exec timeline (`strace -f -ttt`) of the cold path and one of a
warm run (the warm server traced with `strace -p` while the run is timed from outside).

    .venv/bin/python bench/start.py [--rounds 20] [--keep-image] [--no-record] [--no-diagnostics]

Needs root, skopeo, /usr/bin/docker-registry, podman, runc, strace
(`apt-get install -y podman runc docker-registry skopeo strace`; bench-only, not part of scripts/bootstrap).
Everything lives in one temp dir; on exit (Ctrl-C and SIGTERM included) processes we started are killed by
PID, mounts under it are unmounted deepest first, and host state podman's bridge created is undone.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull import (  # noqa: E402 - the shared bench plumbing (registry, run, unmount) lives in pull.py
    CACHE, CLEAN_ENV, PY, REGISTRY_BIN, ROOT, BenchError, _put_json, run, start_registry, stop,
    unmount_under)

BUSYBOX = "/bin/busybox"
REPO, TAG = "bench/busybox", "latest"
MTIME = 1700000000
TOOLS = ["fleet", "fleet-bridge", "fleet-cold", "fleet-bridge-cold", "podman-none", "podman-bridge", "runc",
         "python"]
FLEET_BRIDGE = "fleet0"
# Podman's default bridge: its name under netavark and under CNI (podman 4.3 on bookworm without netavark), the
# host state they change (and we put back), subnets to try.
BRIDGES = ("podman0", "cni-podman0")
CHAIN_PREFIXES = ("-N NETAVARK", "-N CNI-")
CNI_STATE = "/var/lib/cni"  # CNI's IPAM state (podman's network "podman"), made by the first bridge run
SUBNETS = ["10.231.{}.0/24".format(i) for i in range(200, 250)]
# Podman creates these whatever its config says (netavark's IPAM db, the OCI runtimes' state roots);
# removed again, if still empty, when they did not exist before.
RUN_DIRS = ("/run/containers/networks", "/run/containers", "/run/runc", "/run/crun")
CGROUP_PARENT = "libpod_parent"  # podman's cgroupfs parent in every v1 hierarchy
NS_TYPES = {"cgroup": "cgroup", "ipc": "ipc", "mnt": "mount", "net": "network", "pid": "pid", "uts": "uts",
            "user": "user"}


# -- the image ---------------------------------------------------------------------------------------------


def _tarinfo(name, kind=tarfile.REGTYPE, size=0, mode=0o755, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, mode, MTIME, link
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def applets() -> list:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    return sorted(a for a in out if a and "/" not in a and a != "busybox")


def build_image(out: Path, arch: str, binary: bytes, names: list) -> None:
    """Write the OCI layout (one layer: dirs, bin/busybox, a hard link per applet, passwd/group) into ``out``."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    raw = io.BytesIO()
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
    plain = hashlib.sha256()

    class Tee:
        def write(self, data):
            plain.update(data)
            return gz.write(data)

    with tarfile.open(fileobj=Tee(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555), ("root", 0o700),
                        ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755), ("var", 0o755)):
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, mode=mode))
        tar.addfile(_tarinfo("bin/busybox", size=len(binary)), io.BytesIO(binary))
        for name in names:
            tar.addfile(_tarinfo("bin/" + name, tarfile.LNKTYPE, link="bin/busybox"))
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            tar.addfile(_tarinfo(name, size=len(data), mode=0o644), io.BytesIO(data))
    gz.close()
    layer = raw.getvalue()
    digest = hashlib.sha256(layer).hexdigest()
    (blobs / digest).write_bytes(layer)
    config = {"architecture": arch, "os": "linux", "created": "2023-11-14T22:13:20Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + plain.hexdigest()]},
              "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "fleet bench/start.py busybox"}]}
    cfg_digest, cfg_size = _put_json(blobs, config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                           "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest,
                            "size": len(layer)}]}
    man_digest, man_size = _put_json(blobs, manifest)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
    (out / "layer.tar.gz").symlink_to("blobs/sha256/" + digest)


def cached_image(arch: str):
    """The cached OCI layout for this host's busybox -> (dir, applet count); built once, atomically."""
    binary = Path(BUSYBOX).read_bytes()
    names = applets()
    key = hashlib.sha256(json.dumps({"version": 1, "arch": arch, "busybox": hashlib.sha256(binary).hexdigest(),
                                     "applets": names}).encode()).hexdigest()[:16]
    out = CACHE / "busybox-{}".format(key)
    if (out / "index.json").is_file():
        return out, len(names)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        print("building the busybox image (once; cached in {}) ...".format(out), flush=True)
        build_image(tmp / "oci", arch, binary, names)
        (tmp / "oci").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, len(names)


# -- host state podman's bridge touches ---------------------------------------------------------------------


def _chains(binary, table):
    p = subprocess.run([binary, "-w", "-t", table, "-S"], capture_output=True, text=True)
    return p.stdout.splitlines() if p.returncode == 0 else []


def _cgroup_parents() -> list:
    return [str(p) for p in Path("/sys/fs/cgroup").glob("*/" + CGROUP_PARENT)]


def host_snapshot() -> dict:
    """What netavark or CNI may add: the bridge, ip_forward, NETAVARK* / CNI-* iptables chains, /run/containers."""
    snap = {"bridges": [b for b in BRIDGES if os.path.exists("/sys/class/net/" + b)],
            "fleet_bridge": os.path.exists("/sys/class/net/" + FLEET_BRIDGE),
            "fleet_table": subprocess.run(["nft", "list", "table", "ip", "fleet"], capture_output=True).returncode == 0,
            "forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "run_dirs": [d for d in RUN_DIRS if os.path.exists(d)], "chains": set(),
            "cni_state": os.path.exists(CNI_STATE),
            "cgroups": set(_cgroup_parents())}
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            for line in _chains(binary, table):
                if line.startswith(CHAIN_PREFIXES):
                    snap["chains"].add((binary, table, line.split()[1]))
    return snap


def host_restore(before: dict) -> list:
    """Undo what appeared since ``before`` (only NETAVARK* / CNI-* chains, only podman's bridge); returns what was
    undone."""
    undone = []
    new = set()
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            for line in _chains(binary, table):
                if line.startswith(CHAIN_PREFIXES) and (binary, table, line.split()[1]) not in before["chains"]:
                    new.add((binary, table, line.split()[1]))
    for binary, table, chain in sorted(new):
        # Jumps into the chain first (from any chain), then its rules, then the chain itself.
        for line in _chains(binary, table):
            parts = shlex.split(line)  # netavark's rules carry a quoted comment
            if parts[0] == "-A" and "-j" in parts and parts[parts.index("-j") + 1] == chain:
                subprocess.run([binary, "-w", "-t", table, "-D"] + parts[1:], capture_output=True)
    for binary, table, chain in sorted(new):
        subprocess.run([binary, "-w", "-t", table, "-F", chain], capture_output=True)
    for binary, table, chain in sorted(new):
        if subprocess.run([binary, "-w", "-t", table, "-X", chain], capture_output=True).returncode == 0:
            undone.append("{} -t {} chain {}".format(binary, table, chain))
    for bridge in BRIDGES:
        if bridge not in before["bridges"] and os.path.exists("/sys/class/net/" + bridge):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            undone.append("bridge " + bridge)
    if not before["fleet_bridge"] and os.path.exists("/sys/class/net/" + FLEET_BRIDGE):
        subprocess.run(["ip", "link", "del", FLEET_BRIDGE], capture_output=True)
        undone.append("bridge " + FLEET_BRIDGE)
    if not before["fleet_table"] and subprocess.run(["nft", "delete", "table", "ip", "fleet"],
                                                    capture_output=True).returncode == 0:
        undone.append("nft table ip fleet")
    fwd = Path("/proc/sys/net/ipv4/ip_forward")
    if fwd.read_text().strip() != before["forward"]:
        fwd.write_text(before["forward"])
        undone.append("net.ipv4.ip_forward back to " + before["forward"])
    for parent in _cgroup_parents():
        if parent not in before["cgroups"]:
            # rmdir of a cgroup fails while it holds processes or children: bottom-up, empty ones only.
            for sub in sorted((d for d, _s, _f in os.walk(parent)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            if not os.path.exists(parent):
                undone.append("cgroup " + parent)
    if not before["cni_state"] and os.path.isdir(CNI_STATE):
        shutil.rmtree(CNI_STATE, ignore_errors=True)  # CNI's IPAM leases of our podman runs, made by this run
        undone.append(CNI_STATE)
    for d in RUN_DIRS:
        if d not in before["run_dirs"]:
            try:
                os.rmdir(d)  # only if empty: never someone else's state
            except OSError:
                pass
    return undone


def free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for net in SUBNETS:
        if net.rsplit(".", 1)[0] + "." not in used:
            return net
    raise BenchError("no free subnet among {}..{} for podman's bridge".format(SUBNETS[0], SUBNETS[-1]))


# -- cleanup of processes ------------------------------------------------------------------------------------


def ours(pid: int, top: str) -> bool:
    """A process is ours when its root, cwd, argv or environment points into our temp dir."""
    for link in ("root", "cwd"):
        try:
            if os.readlink("/proc/{}/{}".format(pid, link)).startswith(top):
                return True
        except OSError:
            pass
    for name in ("cmdline", "environ"):
        try:
            if top.encode() in Path("/proc/{}/{}".format(pid, name)).read_bytes():
                return True
        except OSError:
            pass
    return False


def kill_ours(top: Path) -> list:
    """SIGKILL every process (other than us) that is ours by ``ours``; returns "PID (argv)" for each."""
    me, prefix, killed = os.getpid(), str(top).rstrip("/") + "/", []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and ours(int(entry), prefix):
            try:
                argv = Path("/proc/{}/cmdline".format(entry)).read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").strip()
                os.kill(int(entry), signal.SIGKILL)
                killed.append("{} ({})".format(entry, argv[:80]))
            except OSError:
                pass
    return killed


# -- the bench -----------------------------------------------------------------------------------------------


class Bench:
    """One run: registry, configs, the fleet store, the podman store and the runc bundle, all under ``top``."""

    def __init__(self, top: Path, port: int):
        self.top, self.port = top, port
        self.ref = "127.0.0.1:{}/{}:{}".format(port, REPO, TAG)
        conf = top / "conf"
        conf.mkdir()
        (conf / "networks").mkdir()
        self.policy = str(conf / "policy.json")
        Path(self.policy).write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        (conf / "registries.conf").write_text('unqualified-search-registries = []\n\n[[registry]]\n'
                                              'location = "127.0.0.1:{}"\ninsecure = true\n'.format(port))
        self.subnet = free_subnet()
        # The machine cannot raise RLIMIT_NOFILE, hence the ulimits (issue 4); the network config dir is ours,
        # so the default network's definition (our subnet) never lands in /etc/containers/networks.
        (conf / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=20000", "nproc=32768"]\n\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "{tmp}"\n\n'
            '[network]\nnetwork_config_dir = "{net}"\ndefault_subnet = "{sub}"\n'.format(
                tmp=top / "podman" / "tmp", net=conf / "networks", sub=self.subnet))
        self.driver, self.runtime, self.runtime_note = "overlay", None, ""
        self._storage_conf()
        self.env = dict(CLEAN_ENV, CONTAINERS_CONF=str(conf / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(conf / "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(conf / "registries.conf"))
        fleet = top / "fleet"
        (fleet / "etc").mkdir(parents=True)
        (fleet / "etc" / "daemon.json").write_text(json.dumps({"insecure-registries": ["127.0.0.1:{}".format(port)]}))
        self.fleet_root = top / "r"  # short: <root>/payload/<sha256>.sock must fit a unix socket's 107 bytes
        self.fleet_env = dict(CLEAN_ENV, FLEET_ROOT=str(self.fleet_root), FLEET_CONFIG_DIR=str(fleet / "etc"))
        self.fleet_env.pop("FLEET_WARM", None)
        self.cold_env = dict(self.fleet_env, FLEET_WARM="0")
        self.pyz = None  # <FLEET_ROOT>/payload/<sha256>.pyz, written by setup_fleet
        self.runc_state = top / "runc" / "state"
        self.bundle = top / "runc" / "bundle"
        self.count = 0
        self.lingering = 0  # fleet containers still present when `run --rm` had returned

    def _storage_conf(self):
        (self.top / "conf" / "storage.conf").write_text('[storage]\ndriver = "{}"\ngraphroot = "{}"\nrunroot = "{}"\n'
                                                        .format(self.driver, self.top / "podman" / "root",
                                                                self.top / "podman" / "run"))

    def podman_cmd(self, *args) -> list:
        p = self.top / "podman"
        runtime = ["--runtime", self.runtime] if self.runtime else []
        return ["podman", "--root", str(p / "root"), "--runroot", str(p / "run"), "--tmpdir", str(p / "tmp"),
                "--storage-driver", self.driver] + runtime + list(args)

    def fleet_cmd(self, *args) -> list:
        return [PY, "-S", "-E", str(self.pyz)] + list(args)

    # setup

    def setup_podman(self):
        """Pull into podman's store: overlay if podman can use it here, else vfs (said so)."""
        pull = ["pull", "--quiet", "--tls-verify=false", "--signature-policy", self.policy, self.ref]
        try:
            run(self.podman_cmd(*pull), env=self.env)
        except BenchError as exc:
            print("podman's overlay driver failed here, using vfs:\n  {}".format(str(exc)[-400:]), flush=True)
            unmount_under(self.top / "podman")
            shutil.rmtree(self.top / "podman", ignore_errors=True)
            self.driver = "vfs"
            self._storage_conf()
            run(self.podman_cmd(*pull), env=self.env)

    def podman_namespaces(self) -> list:
        """The namespaces podman --network none creates; falls back to runc if its default runtime fails here."""
        cmd = ("run", "--rm", "--pull", "never", "--network", "none", self.ref)
        try:
            return self.namespaces(self.podman_cmd(*cmd), self.env)
        except BenchError as exc:
            if "crun" not in str(exc):
                raise
            # Debian's podman picks crun, which refuses cgroup v1 hosts with a cgroup2 hierarchy mounted beside
            # ("hybrid mode"); runc is what Docker uses anyway.
            self.runtime = "runc"
            self.runtime_note = "crun refused: " + str(exc).strip().splitlines()[-1][-120:]
            print("podman's default runtime failed, using runc:\n  " + self.runtime_note, flush=True)
            return self.namespaces(self.podman_cmd(*cmd), self.env)

    def setup_fleet(self):
        """The zipapp of this checkout where a host keeps it (its dir 0700, as the controller makes it); the pull."""
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))  # this checkout's controller, whatever the venv has installed
        from fleet.transport.payload import build

        payload = build(ROOT / "agent_payload")
        pdir = self.fleet_root / "payload"
        pdir.mkdir(parents=True, mode=0o700)
        self.pyz = pdir / payload.filename
        self.pyz.write_bytes(payload.data)
        self.pyz.chmod(0o600)
        self.sock = self.pyz.with_suffix(".sock")
        if len(os.fsencode(str(self.sock))) > 107:
            raise BenchError("{} is too long for a unix socket: no warm server could run".format(self.sock))
        self.warm_runs = self.warm_hits = 0
        run(self.fleet_cmd("pull", self.ref), env=self.cold_env, cwd="/")

    def setup_runc(self, layer: Path, namespaces: list):
        rootfs = self.bundle / "rootfs"
        rootfs.mkdir(parents=True)
        self.runc_state.mkdir(parents=True)
        with tarfile.open(layer, "r:gz") as tar:  # our own layer: trusted, links and all
            if hasattr(tarfile, "fully_trusted_filter"):
                tar.extractall(rootfs, filter="fully_trusted")
            else:
                tar.extractall(rootfs)
        run(["runc", "spec", "--bundle", str(self.bundle)])
        path = self.bundle / "config.json"
        spec = json.loads(path.read_text())
        spec["root"] = {"path": str(rootfs), "readonly": False}  # podman's rootfs is writable too
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        spec["linux"]["namespaces"] = [{"type": t} for t in namespaces]
        path.write_text(json.dumps(spec, indent=2))

    def namespaces(self, cmd, env, cwd=None) -> list:
        """The namespace types ``cmd`` (a container printing `readlink /proc/self/ns/*`) gets anew."""
        script = "for n in {}; do echo $n $(readlink /proc/self/ns/$n); done".format(" ".join(NS_TYPES))
        out = run(cmd + ["sh", "-c", script], env=env, cwd=cwd)[1]
        new = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in NS_TYPES and os.readlink("/proc/self/ns/" + parts[0]) != parts[1]:
                new.append(NS_TYPES[parts[0]])
        return new

    # the timed runs

    def fleet(self, network=("--network", "none"), env=None):
        if env is None:  # a warm row: was there a server to hand the run to (the previous run leaves one)?
            self.warm_runs += 1
            self.warm_hits += self.sock.exists()
        t = run(self.fleet_cmd("run", "--rm", *network, self.ref, "true"), env=env or self.fleet_env, cwd="/")[0]
        left = self.fleet_root / "containers"
        deadline = time.monotonic() + 5
        names = [n for n in os.listdir(left) if not n.startswith(".")] if left.is_dir() else []
        if names:
            self.lingering += 1
            while names and time.monotonic() < deadline:  # outside the timing: the shim's --rm may finish later
                time.sleep(0.02)
                names = [n for n in os.listdir(left) if not n.startswith(".")]
        return t

    def fleet_bridge(self):
        return self.fleet(network=())

    def fleet_cold(self):
        return self.fleet(env=self.cold_env)

    def fleet_bridge_cold(self):
        return self.fleet(network=(), env=self.cold_env)

    def podman_none(self):
        return run(self.podman_cmd("run", "--rm", "--pull", "never", "--network", "none", self.ref, "true"),
                   env=self.env)[0]

    def podman_bridge(self):
        return run(self.podman_cmd("run", "--rm", "--pull", "never", self.ref, "true"), env=self.env)[0]

    def runc(self):
        self.count += 1
        return run(["runc", "--root", str(self.runc_state), "run", "--bundle", str(self.bundle),
                    "fleet-bench-{}-{}".format(os.getpid(), self.count)])[0]

    def python(self):
        return run([PY, "-S", "-E", "-c", "pass"])[0]

    def cleanup_podman(self):
        """After an interrupted `podman run`: podman's own rm tears down its netns, veth, IPAM lease and runc state."""
        if (self.top / "podman" / "root").is_dir():
            try:
                subprocess.run(self.podman_cmd("rm", "--all", "--force", "--time", "0"), env=self.env,
                               capture_output=True, timeout=120)
            except subprocess.TimeoutExpired:
                print("cleanup: `podman rm --all --force` timed out", file=sys.stderr)

    def cleanup_runc(self):
        if self.runc_state.is_dir():
            ids = subprocess.run(["runc", "--root", str(self.runc_state), "list", "-q"], capture_output=True,
                                 text=True).stdout.split()
            for cid in ids:
                subprocess.run(["runc", "--root", str(self.runc_state), "delete", "-f", cid], capture_output=True)


# -- diagnostics -------------------------------------------------------------------------------------------


def diag_imports(b: Bench, top_n=12):
    cmd = b.fleet_cmd("run", "--rm", b.ref, "true")
    p = subprocess.run(cmd[:1] + ["-X", "importtime"] + cmd[1:], env=b.cold_env, cwd="/", capture_output=True,
                       text=True)
    rows = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, cum_us, name = [x.strip() for x in line[len("import time:"):].split("|")]
            rows.append((int(self_us), int(cum_us), name))
    total = sum(r[0] for r in rows)
    print("\n-- fleet imports (the front process; the shim is forked from it): {} modules, {:.1f} ms self "
          "in total".format(len(rows), total / 1000))
    for self_us, cum_us, name in sorted(rows, reverse=True)[:top_n]:
        print("  {:7.2f} ms self  {:7.2f} ms cumulative  {}".format(self_us / 1000, cum_us / 1000, name))
    ours_ = [r for r in rows if r[2].lstrip().startswith("agent_payload")]
    print("  agent_payload.* modules: {}, {:.1f} ms self".format(len(ours_), sum(r[0] for r in ours_) / 1000))


def diag_syscalls(b: Bench, top: Path):
    out = top / "strace.count"
    run(["strace", "-f", "-c", "-o", str(out)] + b.fleet_cmd("run", "--rm", b.ref, "true"), env=b.cold_env,
        cwd="/")
    calls = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    total = sum(calls.values())
    groups = {"forks (clone/clone3/fork/vfork)": ("clone", "clone3", "fork", "vfork"),
              "execs (execve/execveat)": ("execve", "execveat"), "mounts (mount)": ("mount",),
              "umount2": ("umount2",), "pivot_root": ("pivot_root",), "unshare/setns": ("unshare", "setns"),
              "opens (open/openat)": ("open", "openat"), "stat family": ("stat", "lstat", "fstat", "newfstatat",
                                                                          "statx"),
              "reads / writes": ("read", "write"), "wait4": ("wait4",)}
    print("\n-- fleet syscalls per `run --rm busybox true` (strace -f -c, every process incl. shim and init): "
          "{} calls".format(total))
    for label, names in groups.items():
        print("  {:34s} {}".format(label, sum(calls.get(n, 0) for n in names)))
    print("  top: " + ", ".join("{} {}".format(n, c) for n, c in sorted(calls.items(), key=lambda x: -x[1])[:10]))


def diag_timeline(b: Bench, top: Path):
    out = top / "strace.exec"
    run(["strace", "-f", "--seccomp-bpf", "-ttt", "-qq", "-e", "trace=execve,clone,clone3,vfork,exit_group",
         "-o", str(out)] + b.fleet_cmd("run", "--rm", b.ref, "true"), env=b.cold_env, cwd="/")
    lines = out.read_text().splitlines()
    if not lines:
        return
    t0, first_pid = float(lines[0].split()[1]), lines[0].split()[0]
    print("\n-- fleet exec timeline (strace -f --seccomp-bpf; tracing inflates it, proportions are what count)")
    pending, end, last_exec, forks = {}, None, None, 0
    for line in lines:
        pid, ts, rest = line.split(None, 2)
        ms = (float(ts) - t0) * 1000
        if rest.startswith(("clone", "vfork")):
            forks += 1
        if rest.startswith("execve("):
            pending[pid] = rest.split("[", 1)[-1].split("]", 1)[0][:90]
        if (rest.startswith("execve(") or rest.startswith("<... execve resumed>")) and "<unfinished" not in rest:
            argv = pending.pop(pid, "?")
            if rest.rstrip().endswith("= 0"):
                last_exec = ms
                print("  {:8.1f} ms  pid {:>7}  exec [{}]".format(ms, pid, argv))
        elif rest.startswith("exit_group("):
            end = ms if pid == first_pid else end
            print("  {:8.1f} ms  pid {:>7}  {}".format(ms, pid, rest.split(")")[0] + ")"))
    if end and last_exec:
        print("  the container's command was exec'd at {:.1f} ms of {:.1f} ms ({:.0f}%); the front process then "
              "took {:.1f} ms more to return; {} clone/vfork calls".format(last_exec, end, 100 * last_exec / end,
                                                                        end - last_exec, forks))


def _warm_server(b: Bench):
    """The PID of the warm server of our pyz: comm fleet-warm, holding the pyz open (its lock), or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if not Path("/proc/{}/comm".format(entry)).read_text().startswith("fleet-warm"):
                continue
            fds = os.listdir("/proc/{}/fd".format(entry))
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/{}/fd/{}".format(entry, fd)) == str(b.pyz):
                    return int(entry)
            except OSError:
                pass
    return None


def diag_warm_timeline(b: Bench, top: Path):
    """Where a warm run's time goes: the server traced (strace -p) while one warm run is timed from outside."""
    b.fleet()  # leaves a live server (or finds one)
    server = _warm_server(b)
    if server is None:
        print("\n-- warm timeline: no warm server found for {}".format(b.pyz))
        return
    out = top / "strace.warm"
    tracer = subprocess.Popen(["strace", "-f", "-ttt", "-qq", "-e",
                               "trace=clone,clone3,execve,exit_group,mount,umount2,pivot_root,accept4,fsync",
                               "-o", str(out), "-p", str(server)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # attached once the tracee shows a TracerPid
            status = Path("/proc/{}/status".format(server)).read_text()
            if "TracerPid:\t0" not in status:
                break
            time.sleep(0.01)
        t0 = time.time()
        b.fleet()
        t_end = (time.time() - t0) * 1000
        time.sleep(0.2)  # the shim's and the teardown's last calls reach the trace file
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
    counts, marks, execd = {}, [], None
    for line in out.read_text().splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].replace(".", "").isdigit():
            continue
        ms = (float(parts[1]) - t0) * 1000
        call = parts[2].split("(", 1)[0].lstrip("<.").strip()
        if "resumed>" in parts[2]:
            call = parts[2].split("<... ", 1)[-1].split(" ", 1)[0]
        done = "unfinished" not in parts[2] and not (call == "execve" and not parts[2].rstrip().endswith("= 0"))
        if call.startswith(("clone", "accept4", "execve", "exit_group", "pivot_root")) and done:
            marks.append((ms, parts[0], parts[2][:70]))  # execs: only the one that succeeded (not PATH's misses)
        if call in ("mount", "umount2", "fsync", "clone", "clone3"):
            counts[call] = counts.get(call, 0) + 1
        if call == "execve" and done and execd is None:
            execd = ms
    print("\n-- warm run timeline (the server traced with strace -f -p; the front process timed from outside: it "
          "returned at {:.1f} ms; tracing inflates the server's side)".format(t_end))
    for ms, pid, text in marks:
        if 0 <= ms <= t_end + 200:
            print("  {:8.1f} ms  pid {:>7}  {}".format(ms, pid, text))
    print("  in the server's processes: " + ", ".join("{} {}".format(k, v) for k, v in sorted(counts.items())))
    if execd is not None:
        print("  the container's command was exec'd at {:.1f} ms; the front returned {:.1f} ms later".format(
            execd, t_end - execd))


# -- main ----------------------------------------------------------------------------------------------------


def require_tools():
    need = {"skopeo": "skopeo", "podman": "podman", "runc": "runc", "strace": "strace", "iptables": "iptables",
            "ip": "iproute2"}
    missing = [pkg for tool, pkg in need.items() if not shutil.which(tool)]
    if not os.path.exists(REGISTRY_BIN):
        missing.append("docker-registry")
    if missing:
        raise BenchError("missing: {} (install with: DEBIAN_FRONTEND=noninteractive apt-get install -y {})".format(
            ", ".join(missing), " ".join(missing)))
    for path in (PY, BUSYBOX):
        if not os.access(path, os.X_OK):
            raise BenchError("{} is missing (python3 / busybox-static packages)".format(path))
    if os.geteuid() != 0:
        raise BenchError("run as root: rootful podman, runc and the payload's namespaces need it")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--keep-image", action="store_true",
                    help="keep the built image in {} for the next run (default: remove it at the end)".format(CACHE))
    ap.add_argument("--no-record", action="store_true", help="print the row but do not append it to RESULTS.md")
    ap.add_argument("--no-diagnostics", action="store_true", help="skip the importtime/strace diagnostics")
    opts = ap.parse_args()
    if opts.rounds < 1:
        ap.error("--rounds must be at least 1")
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally block kills, unmounts and removes.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    try:
        require_tools()
        return bench(opts)
    except BenchError as exc:
        print("bench/start.py: " + str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/start.py: interrupted (cleaned up)", file=sys.stderr)
        return 130


def bench(opts) -> int:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image_dir, proc, b = None, None, None
    top = Path(tempfile.mkdtemp(prefix="fbs-"))  # short: see Bench.fleet_root
    before = host_snapshot()
    try:
        image_dir, n_applets = cached_image(arch)
        proc, port, _log = start_registry(top / "registry")
        b = Bench(top, port)
        run(["skopeo", "--policy", b.policy, "copy", "--quiet", "--dest-tls-verify=false",
             "oci:{}:bench".format(image_dir), "docker://" + b.ref], env=b.env)
        b.setup_fleet()
        b.setup_podman()
        podman_ns = b.podman_namespaces()
        fleet_ns = b.namespaces(b.fleet_cmd("run", "--rm", "--network", "none", b.ref), b.cold_env, cwd="/")
        b.setup_runc(image_dir / "layer.tar.gz", [t for t in podman_ns if t != "user"])
        runtime = "runc, as crun refuses this hybrid-cgroup host"
        if not b.runtime:
            runtime = subprocess.run(b.podman_cmd("info", "--format", "{{.Host.OCIRuntime.Name}}"), env=b.env,
                                     capture_output=True, text=True).stdout.strip()
        print("namespaces created: podman --network none: {}; fleet: {}".format(
            " ".join(podman_ns), " ".join(fleet_ns)), flush=True)
        tools = list(TOOLS)
        bridge_na = None
        for tool in tools:  # warm-up (untimed): binaries and modules into the page cache; the bridge tried
            try:
                getattr(b, tool.replace("-", "_"))()
            except BenchError as exc:
                if tool != "podman-bridge":
                    raise
                bridge_na = "podman's default bridge failed here: " + str(exc).splitlines()[-1][:200]
                print(bridge_na, flush=True)
        if bridge_na:
            tools.remove("podman-bridge")
        print("load average before the rounds: {:.2f} {:.2f} {:.2f} ({} CPUs)".format(*os.getloadavg(),
                                                                                 os.cpu_count()), flush=True)
        times = {t: [] for t in tools}
        for i in range(opts.rounds):
            k = i % len(tools)
            for tool in tools[k:] + tools[:k]:  # rotate, so order effects hit every tool alike
                times[tool].append(getattr(b, tool.replace("-", "_"))())
            print("round {:2d}: ".format(i + 1) + "  ".join("{} {:.1f} ms".format(t, times[t][-1] * 1000)
                                                            for t in tools), flush=True)
        if not opts.no_diagnostics:
            diag_imports(b)
            diag_syscalls(b, top)
            diag_timeline(b, top)
            diag_warm_timeline(b, top)
    finally:
        if b is not None:
            b.cleanup_runc()
        if proc is not None:
            stop(proc)
        killed = kill_ours(top)
        if b is not None:
            b.cleanup_podman()
        unmount_under(top)
        shutil.rmtree(top, ignore_errors=True)
        undone = host_restore(before)
        if killed or undone:
            print("cleanup: killed {} (ours by root/cwd/argv/env); undid {}".format(
                killed or "nothing", "; ".join(undone) or "nothing"), flush=True)
        if image_dir is not None and not opts.keep_image:
            shutil.rmtree(image_dir, ignore_errors=True)
    med = {t: statistics.median(v) * 1000 for t, v in times.items()}
    if bridge_na:
        bridge = "podman bridge n/a ({})".format(bridge_na)
        rbridge = "fleet-bridge/podman-bridge n/a"
    else:
        bridge = "podman bridge {:.1f} ms".format(med["podman-bridge"])
        rbridge = "fleet-bridge/podman-bridge {:.2f}x (target <= 0.33x), cold {:.2f}x".format(
            med["fleet-bridge"] / med["podman-bridge"], med["fleet-bridge-cold"] / med["podman-bridge"])
    line = ("| {date} | start | busybox `true` ({n} applets, static), {r} rounds, fleet ns: {fns}, the zipapp "
            "(`python3 -S -E <sha>.pyz`) | fleet --network none {f:.1f} ms | fleet bridge {fb:.1f} ms | "
            "cold (FLEET_WARM=0): --network none {fc:.1f} ms, bridge {fbc:.1f} ms | "
            "podman --network none ({rt}, {drv}) {pn:.1f} ms | {bridge} | runc {rc:.1f} ms | "
            "fleet/podman-none {r1:.2f}x (target <= 0.25x), cold {r1c:.2f}x | {rbridge} | fleet/runc {r3:.2f}x | "
            "python3 -S -E floor {py:.1f} ms; warm runs that found a server: {wh}/{wr}; "
            "fleet --rm container still present after return: {ling}/{lr} |").format(
        date=datetime.date.today(), n=n_applets, r=opts.rounds, fns=" ".join(fleet_ns), f=med["fleet"],
        fb=med["fleet-bridge"], fc=med["fleet-cold"], fbc=med["fleet-bridge-cold"],
        r1c=med["fleet-cold"] / med["podman-none"],
        rt=runtime, drv=b.driver, pn=med["podman-none"], bridge=bridge, rc=med["runc"],
        r1=med["fleet"] / med["podman-none"], rbridge=rbridge, r3=med["fleet"] / med["runc"], py=med["python"],
        ling=b.lingering, lr=4 * opts.rounds, wh=b.warm_hits, wr=b.warm_runs)
    print("\nmedians: " + "  ".join("{} {:.1f} ms".format(t, v) for t, v in med.items()))
    print(line)
    if not opts.no_record:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
