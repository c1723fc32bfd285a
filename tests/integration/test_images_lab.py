"""Images end to end over SSH on the lab: mirror and fallback, auth registry, platforms, push, layered trees."""

import json
import subprocess

import pytest
import yaml

from fleet.lab.seed import EXPECTED_LAYERED_ABSENT, EXPECTED_LAYERED_TREE
from tests.helpers.lab import LAB_NAME, fleet

pytestmark = pytest.mark.integration


def _lab_vars(lab):
    return yaml.safe_load(lab.inventory.read_text())["all"]["vars"]


def _skopeo(*args):
    return subprocess.run(["skopeo"] + list(args), capture_output=True, text=True, timeout=120)


def test_pull_goes_through_the_mirror_and_falls_back_when_it_is_down(lab):
    v = _lab_vars(lab)
    rc, pulled = lab.fleet_json("pull", "-H", "web1", "busybox:1.36")
    assert rc == 0, pulled
    assert v["fleet_lab_mirror"] in pulled["web1"]["endpoint"]
    fleet("lab", "stop", "mirror", "--name", LAB_NAME, check=True)
    try:
        rc, pulled = lab.fleet_json("pull", "-H", "web2", "busybox:1.36")
        assert rc == 0, pulled
        assert v["fleet_lab_registry"] in pulled["web2"]["endpoint"]
    finally:
        fleet("lab", "start", "mirror", "--name", LAB_NAME, check=True)


def test_pull_by_digest_and_unknown_manifest(lab):
    v = _lab_vars(lab)
    inspect = json.loads(_skopeo("inspect", "--tls-verify=false",
                                 "docker://{}/library/busybox:latest".format(v["fleet_lab_registry"])).stdout)
    by_digest = "busybox@" + inspect["Digest"]
    rc, pulled = lab.fleet_json("pull", "-H", "db1", by_digest)
    assert rc == 0, pulled
    assert pulled["db1"]["digest"] == inspect["Digest"]
    run = lab.fleet("run", "-H", "db1", "--prefix", "--rm", by_digest, "echo", "pinned", check=True)
    assert "db1 | pinned" in run.stdout
    missing = lab.fleet("pull", "-H", "db1", "busybox:no-such-tag")
    assert missing.returncode == 1 and "manifest unknown" in missing.stdout


def test_auth_registry_needs_login(lab):
    v = _lab_vars(lab)
    registry = v["fleet_lab_auth_registry"]
    image = "{}/private/busybox:latest".format(registry)
    password = open(v["fleet_lab_auth_password_file"]).read().strip()
    lab.fleet("logout", "-H", "web1", registry)
    refused = lab.fleet("pull", "-H", "web1", image)
    assert refused.returncode == 1 and "fleet login" in refused.stdout
    wrong = lab.fleet("login", "-H", "web1", "-u", v["fleet_lab_auth_user"], "--password-stdin", registry,
                      input="not-the-password\n")
    assert wrong.returncode != 0 and "incorrect username or password" in wrong.stdout + wrong.stderr
    ok = lab.fleet("login", "-H", "web1", "-u", v["fleet_lab_auth_user"], "--password-stdin", registry,
                   input=password + "\n", check=True)
    assert "Login Succeeded" in ok.stdout and password not in ok.stdout + ok.stderr
    try:
        rc, pulled = lab.fleet_json("pull", "-H", "web1", image)
        assert rc == 0, pulled
        run = lab.fleet("run", "-H", "web1", "--prefix", "--rm", image, "echo", "private", check=True)
        assert "web1 | private" in run.stdout
    finally:
        lab.fleet("logout", "-H", "web1", registry, check=True)
    lab.fleet("rmi", "-H", "web1", image, check=True)
    again = lab.fleet("pull", "-H", "web1", image)
    assert again.returncode == 1 and "fleet login" in again.stdout


def test_manifest_list_picks_the_host_platform_or_the_asked_one(lab):
    run = lab.fleet("run", "-H", "web2", "--prefix", "--rm", "multiarch", "cat", "/etc/platform", check=True)
    assert "web2 | amd64" in run.stdout
    rc, pulled = lab.fleet_json("pull", "-H", "web2", "--platform", "linux/arm64", "multiarch")
    assert rc == 0, pulled
    proc = lab.fleet("image", "inspect", "-H", "web2", pulled["web2"]["id"], check=True)
    (inspected,) = json.loads(proc.stdout)
    assert inspected["Architecture"] == "arm64"


def test_push_of_a_retagged_image_reads_back_with_skopeo(lab, tmp_path):
    v = _lab_vars(lab)
    target = "{}/pushed/busybox:v1".format(v["fleet_lab_registry"])
    lab.fleet("pull", "-H", "web1", "busybox", check=True)
    lab.fleet("tag", "-H", "web1", "busybox", target, check=True)
    rc, pushed = lab.fleet_json("push", "-H", "web1", target)
    assert rc == 0, pushed
    inspect = _skopeo("inspect", "--tls-verify=false", "docker://" + target)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Digest"] == pushed["web1"]["digest"]
    copy = _skopeo("copy", "--src-tls-verify=false", "docker://" + target, "oci:{}:v1".format(tmp_path / "oci"))
    assert copy.returncode == 0, copy.stderr
    rc, again = lab.fleet_json("push", "-H", "web1", target)
    assert all(layer["status"] == "Layer already exists" for layer in again["web1"]["layers"])


def _tree_script():
    paths = sorted(EXPECTED_LAYERED_TREE)
    lines = ['for p in {}; do'.format(" ".join(paths)),
             '  if [ -L "$p" ]; then echo "$p|symlink|$(readlink "$p")";',
             '  elif [ -d "$p" ]; then echo "$p|dir|$(stat -c %a "$p")";',
             '  elif [ -f "$p" ]; then echo "$p|file|$(stat -c %a "$p")|$(stat -c %h "$p")|$(stat -c %i "$p")|'
             '$(md5sum < "$p" | cut -c1-32)";',
             '  else echo "$p|missing"; fi; done',
             'for p in {}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p|present"; fi; done'.format(
                 " ".join(EXPECTED_LAYERED_ABSENT))]
    return "\n".join(lines)


def test_layered_image_shows_exactly_what_docker_would(lab):
    import hashlib
    proc = lab.fleet("run", "-H", "db1", "--prefix", "--rm", "layered", "sh", "-c", _tree_script(), check=True)
    seen = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("db1 | "):
            continue  # the result table follows the container's output
        fields = line.split(" | ", 1)[1].split("|")
        seen[fields[0]] = fields[1:]
    inodes = {}
    for path, want in EXPECTED_LAYERED_TREE.items():
        got = seen.get(path)
        assert got and got[0] == want["type"], (path, got)
        if want["type"] == "symlink":
            assert got[1] == want["target"], path
            continue
        assert int(got[1], 8) == want["mode"], (path, got)
        if want["type"] == "file":
            assert got[4] == hashlib.md5(want["content"].encode()).hexdigest(), path
            assert int(got[2]) == want.get("nlink", 1), path
            inodes[path] = got[3]
    for path, want in EXPECTED_LAYERED_TREE.items():
        if "same_inode_as" in want:
            assert inodes[path] == inodes[want["same_inode_as"]]
    assert not [p for p, f in seen.items() if f == ["present"]], "whited-out paths are visible"


def test_image_commands_across_hosts(lab):
    lab.fleet("pull", "-H", "web*", "busybox", check=True)
    lab.fleet("tag", "-H", "web*", "busybox", "local/tool:1", check=True)
    listed = lab.fleet("images", "-H", "web*", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    assert "local/tool:1" in listed
    rc, filtered = lab.fleet_json("images", "-H", "web*", "-f", "reference=local/*")
    assert all([i["repository"] for i in h["images"]] == ["local/tool"] for h in filtered.values())
    hist = lab.fleet("history", "-H", "web1", "local/tool:1", check=True).stdout.splitlines()
    assert hist[0].split()[:3] == ["HOST", "IMAGE", "CREATED"]
    removed = lab.fleet("rmi", "-H", "web*", "local/tool:1", check=True).stdout
    assert removed.count("Untagged: local/tool:1") == 2
    df = lab.fleet("system", "df", "-H", "web1", check=True).stdout
    assert "Images" in df and "Containers" in df
    bad = lab.fleet("images", "-H", "web1", "-f", "colour=blue")
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_a_100_layer_image_pulls_and_runs(lab, tmp_path):
    """overlayfs takes its options in one page: 100 lower dirs must still fit (short snapshot paths)."""
    from fleet.lab import oci
    v = _lab_vars(lab)
    base = tmp_path / "busybox"
    got = _skopeo("copy", "--src-tls-verify=false", "docker://{}/library/busybox:latest".format(v["fleet_lab_registry"]),
                  "oci:{}:latest".format(base))
    assert got.returncode == 0, got.stderr
    layers, history, config = oci.image_layers(base)
    for n in range(len(layers), 100):
        layers.append(oci.tar_entries([("dir", "layers", 0o755, None),
                                       ("file", "layers/l{:03d}".format(n), 0o644, "{}\n".format(n))]))
        history.append({"created": oci.CREATED, "created_by": "layer {}".format(n)})
    out = tmp_path / "many"
    oci.finish_layout(out, oci.write_image(out, layers, config, history))
    target = "docker://{}/library/many:latest".format(v["fleet_lab_registry"])
    pushed = _skopeo("copy", "--retry-times", "3", "--dest-tls-verify=false", "oci:{}:latest".format(out), target)
    assert pushed.returncode == 0, pushed.stderr
    run = lab.fleet("run", "-H", "web2", "--prefix", "--rm", "many", "sh", "-c", "ls /layers | wc -l; cat /layers/l099",
                    check=True)
    assert [line.split(" | ", 1)[1].strip() for line in run.stdout.splitlines() if line.startswith("web2 | ")] == [
        str(100 - len(oci.image_layers(base)[0])), "99"]
