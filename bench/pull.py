#!/usr/bin/env python3
"""Pull speed: the payload's `pull` against `podman pull` and `skopeo copy`, from a local registry.

A ~100 MB, 4-layer gzip OCI image (incompressible data, compressible text, ~3000 small files, a few
symlinks, a hardlink and whiteouts) is built deterministically into /var/cache/fleet-bench/, pushed with
skopeo into Debian's docker-registry started on a free 127.0.0.1 port, then pulled N times, interleaved
(the order rotates each round), each time into a fresh, empty store:

  fleet   `python3 -S -E -m agent_payload pull` (as on a host: system python, stdlib only), private
          FLEET_ROOT and FLEET_CONFIG_DIR; downloads, verifies and unpacks every layer.
  podman  `podman pull` into a private --root/--runroot (overlay driver, vfs if overlay fails); also unpacks.
  skopeo  `skopeo copy docker://... oci:DIR` (blobs only: the I/O floor, nothing is unpacked).
  warm    the same fleet pull again on the populated store (should cost one manifest request; the
          registry's access log counts the requests it really made).

Page cache is flushed of dirty data (sync) between runs, outside the timings.  Prints the medians and
ratios, and each tool's peak RSS (wait4's ru_maxrss: the process and the children it reaped), and appends
one row to bench/RESULTS.md.  Targets: fleet/podman <= 0.4x, fleet/skopeo <= 2.5x.

    .venv/bin/python bench/pull.py [--rounds 5] [--keep-image] [--no-record] [--payload-dir DIR]

--payload-dir times another copy of the payload, e.g. the last commit's pull engine against the working tree's:
`mkdir /tmp/head && git archive HEAD agent_payload | tar -x -C /tmp/head`.

Needs root, skopeo, /usr/bin/docker-registry and podman (`apt-get install -y podman docker-registry skopeo`).
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
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path("/var/cache/fleet-bench")
REGISTRY_BIN = "/usr/bin/docker-registry"
REPO, TAG = "bench/big", "latest"
PY = "/usr/bin/python3"  # what the payload runs under on a Debian host
MTIME = 1700000000  # fixed, so the layers (and their digests) are reproducible
MiB = 1 << 20
# Loopback only: never through an http_proxy from the environment (the tools get an env without one too).
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
# Rootful podman creates this shared IPAM run dir whatever its config says; removed again if we created it.
PODMAN_RUN_DIRS = ("/run/containers/networks", "/run/containers")

# Everything that shapes the image; its hash names the cache entry, so changing it rebuilds.
SPEC = {"version": 1, "seed": 20261128, "small_files": [1500, 1500], "small_kib": [1, 20],
        "random_files": 5, "random_mib": 8, "text_files": 4, "text_mib": 6, "overwrites": 50, "whiteouts": 20,
        "gzip_level": 6}


class BenchError(Exception):
    """A precondition or a tool failed; the message says which and why."""


# -- building the image ------------------------------------------------------------------------------------


class _HashingWriter:
    """Hashes (and counts) the uncompressed tar stream on its way into gzip: the layer's diff_id."""

    def __init__(self, inner):
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.inner.write(data)


def _info(name, kind=tarfile.REGTYPE, size=0, mode=0o644, target=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, mode, MTIME, target
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def _small_files(tar, rng, prefix, count, words):
    """``count`` files of 1-20 KiB in 2 levels of dirs; half incompressible, half text. Returns their paths."""
    lo, hi = SPEC["small_kib"]
    paths, made = [], set()
    for i in range(count):
        d = "{}/{:02d}/{:02d}".format(prefix, i % 30, (i // 30) % 10)
        for j in range(2, len(d.split("/")) + 1):
            sub = "/".join(d.split("/")[:j])
            if sub not in made:
                made.add(sub)
                tar.addfile(_info(sub, tarfile.DIRTYPE, mode=0o755))
        size = rng.randint(lo * 1024, hi * 1024)
        if i % 2:
            data = rng.randbytes(size)
        else:
            data = (" ".join(rng.choices(words, k=size // 4)) + "\n").encode()[:size]
        path = "{}/f{:05d}.{}".format(d, i, "bin" if i % 2 else "txt")
        tar.addfile(_info(path, size=len(data)), io.BytesIO(data))
        paths.append(path)
    return paths


def _write_layer(blobs, fill):
    """Write one gzip layer via ``fill(tar)`` -> (descriptor, diff_id, uncompressed size, regular files)."""
    tmp = blobs / "layer.tmp"
    with open(tmp, "wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=SPEC["gzip_level"])
        hw = _HashingWriter(gz)
        with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            files = fill(tar)
        gz.close()
    digest = _sha256_file(tmp)
    tmp.rename(blobs / digest)
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest,
            "size": (blobs / digest).stat().st_size}
    return desc, "sha256:" + hw.sha.hexdigest(), hw.size, files


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def _put_json(blobs, obj):
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return "sha256:" + digest, len(data)


def build_image(out: Path, arch: str) -> dict:
    """Build the OCI layout into ``out`` (must not exist) and return its summary (also saved as bench.json)."""
    rng = random.Random(SPEC["seed"])
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(4000)]
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    n1, n4 = SPEC["small_files"]
    base_paths = []

    def base(tar):
        base_paths.extend(_small_files(tar, rng, "usr/share/bench", n1, words))
        tar.addfile(_info("usr/share/bench/latest", tarfile.SYMTYPE, mode=0o777, target="00/00"))
        tar.addfile(_info("usr/share/bench/abs-link", tarfile.SYMTYPE, mode=0o777, target="/usr/share/bench/00"))
        tar.addfile(_info("usr/share/bench/hardlink", tarfile.LNKTYPE, target=base_paths[0]))
        return n1 + 1

    def randoms(tar):
        tar.addfile(_info("opt", tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_info("opt/blob", tarfile.DIRTYPE, mode=0o755))
        for i in range(SPEC["random_files"]):
            data = rng.randbytes(SPEC["random_mib"] * MiB)
            tar.addfile(_info("opt/blob/r{}.bin".format(i), size=len(data)), io.BytesIO(data))
        return SPEC["random_files"]

    def text(tar):
        lines = [" ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n" for _ in range(20000)]
        for d in ("srv", "srv/text"):
            tar.addfile(_info(d, tarfile.DIRTYPE, mode=0o755))
        for i in range(SPEC["text_files"]):
            buf, size = [], 0
            while size < SPEC["text_mib"] * MiB:
                chunk = "".join(rng.choices(lines, k=1000))
                buf.append(chunk)
                size += len(chunk)
            data = "".join(buf).encode()[:SPEC["text_mib"] * MiB]
            tar.addfile(_info("srv/text/t{}.log".format(i), size=len(data)), io.BytesIO(data))
        return SPEC["text_files"]

    def app(tar):
        count = len(_small_files(tar, rng, "app", n4, words))
        picked = rng.sample(base_paths[1:], SPEC["overwrites"] + SPEC["whiteouts"])
        for path in picked[:SPEC["overwrites"]]:  # changes to lower files
            data = rng.randbytes(rng.randint(1024, 4096))
            tar.addfile(_info(path, size=len(data)), io.BytesIO(data))
        for path in picked[SPEC["overwrites"]:]:  # deletions of lower files
            head, name = path.rsplit("/", 1)
            tar.addfile(_info("{}/.wh.{}".format(head, name)))
        return count + SPEC["overwrites"]

    layers, diff_ids, sizes, files = [], [], [], []
    for fill in (base, randoms, text, app):
        desc, diff_id, size, nfiles = _write_layer(blobs, fill)
        layers.append(desc)
        diff_ids.append(diff_id)
        sizes.append(size)
        files.append(nfiles)
    config = {"architecture": arch, "os": "linux", "created": "2023-11-14T22:13:20Z",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "fleet bench/pull.py layer {}".format(i)}
                          for i in range(len(layers))]}
    cfg_digest, cfg_size = _put_json(blobs, config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                           "size": cfg_size}, "layers": layers}
    man_digest, man_size = _put_json(blobs, manifest)
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (out / "index.json").write_text(json.dumps(index))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    summary = {"manifest": man_digest, "layers": len(layers), "unpacked": sum(sizes),
               "compressed": sum(d["size"] for d in layers), "files": sum(files)}
    (out / "bench.json").write_text(json.dumps(summary))
    return summary


def cached_image(arch: str) -> tuple:
    """Return (OCI layout dir, summary), building it first unless an intact cached copy exists."""
    key = hashlib.sha256(json.dumps(dict(SPEC, arch=arch), sort_keys=True).encode()).hexdigest()[:12]
    out = CACHE / "pull-image-{}".format(key)
    try:
        summary = json.loads((out / "bench.json").read_text())
        blobs = out / "blobs" / "sha256"
        manifest = json.loads((blobs / summary["manifest"].split(":")[1]).read_text())
        if all((blobs / d["digest"].split(":")[1]).stat().st_size == d["size"]
               for d in [manifest["config"]] + manifest["layers"]):
            return out, summary
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: rebuild
    shutil.rmtree(out, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        print("building the bench image (once; cached in {}) ...".format(out), flush=True)
        summary = build_image(tmp / "oci", arch)
        (tmp / "oci").rename(out)  # atomic: a cache entry is complete or absent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, summary


# -- the registry, the tools, cleanup ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(workdir: Path):
    """Start docker-registry on a free loopback port -> (Popen, port, access log path); 3 tries for the port race."""
    for attempt in range(3):
        try:
            return _start_registry(workdir / "try{}".format(attempt))
        except BenchError:
            if attempt == 2:
                raise


def _start_registry(workdir: Path):
    port = free_port()
    (workdir / "storage").mkdir(parents=True)
    cfg = workdir / "config.yml"
    cfg.write_text("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\n"
                   "storage:\n  filesystem:\n    rootdirectory: {}\n"
                   "http:\n  addr: 127.0.0.1:{}\n".format(workdir / "storage", port))
    log = workdir / "registry.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                LOOPBACK.open("http://127.0.0.1:{}/v2/".format(port), timeout=1).close()
                if proc.poll() is None:  # the answer came from our registry, not from a port thief
                    return proc, port, log
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("docker-registry did not come up on 127.0.0.1:{}:\n{}".format(
                    port, log.read_text(errors="replace")[-2000:]))
            time.sleep(0.05)
    except BaseException:  # Ctrl-C included: never leave it running
        stop(proc)
        raise


def stop(proc):
    """Terminate a process we started, by its PID; SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(cmd, env=None, cwd=None, timeout=900) -> tuple:
    """Run ``cmd`` to completion -> (wall seconds, stdout, peak RSS in MB); a failure raises BenchError with its
    output's tail.  The peak RSS is wait4's ru_maxrss: the largest of the process and the children it reaped."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(timeout, p.kill)  # by its PID: only the process we started
        timer.start()
        try:
            _pid, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise BenchError("exit {}: {}\n{}".format(p.returncode, " ".join(map(str, cmd)),
                                                  (stdout + stderr).decode(errors="replace")[-3000:]))
    return elapsed, stdout.decode(errors="replace"), usage.ru_maxrss / 1024


def _unescape(field: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal (\\040 ...)."""
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(esc, ch)
    return field


def unmount_under(top: Path):
    """Unmount every mount at or below ``top`` (deepest first, by path): podman's overlay store mounts some."""
    prefix = str(top).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [_unescape(line.split()[1]) for line in f]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def remove_tree(path: Path, top: Path):
    unmount_under(top)
    shutil.rmtree(path, ignore_errors=True)


def count_files(tree: Path) -> int:
    return sum(len(files) for _d, _s, files in os.walk(tree))


def registry_requests(log: Path, start: int) -> list:
    """The access-log request lines ("GET /v2/... 200") the registry wrote after byte ``start``."""
    time.sleep(0.2)  # the registry writes its access log line after the response
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        parts = line.split('"')
        if len(parts) > 2 and " /v2" in parts[1]:
            out.append(parts[1].rsplit(" ", 1)[0] + " " + parts[2].split()[0])
    return out


def require_tools():
    missing = [t for t, p in (("skopeo", shutil.which("skopeo")), ("podman", shutil.which("podman")),
                              ("docker-registry", os.path.exists(REGISTRY_BIN) and REGISTRY_BIN),
                              ("python3", os.path.exists(PY) and PY)) if not p]
    if missing:
        raise BenchError("missing: {} (install with: DEBIAN_FRONTEND=noninteractive apt-get install -y {})".format(
            ", ".join(missing), " ".join(m for m in missing if m != "python3")))
    if os.geteuid() != 0:
        raise BenchError("run as root: podman's rootful store and the payload's snapshots need it")


# -- the bench ---------------------------------------------------------------------------------------------


class Bench:
    """One bench run: a temp tree holding the registry, the tools' configs and every round's stores."""

    def __init__(self, top: Path, port: int, driver: str, payload_dir: Path):
        self.top, self.port, self.driver, self.payload_dir = top, port, driver, payload_dir
        self.ref = "127.0.0.1:{}/{}:{}".format(port, REPO, TAG)
        conf = top / "conf"
        conf.mkdir(exist_ok=True)
        (conf / "policy.json").write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        (conf / "registries.conf").write_text('unqualified-search-registries = []\n\n[[registry]]\n'
                                              'location = "127.0.0.1:{}"\ninsecure = true\n'.format(port))
        (conf / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=20000", "nproc=32768"]\n\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
        self.write_storage_conf(driver)
        # Every containers/* tool reads only these files: the system's store and registries stay untouched.
        self.env = dict(CLEAN_ENV, CONTAINERS_CONF=str(conf / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(conf / "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(conf / "registries.conf"))
        self.policy = str(conf / "policy.json")

    def write_storage_conf(self, driver):
        self.driver = driver
        (self.top / "conf" / "storage.conf").write_text(
            '[storage]\ndriver = "{}"\ngraphroot = "{}"\nrunroot = "{}"\n'.format(
                driver, self.top / "podman-default" / "root", self.top / "podman-default" / "run"))

    def fresh(self, name) -> Path:
        d = Path(tempfile.mkdtemp(prefix=name + "-", dir=self.top))
        return d

    def fleet(self, expect_digest, min_files, warm=False, log=None):
        """Cold fleet pull into a fresh root (checked: digest, unpacked file count); -> (cold s, warm s, reqs,
        peak RSS MB of the cold pull)."""
        d = self.fresh("fleet")
        try:
            (d / "etc").mkdir()
            (d / "etc" / "daemon.json").write_text(json.dumps({"insecure-registries": ["127.0.0.1:{}".format(
                self.port)]}))
            env = dict(CLEAN_ENV, FLEET_ROOT=str(d / "root"), FLEET_CONFIG_DIR=str(d / "etc"))
            cmd = [PY, "-S", "-E", "-m", "agent_payload", "pull", self.ref]
            cold, out, rss = run(cmd, env=env, cwd=self.payload_dir)
            if expect_digest not in out:
                raise BenchError("fleet pull reported another digest (want {}):\n{}".format(expect_digest, out))
            unpacked = count_files(d / "root" / "snapshots")
            if unpacked < min_files:
                raise BenchError("fleet pull unpacked only {} files, the image has {}".format(unpacked, min_files))
            warm_s, reqs = None, None
            if warm:
                os.sync()
                mark = log.stat().st_size
                warm_s = run(cmd, env=env, cwd=self.payload_dir)[0]
                reqs = registry_requests(log, mark)
            return cold, warm_s, reqs, rss
        finally:
            remove_tree(d, self.top)

    def podman(self, driver=None):
        d = self.fresh("podman")
        try:
            cmd = ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"),
                   "--storage-driver", driver or self.driver, "pull", "--quiet", "--tls-verify=false",
                   "--signature-policy", self.policy, self.ref]
            return run(cmd, env=self.env)[::2]
        finally:
            remove_tree(d, self.top)

    def skopeo(self):
        d = self.fresh("skopeo")
        try:
            cmd = ["skopeo", "--policy", self.policy, "copy", "--quiet", "--src-tls-verify=false",
                   "docker://" + self.ref, "oci:{}:bench".format(d / "oci")]
            return run(cmd, env=self.env)[::2]
        finally:
            remove_tree(d, self.top)

    def pick_driver(self):
        """Overlay when podman can use it here (the fast path), else vfs; doubles as podman's warm-up."""
        try:
            self.podman("overlay")
            self.write_storage_conf("overlay")
        except BenchError as exc:
            print("podman's overlay driver failed here, using vfs:\n  {}".format(str(exc)[-400:]), flush=True)
            self.podman("vfs")
            self.write_storage_conf("vfs")


def manifest_digest(port) -> str:
    req = urllib.request.Request("http://127.0.0.1:{}/v2/{}/manifests/{}".format(port, REPO, TAG), method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with LOOPBACK.open(req, timeout=10) as resp:
        return resp.headers["Docker-Content-Digest"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep-image", action="store_true",
                    help="keep the built image in {} for the next run (default: remove it at the end)".format(CACHE))
    ap.add_argument("--no-record", action="store_true", help="print the row but do not append it to RESULTS.md")
    ap.add_argument("--payload-dir", type=Path, default=ROOT,
                    help="directory holding the agent_payload package to time (default: this checkout)")
    opts = ap.parse_args()
    if opts.rounds < 1:
        ap.error("--rounds must be at least 1")
    opts.payload_dir = opts.payload_dir.resolve()
    if not (opts.payload_dir / "agent_payload" / "__main__.py").is_file():
        ap.error("--payload-dir {}: no agent_payload/__main__.py there".format(opts.payload_dir))
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop the registry and unmount and remove.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    try:
        require_tools()
        return bench(opts)
    except BenchError as exc:
        print("bench/pull.py: " + str(exc), file=sys.stderr)
        return 1


def bench(opts) -> int:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image_dir = None
    top = Path(tempfile.mkdtemp(prefix="fleet-bench-pull-"))
    proc = None
    podman_dirs = [d for d in PODMAN_RUN_DIRS if not os.path.exists(d)]
    try:
        image_dir, info = cached_image(arch)
        proc, port, log = start_registry(top / "registry")
        b = Bench(top, port, "overlay", opts.payload_dir)
        print("pushing {} MB ({} MB gzip, {} files, {} layers) to 127.0.0.1:{} ...".format(
            info["unpacked"] // 10**6, info["compressed"] // 10**6, info["files"], info["layers"], port), flush=True)
        run(["skopeo", "--policy", b.policy, "copy", "--quiet", "--dest-tls-verify=false",
             "oci:{}:bench".format(image_dir), "docker://" + b.ref], env=b.env)
        digest = manifest_digest(port)
        # Warm-ups (untimed): the registry's blobs and every tool's binaries/modules reach the page cache.
        b.skopeo()
        b.fleet(digest, info["files"])
        b.pick_driver()
        print("load average before the rounds: {:.2f} {:.2f} {:.2f} ({} CPUs)".format(*os.getloadavg(),
                                                                                 os.cpu_count()), flush=True)
        tools = ["fleet", "podman", "skopeo"]
        times = {t: [] for t in tools + ["warm"]}
        rss = {t: [] for t in tools}
        warm_reqs = []
        for i in range(opts.rounds):
            for tool in tools[i % 3:] + tools[:i % 3]:  # rotate, so order effects hit every tool alike
                os.sync()
                if tool == "fleet":
                    cold, warm, reqs, peak = b.fleet(digest, info["files"], warm=True, log=log)
                    times["fleet"].append(cold)
                    times["warm"].append(warm)
                    warm_reqs = reqs
                else:
                    secs, peak = getattr(b, tool)()
                    times[tool].append(secs)
                rss[tool].append(peak)
            print("round {}: ".format(i + 1) + "  ".join("{} {:.3f} s".format(t, times[t][-1]) for t in times)
                  + "  peak RSS: " + "  ".join("{} {:.0f} MB".format(t, rss[t][-1]) for t in tools), flush=True)
    finally:
        if proc is not None:
            stop(proc)
        remove_tree(top, top)
        for d in podman_dirs:
            try:
                os.rmdir(d)  # only if still empty: never someone else's state
            except OSError:
                pass
        if image_dir is not None and not opts.keep_image:
            shutil.rmtree(image_dir, ignore_errors=True)
    med = {t: statistics.median(v) for t, v in times.items()}
    mem = {t: statistics.median(v) for t, v in rss.items()}
    print("warm re-pull made {} registry request(s): {}".format(len(warm_reqs), "; ".join(warm_reqs)))
    line = ("| {date} | pull | {layers} layers, {mb} MB unpacked / {gz} MB gzip, {files} files, {n} rounds | "
            "fleet {f:.3f} s | podman ({drv}) {p:.3f} s | skopeo (blobs only) {s:.3f} s | "
            "fleet/podman {rp:.2f}x (target <= 0.4x) | fleet/skopeo {rs:.2f}x (target <= 2.5x) | "
            "warm re-pull {w:.3f} s, {nreq} request(s) | peak RSS fleet {mf:.0f} MB, podman {mp:.0f} MB, "
            "skopeo {ms:.0f} MB |").format(
        date=datetime.date.today(), layers=info["layers"], mb=info["unpacked"] // 10**6,
        gz=info["compressed"] // 10**6, files=info["files"], n=opts.rounds, f=med["fleet"], drv=b.driver,
        p=med["podman"], s=med["skopeo"], rp=med["fleet"] / med["podman"], rs=med["fleet"] / med["skopeo"],
        w=med["warm"], nreq=len(warm_reqs), mf=mem["fleet"], mp=mem["podman"], ms=mem["skopeo"])
    print(line)
    if not opts.no_record:
        results = ROOT / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# Benchmark results\n\nAppended by the scripts in bench/ "
                               "(medians of interleaved runs).\n\n")
        with open(results, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
