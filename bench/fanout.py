#!/usr/bin/env python3
"""Fan-out speed: `fleet ping -H all` on a 20-host lab against a bare asyncssh script running `true`.

All are timed as whole processes (interpreter start, imports, connections, one exec per host), with the
payload already present on every host.  Prints the medians and their ratio and records them in
bench/RESULTS.md.  Target: fleet at most 1.5x the bare script.

A second baseline runs `python3 -S -E -c pass` instead of `true`: on the lab the "hosts" share the
controller's CPUs, so the remote interpreter start of every host is paid on the same cores; the ratio
against that baseline is fleet's own overhead (imports, inventory, payload check, JSON protocol).

    .venv/bin/python bench/fanout.py [--hosts 20] [--rounds 9] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ["--name", "flbench", "--subnet", "10.213.97.0/24"]

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


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    opts = ap.parse_args()

    fleet = [sys.executable, "-m", "fleet"]
    with tempfile.TemporaryDirectory() as tmp:
        inv = Path("/tmp/fleet-bench.yml") if opts.keep else Path(tmp) / "bench.yml"
        lab = LAB + ["--inventory-out", str(inv)]
        subprocess.run(fleet + ["lab", "up", "--hosts", str(opts.hosts)] + lab, check=True, cwd=ROOT)
        try:
            import yaml
            data = yaml.safe_load(inv.read_text())
            v = data["all"]["vars"]
            hosts = json.loads(subprocess.run(fleet + ["-i", str(inv), "hosts", "-H", "all", "--json"], check=True,
                                              capture_output=True, text=True, cwd=ROOT).stdout)
            addrs = [h["address"] for h in hosts]
            ping = fleet + ["-i", str(inv), "ping", "-H", "all"]
            common = [v["ansible_ssh_private_key_file"], v["fleet_known_hosts"]] + addrs
            bare = [sys.executable, "-c", BARE, "true"] + common
            bare_py = [sys.executable, "-c", BARE, "/usr/bin/python3 -S -E -c pass"] + common
            timed(ping)  # warm-up: uploads the payload where missing
            timed(bare)
            f_times, b_times, p_times = [], [], []
            for _ in range(opts.rounds):  # interleaved, so drift affects all alike
                f_times.append(timed(ping))
                b_times.append(timed(bare))
                p_times.append(timed(bare_py))
        finally:
            if not opts.keep:
                subprocess.run(fleet + ["lab", "down"] + lab, cwd=ROOT)
    f_med, b_med, p_med = (statistics.median(t) for t in (f_times, b_times, p_times))
    line = ("| {date} | fanout | {n} hosts | fleet ping {f:.3f} s | bare asyncssh `true` {b:.3f} s | "
            "ratio {r:.2f}x (target <= 1.5x) | bare asyncssh `python3 -S -E -c pass` {p:.3f} s: ratio {rp:.2f}x |"
            ).format(date=datetime.date.today(), n=len(addrs), f=f_med, b=b_med, r=f_med / b_med, p=p_med,
                     rp=f_med / p_med)
    print(line)
    results = ROOT / "bench" / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by the scripts in bench/ "
                           "(medians of interleaved runs).\n\n")
    with open(results, "a") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
