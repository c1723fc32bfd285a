"""Docker compatibility of Go-template output (issue 13, item 6), over SSH on the lab: ``inspect -f`` for
containers, images, volumes and networks, ``stats --format``, and ``ps --format``'s .Labels, .Label, .Mounts,
.LocalVolumes, .Networks and .Size.

There is no dockerd on the test machine: each expectation is what docker/cli prints (cli/command/inspect's
TemplateInspector: the rendering of each object and a newline, a missing map key ``<no value>``, an unknown
field ``template parsing error: ... map has no entry for key``; formatter/container.go and
container/formatter_stats.go for the ps and stats fields).  fleet adds: one host selected -> bare lines;
several -> each line starts with ``host | ``; bad templates exit 2.
"""

import json
import re

import pytest

pytestmark = pytest.mark.integration

PREFIX = "cfmt-"
HOST = "web1"
NAME = PREFIX + "web"
VOLUME = PREFIX + "vol"


@pytest.fixture(scope="module")
def web(lab, tmp_path_factory):
    """One running container on web1 and web2 with labels, a named volume and a bind mount."""
    bind = tmp_path_factory.mktemp("cfmt-bind")
    lab.remove_containers(PREFIX)
    try:
        lab.fleet("run", "-d", "-H", "web*", "--name", NAME, "--label", "tier=front", "--label", "app=shop",
                  "-v", VOLUME + ":/data", "-v", "{}:/bind".format(bind), "busybox", "sleep", "600", check=True)
        yield lab, str(bind)
    finally:
        lab.remove_containers(PREFIX)
        lab.fleet("volume", "rm", "-H", "web*", VOLUME)


def test_inspect_f_renders_each_object_on_its_own_line(web):
    """docker inspect -f '{{.Name}} {{.State.Status}} {{.State.Running}}' web: '/web running true' and a
    newline; nested fields, map keys (a label, a network), index, range over a map (sorted keys), json."""
    lab, _ = web
    proc = lab.fleet("inspect", "-H", HOST, "-f", "{{.Name}} {{.State.Status}} {{.State.Running}}", NAME)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "/{} running true\n".format(NAME)
    proc = lab.fleet("inspect", "-H", HOST, "--format",
                     '{{.Config.Labels.tier}}|{{index .Config.Labels "app"}}|{{.Config.Labels.nope}}|'
                     '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}|'
                     '{{.NetworkSettings.Networks.bridge.IPAddress}}|{{json .Config.Labels}}', NAME)
    assert proc.returncode == 0, proc.stderr
    tier, app, nope, ranged, ip, labels = proc.stdout.rstrip("\n").split("|")
    assert (tier, app, nope, ranged) == ("front", "shop", "<no value>", "app=shop,tier=front,")
    assert re.match(r"^\d+\.\d+\.\d+\.\d+$", ip), ip
    assert json.loads(labels) == {"tier": "front", "app": "shop"}


def test_inspect_f_unknown_field_is_dockers_error(web):
    """docker inspect -f '{{.Nope}}' web: 'template parsing error: template: :1:2: executing "" at <.Nope>:
    map has no entry for key "Nope"', nothing on stdout (fleet: exit 2, bad input)."""
    lab, _ = web
    proc = lab.fleet("inspect", "-H", HOST, "-f", "{{.Nope}}", NAME)
    assert proc.returncode == 2 and proc.stdout == ""
    assert 'template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"' \
        in proc.stderr


def test_inspect_f_on_several_hosts_prefixes_each_line(web):
    """docker has one daemon; fleet with several hosts: each rendering's lines start with 'host | '."""
    lab, _ = web
    proc = lab.fleet("inspect", "-H", "web*", "-f", "{{.State.Status}}", NAME)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["web1 | running", "web2 | running"]


def test_image_volume_network_inspect_take_f(web):
    """docker image inspect -f '{{.Id}}', volume inspect -f '{{.Name}} {{.Driver}}', network inspect -f
    '{{.Name}} {{.Driver}}': one line per object."""
    lab, _ = web
    images = lab.fleet("images", "-H", HOST, "--no-trunc", "--format", "{{.Repository}} {{.ID}}",
                       check=True).stdout
    busybox_id = next(line.split()[1] for line in images.splitlines() if line.split()[0].endswith("busybox"))
    image = lab.fleet("image", "inspect", "-H", HOST, "-f", "{{.Id}}", "busybox")
    assert (image.returncode, image.stdout) == (0, busybox_id + "\n"), image.stderr
    volume = lab.fleet("volume", "inspect", "-H", HOST, "-f", "{{.Name}} {{.Driver}}", VOLUME)
    assert (volume.returncode, volume.stdout) == (0, VOLUME + " local\n"), volume.stderr
    network = lab.fleet("network", "inspect", "-H", HOST, "-f", "{{.Name}} {{.Driver}}", "bridge")
    assert (network.returncode, network.stdout) == (0, "bridge bridge\n"), network.stderr


def test_stats_format(web):
    """docker stats --no-stream --format '{{.Container}} {{.Name}} {{.PIDs}}' web: 'web web 1' (Container is
    the name as given); CPUPerc and MemPerc end in %, MemUsage is 'USED / LIMIT'."""
    lab, _ = web
    proc = lab.fleet("stats", "-H", HOST, "--no-stream", "--format",
                     "{{.Container}} {{.Name}} {{.PIDs}}|{{.CPUPerc}}|{{.MemPerc}}|{{.MemUsage}}", NAME)
    assert proc.returncode == 0, proc.stderr
    head, cpu, mem, usage = proc.stdout.rstrip("\n").split("|")
    assert head == "{0} {0} 1".format(NAME)
    assert cpu.endswith("%") and mem.endswith("%") and " / " in usage


def test_ps_format_labels_mounts_networks_size(web):
    """docker ps --format '{{.Labels}}|{{.Label "tier"}}|{{.LocalVolumes}}|{{.Networks}}': 'app=shop,tier=front|
    front|1|bridge'; {{.Mounts}}: the volume's name and the bind's source, each cut to 15 characters with "…"
    unless --no-trunc; {{.Size}}: 'N (virtual M)' (docker computes sizes when the format uses .Size)."""
    lab, bind = web
    proc = lab.fleet("ps", "-H", HOST, "-f", "name=^" + PREFIX, "--format",
                     '{{.Labels}}|{{.Label "tier"}}|{{.LocalVolumes}}|{{.Networks}}')
    assert (proc.returncode, proc.stdout) == (0, "app=shop,tier=front|front|1|bridge\n"), proc.stderr
    full = lab.fleet("ps", "-H", HOST, "-f", "name=^" + PREFIX, "--no-trunc", "--format", "{{.Mounts}}",
                     check=True).stdout
    assert sorted(full.rstrip("\n").split(",")) == sorted([VOLUME, bind])
    cut = lab.fleet("ps", "-H", HOST, "-f", "name=^" + PREFIX, "--format", "{{.Mounts}}", check=True).stdout
    assert sorted(cut.rstrip("\n").split(",")) == sorted([VOLUME, bind[:14] + "…"])
    size = lab.fleet("ps", "-H", HOST, "-f", "name=^" + PREFIX, "--format", "{{.Names}} {{.Size}}",
                     check=True).stdout
    assert re.match(r"^{} \d+(\.\d+)?[kMG]?B \(virtual \d+(\.\d+)?[kMG]?B\)\n$".format(NAME), size), size
    bad = lab.fleet("ps", "-H", HOST, "--format", "{{.Nope}}")
    assert bad.returncode == 2
    assert "can't evaluate field Nope in type *formatter.ContainerContext" in bad.stderr
