"""Docker compatibility of the system and inspection verbs (issue 13, items 7 and 10), over SSH on the lab.

Each test states what Docker does and checks fleet does the same.  There is no dockerd on the test machine:
the expectations come from docker/cli and moby (``system df``'s four rows, ``images REPOSITORY[:TAG]`` as a
reference filter, RepoDigests recorded after a push, ``diff`` leaving out the init layer and mount points,
``--network host`` taking the host's name, ``export`` to stdout, ``top`` with ps options, ``system prune``,
``version``, ``info`` and the listing aliases).
"""

import io
import json
import re
import subprocess
import sys
import tarfile
import time

import pytest
import yaml

pytestmark = pytest.mark.integration

PREFIX = "cmps-"
HOST = "web1"


@pytest.fixture
def clean(lab):
    lab.remove_containers(PREFIX)
    yield lab
    lab.remove_containers(PREFIX)


def _output_lines(text):
    """The container's output lines, without the ``host | `` prefix fleet may add (issue 13 item 5 drops it)."""
    return [line.split(" | ", 1)[1] if line.startswith(HOST + " | ") else line for line in text.splitlines()]


def _lab_vars(lab):
    return yaml.safe_load(lab.inventory.read_text())["all"]["vars"]


def test_system_df_has_a_local_volumes_row(clean):
    """docker system df: TYPE TOTAL ACTIVE SIZE RECLAIMABLE with the rows Images, Containers, Local Volumes and
    Build Cache; the volumes row counts volumes, those in use, their size and what unused ones hold.  -v: the
    per-object sections (Local Volumes: VOLUME NAME LINKS SIZE)."""
    lab = clean
    lab.fleet("volume", "create", "-H", HOST, PREFIX + "vol", check=True)
    try:
        lines = lab.fleet("system", "df", "-H", HOST, check=True).stdout.splitlines()
        assert lines[0].split() == ["HOST", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert [" ".join(line.split()[1:3]) if "Volumes" in line or "Cache" in line else line.split()[1]
                for line in lines[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
        rc, df = lab.fleet_json("system", "df", "-H", HOST)
        vols = df[HOST]["volumes"]
        assert vols["total"] >= 1 and int(lines[3].split()[3]) == vols["total"]
        verbose = lab.fleet("system", "df", "-H", HOST, "-v", check=True).stdout
        assert verbose.startswith("Images space usage:\n")
        local = verbose.split("Local Volumes space usage:\n\n", 1)[1].split("\n\n")[0].splitlines()
        assert local[0].split() == ["HOST", "VOLUME", "NAME", "LINKS", "SIZE"]
        assert [HOST, PREFIX + "vol", "0", "0B"] in [line.split() for line in local[1:]]
        assert "\nContainers space usage:\n" in verbose and "\nBuild cache usage: 0B\n" in verbose
    finally:
        lab.fleet("volume", "rm", "-H", HOST, PREFIX + "vol")


def test_images_takes_repository_and_tag_as_a_filter(lab):
    """docker images [REPOSITORY[:TAG]] (also image ls / image list): only the images of that repository (and
    tag); one that matches nothing prints the header alone."""
    lab.fleet("pull", "-H", HOST, "busybox", check=True)
    for argv in (["images"], ["image", "ls"], ["image", "list"]):
        out = lab.fleet(*argv, "-H", HOST, "busybox:latest", check=True).stdout.splitlines()
        assert out[0].split()[:3] == ["HOST", "REPOSITORY", "TAG"]
        assert out[1:] and all(line.split()[1:3] == ["busybox", "latest"] for line in out[1:]), out
        assert lab.fleet(*argv, "-H", HOST, "nosuchrepo", check=True).stdout.splitlines()[1:] == []


def test_push_records_the_repo_digest(lab):
    """docker push: the image's RepoDigests gains ``repo@sha256:<manifest digest>``, shown by images --digests and
    image inspect (a pull by tag records the same).  The listing is filtered by repository alone: a filter with
    a tag matches no digest reference (moby's FamiliarMatch), so docker shows <none> there."""
    repo = "{}/cmps/digest".format(_lab_vars(lab)["fleet_lab_registry"])
    target = repo + ":v1"
    lab.fleet("pull", "-H", HOST, "busybox", check=True)
    lab.fleet("tag", "-H", HOST, "busybox", target, check=True)
    try:
        rc, pushed = lab.fleet_json("push", "-H", HOST, target)
        assert rc == 0, pushed
        digest = pushed[HOST]["digest"]
        rc, listed = lab.fleet_json("images", "-H", HOST, "--digests", repo)
        assert [(i["tag"], i["digest"]) for i in listed[HOST]["images"]] == [("v1", digest)]
        table = lab.fleet("images", "-H", HOST, "--digests", repo, check=True).stdout.splitlines()
        assert table[1].split()[1:4] == [repo, "v1", digest]
        (obj,) = json.loads(lab.fleet("image", "inspect", "-H", HOST, target, check=True).stdout)
        assert repo + "@" + digest in obj["RepoDigests"]
    finally:
        lab.fleet("rmi", "-H", HOST, target)


def test_listing_aliases(lab):
    """docker: container ls|list|ps, image ls|list, network ls|list and volume ls|list all list (image list,
    network list and volume list were missing)."""
    for argv in (["network", "list"], ["volume", "list"], ["image", "list"], ["container", "list", "-a"],
                 ["container", "ls", "-a"], ["container", "ps", "-a"], ["network", "ls"], ["volume", "ls"],
                 ["image", "ls"]):
        proc = lab.fleet(*argv, "-H", HOST)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert proc.stdout.splitlines()[0].startswith("HOST"), argv


def test_diff_of_an_untouched_container_is_empty(clean):
    """docker diff of a container that changed nothing is empty: /etc/hostname, /etc/hosts, /etc/resolv.conf
    live in the init layer and volume/bind mountpoints are not the container's changes; a real change still
    shows with its parent (C /etc, A /etc/new)."""
    lab = clean
    lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "diff", "-v", "/cmps/anon", "-v", "/tmp:/opt/bound",
              "busybox", "sleep", "300", check=True)
    rc, out = lab.fleet_json("diff", "-H", HOST, PREFIX + "diff")
    assert rc == 0 and out[HOST]["changes"] == [], out
    lab.fleet("exec", "-H", HOST, PREFIX + "diff", "touch", "/etc/new", check=True)
    rc, out = lab.fleet_json("diff", "-H", HOST, PREFIX + "diff")
    assert [(c["kind"], c["path"]) for c in out[HOST]["changes"]] == [("C", "/etc"), ("A", "/etc/new")]


def test_network_host_takes_the_hosts_name(clean):
    """docker run --network host: the container's hostname is the host's (Config.Hostname too, and /etc/hostname),
    not its ID; --hostname still wins."""
    lab = clean
    rc, ping = lab.fleet_json("ping", "-H", HOST)
    name = ping[HOST]["hostname"]
    out = lab.fleet("run", "-H", HOST, "--name", PREFIX + "hostnet", "--network", "host", "busybox",
                    "sh", "-c", "hostname; cat /etc/hostname", check=True).stdout
    assert _output_lines(out) == [name, name]
    (obj,) = json.loads(lab.fleet("inspect", "-H", HOST, PREFIX + "hostnet", check=True).stdout)
    assert obj["Config"]["Hostname"] == name
    out = lab.fleet("run", "-H", HOST, "--rm", "--network", "host", "--hostname", "given", "busybox", "hostname",
                    check=True).stdout
    assert _output_lines(out) == ["given"]


def test_export_without_o_writes_the_tar_to_stdout(clean):
    """docker export CONTAINER > file: the container's filesystem as a tar on stdout (docker refuses a terminal);
    fleet does so for one host and refuses several (exit 2, nothing written)."""
    lab = clean
    lab.fleet("run", "-d", "-H", "web*", "--name", PREFIX + "exp", "busybox", "sh", "-c",
              "echo exported > /marker; sleep 300", check=True)
    deadline = time.monotonic() + 30
    while lab.fleet("exec", "-H", HOST, PREFIX + "exp", "test", "-f", "/marker").returncode != 0:
        assert time.monotonic() < deadline, "the container never wrote /marker"
    proc = subprocess.run([sys.executable, "-m", "fleet", "-i", str(lab.inventory), "export", "-H", HOST,
                           PREFIX + "exp"], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        names = tar.getnames()
        assert "bin/busybox" in names and "etc/passwd" in names
        assert tar.extractfile("marker").read() == b"exported\n"
    many = lab.fleet("export", "-H", "web*", PREFIX + "exp")
    assert many.returncode == 2 and "exactly one host" in many.stderr and many.stdout == ""


def test_top_takes_ps_options(clean):
    """docker top CONTAINER [ps OPTIONS]: the rows of ``ps OPTIONS`` for the container's processes (default -ef:
    UID PID PPID C STIME TTY TIME CMD); aux gives ps's user format; -o picks columns; a format without a PID
    column is docker's "Couldn't find PID field in ps output".  fleet renders them without a ps binary."""
    lab = clean
    lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "top", "busybox", "sleep", "300", check=True)
    rc, out = lab.fleet_json("top", "-H", HOST, PREFIX + "top", "-o", "pid,comm,args")
    assert rc == 0, out
    assert out[HOST]["titles"] == ["PID", "COMMAND", "COMMAND"]
    (row,) = out[HOST]["processes"]
    assert row[0].isdigit() and row[1:] == ["sleep", "sleep 300"]
    table = lab.fleet("top", "-H", HOST, PREFIX + "top", "aux", check=True).stdout.splitlines()
    assert table[0].split() == ["HOST", "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME",
                                "COMMAND"]
    assert table[1].split()[1:3] == ["root", row[0]] and table[1].endswith("sleep 300")
    default = lab.fleet("top", "-H", HOST, PREFIX + "top", check=True).stdout.splitlines()
    assert default[0].split() == ["HOST", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    bad = lab.fleet("top", "-H", HOST, PREFIX + "top", "-o", "comm")
    assert bad.returncode == 2 and "Couldn't find PID field in ps output" in bad.stderr


PRUNE_HOST = "db1"  # dangling images and stopped containers only: the images other tests pull stay


def test_system_prune_asks_then_removes_in_dockers_sections(lab):
    """docker system prune [--volumes] [-f]: the warning and "Are you sure you want to continue? [y/N]" read from
    stdin (anything but y is no, even when stdin is no terminal); then "Deleted Containers:", "Deleted
    Networks:", "Deleted Volumes:" (anonymous ones, with --volumes), "Deleted Images:" sections and "Total
    reclaimed space: X"."""
    lab.remove_containers(PREFIX)
    lab.fleet("network", "rm", "-H", PRUNE_HOST, PREFIX + "net")
    lab.fleet("run", "-H", PRUNE_HOST, "--name", PREFIX + "stopped", "-v", "/cmps-anon", "busybox", "true",
              check=True)
    rc, inspected = lab.fleet_json("ps", "-H", PRUNE_HOST, "-a", "-f", "name=^" + PREFIX + "stopped")
    cid = inspected[PRUNE_HOST]["containers"][0]["id"]
    (obj,) = json.loads(lab.fleet("inspect", "-H", PRUNE_HOST, cid, check=True).stdout)
    (anon,) = [m["Name"] for m in obj["Mounts"] if m["Destination"] == "/cmps-anon"]
    lab.fleet("rm", "-H", PRUNE_HOST, cid, check=True)  # without -v: the anonymous volume stays
    lab.fleet("run", "-H", PRUNE_HOST, "--name", PREFIX + "stopped", "busybox", "true", check=True)
    _, again = lab.fleet_json("ps", "-H", PRUNE_HOST, "-a", "-f", "name=^" + PREFIX + "stopped")
    cid = again[PRUNE_HOST]["containers"][0]["id"]
    lab.fleet("network", "create", "-H", PRUNE_HOST, PREFIX + "net", check=True)

    declined = lab.fleet("system", "prune", "-H", PRUNE_HOST, "--volumes", input="n\n")
    assert declined.returncode == 0 and declined.stdout == ""
    assert "WARNING! This will remove:" in declined.stderr
    assert "all anonymous volumes not used by at least one container" in declined.stderr
    assert "Are you sure you want to continue? [y/N]" in declined.stderr
    _, still = lab.fleet_json("ps", "-H", PRUNE_HOST, "-a", "-f", "name=^" + PREFIX + "stopped")
    assert [c["id"] for c in still[PRUNE_HOST]["containers"]] == [cid]

    done = lab.fleet("system", "prune", "-H", PRUNE_HOST, "--volumes", input="y\n")
    assert done.returncode == 0, done.stderr
    sections = {}
    for block in done.stdout.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].endswith(":"):
            sections[lines[0]] = lines[1:]
    assert cid in sections["Deleted Containers:"]
    assert PREFIX + "net" in sections["Deleted Networks:"]
    assert anon in sections["Deleted Volumes:"]
    assert re.match(r"^Total reclaimed space: [0-9.]+[kMG]?B$", done.stdout.splitlines()[-1])
    _, gone = lab.fleet_json("ps", "-H", PRUNE_HOST, "-a", "-f", "name=^" + PREFIX + "stopped")
    assert gone[PRUNE_HOST]["containers"] == []


def test_version_shows_client_and_each_hosts_payload(lab):
    """docker version: a Client section (this controller) and a Server section (the engine: version, API,
    kernel, OS/Arch); fleet's Server is each host's payload (version, hash, protocol, python, kernel);
    --format over .Client/.Server, --json."""
    proc = lab.fleet("version", "-H", "web*", check=True)
    text = proc.stdout
    assert text.startswith("Client: fleet\n") and "\n\nServer: web1\n" in text and "\n\nServer: web2\n" in text
    rc, ping = lab.fleet_json("ping", "-H", "web1")
    payload = ping["web1"]["payload"]
    out = lab.fleet("version", "-H", "web1", "--format", "{{.Server.Payload}} {{.Client.Payload}}",
                    check=True).stdout.split()
    assert out == [payload, payload]
    data = json.loads(lab.fleet("version", "-H", "web1", "--json", check=True).stdout)
    (server,) = data["Servers"]
    assert server["host"] == "web1" and server["ProtocolVersion"] == data["Client"]["ProtocolVersion"]
    assert server["KernelVersion"] and server["PythonVersion"].count(".") == 2


def test_info_is_each_hosts_engine_view(clean):
    """docker info: containers by state, images, storage driver and root, cgroup driver/version, kernel, OS, CPUs,
    memory, registry mirrors and insecure registries; per host here, with --json and --format."""
    lab = clean
    lab.fleet("run", "-d", "-H", HOST, "--name", PREFIX + "info", "busybox", "sleep", "300", check=True)
    rc, info = lab.fleet_json("info", "-H", HOST)
    assert rc == 0, info
    d = info[HOST]
    assert d["ContainersRunning"] >= 1 and d["Containers"] == (d["ContainersRunning"] + d["ContainersPaused"]
                                                               + d["ContainersStopped"])
    assert d["Images"] >= 1 and d["Driver"] == "overlay2" and d["CgroupDriver"] == "cgroupfs"
    rc, facts = lab.fleet_json("facts", "-H", HOST)
    f = facts[HOST]
    assert d["DockerRootDir"] == f["root"] and d["KernelVersion"] == f["kernel"]
    assert d["CgroupVersion"] == {"v2": "2", "v1": "1", "hybrid": "1"}[f["cgroup"]]
    assert d["FirewallBackend"]["Driver"] == f["firewall"] and d["Name"] == f["hostname"]
    assert d["RegistryConfig"]["Mirrors"] and "127.0.0.0/8" in d["RegistryConfig"]["InsecureRegistries"]
    assert d["NCPU"] >= 1 and d["MemTotal"] > 0
    text = lab.fleet("info", "-H", HOST, check=True).stdout
    assert text.startswith("Server: {}\n Containers: {}\n  Running: ".format(HOST, d["Containers"]))
    assert " Registry Mirrors:\n  " + d["RegistryConfig"]["Mirrors"][0] in text
    fmt = lab.fleet("info", "-H", HOST, "--format", "{{.Host}} {{.CgroupVersion}}", check=True).stdout
    assert fmt == "{} {}\n".format(HOST, d["CgroupVersion"])
