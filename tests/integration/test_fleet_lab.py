"""End to end over real SSH on the lab: ping, facts, pull, run, ps, logs, stop, rm, errors, partial failure."""

import json
import subprocess
import time
import urllib.request

import pytest

from tests.helpers.lab import _ssh, fleet

pytestmark = pytest.mark.integration

WEB = ["web1", "web2"]


def _get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def _wait_http(url, deadline=20.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return _get(url)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_hosts_selects_by_pattern(lab):
    rc, hosts = lab.fleet_json("hosts", "-H", "web*")
    assert sorted(hosts) == WEB
    rc, hosts = lab.fleet_json("hosts", "-H", "all:!web1")
    assert sorted(hosts) == ["db1", "web2"]


def test_ping_uploads_the_payload_once(lab):
    for _round in range(3):  # the cold path (missing payload -> upload -> rerun) on every host, several times
        for name in lab.hosts:
            assert _ssh(lab, name, "rm -rf /var/lib/fleet/payload").returncode == 0
        rc, first = lab.fleet_json("ping", "-H", "all")
        assert rc == 0, first
        assert all(h["ok"] and h["payload_uploaded"] for h in first.values()), first
    assert {h["hostname"] for h in first.values()} == set(lab.hosts)  # each lab host has its own UTS name
    sha = first["web1"]["payload"]
    before = _ssh(lab, "web1", "stat -c %Y /var/lib/fleet/payload/{}.pyz".format(sha)).stdout
    rc, second = lab.fleet_json("ping", "-H", "all")
    assert rc == 0
    assert not any(h["payload_uploaded"] for h in second.values()), "a warm command must upload nothing"
    assert _ssh(lab, "web1", "stat -c %Y /var/lib/fleet/payload/{}.pyz".format(sha)).stdout == before
    listed = _ssh(lab, "web1", "ls /var/lib/fleet/payload").stdout.split()
    assert [n for n in listed if n != sha + ".sock"] == [sha + ".d", sha + ".pyz"]  # .sock: its warm server's


def test_facts(lab):
    rc, facts = lab.fleet_json("facts", "-H", "all")
    assert rc == 0
    for name, f in facts.items():
        assert f["hostname"] == name
        assert f["overlay"] is True
        assert f["cgroup"] in ("v1", "v2", "hybrid")
        assert {"mnt", "pid", "uts", "ipc", "net"} <= set(f["namespaces"])
        assert f["disk_free"] > 0
    table = lab.fleet("facts", "-H", "db1", check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["HOST", "HOSTNAME", "DISTRO"]


def test_facts_overlay_says_loaded_where_the_kernel_lists_it(lab):
    """OVERLAY is what is true: the lab shares this kernel, so it is "loaded" exactly when /proc/filesystems says."""
    with open("/proc/filesystems") as f:
        loaded = any(line.split()[-1] == "overlay" for line in f if line.strip())
    rc, facts = lab.fleet_json("facts", "-H", "db1")
    assert rc == 0, facts
    assert facts["db1"]["overlay_state"] == ("loaded" if loaded else facts["db1"]["overlay_state"])
    assert facts["db1"]["overlay"] is (facts["db1"]["overlay_state"] != "absent")
    lines = lab.fleet("facts", "-H", "db1", check=True).stdout.splitlines()
    column = lines[0].index(" OVERLAY ") + 1  # columns are aligned; DISTRO has spaces
    assert lines[1][column:].split()[0] == facts["db1"]["overlay_state"]


def test_pull_through_the_mirror_matches_skopeo(lab):
    rc, pulled = lab.fleet_json("pull", "-H", "web*", "nginx")
    assert rc == 0, pulled
    registry = pulled["web1"]["endpoint"]
    assert registry and "5000" in registry  # served by the lab registry named in registry-mirrors
    for name in WEB:
        assert pulled[name]["image"] == "docker.io/library/nginx:latest"
    host = registry.split("//", 1)[-1].split("/", 1)[0]
    ref = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "docker://{}/library/nginx:latest".format(host)],
                         capture_output=True, text=True, check=True)
    assert pulled["web1"]["digest"] == json.loads(ref.stdout)["Digest"]
    rc, again = lab.fleet_json("pull", "-H", "web1", "nginx")
    assert again["web1"]["downloaded"] == 0
    rc, images = lab.fleet_json("images", "-H", "web1")
    assert any(i["repository"] == "nginx" and i["tag"] == "latest" for i in images["web1"]["images"])


def test_run_nginx_ps_logs_stop_rm(lab):
    lab.fleet("rm", "-f", "-H", "web*", "web")  # leftovers of an interrupted earlier run, if any
    proc = lab.fleet("run", "-H", "web*", "-d", "-p", "80:80", "--name", "web", "nginx", check=True)
    header = proc.stdout.splitlines()[0].split()
    assert header[:3] == ["HOST", "CONTAINER", "ID"]
    try:
        for name in WEB:
            status, body = _wait_http("http://{}/".format(lab.address(name)))
            assert status == 200 and "Welcome to the fleet lab" in body
        # nginx serves under Docker's default seccomp profile (the image has no shell: read its status on the host)
        (obj,) = json.loads(lab.fleet("inspect", "-H", "web1", "web", check=True).stdout)
        pid = obj["State"]["Pid"]
        status = _ssh(lab, "web1", "grep -E '^(Name|Seccomp):' /proc/{}/status".format(pid)).stdout
        assert "nginx" in status and "Seccomp:\t2" in status, status

        rc, ps = lab.fleet_json("ps", "-H", "all")
        assert rc == 0
        for name in WEB:
            (c,) = [c for c in ps[name]["containers"] if c["name"] == "web"]
            assert c["status"].startswith("Up") and c["image"] == "nginx"
        assert ps["db1"]["containers"] == []
        table = lab.fleet("ps", "-H", "all", check=True).stdout.splitlines()
        assert table[0].split() == ["HOST", "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                    "NAMES"]
        assert sum(1 for line in table[1:] if line.split()[-1] == "web") == 2

        # nginx logs a request after answering it, and the shim copies the line a moment later: poll briefly
        deadline = time.monotonic() + 10
        while True:
            logs = lab.fleet("logs", "-H", "web1", "--prefix", "web", check=True).stdout
            if any(line.startswith("web1 | ") and "GET / HTTP" in line for line in logs.splitlines()):
                break
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        tail = lab.fleet("logs", "-H", "web1", "--tail", "1", "web", check=True).stdout
        assert len(tail.splitlines()) == 1

        clash = lab.fleet("run", "-H", "web1", "-d", "--name", "web", "nginx")
        assert clash.returncode == 125 and "already in use" in clash.stderr  # one host: stdout is for the ID

        lab.fleet("stop", "-H", "web*", "web", check=True)
        rc, ps = lab.fleet_json("ps", "-H", "web*", "-a")
        for name in WEB:
            (c,) = [c for c in ps[name]["containers"] if c["name"] == "web"]
            assert c["state"] == "exited" and c["status"].startswith("Exited")
    finally:
        lab.fleet("rm", "-f", "-H", "web*", "web")
    rc, ps = lab.fleet_json("ps", "-H", "web*", "-a")
    assert all(c["name"] != "web" for name in WEB for c in ps[name]["containers"])
    # nothing left behind on the host: no overlay mount in the lab host's mount namespace, no shim
    mounts = _ssh(lab, "web1", "grep -c ' overlay ' /proc/mounts || true").stdout.strip()
    assert mounts == "0"


def test_run_in_foreground_streams_output_and_returns_the_exit_code(lab):
    proc = lab.fleet("run", "-H", "web1", "--prefix", "--rm", "busybox", "sh", "-c",
                     "echo hello from $(hostname); exit 3")
    assert proc.returncode == 3, proc.stderr
    assert any(line.startswith("web1") and "hello from" in line for line in proc.stdout.splitlines())
    rc, ps = lab.fleet_json("ps", "-H", "web1", "-a")
    assert all(c["image"] != "busybox" for c in ps["web1"]["containers"]), "--rm must remove the container"


def test_unreachable_host_fails_alone(lab, tmp_path):
    import yaml
    inv = yaml.safe_load(lab.inventory.read_text())
    # A host on the lab bridge where nothing listens on the SSH port: connection refused, fast.
    inv["all"]["children"]["web"]["hosts"]["ghost"] = {"ansible_host": lab.address("web1"), "ansible_port": 2222}
    path = tmp_path / "with-ghost.yml"
    path.write_text(yaml.safe_dump(inv))
    proc = fleet("ping", "-H", "all", inventory=path)
    assert proc.returncode == 1
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "ERROR" in proc.stdout.splitlines()[0]
    assert "pong" in rows["web1"] and "pong" in rows["db1"]
    assert "2222" in rows["ghost"] and "pong" not in rows["ghost"]


def test_strict_host_key_checking_and_tofu(lab, tmp_path):
    import yaml
    inv = yaml.safe_load(lab.inventory.read_text())
    kh = tmp_path / "known_hosts"
    inv["all"]["vars"]["fleet_known_hosts"] = str(kh)
    path = tmp_path / "tofu.yml"
    path.write_text(yaml.safe_dump(inv))
    refused = fleet("ping", "-H", "web1", inventory=path)
    assert refused.returncode == 1 and "--accept-new-host-keys" in refused.stdout
    kh.write_text("")
    refused = fleet("ping", "-H", "web1", inventory=path)
    assert refused.returncode == 1 and "host key" in refused.stdout.lower()
    accepted = fleet("--accept-new-host-keys", "ping", "-H", "web1", inventory=path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert lab.address("web1") in kh.read_text()
    assert fleet("ping", "-H", "web1", inventory=path).returncode == 0  # now known: strict mode passes
    # a changed key is refused even with --accept-new-host-keys
    kh.write_text(kh.read_text().replace(lab.address("web1"), lab.address("web2")))
    wrong = fleet("--accept-new-host-keys", "ping", "-H", "web2", inventory=path)
    assert wrong.returncode == 1


@pytest.mark.parametrize("args,needle", [
    (["ping", "-H", "nosuchgroup"], "nosuchgroup"),
    (["run", "-H", "web1", "-d", "UPPER/Case:x"], "UPPER/Case:x"),
    (["logs", "-H", "web1", "--tail", "lots", "web"], "lots"),
    # caught by the payload on every host, before it pulls or creates anything: still one line, exit 2
    (["run", "-H", "all", "-d", "--name", "bad name!", "nginx"], "bad name!"),
    (["run", "-H", "all", "-d", "-w", "relative/dir", "nginx"], "relative/dir"),
    (["run", "-H", "db1", "-d", "--hostname", "bad host!", "nginx"], "bad host!"),
    (["run", "-H", "db1", "-d", "-e", "=x", "nginx"], "=x"),
])
def test_bad_input_is_a_usage_error_and_changes_nothing(lab, args, needle):
    rc, before = lab.fleet_json("ps", "-H", "all", "-a")
    rc, images_before = lab.fleet_json("images", "-H", "all")
    proc = lab.fleet(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    rc, after = lab.fleet_json("ps", "-H", "all", "-a")
    assert {h: len(v["containers"]) for h, v in before.items()} == {h: len(v["containers"]) for h, v in after.items()}
    rc, images_after = lab.fleet_json("images", "-H", "all")
    assert {h: v["images"] for h, v in images_before.items()} == {h: v["images"] for h, v in images_after.items()}


def test_broken_inventory_names_the_file(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text("all:\n  hosts:\n    web1: {ansible_host: [\n")
    proc = fleet("ping", "-H", "all", inventory=bad)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr


def test_unknown_container_is_a_per_host_error(lab):
    proc = lab.fleet("logs", "-H", "web*", "no-such-container")
    assert proc.returncode == 1
    assert "No such container" in proc.stderr


def test_env_command_override_and_follow(lab):
    name = "counter"
    lab.fleet("rm", "-f", "-H", "db1", name)
    lab.fleet("run", "-H", "db1", "-d", "--name", name, "-e", "GREETING=hi there", "busybox", "sh", "-c",
              'for i in 1 2 3; do echo "$GREETING $i"; sleep 0.3; done; echo done >&2', check=True)
    try:
        followed = lab.fleet("logs", "-H", "db1", "--prefix", "-f", name, check=True, timeout=60)
        assert [line.split(" | ", 1)[1] for line in followed.stdout.splitlines()] == [
            "hi there 1", "hi there 2", "hi there 3"]
        assert followed.stderr.strip().endswith("done")
        stamped = lab.fleet("logs", "-H", "db1", "--prefix", "-t", "--tail", "2", name, check=True)
        assert stamped.stdout.startswith("db1 | 20") and stamped.stdout.rstrip().endswith("Z hi there 3")
        assert stamped.stderr.startswith("db1 | 20") and stamped.stderr.rstrip().endswith("Z done")
        rc, ps = lab.fleet_json("ps", "-H", "db1", "-a")
        (c,) = [c for c in ps["db1"]["containers"] if c["name"] == name]
        assert c["status"].startswith("Exited (0)")
        quiet = lab.fleet("ps", "-H", "db1", "-a", "-q", check=True).stdout.split()
        assert quiet[0] == c["id"][:12]  # bare IDs (issue 13)
    finally:
        lab.fleet("rm", "-H", "db1", name, check=True)


def test_payload_works_by_hand_on_a_host(lab):
    rc, pong = lab.fleet_json("ping", "-H", "web2")
    pyz = "/var/lib/fleet/payload/{}.pyz".format(pong["web2"]["payload"])
    lab.fleet("run", "-H", "web2", "-d", "--name", "byhand", "busybox", "sleep", "60", check=True)
    try:
        local = _ssh(lab, "web2", "python3 {} ps".format(pyz))
        assert local.returncode == 0, local.stderr
        lines = local.stdout.splitlines()
        assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        assert any(line.split()[-1] == "byhand" for line in lines[1:])
    finally:
        lab.fleet("rm", "-f", "-H", "web2", "byhand", check=True)


def test_lab_status(lab):
    from tests.helpers.lab import LAB_NAME
    proc = fleet("lab", "status", "--name", LAB_NAME, check=True)
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert set(rows) == {"registry", "mirror", "auth"} | set(lab.hosts)
    assert all(r[-1] == "running" for r in rows.values())
    assert rows["web1"][1] == lab.address("web1")
    missing = fleet("lab", "status", "--name", "no-such-lab")
    assert missing.returncode == 1 and "not up" in missing.stdout


def test_follow_ends_on_the_host_when_the_controller_goes_away(lab):
    import signal
    import sys

    lab.fleet("rm", "-f", "-H", "web2", "quiet")
    lab.fleet("run", "-H", "web2", "-d", "--name", "quiet", "busybox", "sleep", "300", check=True)
    try:
        follower = subprocess.Popen([sys.executable, "-m", "fleet", "-i", str(lab.inventory), "logs", "-H", "web2",
                                     "-f", "quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Payload processes of this lab host (lab hosts share the machine's PID namespace, so match the netns
        # too; "rp[c]" keeps this very command line from matching itself). It only reads; it kills nothing.
        rpc = ("n=0; me=$(readlink /proc/self/ns/net); for p in $(pgrep -f 'pyz --rp[c]'); do "
               '[ "$(readlink /proc/$p/ns/net)" = "$me" ] && n=$((n+1)); done; echo $n')
        deadline = time.monotonic() + 15
        while _ssh(lab, "web2", rpc).stdout.strip() != "1":
            assert time.monotonic() < deadline, "logs -f never started on the host"
            time.sleep(0.2)
        follower.send_signal(signal.SIGKILL)
        follower.wait()
        deadline = time.monotonic() + 10
        while _ssh(lab, "web2", rpc).stdout.strip() != "0":
            assert time.monotonic() < deadline, "the payload kept following with no one listening"
            time.sleep(0.3)
        rc, ps = lab.fleet_json("ps", "-H", "web2")
        assert any(c["name"] == "quiet" for c in ps["web2"]["containers"]), "the container must live on"
    finally:
        lab.fleet("rm", "-f", "-H", "web2", "quiet")
