"""VM lab hosts: a Debian guest per suite under qemu, booted from a root filesystem that debootstrap builds once.

Per suite the cache holds <cache_dir>/vm/<suite>-<key>/ (key = suite + package list + recipe): a raw ext4 image
made with `mkfs.ext4 -d`, the kernel and the initrd taken from it. Each lab copies the image (sparse) into its
state_dir, writes the guest's own files into the copy with debugfs (hostname, root's authorized_keys, sshd host key,
/etc/fleet/daemon.json) and boots it with qemu: KVM when /dev/kvm works and a KVM guest prints on its serial console,
TCG otherwise; user networking with sshd forwarded to a loopback port. Nothing fleet-specific runs in the guest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from fleet.errors import UsageError

from .state import LabError, run, write_atomic, write_json

Log = Callable[[str], None]

QEMU = "/usr/bin/qemu-system-x86_64"
PACKAGES = ("systemd", "systemd-sysv", "openssh-server", "python3", "iproute2", "linux-image-amd64", "udev", "kmod",
            "ifupdown", "nftables", "libpam-systemd", "dbus")
RECIPE = "fleet-lab-vm/1"              # bump when _configure_rootfs changes what goes into the image
IMAGE_SIZE = "4G"                      # sparse; room for container images in the guest
MEMORY_MB = 1536
SMP = 2
GUEST_ADDRESS = "10.0.2.15"
KVM_PROBE_SECONDS = 20.0               # a KVM guest that printed nothing by then hangs (seen on nested hosts)
BOOT_TIMEOUT = 900.0                   # TCG on a busy 2-core machine
POWEROFF_TIMEOUT = 60.0
SUITE_RE = re.compile(r"[a-z][a-z0-9-]{1,31}")
APPEND = "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=10"

_INTERFACES = """# fleet lab VM: qemu user networking, static (minbase has no DHCP client)
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address {address}/24
    gateway 10.0.2.2
"""

# sshd reads /etc/ssh/sshd_config.d/*.conf first: only the per-image ed25519 key; no DNS lookups (the lab has none).
_SSHD_DROPIN = "HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n"

# Units that would slow a TCG boot or reach out to the Internet (apt's timers) or wait on a serial login.
_MASKED = ("serial-getty@ttyS0.service", "getty@tty1.service", "apt-daily.timer", "apt-daily-upgrade.timer",
           "e2scrub_all.timer", "e2scrub_reap.service")


def parse_suites(text: str) -> list[str]:
    """'bookworm,trixie' -> ['bookworm', 'trixie'] (order kept, duplicates dropped); UsageError on a bad name."""
    suites: list[str] = []
    for part in text.split(","):
        s = part.strip()
        if not s:
            continue
        if not SUITE_RE.fullmatch(s):
            raise UsageError("--vm: {!r} is not a Debian suite name (e.g. bookworm)".format(s))
        if not os.path.exists("/usr/share/debootstrap/scripts/" + s):
            raise UsageError("--vm: debootstrap does not know the suite {!r}".format(s))
        if s not in suites:
            suites.append(s)
    if not suites:
        raise UsageError("--vm needs at least one Debian suite, e.g. --vm bookworm")
    return suites


def host_name(suite: str) -> str:
    """The lab host name of a suite's VM: vm-<suite>."""
    return "vm-" + suite


def base_key(suite: str, packages=PACKAGES) -> str:
    """Cache key of a suite's base image: suite, package list and recipe."""
    return hashlib.sha256("{}\n{}\n{}".format(RECIPE, suite, ",".join(sorted(packages))).encode()).hexdigest()[:16]


def base_dir(cache_dir: Path, suite: str) -> Path:
    """<cache_dir>/vm/<suite>-<key>: disk.img, vmlinuz, initrd.img, build.json."""
    return Path(cache_dir) / "vm" / "{}-{}".format(suite, base_key(suite))


def apt_mirror(sources: str = "/etc/apt/sources.list") -> str:
    """The Debian mirror this machine's apt uses (first non-security deb URI), else deb.debian.org."""
    texts = []
    for p in [Path(sources)] + sorted(Path(sources + ".d").glob("*")):
        with contextlib.suppress(OSError):
            texts.append(p.read_text())
    return mirror_from_sources("\n".join(texts))


def mirror_from_sources(text: str) -> str:
    """The first http(s) Debian archive URI in sources.list or deb822 text that is not the security archive."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        uris = []
        if words[:1] == ["deb"]:
            uris = [w for w in words[1:] if "://" in w][:1]
        elif words[:1] == ["URIs:"]:
            uris = words[1:]
        for uri in uris:
            if uri.startswith(("http://", "https://")) and "security" not in uri:
                return uri.rstrip("/")
    return "http://deb.debian.org/debian"


# ----------------------------------------------------------------------------------------------- base image build

def ensure_base(cache_dir: Path, suite: str, log: Log) -> Path:
    """Build (once) the suite's base image under the cache; returns its directory. Locked against a parallel build;
    built in a temporary directory that is renamed into place when complete."""
    final = base_dir(cache_dir, suite)
    if (final / "build.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(str(final) + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "build.json").exists():
            return final
        work = Path(tempfile.mkdtemp(prefix=".build-{}-".format(suite), dir=str(final.parent)))
        try:
            meta = _build(work, suite, log)
            write_json(work / "build.json", meta)
            os.replace(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log("built VM base image {}: debootstrap {:.0f}s, image {:.0f}s".format(final, meta["debootstrap_seconds"],
                                                                         meta["image_seconds"]))
    return final


def _build(work: Path, suite: str, log: Log) -> dict:
    root = work / "root"
    mirror = apt_mirror()
    log("debootstrap {} from {} (a few minutes, once per suite)".format(suite, mirror))
    t0 = time.monotonic()
    proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), suite, str(root),
                           mirror], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0:
        tail = proc.stdout.strip()[-1500:]
        with contextlib.suppress(OSError):
            tail += "\n" + (root / "debootstrap" / "debootstrap.log").read_text(errors="replace")[-1500:]
        raise LabError("debootstrap {} from {} failed ({}): {}".format(suite, mirror, proc.returncode, tail))
    t1 = time.monotonic()
    _configure_rootfs(root)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise LabError("debootstrap {} made no kernel/initrd in /boot".format(suite))
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrds[-1], work / "initrd.img")
    run(["mkfs.ext4", "-q", "-F", "-L", "fleetvm", "-d", str(root), str(work / "disk.img"), IMAGE_SIZE])
    shutil.rmtree(root)
    return {"suite": suite, "packages": list(PACKAGES), "recipe": RECIPE, "mirror": mirror,
            "kernel": kernels[-1].name, "debootstrap_seconds": round(t1 - t0, 1),
            "image_seconds": round(time.monotonic() - t1, 1)}


def _configure_rootfs(root: Path) -> None:
    """What every lab guest of the suite shares: fstab, static networking, no DNS, sshd host key drop-in, masked
    slow/online units, no machine-id (each guest makes its own), no host keys (each image gets its own), no apt
    caches."""
    write_atomic(root / "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    write_atomic(root / "etc/network/interfaces", _INTERFACES.format(address=GUEST_ADDRESS))
    with contextlib.suppress(FileNotFoundError):
        (root / "etc/resolv.conf").unlink()
    write_atomic(root / "etc/resolv.conf", "# fleet lab VM: no upstream DNS (the lab is offline)\n")
    write_atomic(root / "etc/ssh/sshd_config.d/lab.conf", _SSHD_DROPIN)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for unit in _MASKED:
        link = root / "etc/systemd/system" / unit
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/dev/null", link)
    write_atomic(root / "etc/machine-id", "")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/cache/apt/*.bin"):
        for p in root.glob(pattern):
            p.unlink()


# ----------------------------------------------------------------------------------------------- per-lab disks

def vm_dir(state_dir: Path, name: str) -> Path:
    """state_dir/vms/<name>: disk.img, host key, serial.log, qemu.log, monitor.sock."""
    return Path(state_dir) / "vms" / name


def make_disk(state_dir: Path, base: Path, name: str, pubkey: str, daemon: dict) -> Path:
    """Copy the base image for one guest and write its own files into the copy; returns the guest's directory.

    The host key is made here, so its public half goes into the lab's known_hosts before the guest ever boots."""
    d = vm_dir(state_dir, name)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = d / "files"
    files.mkdir(exist_ok=True, mode=0o700)
    key = d / "ssh_host_ed25519_key"
    for p in (key, key.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", "root@" + name, "-f", str(key)])
    content = {"hostname": (name + "\n", 0o644),
               "hosts": ("127.0.0.1\tlocalhost\n127.0.1.1\t{0}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                         .format(name), 0o644),
               "authorized_keys": (pubkey.strip() + "\n", 0o600),
               "ssh_host_ed25519_key": (key.read_text(), 0o600),
               "ssh_host_ed25519_key.pub": (key.with_suffix(".pub").read_text(), 0o644),
               "daemon.json": (json.dumps(daemon, indent=2, sort_keys=True) + "\n", 0o644)}
    for fname, (text, mode) in content.items():
        write_atomic(files / fname, text, mode)
    tmp = d / ".disk.img.tmp"
    run(["cp", "--sparse=always", str(base / "disk.img"), str(tmp)])
    script = debugfs_script(files)
    proc = run(["debugfs", "-w", "-f", "-", str(tmp)], input=script)
    check = run(["debugfs", "-R", "cat /etc/hostname", str(tmp)]).stdout
    if check.strip() != name:
        raise LabError("writing {}'s files into {} failed: {}".format(name, tmp, proc.stderr.strip()[-1000:]))
    os.replace(tmp, d / "disk.img")
    shutil.rmtree(files)
    return d


def debugfs_script(files: Path) -> str:
    """debugfs commands that put the guest's own files (made in ``files``, with their modes) into its image."""
    placed = [("/etc", "hostname"), ("/etc", "hosts"), ("/root/.ssh", "authorized_keys"),
              ("/etc/ssh", "ssh_host_ed25519_key"), ("/etc/ssh", "ssh_host_ed25519_key.pub"),
              ("/etc/fleet", "daemon.json")]
    lines = ["mkdir /etc/fleet"]
    for where, fname in placed:
        lines += ["cd " + where, "rm " + fname, "write {} {}".format(files / fname, fname)]
    return "\n".join(lines) + "\n"


def known_hosts_line(port: int, pubkey_text: str) -> str:
    """A known_hosts line for a guest reached at 127.0.0.1:<port>."""
    kind, blob = pubkey_text.split()[:2]
    return "[127.0.0.1]:{} {} {}\n".format(port, kind, blob)


def inventory_group(vms: list[dict]) -> dict:
    """The inventory's `vm` group: each guest at 127.0.0.1 and its forwarded port."""
    return {"hosts": {v["name"]: {"ansible_host": "127.0.0.1", "ansible_port": v["port"]} for v in vms}}


# ----------------------------------------------------------------------------------------------- qemu

def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kvm_usable() -> bool:
    """True when /dev/kvm opens read-write."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def host_boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def choose_accels(kvm_ok: bool, verdict: Optional[dict], boot_id: str) -> list[str]:
    """Accelerators to try in order. KVM first when /dev/kvm works, unless a KVM guest already hung since this
    machine booted (the verdict recorded in the cache, keyed by the host's boot_id); TCG always as the fallback."""
    if not kvm_ok:
        return ["tcg"]
    if verdict and verdict.get("boot_id") == boot_id and verdict.get("kvm") is False:
        return ["tcg"]
    return ["kvm", "tcg"]


def qemu_argv(name: str, accel: str, base: Path, d: Path, port: int) -> list[str]:
    """The qemu command line of one guest."""
    cpu = ["-cpu", "host"] if accel == "kvm" else ["-cpu", "max"]
    return [QEMU, "-name", name, "-accel", accel] + cpu + [
        "-smp", str(SMP), "-m", str(MEMORY_MB), "-display", "none", "-vga", "none",
        "-kernel", str(base / "vmlinuz"), "-initrd", str(base / "initrd.img"), "-append", APPEND,
        "-drive", "file={},format=raw,if=virtio".format(d / "disk.img"),
        "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22".format(port), "-device", "virtio-net-pci,netdev=n0",
        "-device", "virtio-rng-pci", "-serial", "file:{}".format(d / "serial.log"),
        "-monitor", "unix:{},server=on,wait=off".format(d / "monitor.sock")]


def qemu_running(rec: dict) -> bool:
    """True when the recorded PID is a live qemu running this guest's disk (guards against PID reuse)."""
    pid = rec.get("pid")
    if not pid:
        return False
    try:
        if os.readlink("/proc/{}/exe".format(pid)) != os.path.realpath(QEMU):
            return False
        cmdline = Path("/proc/{}/cmdline".format(pid)).read_bytes().split(b"\0")
        stat = Path("/proc/{}/stat".format(pid)).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and \
        "file={},format=raw,if=virtio".format(rec["disk"]).encode() in cmdline


def _spawn(argv: list[str], d: Path) -> subprocess.Popen:
    for p in (d / "serial.log", d / "monitor.sock"):
        p.unlink(missing_ok=True)
    with open(d / "qemu.log", "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _serial_tail(d: Path, n: int = 1500) -> str:
    with contextlib.suppress(OSError):
        return (d / "serial.log").read_text(errors="replace")[-n:]
    return ""


def boot(rec: dict, base: Path, cache_dir: Path, log: Log) -> dict:
    """Start the guest's qemu (KVM if a KVM guest prints on its console within KVM_PROBE_SECONDS, else TCG);
    returns rec with pid, accel and boot_seconds filled in once its sshd answers."""
    d = Path(rec["dir"])
    verdict_file = Path(cache_dir) / "vm" / "kvm.json"
    try:
        verdict = json.loads(verdict_file.read_text())
    except (OSError, ValueError):
        verdict = None
    if not port_free(rec["port"]):
        rec["port"] = free_port()
    t0 = time.monotonic()
    for accel in choose_accels(kvm_usable(), verdict, host_boot_id()):
        proc = _spawn(qemu_argv(rec["name"], accel, base, d, rec["port"]), d)
        if accel == "kvm":
            if not _wait_serial_output(proc, d, KVM_PROBE_SECONDS):
                _kill(proc)
                write_json(verdict_file, {"boot_id": host_boot_id(), "kvm": False})
                log("{}: a KVM guest printed nothing in {:.0f}s; booting with TCG".format(rec["name"],
                                                                                          KVM_PROBE_SECONDS))
                continue
            write_json(verdict_file, {"boot_id": host_boot_id(), "kvm": True})
        rec.update(pid=proc.pid, accel=accel)
        try:
            wait_sshd(rec["port"], proc, d, rec["name"], BOOT_TIMEOUT)
        except BaseException:
            _kill(proc)
            raise
        rec["boot_seconds"] = round(time.monotonic() - t0, 1)
        log("{} up with {} in {:.0f}s (qemu pid {}, ssh 127.0.0.1:{})".format(rec["name"], accel,
                                                                            rec["boot_seconds"], proc.pid,
                                                                            rec["port"]))
        return rec
    raise LabError("{}: no accelerator booted it".format(rec["name"]))


def _wait_serial_output(proc: subprocess.Popen, d: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if (d / "serial.log").stat().st_size > 0:
                return True
        time.sleep(0.2)
    return False


def ssh_banner(port: int, timeout: float = 5.0) -> bool:
    """True when something at 127.0.0.1:<port> says SSH-2.0 (qemu accepts on the forwarded port before the guest
    listens, then closes: a TCP connect alone proves nothing)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_sshd(port: int, proc: Optional[subprocess.Popen], d: Path, name: str, timeout: float) -> None:
    """Poll until the guest's sshd answers; LabError (with the serial console's tail) if qemu exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not ssh_banner(port):
        if proc is not None and proc.poll() is not None:
            raise LabError("{}: qemu exited with status {}: {}\n{}".format(
                name, proc.returncode, (d / "qemu.log").read_text(errors="replace")[-1000:], _serial_tail(d)))
        if time.monotonic() > deadline:
            raise LabError("{}: sshd did not answer on 127.0.0.1:{} within {:.0f}s; serial console:\n{}".format(
                name, port, timeout, _serial_tail(d)))
        time.sleep(1.0)


def ensure(state_dir: Path, cache_dir: Path, suites: list[str], recorded: list[dict], pubkey: str, daemon: dict,
           log: Log, save: Callable[[list[dict]], None]) -> list[dict]:
    """Make and boot each suite's guest; a guest that runs is left alone, a recorded one that stopped boots again
    from its own disk (same host key). save(records) is called before each boot, so down finds every qemu."""
    by_name = {r["name"]: r for r in recorded}
    out = [r for r in recorded if r["suite"] not in suites]
    for suite in suites:
        name = host_name(suite)
        base = ensure_base(cache_dir, suite, log)
        rec = by_name.get(name)
        if rec and qemu_running(rec):
            out.append(rec)
            continue
        if not rec or not Path(rec["disk"]).exists():
            d = make_disk(state_dir, base, name, pubkey, daemon)
            rec = {"name": name, "suite": suite, "dir": str(d), "disk": str(d / "disk.img"), "base": str(base),
                   "port": free_port(), "pid": None,
                   "host_key": (d / "ssh_host_ed25519_key.pub").read_text().strip()}
        out.append(rec)
        save(out)
        boot(rec, base, cache_dir, log)
        save(out)
    return out


def _monitor(d: Path, command: str) -> bool:
    """Send one HMP command to the guest's monitor socket and wait for the prompt after it (closing the socket
    before qemu has read the line drops it); False when nobody answers."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5.0)
            s.connect(str(d / "monitor.sock"))
            s.sendall(command.encode() + b"\n")
            seen = b""
            while seen.count(b"(qemu)") < 2:        # the banner's prompt, then the one after our command
                chunk = s.recv(4096)
                if not chunk:
                    break
                seen += chunk
        return True
    except OSError:
        return False


def stop(recs: list[dict], log: Log, timeout: float = POWEROFF_TIMEOUT) -> None:
    """Power the guests off (ACPI power button through the monitor), wait up to timeout, then SIGTERM and SIGKILL
    whatever qemu is left, each by its recorded PID."""
    live = [r for r in recs if qemu_running(r)]
    for r in live:
        _monitor(Path(r["dir"]), "system_powerdown")
    left = _wait_gone(live, timeout)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not left:
            break
        for r in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r["pid"], sig)
        left = _wait_gone(left, wait)
    for r in live:
        log("stopped {} (qemu pid {})".format(r["name"], r["pid"]))


def _wait_gone(recs: list[dict], timeout: float) -> list[dict]:
    """Wait up to timeout for the guests' qemus to exit (reaping our own children); returns those still running."""
    deadline = time.monotonic() + timeout
    while True:
        for r in recs:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(r["pid"], os.WNOHANG)
        recs = [r for r in recs if qemu_running(r)]
        if not recs or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


def describe(recs: list[dict]) -> list[dict]:
    """Status rows of the guests with a live 'running' check."""
    return [{"name": r["name"], "suite": r["suite"], "address": "127.0.0.1", "port": r["port"],
             "pid": r.get("pid"), "accel": r.get("accel"), "running": qemu_running(r)} for r in recs]
