#!/usr/bin/env python3
"""Published-port throughput: nginx through DNAT and through the userland proxy, against the container's own address.

A 2-host lab (its own name and subnet) runs `fleet run -d -p 8080:80 nginx` on web1; wrk (Debian's, bench-only:
`apt-get install -y wrk`) then measures requests per second, in interleaved rounds, to:

  direct       the container's address, from web1 (the bridge, no NAT)                  the reference
  dnat-remote  web1's address:8080 from web2 (nat PREROUTING DNAT, the usual path of clients elsewhere)
  dnat-local   web1's address:8080 from web1 itself (nat OUTPUT DNAT)
  proxy        127.0.0.1:8080 from web1 (loopback is left to the userland proxy, as Docker's docker-proxy)

Prints medians and the ratios against direct, and appends a row to bench/RESULTS.md.

    .venv/bin/python bench/net.py [--rounds 3] [--seconds 4] [--connections 32] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ["--name", "flnetb", "--subnet", "10.213.96.0/24"]
TARGETS = ("direct", "dnat-remote", "dnat-local", "proxy")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    ap.add_argument("--no-record", action="store_true", help="print the row but do not append it to RESULTS.md")
    opts = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/net.py needs wrk: apt-get install -y wrk (bench only, not part of scripts/bootstrap)")
    fleet = [sys.executable, "-m", "fleet"]
    rates = {t: [] for t in TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        inv = Path(tmp) / "net.yml"
        lab = LAB + ["--inventory-out", str(inv)]
        subprocess.run(fleet + ["lab", "up", "--hosts", "2"] + lab, check=True, cwd=ROOT)
        try:
            import yaml
            v = yaml.safe_load(inv.read_text())["all"]["vars"]
            hosts = json.loads(subprocess.run(fleet + ["-i", str(inv), "hosts", "-H", "all", "--json"], check=True,
                                              capture_output=True, text=True, cwd=ROOT).stdout)
            (h1, a1), (_h2, a2) = [(h["host"], h["address"]) for h in hosts][:2]
            subprocess.run(fleet + ["-i", str(inv), "rm", "-f", "-H", h1, "benchweb"], cwd=ROOT,
                           capture_output=True)
            subprocess.run(fleet + ["-i", str(inv), "run", "-H", h1, "-d", "-p", "8080:80", "--name", "benchweb",
                                    "nginx"], check=True, cwd=ROOT, capture_output=True)
            info = json.loads(subprocess.run(fleet + ["-i", str(inv), "inspect", "-H", h1, "benchweb"], check=True,
                                             capture_output=True, text=True, cwd=ROOT).stdout)
            cip = info[0]["NetworkSettings"]["IPAddress"]
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
                   "UserKnownHostsFile=" + v["fleet_known_hosts"], "-i", v["ansible_ssh_private_key_file"]]
            plan = {"direct": (a1, "http://{}:80/".format(cip)), "dnat-remote": (a2, "http://{}:8080/".format(a1)),
                    "dnat-local": (a1, "http://{}:8080/".format(a1)), "proxy": (a1, "http://127.0.0.1:8080/")}
            wrk = "wrk -t2 -c{} -d{}s {{}}".format(opts.connections, opts.seconds)
            for _ in range(opts.rounds):  # interleaved, so drift affects all alike
                for target in TARGETS:
                    addr, url = plan[target]
                    out = subprocess.run(ssh + ["root@" + addr, wrk.format(url)], check=True, capture_output=True,
                                         text=True).stdout
                    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
                    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
                    if not m or errors:
                        sys.exit("wrk against {} ({}) failed:\n{}".format(target, url, out))
                    rates[target].append(float(m.group(1)))
            subprocess.run(fleet + ["-i", str(inv), "rm", "-f", "-H", h1, "benchweb"], cwd=ROOT, capture_output=True)
        finally:
            if not opts.keep:
                subprocess.run(fleet + ["lab", "down"] + lab, cwd=ROOT)
    med = {t: statistics.median(r) for t, r in rates.items()}
    line = ("| {date} | net | nginx through a published port, wrk -t2 -c{c} {s}s x {n} rounds (req/s, median) | "
            "direct {d:.0f} | DNAT from another host {r:.0f} ({rr:.2f}x) | DNAT from the host {l:.0f} ({lr:.2f}x) | "
            "userland proxy (127.0.0.1) {p:.0f} ({pr:.2f}x) |").format(
        date=datetime.date.today(), c=opts.connections, s=opts.seconds, n=opts.rounds, d=med["direct"],
        r=med["dnat-remote"], rr=med["dnat-remote"] / med["direct"], l=med["dnat-local"],
        lr=med["dnat-local"] / med["direct"], p=med["proxy"], pr=med["proxy"] / med["direct"])
    print(line)
    if not opts.no_record:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
