"""`fleet check` on the lab: an all-OK fleet is silent; then an unhealthy container, a drifted service, a
restart loop, a failing probe, a disk threshold crossed and a black-holed host each give their row, exit code and
format; an overlapping run exits 3 at once, the deadline holds, and cron's bare environment works."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers.lab import LAB_NAME, fleet

pytestmark = pytest.mark.integration

PROJECT = "checktest"
COMPOSE = """
name: {project}
services:
  web:
    image: "{{{{ fleet_lab_registry }}}}/shop/web:1"
    ports: ["8282:80"]
    environment: {{MODE: "{mode}"}}
    healthcheck: {{test: ["CMD", "nginx", "-t", "-q"], interval: 1s, timeout: 2s, retries: 2}}
    deploy: {{update_config: {{monitor: 1s}}}}
    x-fleet: {{hosts: web}}
"""


class Env:
    def __init__(self, lab, tmp_path):
        self.lab, self.dir = lab, tmp_path
        self.inventory = tmp_path / "lab.yml"
        shutil.copy(lab.inventory, self.inventory)
        (tmp_path / "host_vars").mkdir()
        self.compose = tmp_path / "compose.yaml"
        self.write()

    def write(self, mode="a", host_vars=None):
        self.compose.write_text(COMPOSE.format(project=PROJECT, mode=mode))
        for f in (self.dir / "host_vars").iterdir():
            f.unlink()
        for host, values in (host_vars or {}).items():
            (self.dir / "host_vars" / "{}.yml".format(host)).write_text(yaml.safe_dump(values))

    def fleet(self, *args, **kw):
        return fleet(*args, inventory=self.inventory, **kw)

    def check(self, *args, hosts="all", env=None):
        cmd = [sys.executable, "-m", "fleet", "-i", str(self.inventory), "check", "-H", hosts, "-f",
               str(self.compose)] + list(args)
        env = dict(os.environ if env is None else env, XDG_RUNTIME_DIR=str(self.dir))  # the overlap lock's dir
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

    def rows(self, *args, hosts="all"):
        proc = self.check("--json", *args, hosts=hosts)
        data = json.loads(proc.stdout)
        return proc.returncode, {(c["host"], c["check"]): c for c in data["checks"]}, data


@pytest.fixture
def env(lab, tmp_path):
    e = Env(lab, tmp_path)
    e.fleet("down", "-H", "all", "-p", PROJECT, "-v")
    lab.remove_containers("chk-")
    try:
        e.fleet("deploy", "-H", "web*", "-f", str(e.compose), check=True)
        yield e
    finally:
        lab.remove_containers("chk-")
        e.fleet("down", "-H", "all", "-p", PROJECT, "-v")


def _blackhole(host, on):
    ns = "{}-{}".format(LAB_NAME, host)
    if on:
        script = "add table inet flchk\nadd chain inet flchk in { type filter hook input priority -10; }\n" \
                 "add rule inet flchk in tcp dport 22 drop\n"
    else:
        script = "delete table inet flchk\n"
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True, check=on)


def test_all_ok_is_silent_then_each_problem_has_its_row(env):
    proc = env.check("--quiet", hosts="web*")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    rc, rows, _ = env.rows("--all", hosts="web*")
    assert rc == 0 and rows[("web1", "service:{}/web".format(PROJECT))]["status"] == "OK"

    # an unhealthy container on web1, a restart loop on web2, a drifted service, a failing probe, a disk threshold
    env.fleet("run", "-d", "-H", "web1", "--name", "chk-sick", "--health-cmd", "false", "--health-interval", "1s",
              "--health-retries", "1", "busybox", "sleep", "600", check=True)
    env.fleet("run", "-d", "-H", "web2", "--name", "chk-loop", "--restart", "always", "busybox", "sh", "-c",
              "exit 1", check=True)
    env.write(mode="b", host_vars={"web1": {"fleet_checks": [{"type": "tcp", "port": 1, "name": "closed"}]},
                                   "web2": {"fleet_check_thresholds": {"disk_warn_pct": 100}}})
    deadline = time.monotonic() + 30
    while True:  # until web1's container is unhealthy and web2's has restarted since the first look
        rc, rows, data = env.rows("--all", hosts="web*")
        sick = rows.get(("web1", "container:chk-sick"), {}).get("status")
        loop = rows.get(("web2", "container:chk-loop"), {}).get("status")
        if sick == "CRITICAL" and loop == "WARNING":
            break
        assert time.monotonic() < deadline, rows
    assert rc == 2 and data["status"] == "CRITICAL"
    assert rows[("web1", "service:{}/web".format(PROJECT))]["status"] == "WARNING"
    assert "config" in rows[("web1", "service:{}/web".format(PROJECT))]["detail"]
    assert rows[("web1", "probe:closed")]["status"] == "CRITICAL"
    assert rows[("web2", "disk:/")]["status"] == "WARNING"

    nagios = env.check("--format", "nagios", hosts="web*")
    assert nagios.returncode == 2 and nagios.stdout.startswith("FLEET CRITICAL - ")
    assert " | " in nagios.stdout.splitlines()[0]
    prom = env.dir / "fleet.prom"
    table = env.check("--prometheus", str(prom), hosts="web*")
    assert table.returncode == 2 and "chk-sick" in table.stdout
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    status = {(s.labels["host"], s.labels["check"]): s.value for s in families["fleet_check_status"].samples}
    assert status[("web1", "container:chk-sick")] == 2 and status[("web2", "disk:/")] == 1
    restarts = {s.labels["container"]: s.value for s in families["fleet_container_restarts"].samples
                if s.labels["host"] == "web2"}
    assert restarts["chk-loop"] >= 1


def test_a_black_holed_host_within_the_deadline_and_an_overlapping_run(env):
    _blackhole("db1", True)
    try:
        t0 = time.monotonic()
        first = subprocess.Popen([sys.executable, "-m", "fleet", "-i", str(env.inventory), "check", "-H", "all",
                                  "-f", str(env.compose), "--deadline", "10", "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, XDG_RUNTIME_DIR=str(env.dir)))
        while not any("pid {}".format(first.pid) in p.read_text() for p in env.dir.glob("fleet-check-*.lock")):
            assert first.poll() is None and time.monotonic() - t0 < 10  # the first run holds its lock
            time.sleep(0.05)
        second = env.check("--format", "nagios")
        assert second.returncode == 3 and second.stdout.startswith("FLEET UNKNOWN - another fleet check")
        out, _err = first.communicate(timeout=30)
        took = time.monotonic() - t0
        assert took < 12, took
        data = json.loads(out)
        rows = {(c["host"], c["check"]): c for c in data["checks"]}
        assert rows[("db1", "reachable")]["status"] == "CRITICAL" and first.returncode == 2
        assert rows[("web1", "reachable")]["status"] == "OK"
    finally:
        _blackhole("db1", False)


def test_cron_environment(env):
    proc = env.check("--quiet", hosts="web*", env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_heal_redeploys_a_drifted_service_through_the_gated_path(env):
    env.write(mode="b")  # the file changed, the hosts did not: drifted
    proc = env.check("--heal", hosts="web*")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the state found, before healing
    healed = [line for line in proc.stdout.splitlines() if line.startswith("healed: ")]
    assert sorted(healed) == ["healed: web1 service:{}/web: updated".format(PROJECT),
                              "healed: web2 service:{}/web: updated".format(PROJECT)], proc.stdout
    again = env.check("--quiet", hosts="web*")
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
