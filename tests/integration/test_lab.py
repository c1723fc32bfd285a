"""Integration test of `fleet lab`: a real 3-host lab (netns, sshd, registries, mirror, seeds) built and torn down."""

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from fleet import lab
from fleet.lab import netns as lab_netns
from fleet.lab import seed as lab_seed

pytestmark = pytest.mark.integration

NAME = "fltest"
SUBNET = "10.213.99.0/24"
REG, MIRROR, AUTH = "10.213.99.2:5000", "10.213.99.3:5000", "10.213.99.4:5000"
NEEDED = ["ip", "unshare", "ssh", "ssh-keygen", "skopeo", "apt-get", "dpkg-deb", "/usr/sbin/sshd",
          "/usr/bin/docker-registry", "/bin/busybox", "/usr/sbin/nginx", "htpasswd", "tar", "mount"]
V2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Lab addresses only, never an environment proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _missing():
    if os.geteuid() != 0:
        return "needs root"
    gone = [t for t in NEEDED if not shutil.which(t)]
    return "missing tools: " + ", ".join(gone) if gone else None


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """A lab named fltest on 10.213.99.0/24 with 3 hosts; always torn down, even when a test fails."""
    why = _missing()
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("lab")
    c = lab.LabConfig(name=NAME, subnet=SUBNET, hosts=3, state_dir=base / "state", inventory=base / "inv" / "lab.yml")
    lab.down(c, log=lambda m: None)      # leftovers of an interrupted earlier run
    try:
        lab.up(c)
        yield c
    finally:
        lab.down(c)


def ssh(c, address, command):
    """Run command on a lab host as root with the lab key and strict host-key checking."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile={}".format(c.state_dir / "known_hosts"), "-o", "ConnectTimeout=5",
            "-i", str(c.state_dir / "id_ed25519"), "root@" + address, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def skopeo(*args, check=True):
    """skopeo <args> with TLS verification off (the lab registries speak plain HTTP)."""
    argv = ["skopeo", args[0], "--tls-verify=false"] + list(args[1:])
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)


def skopeo_json(*args):
    return json.loads(skopeo(*args).stdout)


def get(url, accept=None):
    """(status, headers, body) of GET url."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with OPENER.open(req, timeout=10) as resp:
        return resp.status, resp.headers, resp.read()


def refuses(address):
    """True when address:port refuses TCP connections."""
    host, port = address.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def password(c):
    return (c.state_dir / "auth-password").read_text().strip()


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        return Path("/proc/{}/stat".format(pid)).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_status_lists_hosts_running(cfg):
    st = lab.status(cfg)
    assert st["bridge"] == "fl-fltest"
    for svc, addr in (("registry", REG), ("mirror", MIRROR), ("auth", AUTH)):
        row = st[svc]
        assert row["running"] and "{}:{}".format(row["address"], row["port"]) == addr, (svc, row)
        assert alive(row["pid"])
    assert st["auth"]["user"] == "fleet"
    assert st["auth"]["password_file"] == str(cfg.state_dir / "auth-password")
    assert [(h["name"], h["address"], h["netns"]) for h in st["hosts"]] == [
        ("web1", "10.213.99.11", "fltest-web1"), ("web2", "10.213.99.12", "fltest-web2"),
        ("db1", "10.213.99.13", "fltest-db1")]
    assert all(h["running"] for h in st["hosts"])


def test_ssh_to_each_host_is_a_stock_debian_root(cfg):
    for h in lab.status(cfg)["hosts"]:
        out = ssh(cfg, h["address"], "hostname; cat /etc/fleet/daemon.json; echo $HOME; command -v python3")
        lines = out.splitlines()
        assert lines[0] == h["name"]
        daemon = json.loads("\n".join(lines[1:-2]))
        assert daemon == {"registry-mirrors": ["http://" + MIRROR, "http://" + REG],
                          "insecure-registries": [REG, MIRROR, AUTH],
                          "registries": {"docker.io": {"origin": False}}}
        assert lines[-2:] == ["/root", "/usr/bin/python3"]


def test_var_lib_fleet_is_per_host(cfg):
    hosts = lab.status(cfg)["hosts"]
    for h in hosts:
        ssh(cfg, h["address"], "echo {} > /var/lib/fleet/marker".format(h["name"]))
    for h in hosts:
        assert ssh(cfg, h["address"], "cat /var/lib/fleet/marker").strip() == h["name"]
        own = cfg.state_dir / "hosts" / h["name"] / "var-lib-fleet" / "marker"
        assert own.read_text().strip() == h["name"]
    assert not Path("/var/lib/fleet/marker").exists()


def test_lab_hosts_reach_the_registry(cfg):
    out = ssh(cfg, "10.213.99.12", "curl -s http://10.213.99.2:5000/v2/_catalog")
    assert set(json.loads(out)["repositories"]) >= {"library/busybox", "library/nginx"}


def test_seed_images_are_on_the_registry(cfg):
    def skopeo(*args):
        return json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false"] + list(args),
                                         capture_output=True, text=True, check=True, timeout=60).stdout)

    for repo in ("busybox", "nginx"):
        assert skopeo("docker://10.213.99.2:5000/library/{}:latest".format(repo))["Os"] == "linux"
    bb = skopeo("--raw", "docker://10.213.99.2:5000/library/busybox:latest")
    assert bb["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    ng = skopeo("--raw", "docker://10.213.99.2:5000/library/nginx:latest")
    assert ng["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    conf = skopeo("--config", "docker://10.213.99.2:5000/library/nginx:latest")
    assert conf["config"]["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert conf["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert conf["config"]["StopSignal"] == "SIGQUIT"
    assert len(conf["rootfs"]["diff_ids"]) == len(ng["layers"]) == len(conf["history"])


def test_busybox_has_two_tags_of_one_image(cfg):
    assert set(skopeo_json("list-tags", "docker://{}/library/busybox".format(REG))["Tags"]) == {"latest", "1.36"}
    digests = {skopeo_json("inspect", "docker://{}/library/busybox:{}".format(REG, t))["Digest"]
               for t in ("latest", "1.36")}
    assert len(digests) == 1


def test_shop_versions_for_deploys(cfg):
    digests = {}
    for tag in ("1", "2", "broken"):
        digests[tag] = skopeo_json("inspect", "docker://{}/shop/web:{}".format(REG, tag))["Digest"]
    assert len(set(digests.values())) == 3
    conf = skopeo_json("inspect", "--config", "docker://{}/shop/web:broken".format(REG))
    assert "no_such_directive" in " ".join(conf["config"]["Cmd"])


def test_mirror_proxies_the_registry(cfg):
    path = "/v2/library/busybox/manifests/latest"
    direct = get("http://" + REG + path, V2_MANIFEST)
    before = (cfg.state_dir / "mirror" / "access.log").stat().st_size
    proxied = get("http://" + MIRROR + path, V2_MANIFEST)
    assert proxied[0] == direct[0] == 200
    assert proxied[1]["Docker-Content-Digest"] == direct[1]["Docker-Content-Digest"]
    assert proxied[2] == direct[2]
    # It really went through nginx (not, say, a second address on the registry host).  nginx logs a request
    # after answering it, so the line may land a moment after our response: poll briefly.
    deadline = time.monotonic() + 5
    while "GET {} HTTP/1.1".format(path) not in (cfg.state_dir / "mirror" / "access.log").read_text()[before:]:
        assert time.monotonic() < deadline, "the proxied request is not in nginx's access log"
        time.sleep(0.05)
    layer = json.loads(direct[2])["layers"][0]
    status, _headers, blob = get("http://{}/v2/library/busybox/blobs/{}".format(MIRROR, layer["digest"]))
    assert status == 200 and len(blob) == layer["size"]
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    # From a lab host too, as a pull would do it.
    out = ssh(cfg, "10.213.99.11", "curl -s http://{}/v2/_catalog".format(MIRROR))
    assert "library/multiarch" in json.loads(out)["repositories"]


def test_mirror_can_be_switched_off_and_on(cfg):
    old = lab.status(cfg)["mirror"]["pid"]
    try:
        lab.stop_service(cfg, "mirror", log=lambda m: None)
        assert refuses(MIRROR) and not alive(old)
        assert lab_netns.netns_pids("fltest-mirror") == set()        # no orphaned nginx worker keeps serving
        st = lab.status(cfg)
        assert st["mirror"]["running"] is False and st["registry"]["running"] is True
        lab.stop_service(cfg, "mirror", log=lambda m: None)          # already stopped: a no-op
        # The fallback a pull takes: the mirror refuses, the registry itself still serves.
        out = ssh(cfg, "10.213.99.12", "curl -s -o /dev/null -w '%{{http_code}}' http://{0}/v2/ || true; echo; "
                  "curl -s -o /dev/null -w '%{{http_code}}' http://{1}/v2/".format(MIRROR, REG))
        assert out.split() == ["000", "200"]
    finally:
        row = lab.start_service(cfg, "mirror", log=lambda m: None)
    assert row["running"] and row["pid"] != old
    assert lab.start_service(cfg, "mirror", log=lambda m: None)["pid"] == row["pid"]     # idempotent
    assert get("http://{}/v2/".format(MIRROR))[0] == 200
    assert lab.status(cfg)["mirror"]["pid"] == row["pid"]
    with pytest.raises(lab.LabError):
        lab.stop_service(cfg, "nexus")


def test_auth_registry_demands_credentials(cfg):
    ref = "docker://{}/private/busybox:latest".format(AUTH)
    anon = skopeo("inspect", ref, check=False)
    assert anon.returncode != 0 and "unauthorized" in anon.stderr.lower()
    wrong = skopeo("inspect", "--creds", "fleet:not-the-password", ref, check=False)
    assert wrong.returncode != 0
    good = json.loads(skopeo("inspect", "--creds", "fleet:" + password(cfg), ref).stdout)
    assert good["Digest"] == skopeo_json("inspect", "docker://{}/library/busybox:latest".format(REG))["Digest"]
    pw = cfg.state_dir / "auth-password"
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600 and len(password(cfg)) >= 16
    assert (cfg.state_dir / "auth" / "htpasswd").read_text().startswith("fleet:$2y$")


def test_multiarch_is_an_index_of_two_platforms(cfg):
    raw = skopeo_json("inspect", "--raw", "docker://{}/library/multiarch:latest".format(REG))
    assert raw["mediaType"] == OCI_INDEX
    assert sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in raw["manifests"]) == [
        ("linux", "amd64"), ("linux", "arm64")]
    for m in raw["manifests"]:
        conf = skopeo_json("inspect", "--config", "docker://{}/library/multiarch@{}".format(REG, m["digest"]))
        assert conf["architecture"] == m["platform"]["architecture"] and len(conf["rootfs"]["diff_ids"]) == 2


def _tree(root):
    """EXPECTED_LAYERED_TREE's shape, read from a real directory tree: everything at and under root/data."""
    rows, first_of_inode = {}, {}
    paths = [root / "data"]
    for dirpath, dirnames, filenames in os.walk(root / "data"):
        paths += [Path(dirpath) / n for n in sorted(dirnames + filenames)]
    for full in paths:
        key = "/" + str(full.relative_to(root))
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            rows[key] = {"type": "symlink", "target": os.readlink(full)}
            continue
        row = {"type": "dir" if stat.S_ISDIR(st.st_mode) else "file", "mode": stat.S_IMODE(st.st_mode)}
        if row["type"] == "file":
            row["content"] = full.read_text()
            if st.st_nlink > 1:
                row["nlink"] = st.st_nlink
                first = first_of_inode.setdefault((st.st_dev, st.st_ino), key)
                if first != key:
                    row["same_inode_as"] = first
        rows[key] = row
    return rows


def test_layered_image_applies_to_the_expected_tree(cfg, tmp_path):
    ref = "docker://{}/library/layered:latest".format(REG)
    conf = skopeo_json("inspect", "--config", ref)
    assert len(conf["rootfs"]["diff_ids"]) >= 4
    # Apply the layers the way Docker's overlay2 does: each layer extracted on its own, whiteouts turned into
    # overlay whiteouts (char 0:0) and opaque xattrs, then the kernel's overlayfs merges them.
    skopeo("copy", "--src-tls-verify=false", ref, "dir:{}".format(tmp_path / "img"))
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    lowers = []
    for i, layer in enumerate(manifest["layers"]):
        d = tmp_path / "l{}".format(i)
        d.mkdir()
        subprocess.run(["tar", "-xzf", str(tmp_path / "img" / layer["digest"].split(":")[1]), "-C", str(d),
                        "--numeric-owner", "-p"], check=True)
        for dirpath, _dirs, files in os.walk(d):
            for f in files:
                if f == ".wh..wh..opq":
                    os.unlink(os.path.join(dirpath, f))
                    os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
                elif f.startswith(".wh."):
                    os.unlink(os.path.join(dirpath, f))
                    os.mknod(os.path.join(dirpath, f[4:]), stat.S_IFCHR | 0o600, os.makedev(0, 0))
        lowers.insert(0, str(d))
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowers), str(merged)],
                   check=True, capture_output=True)
    try:
        tree = _tree(merged)
        assert (merged / "bin" / "busybox").is_file()             # the busybox base layer is under it all
        assert [p for p in lab_seed.EXPECTED_LAYERED_ABSENT if os.path.lexists(str(merged) + p)] == []
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert tree == lab_seed.EXPECTED_LAYERED_TREE


def test_inventory_and_known_hosts(cfg):
    text = cfg.inventory.read_text()
    assert text.startswith("# Generated by `fleet lab up`")
    inv = yaml.safe_load(text)["all"]
    assert inv["vars"]["ansible_user"] == "root"
    assert inv["vars"]["ansible_ssh_private_key_file"] == str(cfg.state_dir / "id_ed25519")
    assert inv["children"]["web"]["hosts"] == {"web1": {"ansible_host": "10.213.99.11"},
                                               "web2": {"ansible_host": "10.213.99.12"}}
    assert inv["children"]["db"]["hosts"] == {"db1": {"ansible_host": "10.213.99.13"}}
    known = (cfg.state_dir / "known_hosts").read_text().split()
    pub = (cfg.state_dir / "hosts" / "db1" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
    assert ["10.213.99.13"] + pub[:2] == known[6:9]
    assert {k: v for k, v in inv["vars"].items() if k.startswith("fleet_lab_")} == {
        "fleet_lab_registry": REG, "fleet_lab_mirror": MIRROR, "fleet_lab_auth_registry": AUTH,
        "fleet_lab_auth_user": "fleet", "fleet_lab_auth_password_file": str(cfg.state_dir / "auth-password")}


def test_up_is_idempotent_and_repairs(cfg):
    before = lab.status(cfg)
    web1 = cfg.state_dir / "hosts" / "web1"
    watched = [cfg.inventory, cfg.state_dir / "known_hosts", cfg.state_dir / "lab.json",
               web1 / "sshd_config", web1 / "etc-fleet" / "daemon.json", web1 / "home" / ".ssh" / "authorized_keys",
               cfg.state_dir / "auth-password", cfg.state_dir / "auth" / "htpasswd",
               cfg.state_dir / "auth" / "config.yml", cfg.state_dir / "mirror" / "nginx.conf"]
    pw = password(cfg)
    mtimes = [p.stat().st_mtime_ns for p in watched]
    t0 = time.monotonic()
    after = lab.up(cfg, log=lambda m: None)
    assert time.monotonic() - t0 < 5
    assert [p.stat().st_mtime_ns for p in watched] == mtimes          # a warm up changes nothing
    assert [h["sshd_pid"] for h in after["hosts"]] == [h["sshd_pid"] for h in before["hosts"]]
    for svc in ("registry", "mirror", "auth"):
        assert after[svc]["pid"] == before[svc]["pid"] and after[svc]["running"]
    assert password(cfg) == pw
    victim = before["hosts"][1]
    os.kill(victim["sshd_pid"], signal.SIGTERM)
    deadline = time.monotonic() + 5
    while alive(victim["sshd_pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    repaired = lab.up(cfg, log=lambda m: None)
    pids = [h["sshd_pid"] for h in repaired["hosts"]]
    assert pids[0] == before["hosts"][0]["sshd_pid"] and pids[2] == before["hosts"][2]["sshd_pid"]
    assert pids[1] != victim["sshd_pid"] and all(h["running"] for h in repaired["hosts"])
    assert ssh(cfg, victim["address"], "hostname").strip() == victim["name"]


def test_down_leaves_nothing(cfg):
    st = lab.status(cfg)
    web1 = cfg.state_dir / "hosts" / "web1" / "var-lib-fleet"
    # Strays like the containers fleet starts later: one detached, one in a netns of its own.
    ssh(cfg, "10.213.99.11",
        "setsid sh -c 'echo $$ > /var/lib/fleet/stray1; exec sleep 600' </dev/null >/dev/null 2>&1 &"
        " unshare --net --mount --propagation private setsid sh -c "
        "'echo $$ > /var/lib/fleet/stray2; exec sleep 600' </dev/null >/dev/null 2>&1 &"
        " sleep 0.3")
    strays = [int((web1 / f).read_text()) for f in ("stray1", "stray2")]
    assert all(alive(p) for p in strays)
    nginx = lab_netns.netns_pids("fltest-mirror")          # master and worker
    assert st["mirror"]["pid"] in nginx and len(nginx) >= 2
    pids = strays + [h["sshd_pid"] for h in st["hosts"]] + [st[s]["pid"] for s in ("registry", "mirror", "auth")]
    pids += sorted(nginx)
    lab.down(cfg)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]
    assert lab_netns.list_netns(NAME) == []
    links = os.listdir("/sys/class/net")
    assert "fl-fltest" not in links and not [d for d in links if d.startswith(lab_netns.veth_prefix(NAME))]
    assert not cfg.state_dir.exists() and not cfg.inventory.exists() and not cfg.inventory.parent.exists()
    assert str(cfg.state_dir) not in Path("/proc/self/mountinfo").read_text()
    assert lab.status(cfg)["exists"] is False
    lab.down(cfg)                          # a lab that is gone: a no-op
