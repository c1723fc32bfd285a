"""`fleet deploy` on the lab: a compose project (web: the lab's shop/web nginx on the web group, worker: busybox on
the db group) planned, deployed, left alone when nothing changed, canaried from host_vars, gated (broken versions
rolled back, the other hosts untouched), rolled back by failure_action and by `fleet rollback`, locked, swapped
with zero failed requests (start-first), and safe when the controller is SIGKILLed at any point."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import yaml

from tests.helpers.lab import fleet

pytestmark = pytest.mark.integration

PROJECT = "shoptest"
PORT = 8181
WEB = ["web1", "web2"]

COMPOSE = """
name: {project}
services:
  web:
    image: "{{{{ fleet_lab_registry }}}}/shop/web:{{{{ web_tag }}}}"
    ports: ["{port}:80"]
    environment:
      SHOP_MODE: "{{{{ shop_mode | default('test') }}}}"
    healthcheck:
      test: {health}
      interval: 1s
      timeout: 2s
      retries: 2
    stop_grace_period: 2s
    deploy:
      update_config: {{parallelism: 1, order: {order}, failure_action: {failure_action}, monitor: 1s}}
      rollback_config: {{parallelism: 1, order: {order}, monitor: 1s}}
    x-fleet:
      hosts: web
      probe: "http://:{port}/"
  worker:
    image: busybox
    command: ["sleep", "100000"]
    environment:
      WORKER_MODE: "{worker_mode}"
    stop_signal: SIGKILL
    x-fleet:
      hosts: db
"""


class Deploy:
    """A copy of the lab inventory with its own group_vars/host_vars and compose file, and fleet run on it."""

    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.dir = tmp_path
        self.inventory = tmp_path / "lab.yml"
        shutil.copy(lab.inventory, self.inventory)
        (tmp_path / "group_vars").mkdir()
        (tmp_path / "host_vars").mkdir()
        self.compose = tmp_path / "compose.yaml"
        self.write(web_tag="1")

    def write(self, web_tag="1", host_tags=None, order="start-first", failure_action="pause",
              worker_mode="a", health='["CMD", "nginx", "-t", "-q"]'):
        (self.dir / "group_vars" / "all.yml").write_text(yaml.safe_dump({"web_tag": web_tag}))
        for f in (self.dir / "host_vars").iterdir():
            f.unlink()
        for host, tag in (host_tags or {}).items():
            (self.dir / "host_vars" / "{}.yml".format(host)).write_text(yaml.safe_dump({"web_tag": tag}))
        self.compose.write_text(COMPOSE.format(project=PROJECT, port=PORT, order=order, health=health,
                                               failure_action=failure_action, worker_mode=worker_mode))

    def fleet(self, *args, **kw):
        return fleet(*args, inventory=self.inventory, **kw)

    def deploy(self, *args, check=False):
        return self.fleet("deploy", "-H", "all", "-f", str(self.compose), *args, check=check)

    def deploy_json(self, *args):
        proc = self.deploy("--json", *args)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("not JSON (exit {}):\n{}\n{}".format(proc.returncode, proc.stdout, proc.stderr))

    def containers(self, all_=True):
        """{host: {name: id}} of the project's containers."""
        args = ["ps", "-H", "all", "--json", "-f", "label=com.docker.compose.project=" + PROJECT]
        proc = self.fleet(*args + (["-a"] if all_ else []), check=True)
        return {h["host"]: {c["name"]: c["id"] for c in h.get("containers", [])} for h in json.loads(proc.stdout)}

    def page(self, host, timeout=2.0):
        url = "http://{}:{}/".format(self.lab.address(host), PORT)
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()

    def serves(self, host):
        """"1" or "2": the shop version the host's published port answers with."""
        status, body = self.page(host)
        assert status == 200
        return body.split("<h1>shop ", 1)[1].split("<", 1)[0]


@pytest.fixture
def dep(lab, tmp_path):
    d = Deploy(lab, tmp_path)
    d.fleet("down", "-H", "all", "-p", PROJECT, "-v")  # leftovers of an interrupted earlier run
    try:
        yield d
    finally:
        d.fleet("down", "-H", "all", "-p", PROJECT, "-v")


def _results(data):
    return {(r["host"], r["service"]): r for r in data["results"]}


def test_plan_then_deploy_then_nothing_changed_then_one_env_var(dep):
    rc, plan = dep.deploy_json("--dry-run")
    assert rc == 0, plan
    assert {(a["host"], a["service"], a["action"]) for a in plan["plan"]} == {
        ("web1", "web", "create"), ("web2", "web", "create"), ("db1", "worker", "create")}
    assert dep.containers() == {"web1": {}, "web2": {}, "db1": {}}  # the plan changed nothing

    rc, out = dep.deploy_json()
    assert rc == 0, out
    assert {k: r["result"] for k, r in _results(out).items()} == {
        ("web1", "web"): "created", ("web2", "web"): "created", ("db1", "worker"): "created"}
    assert [dep.serves(h) for h in WEB] == ["1", "1"]
    first = dep.containers()
    assert all(len(first[h]) == 1 for h in first), first

    rc, out = dep.deploy_json()  # nothing changed: no container touched
    assert rc == 0 and {r["result"] for r in out["results"]} == {"unchanged"}, out
    assert dep.containers() == first

    proc = dep.fleet("services", "-H", "all", "-f", str(dep.compose), "--json", check=True)
    states = {(r["host"], r["service"]): r["state"] for r in json.loads(proc.stdout)["services"]}
    assert states == {("web1", "web"): "in sync", ("web2", "web"): "in sync", ("db1", "worker"): "in sync"}

    dep.write(worker_mode="b")  # one env var of one service
    rc, out = dep.deploy_json()
    assert rc == 0, out
    results = {k: r["result"] for k, r in _results(out).items()}
    assert results == {("web1", "web"): "unchanged", ("web2", "web"): "unchanged", ("db1", "worker"): "updated"}
    after = dep.containers(all_=False)
    assert after["web1"] == first["web1"] and after["web2"] == first["web2"]
    assert list(after["db1"].values()) != list(first["db1"].values())


def test_canary_from_host_vars_then_rollback_and_history(dep):
    dep.deploy(check=True)
    before = dep.containers(all_=False)
    dep.write(web_tag="1", host_tags={"web1": "2"})
    rc, plan = dep.deploy_json("--dry-run")
    actions = {(a["host"], a["service"]): a for a in plan["plan"]}
    assert actions[("web1", "web")]["action"] == "recreate"
    assert any(c["field"] == "image" for c in actions[("web1", "web")]["changes"])
    assert actions[("web2", "web")]["action"] == "unchanged"
    dep.deploy(check=True)
    assert dep.serves("web1") == "2" and dep.serves("web2") == "1"
    assert dep.containers(all_=False)["web2"] == before["web2"]

    proc = dep.fleet("rollback", "-H", "web1", "-f", str(dep.compose), "web")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dep.serves("web1") == "1"
    assert dep.containers(all_=False)["web1"] == before["web1"]  # the previous container itself, back in service

    proc = dep.fleet("deploy", "history", "-H", "web1", "-p", PROJECT, "--json", check=True)
    (entries,) = [h["entries"] for h in json.loads(proc.stdout)]
    assert [e["service"] for e in entries][-3:] == ["web", "web", "web"]
    assert entries[-1]["controller"] and entries[-1]["result"]


def test_a_broken_version_is_rolled_back_on_the_first_host_and_the_rest_untouched(dep):
    dep.deploy(check=True)
    before = dep.containers(all_=False)
    dep.write(web_tag="broken")
    proc = dep.deploy()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = proc.stdout
    web1 = [line for line in table.splitlines() if line.startswith("web1")][0]
    web2 = [line for line in table.splitlines() if line.startswith("web2")][0]
    assert "rolled back" in web1 and "skipped" in web2, table
    assert [dep.serves(h) for h in WEB] == ["1", "1"]
    assert dep.containers(all_=False) == before  # web1's old container back in service, web2 never touched

    dep.write(web_tag="2", health='["CMD", "/no/such/probe"]')  # starts, never becomes healthy
    rc, out = dep.deploy_json()
    assert rc == 1
    res = _results(out)
    assert res[("web1", "web")]["result"] == "rolled back" and res[("web2", "web")]["result"] == "skipped"
    assert "health" in (res[("web1", "web")]["reason"] or "").lower(), res
    assert [dep.serves(h) for h in WEB] == ["1", "1"]


def test_failure_action_rollback_restores_the_earlier_batches(dep):
    dep.deploy(check=True)
    dep.write(web_tag="2", host_tags={"web2": "broken"}, failure_action="rollback")
    rc, out = dep.deploy_json()
    assert rc == 1, out
    res = _results(out)
    assert res[("web1", "web")]["result"] == "rolled back" and res[("web2", "web")]["result"] == "rolled back"
    assert out["rolled_back"] is True
    assert [dep.serves(h) for h in WEB] == ["1", "1"]


HOLDER = r"""
import asyncio, sys
from fleet.inventory import load_inventory, select
from fleet.transport.link import HostLink
from fleet.transport.payload import build
from fleet.transport.ssh import SSHOptions

async def main():
    (host,) = select(load_inventory([sys.argv[1]]), ["web1"])
    link = HostLink(host, build(), SSHOptions())
    await link.open()
    await link.call("deploy_lock", {"project": sys.argv[2], "deploy_id": "held-by-test", "holder": "ops@elsewhere",
                                    "action": "acquire"})
    print("locked", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def test_a_second_deploy_fails_at_once_naming_the_holder_until_it_is_gone(dep):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(dep.inventory), PROJECT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = dep.deploy()
        assert proc.returncode == 1
        assert "ops@elsewhere" in proc.stdout + proc.stderr and "held-by-test" in proc.stdout + proc.stderr
        assert dep.containers() == {"web1": {}, "web2": {}, "db1": {}}  # nothing changed on any host
    finally:
        holder.kill()  # its SSH connection dies with it: the lock's holder is gone
        holder.wait()
    dep.deploy(check=True)  # takes the stale lock over


def _hammer(dep, host, stop, tally):
    while not stop.is_set():
        try:
            tally.append((host, dep.serves(host)))
        except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
            tally.append((host, "error: {!r}".format(exc)))


def test_start_first_swaps_with_zero_failed_requests(dep):
    dep.deploy(check=True)
    dep.write(web_tag="2")
    stop, tally = threading.Event(), []
    threads = [threading.Thread(target=_hammer, args=(dep, h, stop, tally)) for h in WEB]
    for t in threads:
        t.start()
    try:
        dep.deploy(check=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
    errors = [t for t in tally if t[1] not in ("1", "2")]
    assert not errors, errors[:5]
    assert {v for _h, v in tally} == {"1", "2"} and len(tally) > 50
    assert [dep.serves(h) for h in WEB] == ["2", "2"]


def test_controller_killed_at_random_points_leaves_every_host_serving(dep):
    dep.deploy(check=True)
    t0 = time.monotonic()
    dep.write(web_tag="2")
    dep.deploy(check=True)
    full = time.monotonic() - t0
    rng = random.Random(1234)
    stop, tally = threading.Event(), []
    threads = [threading.Thread(target=_hammer, args=(dep, h, stop, tally)) for h in WEB]
    for t in threads:  # never none: the old version or the new one answers at every moment, kills included
        t.start()
    tag = "2"
    try:
        for _point in range(10):
            tag = "1" if tag == "2" else "2"
            dep.write(web_tag=tag)
            proc = subprocess.Popen([sys.executable, "-m", "fleet", "-i", str(dep.inventory), "deploy", "-H",
                                     "all", "-f", str(dep.compose)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 1.0) * full)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        dep.write(web_tag="1")
        dep.deploy(check=True)  # the next deploy completes (stale locks taken over, half-done swaps settled)
    finally:
        stop.set()
        for t in threads:
            t.join()
    errors = [t for t in tally if t[1] not in ("1", "2")]
    assert not errors, errors[:5]
    assert [dep.serves(h) for h in WEB] == ["1", "1"]


def test_a_deploy_killed_while_a_host_waits_for_health_leaves_its_lock_to_the_next_one(dep):
    dep.deploy(check=True)
    dep.write(web_tag="2")
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "-i", str(dep.inventory), "deploy", "-H", "all", "-f",
                             str(dep.compose)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # plain progress lines: "web1: web: waiting for health"
            if "waiting for health" in line:
                break
        else:
            raise AssertionError("the deploy ended before any host waited for health")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-swap: the host's worker goes on, the controller is gone
        proc.wait()
    dep.write(web_tag="1")
    again = dep.deploy()  # at once: the killed deploy's locks died with its SSH sessions
    assert again.returncode == 0, again.stdout + again.stderr
    assert [dep.serves(h) for h in WEB] == ["1", "1"]


def test_readme_deploy_example_runs_on_the_lab_as_written(lab, tmp_path):
    """README's "Deploying services" commands, run as written from a checkout whose inventories/ holds the lab."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "README.md")) as f:
        section = f.read().split("## Deploying services", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console", 1)[1].split("```", 1)[0]
    commands = [line[2:].split() for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 5 and all(argv[0] == "fleet" for argv in commands)
    shutil.copytree(os.path.join(repo, "inventories"), tmp_path / "inventories")
    shutil.copy(lab.inventory, tmp_path / "inventories" / "lab.yml")

    def page(host):
        url = "http://{}:8000/".format(lab.address(host))
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode().split("<h1>", 1)[1].split("<", 1)[0]

    seen = []
    try:
        for argv in commands:
            proc = subprocess.run([sys.executable, "-m", "fleet"] + argv[1:], cwd=str(tmp_path), capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
            if argv[1] == "deploy" and "--dry-run" not in argv and "history" not in argv:
                seen.append([page(h) for h in WEB])
    finally:
        subprocess.run([sys.executable, "-m", "fleet", "-i", "inventories/lab.yml", "down", "-H", "all", "-p",
                        "shop", "-v"], cwd=str(tmp_path), capture_output=True, timeout=300)
    assert seen == [["shop 2", "shop 1"], ["shop 2", "shop 2"]]  # web1 the canary, then promoted everywhere
