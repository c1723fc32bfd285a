#!/usr/bin/env python3
"""Build speed: `fleet build` on one lab host against `docker build` (classic builder) on this machine.

The same 6-step Dockerfile (FROM busybox; ENV; COPY of a few files; RUN; WORKDIR; CMD) and the same context are
built, interleaved (the order alternates each round), by

  fleet   `fleet -i LAB build -H web1 --network none -t bench/app .` against a 1-host lab of its own (`fleet lab
          up`, its own name and subnet; busybox pulled from the lab's mirror once, beforehand): the CLI as a user
          runs it, SSH, the context upload (cold only: a host already holding the context is sent nothing) and the
          payload's builder.
  docker  `DOCKER_BUILDKIT=0 docker build --network none -t bench/app .` against a dockerd of the bench's own
          (tests/helpers/dockerd.py: its own roots and socket, no bridge, no firewall rules), busybox pulled from
          the lab registry and tagged `busybox` once, beforehand.

Each round and tool: cold (a new file content in the context, `--no-cache`: every step runs), then warm (the same
context again: every step from the cache, checked by counting ' ---> Using cache').  Prints the medians and the
ratios fleet/docker, cold and warm, and records one row under bench/RESULTS.md's "build" section.

    .venv/bin/python bench/build.py [--rounds 5] [--no-record] [--keep]

Needs root and scripts/fetch-dockerd (the unpacked docker.io under /var/cache/fleet-ci/docker).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers.dockerd import DOCKER_ROOT, Dockerd, binaries  # noqa: E402 - the tests' dockerd, reused

LAB = ["--name", "flbuild", "--subnet", "10.213.94.0/24"]
HOST = "web1"
TAG = "bench/app"
DOCKERFILE = """FROM busybox
ENV APP=bench
COPY files/ /app/
RUN cat /app/*.txt | wc -c > /app/size
WORKDIR /app
CMD ["cat", "size"]
"""
STEPS = 6
SECTION = "## build (bench/build.py)"


class BenchError(Exception):
    pass


def fleet_cmd(inventory=None):
    cmd = [sys.executable, "-m", "fleet"]
    return cmd + ["-i", str(inventory)] if inventory else cmd


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise BenchError("{} exited {}:\n{}{}".format(" ".join(map(str, cmd)), proc.returncode, proc.stdout,
                                                      proc.stderr))
    return proc


def make_context(ctx: Path) -> None:
    (ctx / "files").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for i in range(5):
        (ctx / "files" / "{}.txt".format(i)).write_text("file {}\n".format(i) * (200 * (i + 1)))


class Tools:
    """The two builders' commands for one context; each ``build`` returns (seconds, stdout)."""

    def __init__(self, inventory: Path, dockerd: Dockerd, ctx: Path) -> None:
        self.inventory, self.dockerd, self.ctx = inventory, dockerd, ctx

    def build(self, tool: str, cold: bool):
        extra = ["--no-cache"] if cold else []
        if tool == "fleet":
            cmd = fleet_cmd(self.inventory) + ["build", "-H", HOST, "--network", "none", "-t", TAG] + extra + ["."]
            env = None
        else:
            cmd, env = self.dockerd._client(["build", "--network", "none", "-t", TAG] + extra + ["."])
            env = dict(env, DOCKER_BUILDKIT="0")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=str(self.ctx), env=env, capture_output=True, text=True, timeout=600)
        took = time.perf_counter() - t0
        if proc.returncode != 0:
            raise BenchError("{} build exited {}:\n{}{}".format(tool, proc.returncode, proc.stdout, proc.stderr))
        steps = proc.stdout.count("\nStep ") + proc.stdout.startswith("Step ")
        cached = proc.stdout.count(" ---> Using cache")
        if steps != STEPS or cached != (0 if cold else STEPS - 1):
            raise BenchError("{} {} build: {} steps, {} from the cache:\n{}".format(
                tool, "cold" if cold else "warm", steps, cached, proc.stdout))
        return took


def record(line: str) -> None:
    """Add ``line`` at the end of RESULTS.md's build section (made at the end of the file when missing)."""
    path = ROOT / "bench" / "RESULTS.md"
    lines = path.read_text().splitlines()
    if SECTION not in lines:
        lines += ["", SECTION, "", "Medians of interleaved runs; cold: a changed file and --no-cache, warm: "
                  "every step from the cache.", ""]
        end = len(lines)
    else:
        end = lines.index(SECTION) + 1
        while end < len(lines) and not lines[end].startswith("## "):
            end += 1
        while lines[end - 1] == "":
            end -= 1
    lines.insert(end, line)
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md alone")
    ap.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    opts = ap.parse_args()
    if not binaries():
        raise BenchError("no dockerd under {} (run scripts/fetch-dockerd)".format(DOCKER_ROOT))
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-build-"))
    inv = work / "lab.yml"
    lab = LAB + ["--inventory-out", str(inv)]
    dockerd = None
    try:
        print("lab up ...", flush=True)
        run(fleet_cmd() + ["lab", "up", "--hosts", "1"] + lab, cwd=ROOT, timeout=1200)
        inventory = json.loads(run(fleet_cmd(inv) + ["hosts", "-H", "all", "--json"]).stdout)
        if [h["host"] for h in inventory] != [HOST]:
            raise BenchError("the bench lab's hosts are {}, not [{}]".format([h["host"] for h in inventory], HOST))
        import yaml
        registry = yaml.safe_load(inv.read_text())["all"]["vars"]["fleet_lab_registry"]
        run(fleet_cmd(inv) + ["pull", "-H", HOST, "busybox"], timeout=600)
        dockerd = Dockerd(work / "dockerd", insecure_registries=[registry])
        dockerd.start()
        dockerd.check("pull", registry + "/library/busybox", timeout=300)
        dockerd.check("tag", registry + "/library/busybox", "busybox")
        version = dockerd.check("version", "--format", "{{.Server.Version}}").stdout.decode().strip()
        ctx = work / "ctx"
        make_context(ctx)
        tools = Tools(inv, dockerd, ctx)
        times = {(t, c): [] for t in ("fleet", "docker") for c in ("cold", "warm")}
        floor = []
        for r in range(opts.rounds):
            order = ("fleet", "docker") if r % 2 == 0 else ("docker", "fleet")
            for tool in order:
                (ctx / "files" / "stamp.txt").write_text("round {} {} {}\n".format(r, tool, time.time()))
                times[(tool, "cold")].append(tools.build(tool, cold=True))
                times[(tool, "warm")].append(tools.build(tool, cold=False))
            t0 = time.perf_counter()  # the floor under fleet: the CLI's start plus one SSH round trip
            run(fleet_cmd(inv) + ["ping", "-H", HOST], timeout=120)
            floor.append(time.perf_counter() - t0)
            print("round {}: ".format(r + 1) + "  ".join("{} {} {:.2f} s".format(t, c, v[-1])
                                                        for (t, c), v in times.items()), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        cold, warm = med[("fleet", "cold")] / med[("docker", "cold")], med[("fleet", "warm")] / med[("docker",
                                                                                                         "warm")]
        line = ("| {date} | build | {n}-step Dockerfile (FROM busybox, ENV, COPY of 6 files, RUN, WORKDIR, CMD), "
                "{r} rounds | fleet build on 1 lab host: cold {fc:.2f} s, warm {fw:.2f} s | docker build "
                "(dockerd {v}, DOCKER_BUILDKIT=0) on this machine: cold {dc:.2f} s, warm {dw:.2f} s | "
                "fleet/docker cold {rc:.2f}x, warm {rw:.2f}x | floor under fleet: `fleet ping -H web1` "
                "{fp:.2f} s |").format(
            date=datetime.date.today(), n=STEPS, r=opts.rounds, fc=med[("fleet", "cold")],
            fw=med[("fleet", "warm")], v=version, dc=med[("docker", "cold")], dw=med[("docker", "warm")],
            rc=cold, rw=warm, fp=statistics.median(floor))
        print("\nmedians: " + "  ".join("{} {} {:.2f} s".format(t, c, v) for (t, c), v in med.items()))
        print("ratio fleet/docker: cold {:.2f}x  warm {:.2f}x  (fleet ping: {:.2f} s)".format(
            cold, warm, statistics.median(floor)))
        if not opts.no_record:
            record(line)
            print(line)
        return 0
    finally:
        if dockerd is not None:
            problems = dockerd.stop()
            if problems:
                print("dockerd left these behind:\n" + "\n".join(problems), file=sys.stderr)
        if not opts.keep:
            subprocess.run(fleet_cmd() + ["lab", "down"] + lab, cwd=ROOT, capture_output=True, timeout=600)
        else:
            print("lab kept: fleet -i {} ...; `fleet lab down {}` when done".format(inv, " ".join(LAB)))
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print("bench/build.py: {}".format(exc), file=sys.stderr)
        sys.exit(1)
