#!/usr/bin/env python3
"""Zero downtime, measured: requests against two web hosts while `fleet deploy` swaps their version (start-first).

A 2-host lab (its own name and subnet) runs the lab's shop/web nginx from a compose file with `order:
start-first`; client threads request each host's published port in a loop (a new connection per request, as a
load balancer's health-checked pool would), first for a steady-state window, then for the whole of a deploy that
moves every host to the other version (alternating 1 -> 2 -> 1 ... for --rounds).  Prints, per phase, the
requests served, the errors (refused/reset connections, timeouts, non-2xx) and the p50/p99 latency, and appends
one line to bench/RESULTS.md.  Target: zero errors during the swap.

    .venv/bin/python bench/deploy.py [--rounds 3] [--clients 4] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ["--name", "fldeploy", "--subnet", "10.213.96.0/24"]
PORT = 8090

COMPOSE = """
name: benchshop
services:
  web:
    image: "{{{{ fleet_lab_registry }}}}/shop/web:{{{{ tag }}}}"
    ports: ["{port}:80"]
    healthcheck: {{test: ["CMD", "nginx", "-t", "-q"], interval: 1s, timeout: 2s, retries: 2}}
    stop_grace_period: 5s
    deploy:
      update_config: {{parallelism: 1, order: start-first, monitor: 1s}}
    x-fleet: {{hosts: web, probe: "http://:{port}/"}}
"""


class Load:
    """Client threads requesting ``addrs`` until stopped; latencies of successes, errors by kind."""

    def __init__(self, addrs: list[str], clients: int) -> None:
        self.addrs, self.clients = addrs, clients
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.threads: list[threading.Thread] = []

    def _one(self, addr: str) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(addr, PORT, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                ok, kind = 200 <= resp.status < 300, "HTTP {}".format(resp.status)
            except Exception as exc:  # noqa: BLE001 - every failure is what we count
                ok, kind = False, type(exc).__name__
            took = time.perf_counter() - t0
            with self.lock:
                if ok:
                    self.latencies.append(took)
                else:
                    self.errors[kind] = self.errors.get(kind, 0) + 1

    def start(self) -> None:
        for addr in self.addrs:
            for _ in range(self.clients):
                t = threading.Thread(target=self._one, args=(addr,), daemon=True)
                t.start()
                self.threads.append(t)

    def finish(self) -> dict:
        self.stop.set()
        for t in self.threads:
            t.join()
        lat = sorted(self.latencies)

        def p(q):
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
        return {"served": len(lat), "errors": sum(self.errors.values()), "kinds": dict(self.errors),
                "p50": p(0.50), "p99": p(0.99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4, help="client threads per host")
    ap.add_argument("--steady", type=float, default=5.0, help="seconds of steady-state load before each deploy")
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    opts = ap.parse_args()

    fleet = [sys.executable, "-m", "fleet"]
    steady, swap = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inv = Path("/tmp/fleet-bench-deploy.yml") if opts.keep else work / "lab.yml"
        lab = LAB + ["--inventory-out", str(inv)]
        subprocess.run(fleet + ["lab", "up", "--hosts", "2"] + lab, check=True, cwd=ROOT)
        try:
            if inv.parent != work:
                shutil.copy(inv, work / "lab.yml")
            (work / "compose.yaml").write_text(COMPOSE.format(port=PORT))
            hosts = json.loads(subprocess.run(fleet + ["-i", str(work / "lab.yml"), "hosts", "-H", "web", "--json"],
                                              check=True, capture_output=True, text=True, cwd=ROOT).stdout)
            addrs = [h["address"] for h in hosts]
            deploy = fleet + ["-i", str(work / "lab.yml"), "deploy", "-H", "all", "-f", str(work / "compose.yaml")]
            subprocess.run(deploy + ["-e", "tag=1"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            for n in range(opts.rounds):
                tag = "2" if n % 2 == 0 else "1"
                load = Load(addrs, opts.clients)
                load.start()
                time.sleep(opts.steady)
                steady.append(load.finish())
                load = Load(addrs, opts.clients)
                load.start()
                subprocess.run(deploy + ["-e", "tag=" + tag], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
                swap.append(load.finish())
                print("round {}: steady {} / swap {}".format(n + 1, steady[-1], swap[-1]))
            subprocess.run(fleet + ["-i", str(work / "lab.yml"), "down", "-H", "all", "-p", "benchshop"], cwd=ROOT)
        finally:
            if not opts.keep:
                subprocess.run(fleet + ["lab", "down"] + lab, cwd=ROOT)

    def summary(phase: list) -> str:
        return "{} requests, {} errors{}, p50 {:.1f} ms, p99 {:.1f} ms".format(
            sum(r["served"] for r in phase), sum(r["errors"] for r in phase),
            " ({})".format(", ".join("{} {}".format(v, k) for r in phase for k, v in r["kinds"].items()))
            if any(r["kinds"] for r in phase) else "",
            statistics.median(r["p50"] for r in phase), statistics.median(r["p99"] for r in phase))

    line = ("| {date} | deploy | 2 web hosts, start-first swap, {c} clients/host, {n} rounds | steady: {s} | "
            "during the swap: {w} | target: 0 errors during the swap |").format(
        date=datetime.date.today(), c=opts.clients, n=opts.rounds, s=summary(steady), w=summary(swap))
    print(line)
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
