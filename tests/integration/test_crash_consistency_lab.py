"""Crash consistency: the payload SIGKILLed at random points of pull, run -d, rm -f, network and volume ops.

On one lab host (its own network namespace and /var/lib/fleet), a driver runs the payload by hand
(``python3 <sha>.pyz --rpc``) and kills that very process (never the detached shim: a container that already
started legitimately lives on) after a random delay drawn over the op's measured duration (past the
interpreter's start, as long as a ping; an op that ends before its kill is tried again at another point). After
each kill the next command (the op again, or its cleanup op, then the op again) must succeed, and a sweep must
find nothing new leaked: no mount, veth, bridge, nft/iptables rule, cgroup, IPAM entry or endpoint, lock file,
temp file or dir of a dead owner, shim, anonymous volume nothing refers to, or container/volume/network directory
that the listings do not show. A sweep while a container runs must see its mount, veth, rule, cgroup and address
(so the sweep can see a leak of each).

The seed is printed (``-s``) and ``FLEET_CRASH_SEED=N`` replays a run; ``FLEET_CRASH_KILLS`` sets the kills per
op kind (default 5, 7 kinds: 35 kills).
"""

import base64
import json
import os
import random
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

HOST = "db1"
IMAGE = "busybox"
PULLED = "layered"  # four layers (busybox + three): a pull with several layers to be killed in
OPS = ("pull", "run", "rm", "network_create", "network_rm", "volume_create", "volume_rm")

# Runs on the lab host as root: ``python3 DRIVER <base64 JSON request>``; prints one JSON line.
DRIVER = r'''
import base64, fcntl, glob, json, os, re, signal, subprocess, sys, time

req = json.loads(base64.b64decode(sys.argv[1]))
ROOT, RUN = "/var/lib/fleet", "/run/fleet"


def rpc(op, args, kill_after=None):
    """Run one payload op; with kill_after, SIGKILL the payload process itself after that many seconds."""
    request = {"protocol": req["protocol"], "payload": req["sha"], "op": op, "args": args}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, req["pyz"], "--rpc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write((json.dumps(request) + "\n").encode())
    proc.stdin.close()
    proc.stdin = None  # communicate() below must not touch it
    killed = False
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # the payload only: the shim is its own session, never this pid
            killed = True
    out, err = proc.communicate()
    elapsed = time.monotonic() - t0
    result = None
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("type") == "result":
            result = obj
    return {"op": op, "killed": killed, "elapsed": elapsed, "result": result,
            "stderr": err.decode("utf-8", "replace")[-2000:]}


def ok(res, allow=()):
    r = res["result"]
    return r is not None and (r.get("ok") or (r.get("error") or {}).get("kind") in allow)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def sweep(known_ids):
    leaks, seen = {}, {}

    def saw(kind):
        seen[kind] = seen.get(kind, 0) + 1

    def leak(kind, what):
        leaks.setdefault(kind, []).append(what)

    ps = rpc("ps", {"all": True})["result"]["data"]["containers"]
    all_ids = {c["id"] for c in ps}
    running = {c["id"] for c in ps if c.get("state") in ("running", "paused", "restarting")}
    nets = rpc("network_ls", {})["result"]["data"]["networks"]
    net_ids = {n["id"] for n in nets}
    vols = {v["name"]: v for v in rpc("volume_ls", {})["result"]["data"]["volumes"]}
    # mounts in this host's mount namespace under the state root or the run dir
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith((ROOT + "/", RUN + "/")):
                saw("mount")
                cid = point.rsplit("/", 1)[-1]
                if not (point.startswith(RUN + "/netns/") and cid in running):
                    leak("mount", point)
    # veths and bridges of this network namespace
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith("fv"):
            saw("veth")
        if name.startswith("fv") and not any(c[:10] == name[2:12] for c in running):
            leak("veth", name)
        if name.startswith("fl-") and not any(n.startswith(name[3:]) for n in net_ids):
            leak("bridge", name)
    # firewall rules tagged with ids of containers/networks that are gone (or not running)
    tags = []
    try:
        nft = subprocess.run(["nft", "-j", "list", "table", "ip", "fleet"], capture_output=True, text=True)
    except OSError:
        nft = None  # no nft on this host: the payload uses iptables (or nothing)
    if nft is not None and nft.returncode == 0:
        tags += [("nft", i["rule"].get("comment") or "") for i in json.loads(nft.stdout).get("nftables", [])
                 if "rule" in i]
    for tool in ("iptables-save", "iptables-legacy-save", "iptables-nft-save"):
        try:
            out = subprocess.run([tool], capture_output=True, text=True).stdout
        except OSError:
            continue
        tags += [(tool, m) for m in re.findall(r'--comment "?(fleet[^" ]*)', out)]
    for where, tag in tags:
        saw("rule")
        kind, _, oid = tag.partition(":")
        if (kind == "fleet" and oid not in running) or (kind == "fleet-net" and oid not in net_ids):
            leak("firewall rule", "%s %s" % (where, tag))
    # cgroups of every container this test ever saw that is not running now
    for cid in set(known_ids) | running:
        for path in glob.glob("/sys/fs/cgroup/*/fleet*/" + cid) + glob.glob("/sys/fs/cgroup/fleet*/" + cid):
            saw("cgroup")
            if cid not in running:
                leak("cgroup", path)
    # IPAM entries and endpoints without a running container
    for ipdir in glob.glob(ROOT + "/networks/*/ipam"):
        for name in os.listdir(ipdir):
            if not name.startswith("."):
                with open(os.path.join(ipdir, name)) as f:
                    owner = f.read().strip()
                saw("ipam")
                if owner not in running:
                    leak("ipam", "%s %s -> %s" % (ipdir.split("/")[-2][:12], name, owner[:12]))
    for epdir in glob.glob(ROOT + "/networks/*/endpoints"):
        for name in os.listdir(epdir):
            if not name.startswith(".") and name not in running:
                leak("ipam", "endpoint %s/%s" % (epdir.split("/")[-2][:12], name[:12]))
    # lock files of containers that do not exist
    for name in os.listdir(ROOT + "/locks") if os.path.isdir(ROOT + "/locks") else []:
        m = re.match(r"^container-([0-9a-f]{64})\.lock$", name)
        if m and m.group(1) not in all_ids:
            leak("lock", name)
    # temp and trash dirs/files whose owner is dead, anywhere under the root (not inside container/volume data)
    skip = re.compile(r"^%s/(containers/[0-9a-f]{64}/(diff|work|rootfs)|volumes/[^/]+/_data|snapshots/\d+/fs|"
                      r"payload)(/|$)" % re.escape(ROOT))
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not skip.match(os.path.join(dirpath, d))]
        for name in dirnames + filenames:
            if name.startswith((".tmp-", ".trash-")) or name.endswith(".partial"):
                m = re.match(r"^\.tmp-(\d+)(-|$)", name)
                if m and alive(int(m.group(1))):
                    continue
                path = os.path.join(dirpath, name)
                kind = "temp (snapshots, item 6)" if dirpath == ROOT + "/snapshots" else (
                    "temp (pull ingest)" if "/content/" in path else "temp")
                leak(kind, path[len(ROOT) + 1:])
    # directories the listings do not show
    for name in os.listdir(ROOT + "/containers") if os.path.isdir(ROOT + "/containers") else []:
        if re.match(r"^[0-9a-f]{64}$", name) and name not in all_ids:
            leak("invisible container dir", name[:12])
    for name in os.listdir(ROOT + "/volumes") if os.path.isdir(ROOT + "/volumes") else []:
        if not name.startswith(".") and name not in vols:
            leak("invisible volume dir", name)
    for name in os.listdir(ROOT + "/networks") if os.path.isdir(ROOT + "/networks") else []:
        if not name.startswith(".") and name not in net_ids:
            leak("invisible network dir", name[:12])
    # shims of containers that are not running
    me = os.readlink("/proc/self/ns/net")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
            if comm != "fleet-shim" or os.readlink("/proc/%s/ns/net" % pid) != me:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        cid = argv[1].decode() if len(argv) > 1 else ""
        if cid not in running:
            leak("shim", "%s %s" % (pid, cid[:12]))
    return {"leaks": leaks, "seen": seen, "ids": sorted(all_ids), "running": sorted(running),
            "anonymous_volumes": sorted(n for n in vols if re.match(r"^[0-9a-f]{64}$", n))}


if req["action"] == "rpc":
    out = [rpc(s["op"], s["args"], s.get("kill_after")) for s in req["steps"]]
    # every container directory this host has now, listed or not (the sweep checks their cgroups later)
    ids = sorted(n for n in os.listdir(ROOT + "/containers") if re.match(r"^[0-9a-f]{64}$", n)) \
        if os.path.isdir(ROOT + "/containers") else []
    print(json.dumps({"steps": out, "ids": ids}))
else:
    print(json.dumps(sweep(req["known_ids"])))
'''


class Host:
    """One lab host driven over SSH with the driver above."""

    def __init__(self, lab, tmp_path, host):
        import yaml
        from agent_payload import protocol
        self.lab, self.host = lab, host
        self.driver = tmp_path / "crash_driver.py"
        self.driver.write_text(DRIVER)
        inv = yaml.safe_load(lab.inventory.read_text())["all"]["vars"]
        self.ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                    "-o", "UserKnownHostsFile=" + inv["fleet_known_hosts"], "-i", inv["ansible_ssh_private_key_file"],
                    "root@" + lab.address(host)]
        rc, pong = lab.fleet_json("ping", "-H", host)
        assert rc == 0, pong
        self.sha = pong[host]["payload"]
        self.base = {"protocol": protocol.PROTOCOL_VERSION, "sha": self.sha,
                     "pyz": "/var/lib/fleet/payload/{}.pyz".format(self.sha)}
        self.known_ids = set()

    def _call(self, req):
        arg = base64.b64encode(json.dumps(dict(self.base, **req)).encode()).decode()
        proc = subprocess.run(self.ssh + ["python3", str(self.driver), arg], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def steps(self, *steps):
        """Run ops in order on the host: (op, args) or (op, args, kill_after); returns their results."""
        out = self._call({"action": "rpc", "steps": [
            {"op": s[0], "args": s[1], "kill_after": s[2] if len(s) > 2 else None} for s in steps]})
        self.known_ids.update(out["ids"])
        return out["steps"]

    def must(self, op, args, allow=()):
        """One op that must succeed (or fail only with an error kind in ``allow``); returns its data."""
        (res,) = self.steps((op, args))
        r = res["result"]
        assert r is not None, "{} {} crashed: {}".format(op, args, res["stderr"])
        assert r.get("ok") or (r.get("error") or {}).get("kind") in allow, "{} {} -> {}".format(op, args, r)
        return r.get("data"), res["elapsed"]

    def sweep(self):
        return self._call({"action": "sweep", "known_ids": sorted(self.known_ids)})


def _run_args(name, vol, port, network=None):
    return {"image": IMAGE, "name": name, "detach": True, "command": ["sleep", "300"],
            "volumes": [vol + ":/data", "/anon"], "publish": ["{}:80".format(port)], "network": network}


def _scenario(h, kind, i):
    """(setup steps, the op to kill, recovery steps as (op, args, allowed error kinds), cleanup steps)."""
    name, vol, net = "crash-{}-{}".format(kind.replace("_", ""), i), "crashvol-{}-{}".format(kind, i), \
        "crashnet-{}-{}".format(kind.replace("_", ""), i)
    port = 18000 + 10 * OPS.index(kind) + i % 10
    rm = ("rm", {"containers": [name], "force": True, "volumes": True}, ("NotFound",))
    vrm = ("volume_rm", {"volumes": [vol], "force": True}, ())
    if kind == "pull":
        return [("rmi", {"images": [PULLED], "force": True}, ("NotFound",))], ("pull", {"image": PULLED}), \
            [("pull", {"image": PULLED}, ())], []
    if kind == "run":
        return [], ("run", _run_args(name, vol, port)), [rm, vrm, ("run", _run_args(name, vol, port), ())], \
            [rm, vrm]
    if kind == "rm":
        return [("run", _run_args(name, vol, port), ())], ("rm", rm[1]), [rm, vrm], [vrm]
    if kind == "network_create":
        nrm = ("network_rm", {"networks": [net]}, ("NotFound",))
        return [], ("network_create", {"name": net}), [nrm, ("network_create", {"name": net}, ())], [nrm]
    if kind == "network_rm":
        nrm = ("network_rm", {"networks": [net]}, ("NotFound",))
        # a container on it first, so that the network has its bridge and rules when it is removed
        return [("network_create", {"name": net}, ()), ("run", _run_args(name, vol, port, network=net), ()), rm, vrm], \
            ("network_rm", nrm[1]), [nrm, ("network_create", {"name": net}, ())], [nrm]
    if kind == "volume_create":
        return [], ("volume_create", {"name": vol}), [("volume_create", {"name": vol}, ())], [vrm]
    if kind == "volume_rm":
        return [("volume_create", {"name": vol}, ())], ("volume_rm", {"volumes": [vol]}), \
            [vrm, ("volume_create", {"name": vol}, ())], [vrm]
    raise AssertionError(kind)


def _do(h, steps):
    for op, args, allow in steps:
        h.must(op, args, allow)


def test_random_sigkills_leave_nothing_behind(lab, tmp_path):
    seed = int(os.environ.get("FLEET_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
    per_op = int(os.environ.get("FLEET_CRASH_KILLS") or 5)
    print("crash-consistency seed {} (replay: FLEET_CRASH_SEED={})".format(seed, seed), file=sys.stderr)
    rng = random.Random(seed)
    h = Host(lab, tmp_path, HOST)
    started = time.monotonic()
    h.must("pull", {"image": IMAGE})
    baseline = h.sweep()
    assert baseline["leaks"] == {}, "the host is not clean before the test: {}".format(baseline["leaks"])
    durations, kills, attempts, leaks, failures, seen = {}, {k: 0 for k in OPS}, {k: 0 for k in OPS}, {}, [], {}
    try:
        # measure each op once, unkilled (its own setup, recovery and cleanup must work too)
        for kind in OPS:
            measured = []
            for _ in range(3):
                setup, op, recovery, cleanup = _scenario(h, kind, 99)
                _do(h, setup)
                measured.append(h.must(*op)[1])
                if kind == "run":  # the sweep sees what a running container has (so it could see a leak of it)
                    seen = h.sweep()["seen"]
                    assert all(seen.get(k) for k in ("mount", "veth", "rule", "cgroup", "ipam")), seen
                _do(h, cleanup)
            durations[kind] = sorted(measured)[1]
        # an op's first part is the interpreter starting and importing: as long as a ping; kills go after that
        startup = sorted(h.must("ping", {})[1] for _ in range(3))[1]
        print("measured durations: startup {:.3f}s, {}".format(startup, {k: round(v, 3) for k, v in
                                                                      durations.items()}), file=sys.stderr)
        plan = [kind for kind in OPS for _ in range(per_op)]
        rng.shuffle(plan)
        queue, i = list(plan), 0
        while queue:
            kind = queue.pop(0)
            i += 1
            setup, op, recovery, cleanup = _scenario(h, kind, i)
            _do(h, setup)
            delay = rng.uniform(min(startup, durations[kind] / 2), durations[kind])
            (res,) = h.steps(op + (delay,))
            attempts[kind] += 1
            if res["killed"]:
                kills[kind] += 1
            else:  # it ended before the kill: the estimate was long; try again at another random point
                durations[kind] = min(durations[kind], 0.9 * res["elapsed"])
                if attempts[kind] < 3 * per_op:
                    queue.append(kind)
            try:
                _do(h, recovery)  # "the next command succeeds"
                _do(h, cleanup)
            except AssertionError as exc:
                failures.append("{} killed at {:.3f}s: next command failed: {}".format(kind, delay, exc))
                continue
            swept = h.sweep()
            swept["leaks"]["dangling anonymous volume"] = sorted(set(swept["anonymous_volumes"]) - set(
                baseline["anonymous_volumes"]))  # every container here is removed with -v
            found = {what: [item for item in items if item not in seen.get(what, ())]
                     for what, items in swept["leaks"].items()}  # new since the last sweep
            found = {what: items for what, items in found.items() if items}
            for what, items in found.items():
                seen.setdefault(what, set()).update(items)
                leaks.setdefault(what, []).extend(items)
            if found:
                failures.append("{} killed at {:.3f}s ({}): leaked {}".format(
                    kind, delay, "killed" if res["killed"] else "not killed: it had ended", found))
    finally:
        elapsed = time.monotonic() - started
        print("seed {}: kills per op {} (attempts {}), {} kills in {:.0f}s; leaks per type {}".format(
            seed, kills, attempts, sum(kills.values()), elapsed, {k: len(v) for k, v in leaks.items()}),
            file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
    assert sum(kills.values()) >= 30 and all(kills.values()), kills
    assert not failures, "seed {}: {}".format(seed, "\n".join(failures))
