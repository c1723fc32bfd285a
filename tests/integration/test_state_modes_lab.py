"""On a lab host, a local user who is not root reads nothing under the state root (fleet issue 9, item 2).

After containers with ``-e SECRET=...`` (running, and ``--rm`` ones whose config waits under
``containers/.removed``), a volume, a user network and pulled images, a process running as ``nobody`` in the lab
host's namespaces (over SSH, then ``setpriv``) tries to list and read every directory and file under
``/var/lib/fleet``: nothing may be readable, and the listing of the root itself is refused.  Containers that
run as a non-root user still work (``--user nobody``, nginx's www-data workers).
"""

import json
import shlex
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration

PREFIX = "modes-"
HOST = "web1"
SECRET = "SECRET=hunter2-modes"
ROOT = "/var/lib/fleet"

# As root on the host: every directory and regular file under the root (symlinks are not followed), as JSON.
_LIST = r"""
import json, os, stat, sys
root = sys.argv[1]
out = [[root, "dir"]]
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            out.append([p, "dir"])
        elif stat.S_ISREG(st.st_mode):
            out.append([p, "file"])
print(json.dumps(out))
"""

# As nobody: try each one; report what could be listed or read.
_TRY = r"""
import json, os, sys
got = {"whoami": [os.getuid(), os.getgid(), os.getgroups()], "listed": [], "read": [], "tried": 0}
for path, kind in json.load(sys.stdin):
    got["tried"] += 1
    try:
        if kind == "dir":
            os.listdir(path)
            got["listed"].append(path)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
            got["read"].append(path)
    except OSError:
        pass
print(json.dumps(got))
"""


def _ssh(lab, command, input=None):
    import yaml
    inv = yaml.safe_load(lab.inventory.read_text())
    v = inv["all"]["vars"]
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                           "-o", "UserKnownHostsFile=" + v["fleet_known_hosts"],
                           "-i", v["ansible_ssh_private_key_file"],
                           "root@" + lab.address(HOST), command], capture_output=True, text=True, timeout=120,
                          input=input)


def _cleanup(lab):
    lab.remove_containers(PREFIX)
    lab.fleet("volume", "rm", "-f", "-H", HOST, PREFIX + "vol")
    lab.fleet("network", "rm", "-H", HOST, PREFIX + "net")


@pytest.fixture
def clean(lab):
    _cleanup(lab)
    yield lab
    _cleanup(lab)


def _wait_http(url, deadline=30.0):
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return resp.status, resp.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_nobody_reads_nothing_under_the_state_root(clean):
    lab = clean
    lab.fleet("run", "-H", HOST, "-d", "--name", PREFIX + "secret", "-e", SECRET, "-v", PREFIX + "vol:/data",
              "busybox", "sleep", "600", check=True)
    lab.fleet("network", "create", "-H", HOST, PREFIX + "net", check=True)
    lab.fleet("run", "-H", HOST, "-d", "--name", PREFIX + "onnet", "--network", PREFIX + "net", "-e", SECRET,
              "busybox", "sleep", "600", check=True)
    # a --rm container: its config (with the env) waits under containers/.removed
    proc = lab.fleet("run", "-H", HOST, "--rm", "--name", PREFIX + "rm", "-e", SECRET, "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    # containers that run as a non-root user still work: they read the bind-mounted hosts, resolv.conf and hostname,
    # and their volume, from inside (after pivot_root they never walk the host's path)
    proc = lab.fleet("run", "-H", HOST, "--rm", "-u", "nobody", "-v", PREFIX + "vol:/data", "--network",
                     PREFIX + "net", "busybox", "sh", "-c",
                     "cat /etc/resolv.conf /etc/hosts /etc/hostname >/dev/null && ls /data && id -u")
    assert proc.returncode == 0 and "65534" in proc.stdout, proc.stdout + proc.stderr
    # nginx: a root master and www-data workers that serve the page
    lab.fleet("run", "-H", HOST, "-d", "-p", "8089:80", "--name", PREFIX + "web", "nginx", check=True)
    status, body = _wait_http("http://{}:8089/".format(lab.address(HOST)))
    assert status == 200 and "fleet lab" in body

    listing = _ssh(lab, "python3 -c '{}' {}".format(_LIST.replace("'", "'\\''"), ROOT))
    assert listing.returncode == 0, listing.stderr
    entries = json.loads(listing.stdout)
    files = [p for p, kind in entries if kind == "file"]
    # the secrets are there (so the test means something): a live config and a --rm container's tombstone
    tombs = [p for p in files if "/containers/.removed/" in p and p.endswith("/config.json")]
    assert tombs, "no tombstone of the --rm container"
    assert any("/content/blobs/sha256/" in p for p in files) and any("/volumes/" in p for p in files)
    # other tests' --rm containers on this host have tombstones too: ours is the one holding the secret
    check = _ssh(lab, "grep -ls {} {}".format(shlex.quote(SECRET), " ".join(shlex.quote(t) for t in tombs)))
    assert check.stdout.strip(), (check.returncode, check.stderr)  # (a tombstone may be reaped meanwhile)

    tried = _ssh(lab, "setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -c '{}'".format(
        _TRY.replace("'", "'\\''")), input=json.dumps(entries))
    assert tried.returncode == 0, tried.stderr
    got = json.loads(tried.stdout)
    assert got["whoami"] == [65534, 65534, []]
    assert got["tried"] == len(entries) > 100
    assert ROOT not in got["listed"], "nobody can list the state root"
    assert got["listed"] == [] and got["read"] == [], "readable by nobody: {}".format(got)

    # and behind the closed door, defence in depth: the root 0710, every config and state file 0600
    modes = _ssh(lab, "stat -c '%a %U %n' {} {}/containers/*/config.json {}/containers/*/state.json {}".format(
        ROOT, ROOT, ROOT, " ".join(tombs)))
    assert modes.returncode == 0, modes.stderr
    lines = [line.split() for line in modes.stdout.splitlines()]
    assert lines[0] == ["710", "root", ROOT]
    assert len(lines) > 4 and all(mode == "600" and owner == "root" for mode, owner, _p in lines[1:]), lines
