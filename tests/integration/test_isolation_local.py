"""`docker run` isolation defaults, proven from inside busybox containers run by the payload's runtime (root)."""

import os
import shutil
import subprocess
import sys

import pytest

from agent_payload import errors
from agent_payload.linux import libc
from agent_payload.runtime import caps, rootfs
from tests.helpers import runtime as local
from tests.helpers.runtime import _busybox_layer, _output, _run, _spec, needs_root

env = local.env  # the runtime fixture (private FLEET_ROOT, kills everything afterwards)

pytestmark = [pytest.mark.integration, needs_root]

# Docker's default set (0xa80425fb), CAP_MKNOD included: the device cgroup confines it (caps.DEFAULT)
DOCKER_DEFAULT_MASK = 0x00000000A80425FB
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\n"
         "wheel:x:10:root,alice\n"
         "audio:x:29:alice\n"
         "alice:x:1000:\n"
         "staff:x:50:\n"
         "nogroup:x:65534:\n")


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """busybox at the bottom; /etc/passwd and /etc/group (with supplementary memberships) on top."""
    base = tmp_path_factory.mktemp("isolayers")
    bottom, top = str(base / "bottom"), str(base / "top")
    _busybox_layer(bottom)
    os.makedirs(os.path.join(top, "etc"))
    os.makedirs(os.path.join(top, "tmp"))
    os.chmod(os.path.join(top, "tmp"), 0o1777)
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        with open(os.path.join(top, "etc", name), "w") as f:
            f.write(text)
    yield [bottom, top]
    shutil.rmtree(str(base), ignore_errors=True)


def _sh(rt, layers, script, **kw):
    """Run ``sh -c script``; returns (stdout lines, record)."""
    rec, code = _run(rt, layers, ["sh", "-c", script], **kw)
    assert code == 0, _output(rt, rec["id"])
    return _output(rt, rec["id"], "stdout").splitlines(), rec


def _status(lines):
    """``{"CapEff": int, ...}`` from /proc/<pid>/status lines."""
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            out[key] = int(value.strip(), 16)
        elif key == "NoNewPrivs":
            out[key] = int(value.strip())
    return out


def _mounts(lines):
    """``{mountpoint: (fstype, set(options))}`` from /proc/mounts lines prefixed with "M ". """
    out = {}
    for line in lines:
        if line.startswith("M "):
            _dev, point, fstype, opts = line[2:].split()[:4]
            out[point] = (fstype, set(opts.split(",")))
    return out


def test_default_isolation_from_inside(env, layers):
    script = "; ".join([
        "grep -E '^(Cap|NoNewPrivs)' /proc/1/status",
        "mkdir -p /mnt && mount -t tmpfs x /mnt 2>/dev/null && echo MOUNTED || echo mount-denied",
        "ip link add fleetx0 type bridge 2>/dev/null && echo LINKED || echo link-denied",
        "unshare -n true 2>/dev/null && echo NETNS || echo netns-denied",
        "(echo evil > /proc/sys/kernel/hostname) 2>/dev/null && echo WROTE || echo procsys-denied",
        "echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c) keys-bytes=$(cat /proc/keys | wc -c)",
        "stat -c 'keys %t, %T' /proc/keys",
        "echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline)",
        "echo exe=$(readlink /proc/1/exe)",
        "echo host=$(hostname)",
        "sed 's/^/CG /' /proc/self/cgroup",
        "echo ptmx=$(readlink /dev/ptmx) fd=$(readlink /dev/fd) stdin=$(readlink /dev/stdin)",
        "for d in null zero full random urandom tty; do stat -c \"DEV %n %t:%T %a\" /dev/$d; done",
        "stat -c 'SHM %a' /dev/shm",
        "ls /dev | tr '\\n' ' ' | sed 's/^/DEVS /'; echo",
        "sed 's/^/M /' /proc/mounts",
        "test -e {} && echo PAYLOAD-VISIBLE || echo payload-hidden".format(sys.executable),
        "test -e {} && echo REPO-VISIBLE || echo repo-hidden".format(os.path.dirname(caps.__file__)),
        "touch /sys/fs/cgroup/x 2>/dev/null && echo CGW || echo cgroup-ro",
    ])
    try:
        out, rec = _sh(env, layers, script)
    finally:  # had the capability drop failed (and the spec said host networking), the bridge would be on the host
        if os.path.exists("/sys/class/net/fleetx0"):
            subprocess.run(["ip", "link", "del", "fleetx0"], check=False)
    st = _status(out)
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == DOCKER_DEFAULT_MASK
    assert st["CapInh"] == 0 and st["CapAmb"] == 0 and st["NoNewPrivs"] == 0
    for proof in ("mount-denied", "link-denied", "netns-denied", "procsys-denied",
                  "payload-hidden", "repo-hidden", "cgroup-ro"):
        assert proof in out, (proof, out)
    assert "cmdline=sh -c " + script[:20] in "\n".join(out)
    assert "exe=/bin/busybox" in out
    assert "host=" + rec["id"][:12] in out
    cgroups = [line[3:] for line in out if line.startswith("CG ")]
    assert cgroups and all(line.split(":", 2)[2] == "/" for line in cgroups), cgroups
    assert "ptmx=pts/ptmx fd=/proc/self/fd stdin=/proc/self/fd/0" in out
    devs = {line.split()[1]: line.split()[2:] for line in out if line.startswith("DEV ")}
    assert devs == {"/dev/null": ["1:3", "666"], "/dev/zero": ["1:5", "666"], "/dev/full": ["1:7", "666"],
                    "/dev/random": ["1:8", "666"], "/dev/urandom": ["1:9", "666"], "/dev/tty": ["5:0", "666"]}
    listed = set(next(line for line in out if line.startswith("DEVS ")).split()[1:])
    assert listed == {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
                      "stdin", "stdout", "stderr"}
    m = _mounts(out)
    assert m["/"][0] == "overlay" and "rw" in m["/"][1]
    assert m["/proc"][0] == "proc" and {"nosuid", "nodev", "noexec"} <= m["/proc"][1]
    assert m["/dev"][0] == "tmpfs" and {"nosuid", "mode=755"} <= m["/dev"][1]
    assert m["/dev/pts"][0] == "devpts" and {"ptmxmode=666", "gid=5"} <= m["/dev/pts"][1]
    assert m["/dev/shm"][0] == "tmpfs" and "size=65536k" in m["/dev/shm"][1] and "SHM 1777" in out
    assert m["/dev/mqueue"][0] == "mqueue"
    assert "ro" in m["/sys"][1] and "ro" in m["/sys/fs/cgroup"][1]
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"):
        if path in m:
            assert "ro" in m[path][1], path
    for path in rootfs.MASKED_PATHS:
        host = "/" + path
        if os.path.isdir(host):
            assert m[host][0] == "tmpfs" and "ro" in m[host][1], host
        elif os.path.exists(host):
            assert m[host][0] == "tmpfs", "{}: a bind of the container's /dev/null (on its /dev tmpfs)".format(host)
    assert "kcore=0 keys-bytes=0" in out and "keys 1, 3" in out
    hierarchies = [p for p in m if p.startswith("/sys/fs/cgroup/")]
    assert hierarchies and all("ro" in m[p][1] for p in hierarchies)


def test_cap_add_with_network_none(env, layers):
    script = ("grep CapEff /proc/1/status; ip -o link | awk '{print \"LINK\", $2, $3}'; "
              "ip addr add 10.9.8.7/8 dev lo && echo addr-ok; ip -o addr show lo | grep -c 10.9.8.7")
    out, _ = _sh(env, layers, script, cap_add=["net_admin"], network="none")
    assert _status(out)["CapEff"] == DOCKER_DEFAULT_MASK | (1 << caps.CAP_NUMBERS["CAP_NET_ADMIN"])
    links = [line for line in out if line.startswith("LINK ")]
    assert len(links) == 1 and links[0].startswith("LINK lo: <LOOPBACK,UP")
    assert out[-2:] == ["addr-ok", "1"]  # an address on lo of its own, empty netns: the host is untouched


def test_cap_drop_all_and_drop_one(env, layers):
    out, _ = _sh(env, layers, "grep -E '^Cap' /proc/1/status; chown 1 /tmp 2>/dev/null && echo CHOWNED || echo no")
    st = _status(out)
    assert st["CapEff"] == DOCKER_DEFAULT_MASK and "CHOWNED" in out
    out, _ = _sh(env, layers, "grep -E '^Cap' /proc/1/status; chown 1 /tmp 2>/dev/null && echo CHOWNED || echo no",
                 cap_drop=["ALL"])
    st = _status(out)
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == 0 and out[-1] == "no"
    out, _ = _sh(env, layers, "grep CapBnd /proc/1/status", cap_drop=["CAP_CHOWN", "kill"], cap_add=["SYS_TIME"])
    want = DOCKER_DEFAULT_MASK & ~1 & ~(1 << 5) | (1 << caps.CAP_NUMBERS["CAP_SYS_TIME"])
    assert _status(out)["CapBnd"] == want


def test_privileged(env, layers):
    held = libc.capget()[1]
    host_extra = sorted(n for n in os.listdir("/dev") if n.startswith(("loop", "tty1", "kmsg")))
    script = ("grep -E '^Cap' /proc/1/status; mkdir -p /mnt && mount -t tmpfs x /mnt && echo mounted; "
              "touch /mnt/f && echo tmpfs-rw; sed 's/^/M /' /proc/mounts; ls /dev | sed 's/^/D /'; "
              "echo 1 > /proc/sys/kernel/ostype 2>/dev/null; echo procsys-write=$?")
    out, _ = _sh(env, layers, script, privileged=True)
    st = _status(out)
    assert st["CapEff"] == st["CapBnd"] == held, "everything the runtime holds"
    assert "mounted" in out and "tmpfs-rw" in out
    m = _mounts(out)
    assert "rw" in m["/sys"][1] and "/proc/kcore" not in m and "/proc/sys" not in m
    devs = {line[2:] for line in out if line.startswith("D ")}
    assert host_extra and set(host_extra) <= devs, "the host's devices are in a privileged container's /dev"
    assert "console" not in devs


def test_user_resolution(env, layers):
    script = "id; echo HOME=$HOME; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; touch /etc/x 2>/dev/null || echo ro"
    out, _ = _sh(env, layers, script, user="nobody")
    assert out[0] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    assert "HOME=/nonexistent" in out
    st = _status(out)
    assert st["CapEff"] == st["CapPrm"] == 0 and st["CapBnd"] == DOCKER_DEFAULT_MASK
    assert "ro" in out
    out, _ = _sh(env, layers, "id; echo HOME=$HOME", user="alice")
    assert out[0] == "uid=1000(alice) gid=1000(alice) groups=10(wheel),29(audio),1000(alice)"  # the kernel sorts them
    assert out[1] == "HOME=/home/alice"
    out, _ = _sh(env, layers, "id; echo HOME=$HOME", user="alice:staff", env=["HOME=/custom"])
    assert out == ["uid=1000(alice) gid=50(staff) groups=50(staff)", "HOME=/custom"]
    out, _ = _sh(env, layers, "id -u; id -g; echo HOME=$HOME", user="4242:4343")
    assert out == ["4242", "4343", "HOME=/"]
    out, _ = _sh(env, layers, "id")
    assert out[0] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    rec = env.create(_spec(layers, ["true"], user="ghost"))
    with pytest.raises(errors.FailedPrecondition,
                       match="unable to find user ghost: no matching entries in passwd file"):
        env.start(rec["id"])
    rec = env.create(_spec(layers, ["true"], user="alice:ghosts"))
    with pytest.raises(errors.FailedPrecondition, match="unable to find group ghosts: no matching entries in group"):
        env.start(rec["id"])


def test_user_lookup_stays_inside_the_rootfs(env, layers, tmp_path):
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("intruder:x:0:0::/:/bin/sh\n")
    evil = tmp_path / "evil"
    (evil / "etc").mkdir(parents=True)
    os.symlink(str(host_passwd), str(evil / "etc" / "passwd"))  # a host file, if it were resolved on the host
    rec = env.create(_spec(layers + [str(evil)], ["true"], user="intruder"))
    with pytest.raises(errors.FailedPrecondition, match="unable to find user intruder: no matching entries"):
        env.start(rec["id"])
    loop = tmp_path / "loop"
    (loop / "etc").mkdir(parents=True)
    os.symlink("/proc/1/root/etc/passwd", str(loop / "etc" / "passwd"))  # the container's own root: a loop
    rec = env.create(_spec(layers + [str(loop)], ["true"], user="alice"))
    with pytest.raises(errors.FailedPrecondition, match="cannot read /etc/passwd"):
        env.start(rec["id"])
    fifo = tmp_path / "fifo"
    (fifo / "etc").mkdir(parents=True)
    os.mkfifo(str(fifo / "etc" / "passwd"))
    rec = env.create(_spec(layers + [str(fifo)], ["true"], user="alice"))
    with pytest.raises(errors.FailedPrecondition, match="not a regular file"):
        env.start(rec["id"])


def test_pid1_is_the_command_with_only_stdio(env, layers):
    rec = env.create(_spec(layers, ["sleep", "1000"]))
    run = env.start(rec["id"])
    try:
        pid = run["pid"]
        fd_dir = "/proc/{}/fd".format(pid)
        targets = {int(fd): os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
        assert sorted(targets) == [0, 1, 2], targets  # PITFALLS 3.10: no host fd reaches the container
        assert targets[0] == "/dev/null" and targets[1].startswith("pipe:") and targets[2].startswith("pipe:")
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            assert f.read() == b"sleep\x001000\x00"
        with open("/proc/{}/status".format(pid)) as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert nspid[-1] == "1", "the command itself is PID 1 of its namespace"
        assert os.readlink("/proc/{}/exe".format(pid)).endswith("/busybox")
        for ns in ("pid", "mnt", "uts", "ipc", "cgroup", "net"):
            assert os.readlink("/proc/{}/ns/{}".format(pid, ns)) != os.readlink("/proc/self/ns/" + ns), ns
    finally:
        env.remove([rec["id"]], force=True)


def test_read_only_rootfs(env, layers):
    script = ("touch /x 2>/dev/null && echo ROOT-W || echo root-ro; "
              "touch /tmp/x 2>/dev/null && echo TMP-W || echo tmp-ro; "
              "touch /dev/shm/x && echo shm-rw; touch /dev/x && echo dev-rw; "
              "echo '10.0.0.1 db' >> /etc/hosts && echo hosts-rw; "
              "echo x >> /etc/resolv.conf && echo resolv-rw; echo y > /etc/hostname && echo hostname-rw; "
              "pwd")
    out, _ = _sh(env, layers, script, read_only=True, workdir="/made/for/ro")
    assert out == ["root-ro", "tmp-ro", "shm-rw", "dev-rw", "hosts-rw", "resolv-rw", "hostname-rw", "/made/for/ro"]


def test_no_new_privileges(env, layers):
    out, _ = _sh(env, layers, "grep NoNewPrivs /proc/self/status", no_new_privileges=True)
    assert _status(out)["NoNewPrivs"] == 1


def test_cgroup_namespace_view(env, layers):
    out, _ = _sh(env, layers, "cat /proc/self/cgroup; ls /sys/fs/cgroup | sed 's/^/H /'")
    lines = [line for line in out if not line.startswith("H ")]
    assert lines and all(line.split(":", 2)[2] == "/" for line in lines)
    inside = {line[2:] for line in out if line.startswith("H ")}
    with open("/proc/self/mountinfo") as f:
        host = {line.split()[4].rsplit("/", 1)[1] for line in f
                if " - cgroup" in line and line.split()[4].startswith("/sys/fs/cgroup/")}
    if host:  # v1 or hybrid: every hierarchy mounted, and the alias links (cpu -> cpu,cpuacct) where the host has them
        links = {n for n in os.listdir("/sys/fs/cgroup") if os.path.islink(os.path.join("/sys/fs/cgroup", n))}
        assert host | links <= inside, (host, links, inside)
    else:  # v2: the cgroup2 root of the namespace
        assert "cgroup.procs" in inside


def test_unavailable_cap_is_a_clear_error(env, layers):
    held = libc.capget()[1]
    missing = [n for n in caps.all_capabilities() if not held & (1 << caps.CAP_NUMBERS[n])]
    if not missing:
        pytest.skip("the runtime holds every capability here")
    rec = env.create(_spec(layers, ["true"], cap_add=[missing[0]]))
    with pytest.raises(errors.FailedPrecondition, match=missing[0]):
        env.start(rec["id"])
