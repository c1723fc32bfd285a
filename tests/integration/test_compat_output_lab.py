"""Docker compatibility of the output scripts consume (issue 13, items 3 and 4), over SSH on the lab.

Each test states what Docker prints; fleet must print the same with one host selected, and bare IDs (one per
line, every host's) for ``-q`` with several.  There is no dockerd on the test machine: the expectations come from
docker/cli (``ps -q``/``images -q`` use the quiet format ``{{.ID}}``; ``run -d`` prints ``containerID`` and a
newline after the start; attached ``run`` writes only the container's streams).
"""

import json
import re

import pytest

pytestmark = pytest.mark.integration

PREFIX = "cmpo-"
HOST = "web1"
SHORT = re.compile(r"^[0-9a-f]{12}$")
FULL = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _ids(lab, host, *args):
    rc, ps = lab.fleet_json("ps", "-H", host, "-a", "-f", "name=^" + PREFIX, *args)
    assert rc == 0, ps
    return {c["name"]: c["id"] for c in ps[host]["containers"]}


def test_ps_q_prints_bare_ids_that_rm_takes(clean):
    """docker: ``docker ps -aq`` prints one 12-hex container ID per line and nothing else (``--no-trunc``: the
    full 64), so ``docker rm -f $(docker ps -aq)`` removes them.  fleet: the same for one host; with several,
    still bare IDs (every host's), and ``--format '{{.Host}} {{.ID}}'`` is the host-qualified list."""
    lab = clean
    for n in ("a", "b"):
        lab.fleet("run", "-d", "-H", "web*", "--name", PREFIX + n, "busybox", "sleep", "300", check=True)
    ids = _ids(lab, HOST)
    assert set(ids) == {PREFIX + "a", PREFIX + "b"}
    quiet = lab.fleet("ps", "-H", HOST, "-aq", "-f", "name=^" + PREFIX, check=True).stdout
    assert sorted(quiet.splitlines()) == sorted(i[:12] for i in ids.values()), quiet
    assert quiet.endswith("\n") and all(SHORT.match(line) for line in quiet.splitlines())
    full = lab.fleet("ps", "-H", HOST, "-aq", "--no-trunc", "-f", "name=^" + PREFIX, check=True).stdout
    assert sorted(full.split("\n")[:-1]) == sorted(ids.values()) and full.endswith("\n")

    both = lab.fleet("ps", "-H", "web*", "-aq", "-f", "name=^" + PREFIX, check=True).stdout.splitlines()
    web2 = _ids(lab, "web2")
    assert sorted(both) == sorted(i[:12] for i in list(ids.values()) + list(web2.values()))
    qualified = lab.fleet("ps", "-H", "web*", "-a", "-f", "name=^" + PREFIX, "--format", "{{.Host}} {{.ID}}",
                          check=True).stdout.splitlines()
    assert sorted(qualified) == sorted(["web1 " + i[:12] for i in ids.values()]
                                       + ["web2 " + i[:12] for i in web2.values()])

    removed = lab.fleet("rm", "-f", "-H", HOST, *quiet.split())  # fleet rm -f -H web1 $(fleet ps -H web1 -aq)
    assert removed.returncode == 0, (removed.stdout, removed.stderr)
    assert _ids(lab, HOST) == {}
    assert set(_ids(lab, "web2")) == {PREFIX + "a", PREFIX + "b"}  # the other host's are not touched


def test_images_q_prints_bare_image_ids(lab):
    """docker: ``docker images -q`` prints one 12-hex image ID per listed row (the quiet format ``{{.ID}}``:
    an image under two tags shows twice, as in the table), ``--no-trunc`` the full ``sha256:...``.  fleet: the
    same rows' IDs without a host, for one host and for several."""
    lab.fleet("pull", "-H", "web*", "busybox", check=True)
    rc, listed = lab.fleet_json("images", "-H", "web*")
    assert rc == 0, listed
    one = lab.fleet("images", "-H", HOST, "-q", check=True).stdout
    assert one.splitlines() == [i["id"].split(":", 1)[1][:12] for i in listed[HOST]["images"]], one
    assert one.endswith("\n") and all(SHORT.match(line) for line in one.splitlines())
    full = lab.fleet("images", "-H", HOST, "-q", "--no-trunc", check=True).stdout.splitlines()
    assert full == [i["id"] for i in listed[HOST]["images"]]
    both = lab.fleet("images", "-H", "web*", "-q", check=True).stdout.splitlines()
    assert both == [i["id"].split(":", 1)[1][:12] for host in ("web1", "web2") for i in listed[host]["images"]]


def test_run_d_on_one_host_prints_only_the_full_id(clean):
    """docker: ``docker run -d IMAGE`` prints the new container's full 64-hex ID and a newline, nothing else on
    stdout, so ``id=$(docker run -d ...)`` works.  fleet: the same with one host; with several the table stays;
    a failure leaves stdout empty and names the host on stderr, exit 125 (docker run's status when the engine
    failed; several hosts: 1)."""
    lab = clean
    proc = lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "d", "busybox", "sleep", "300", check=True)
    assert FULL.match(proc.stdout[:-1]) and proc.stdout.endswith("\n") and len(proc.stdout) == 65, proc.stdout
    (obj,) = json.loads(lab.fleet("inspect", "-H", HOST, proc.stdout.strip(), check=True).stdout)
    assert obj["Id"] == proc.stdout.strip() and obj["Name"] == "/" + PREFIX + "d"

    clash = lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "d", "busybox", "true")
    assert clash.returncode == 125 and clash.stdout == "", clash.stdout
    assert HOST in clash.stderr and "already in use" in clash.stderr, clash.stderr

    several = lab.fleet("run", "-d", "-H", "web*", "--name", PREFIX + "m", "busybox", "sleep", "300", check=True)
    lines = several.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "CONTAINER", "ID"] and len(lines) == 3, several.stdout


def test_attached_run_on_one_host_keeps_stdout_for_the_container(clean):
    """docker: ``docker run IMAGE echo hi`` writes only the container's output to stdout ("hi\\n") and exits
    with its code.  fleet with one host: stdout carries the container's lines alone (``web1 | hi``, or the raw
    ``hi`` once output is raw for one host and no terminal), any summary on stderr; with several hosts the
    summary table stays on stdout after the prefixed lines."""
    lab = clean
    proc = lab.fleet("run", "-H", HOST, "--name", PREFIX + "fg", "busybox", "sh", "-c", "echo hi; exit 3")
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert proc.stdout in ("hi\n", HOST + " | hi\n"), proc.stdout
    assert PREFIX + "fg" in proc.stderr  # the summary (name, exit code) went to stderr

    several = lab.fleet("run", "-H", "web*", "--name", PREFIX + "fgm", "busybox", "echo", "hi", check=True)
    out = several.stdout.splitlines()
    assert sorted(out[:2]) == ["web1 | hi", "web2 | hi"], several.stdout
    assert out[2].split() == ["HOST", "CONTAINER", "ID", "NAME", "EXIT", "CODE"], several.stdout
