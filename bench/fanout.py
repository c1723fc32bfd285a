#!/usr/bin/env python3
"""Fan-out speed: `fleet ping` and `fleet ps -H all` on an N-host lab against bare asyncssh, pyinfra and Ansible.

Every row is a whole process timed from start to exit (interpreter start, imports, inventory, connections, the
remote work), run in interleaved rounds so that drift affects all alike; medians are reported.  For each row the
controller's CPU (user+sys of the process and the children it reaped, from os.wait4) and its peak RSS (ru_maxrss:
the largest single process of that tree, not a sum) are recorded too.

Rows: fleet ping; fleet ps -H all (warm: through the hosts' warm payload servers); fleet ps -H all with
``fleet_warm: false`` (the exec path: a payload process per host and command); a bare asyncssh script running
`true` and `uname -r` on every host (the floor of any Python SSH fan-out); pyinfra `exec -- uname -r`; Ansible
(ansible-core) ad hoc `-m raw -a 'uname -r'` and `-m command -a 'uname -r'`, each warm (its default
ControlPersist masters left by a run just before) and cold (`-o ControlMaster=no -o ControlPath=none`: a new SSH
connection per host and task).  The warm Ansible rows do not count the CPU of their ControlPersist masters
(daemons that nobody reaps): their CPU figures are a lower bound.  pyinfra and Ansible come from PyPI into a
bench-only venv (--venv, default /var/cache/fleet-bench/venv, created when missing); they are never
dependencies of fleet.

The lab's hosts are network namespaces of this machine: their sshd and every remote process run on the same CPUs
as the controller, so each host's remote cost (a Python start for fleet's exec path, Ansible's module run) adds up
on the same cores; on a real fleet it is each host's own latency instead.  Say so next to any figure.

Targets (issue 15): fleet ps faster than pyinfra; Ansible -m command (warm) >= 8x fleet ps; fleet ping <= 1.3x the
bare `true` script; fleet's controller CPU <= 1.3x the bare script's.

    .venv/bin/python bench/fanout.py [--hosts 100] [--rounds 5] [--no-peers] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ["--name", "flbench", "--subnet", "10.213.97.0/24"]
VENV = Path("/var/cache/fleet-bench/venv")
PEERS = ("pyinfra", "ansible-core")
# Every row runs with Python's bytecode cache on, as installed software does (a shell with
# PYTHONDONTWRITEBYTECODE=1 would have fleet, run from a checkout, compile its modules on every command);
# the warm-up round writes the caches.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# Rows measuring a warm state get an unmeasured run of their own just before: a round of 100 hosts lasts longer
# than the warm payload servers' idle timeout (30 s) and Ansible's ControlPersist (60 s), so the previous round's
# state may be gone.  fleet's exec path (fleet_warm: false) has its own row.
WARM_ROWS = ("fleet ping", "fleet ps -H all", "ansible -m raw warm", "ansible -m command warm")

BARE = r"""
import asyncio, sys
import asyncssh

async def one(addr, key, kh, command):
    async with asyncssh.connect(addr, username="root", client_keys=[key], known_hosts=kh) as conn:
        await conn.run(command, check=True)

async def main():
    command, key, kh, *addrs = sys.argv[1:]
    await asyncio.gather(*(one(a, key, kh, command) for a in addrs))

asyncio.run(main())
"""


def ensure_venv(venv: Path) -> None:
    """The bench-only venv with pyinfra and ansible-core from PyPI (made once, reused)."""
    if (venv / "bin" / "pyinfra").exists() and (venv / "bin" / "ansible").exists():
        return
    print("making {} with {} (bench only)".format(venv, ", ".join(PEERS)), flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q"] + list(PEERS), check=True)


def version(venv: Path, dist: str) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version({!r}))".format(dist)],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def measure(cmd, env=None, cwd=None) -> tuple[float, float, int]:
    """(wall s, user+sys CPU s, peak RSS KiB) of one run of ``cmd``, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or ENV, cwd=cwd)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("{} failed ({}): {}".format(" ".join(map(str, cmd[:6])), proc.returncode,
                                                      err.decode(errors="replace")[-2000:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def peer_rows(venv: Path, tmp: Path, key: str, kh: str, addrs: list[str]) -> dict:
    """pyinfra's and Ansible's rows: name -> (argv, env)."""
    n = len(addrs)
    pyinv = tmp / "pyinfra_inventory.py"
    pyinv.write_text("hosts = [{}]\n".format(", ".join(
        "({!r}, {{'ssh_user': 'root', 'ssh_key': {!r}, 'ssh_known_hosts_file': {!r}}})".format(a, key, kh)
        for a in addrs)))
    ini = tmp / "ansible_hosts.ini"
    ini.write_text("[all]\n" + "".join("{}\n".format(a) for a in addrs)
                   + "[all:vars]\nansible_user=root\nansible_ssh_private_key_file={}\n"
                     "ansible_python_interpreter=/usr/bin/python3\n".format(key))
    base_env = dict(ENV, ANSIBLE_CONFIG=str(tmp / "none.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
                    ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cp"), ANSIBLE_HOST_KEY_CHECKING="True",
                    ANSIBLE_FORKS=str(n), ANSIBLE_NOCOLOR="1")
    known = "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes".format(kh)
    warm = dict(base_env, ANSIBLE_SSH_ARGS="-C -o ControlMaster=auto -o ControlPersist=60s " + known)
    cold = dict(base_env, ANSIBLE_SSH_ARGS="-C -o ControlMaster=no -o ControlPath=none " + known)
    ansible = [str(venv / "bin" / "ansible"), "all", "-i", str(ini), "-f", str(n)]
    return {
        "pyinfra exec uname -r": ([str(venv / "bin" / "pyinfra"), str(pyinv), "--parallel", str(n), "-y",
                                   "exec", "--", "uname", "-r"], ENV),
        "ansible -m raw warm": (ansible + ["-m", "raw", "-a", "uname -r"], warm),
        "ansible -m raw cold": (ansible + ["-m", "raw", "-a", "uname -r"], cold),
        "ansible -m command warm": (ansible + ["-m", "command", "-a", "uname -r"], warm),
        "ansible -m command cold": (ansible + ["-m", "command", "-a", "uname -r"], cold),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--venv", type=Path, default=VENV, help="bench-only venv for pyinfra and Ansible")
    ap.add_argument("--no-peers", action="store_true", help="skip the pyinfra and Ansible rows")
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    opts = ap.parse_args()
    if not opts.no_peers:
        ensure_venv(opts.venv)

    fleet = [sys.executable, "-m", "fleet"]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        inv = Path("/tmp/fleet-bench.yml") if opts.keep else tmp / "bench.yml"
        lab = LAB + ["--inventory-out", str(inv)]
        subprocess.run(fleet + ["lab", "up", "--hosts", str(opts.hosts)] + lab, check=True, cwd=ROOT)
        try:
            import yaml
            v = yaml.safe_load(inv.read_text())["all"]["vars"]
            hosts = json.loads(subprocess.run(fleet + ["-i", str(inv), "hosts", "-H", "all", "--json"], check=True,
                                              capture_output=True, text=True, cwd=ROOT).stdout)
            addrs = [h["address"] for h in hosts]
            key, kh = v["ansible_ssh_private_key_file"], v["fleet_known_hosts"]
            exec_inv = tmp / "bench-exec.yml"  # the same hosts with fleet_warm: false (the exec path, as before)
            data = yaml.safe_load(inv.read_text())
            data["all"]["vars"]["fleet_warm"] = False
            exec_inv.write_text(yaml.safe_dump(data))
            rows = {
                "fleet ping": (fleet + ["-i", str(inv), "ping", "-H", "all"], None),
                "fleet ps -H all": (fleet + ["-i", str(inv), "ps", "-H", "all"], None),
                "fleet ps -H all, exec path": (fleet + ["-i", str(exec_inv), "ps", "-H", "all"], None),
                "bare asyncssh true": ([sys.executable, "-c", BARE, "true", key, kh] + addrs, None),
                "bare asyncssh uname -r": ([sys.executable, "-c", BARE, "uname -r", key, kh] + addrs, None),
            }
            if not opts.no_peers:
                rows.update(peer_rows(opts.venv, tmp, key, kh, addrs))
            # warm-up: uploads the payload where missing (so the lab is up: every host must answer), fills the
            # caches, starts warm servers and ControlPersist masters
            for cmd, env in rows.values():
                measure(cmd, env, ROOT)
            results: dict[str, list] = {name: [] for name in rows}
            for _ in range(opts.rounds):
                for name, (cmd, env) in rows.items():
                    if name in WARM_ROWS:  # the state a command left a moment ago, not one a minute-long row let expire
                        measure(cmd, env, ROOT)
                    results[name].append(measure(cmd, env, ROOT))
        finally:
            if not opts.keep:
                subprocess.run(fleet + ["lab", "down"] + lab, cwd=ROOT)
    med = {name: tuple(statistics.median(r[i] for r in runs) for i in range(3)) for name, runs in results.items()}
    for name, (wall, cpu, rss) in med.items():
        print("{:28s} wall {:7.3f} s   cpu {:7.3f} s   peak rss {:5.0f} MiB".format(name, wall, cpu, rss / 1024))
    row = line(med, len(addrs), opts, "" if opts.no_peers else "pyinfra {}, ansible-core {}".format(
        version(opts.venv, "pyinfra"), version(opts.venv, "ansible-core")))
    print(row)
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(row + "\n")
    return 0


def line(med: dict, n: int, opts, versions: str) -> str:
    """One RESULTS.md row: every median, then the ratios against the targets."""
    def cell(name):
        wall, cpu, rss = med[name]
        return "{} {:.2f} s (cpu {:.2f} s, {:.0f} MiB)".format(name, wall, cpu, rss / 1024)

    ps, ping = med["fleet ps -H all"][0], med["fleet ping"][0]
    bare, bare_cpu = med["bare asyncssh true"][0], med["bare asyncssh true"][1]
    parts = ["{}".format(datetime.date.today()), "fanout",
             "{} lab hosts sharing this machine's {} CPUs with the controller, {} rounds".format(
                 n, os.cpu_count(), opts.rounds)]
    parts += [cell(name) for name in med]
    parts.append("ping/bare-true {:.2f}x (target <= 1.3x)".format(ping / bare))
    parts.append("ps warm/exec path {:.2f}x".format(ps / med["fleet ps -H all, exec path"][0]))
    parts.append("fleet cpu/bare cpu {:.2f}x (target <= 1.3x)".format(med["fleet ping"][1] / bare_cpu))
    if "pyinfra exec uname -r" in med:
        parts.append("ps/pyinfra {:.2f}x (target < 1)".format(ps / med["pyinfra exec uname -r"][0]))
        parts.append("ansible-command-warm/ps {:.1f}x (target >= 8x)".format(
            med["ansible -m command warm"][0] / ps))
        parts.append("ansible-command-cold/ps {:.1f}x".format(med["ansible -m command cold"][0] / ps))
    if versions:
        parts.append(versions)
    return "| " + " | ".join(parts) + " |"


if __name__ == "__main__":
    sys.exit(main())
