"""--format/-f through the CLI (hosts faked): inspect -f for every inspect kind, stats --format, and ps's
.Labels/.Label/.Mounts/.LocalVolumes/.Networks/.Size; what docker prints for each (cli/command/inspect,
formatter/container.go, container/formatter_stats.go)."""

import pytest
from typer.testing import CliRunner

from fleet import cli
from fleet.errors import RemoteError
from tests.helpers import cli_fakes

inventory, calls = cli_fakes.inventory, cli_fakes.calls  # fixtures by assignment (ruff flags imported fixtures)

WEB = {"Id": "a" * 64, "Name": "/web", "State": {"Status": "running", "Pid": 7},
       "Config": {"Labels": {"tier": "front"}, "Env": ["A=1"], "Cmd": None},
       "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}, "Ports": {"80/tcp": None}}}
DB = dict(WEB, Id="b" * 64, Name="/db", State={"Status": "exited", "Pid": 0}, Config={"Labels": {}, "Env": [],
                                                                                    "Cmd": ["postgres"]})


def invoke(inventory, *args):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args))


def test_inspect_f_one_line_per_object_bare_on_one_host(inventory, calls):
    calls.answers["inspect"] = lambda h, a: {"containers": [WEB, DB]}
    result = invoke(inventory, "inspect", "-H", "web1", "-f", "{{.Name}} {{.State.Status}} {{.Config.Cmd}}",
                    "web", "db")
    assert result.exit_code == 0, result.output
    assert result.stdout == "/web running []\n/db exited [postgres]\n"  # docker: each rendering and "\n"
    assert calls.calls == [("web1", "inspect", {"containers": ["web", "db"]})]


def test_inspect_f_docker_semantics(inventory, calls):
    calls.answers["inspect"] = lambda h, a: {"containers": [WEB]}
    for fmt, out in [
        ("{{.Config.Labels.nope}}", "<no value>"),  # a map key: Go's <no value>
        ("{{index .Config.Labels \"tier\"}}", "front"),
        ("{{range $n, $e := .NetworkSettings.Networks}}{{$n}} {{$e.IPAddress}}{{end}}", "bridge 172.17.0.2"),
        ("{{json .Config.Labels}}", '{"tier":"front"}'),
        ("{{.host}}", "web1"),  # fleet's host key is part of each object
        ("{{.NetworkSettings.Ports}} {{.Config.Cmd}} {{.State}}", "map[80/tcp:[]] [] {running 7}"),  # Go's nils
        ("{{json .Config.Cmd}} {{json .NetworkSettings.Ports}}", 'null {"80/tcp":null}'),  # ... are null in JSON
    ]:
        result = invoke(inventory, "inspect", "-H", "web1", "--format", fmt, "web")
        assert (result.exit_code, result.stdout) == (0, out + "\n"), fmt


def test_inspect_f_unknown_field_is_dockers_error(inventory, calls):
    calls.answers["inspect"] = lambda h, a: {"containers": [WEB]}
    result = invoke(inventory, "inspect", "-H", "web1", "-f", "{{.Nope}}", "web")
    assert result.exit_code == 2 and result.stdout == ""
    assert 'template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"' \
        in result.stderr


def test_inspect_f_syntax_error_exits_2_before_any_host(inventory, calls):
    result = invoke(inventory, "inspect", "-H", "web1", "-f", "{{if .Name}}", "web")
    assert result.exit_code == 2 and "unexpected EOF" in result.stderr and calls.calls == []


def test_inspect_f_several_hosts_prefix_each_line(inventory, calls):
    calls.answers["inspect"] = lambda h, a: {"containers": [WEB]} if h.name != "web2" else RemoteError(
        "Internal", "boom")
    result = invoke(inventory, "inspect", "-H", "all", "-f", "{{.Name}}\n{{.State.Pid}}", "web")
    assert result.exit_code == 1
    assert result.stdout == "web1 | /web\nweb1 | 7\ndb1  | /web\ndb1  | 7\n"
    assert "web2: boom" in result.stderr


def test_inspect_f_json_keeps_the_list(inventory, calls):
    calls.answers["inspect"] = lambda h, a: {"containers": [WEB]}
    result = invoke(inventory, "inspect", "-H", "web1", "-f", "json", "web")
    assert result.stdout.startswith("[\n    {") and '"host": "web1"' in result.stdout


@pytest.mark.parametrize("argv,op,key,obj,fmt,out", [
    (["image", "inspect"], "image_inspect", "images", {"Id": "sha256:1", "RepoTags": ["nginx:1"],
                                                       "Config": {"Labels": None}}, "{{.Id}} {{.RepoTags}}",
     "sha256:1 [nginx:1]"),
    (["volume", "inspect"], "volume_inspect", "volumes", {"Name": "data", "Mountpoint": "/v/data", "Labels": None},
     "{{.Mountpoint}} {{.Labels}}", "/v/data map[]"),
    (["network", "inspect"], "network_inspect", "networks", {"Name": "app", "IPAM": {"Config": [
        {"Subnet": "10.1.0.0/24"}]}}, "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "10.1.0.0/24"),
])
def test_every_inspect_kind_takes_f(inventory, calls, argv, op, key, obj, fmt, out):
    calls.answers[op] = lambda h, a: {key: [obj]}
    result = invoke(inventory, *argv, "-H", "web1", "-f", fmt, "x")
    assert (result.exit_code, result.stdout) == (0, out + "\n"), result.output


STATS = {"id": "c" * 64, "name": "web", "cpu_percent": 1.5, "memory_usage": 1024 * 1024, "memory_limit": 2 ** 30,
         "memory_percent": 0.1, "net_rx": 1000, "net_tx": 2000, "block_read": 0, "block_write": 4096, "pids": 3}


def test_stats_format_fields_and_table(inventory, calls):
    calls.answers["stats"] = lambda h, a: {"stats": [STATS]}
    result = invoke(inventory, "stats", "-H", "web1", "--no-stream", "--format",
                    "{{.Host}} {{.Container}} {{.Name}} {{.ID}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.NetIO}} "
                    "{{.BlockIO}} {{.PIDs}}")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("web1 cccccccccccc web cccccccccccc 1.50% 1MiB / 1GiB 0.10% 1kB / 2kB 0B / 4.1kB 3\n")
    named = invoke(inventory, "stats", "-H", "web1", "--no-stream", "--format", "{{.Container}}", "web")
    assert named.stdout == "web\n"  # docker: the name as given
    table = invoke(inventory, "stats", "-H", "web1", "--no-stream", "--format", r"table {{.Name}}\t{{.CPUPerc}}")
    assert [line.split() for line in table.stdout.splitlines()] == [["HOST", "NAME", "CPU", "%"],
                                                                    ["web1", "web", "1.50%"]]
    bad = invoke(inventory, "stats", "-H", "web1", "--no-stream", "--format", "{{.Nope}}")
    assert bad.exit_code == 2 and "can't evaluate field Nope in type *container.statsContext" in bad.stderr


PS_ROW = {"id": "e" * 64, "name": "web", "image": "nginx", "command": '"nginx"', "created": None,
          "state": "running", "status": "Up", "ports": "", "labels": {"tier": "front", "app": "shop"},
          "mounts": [{"name": "data", "driver": "local"}, {"name": "/srv/a-very-long-host-path", "driver": ""}],
          "networks": ["bridge", "app"]}


def test_ps_format_labels_mounts_networks(inventory, calls):
    calls.answers["ps"] = lambda h, a: {"containers": [dict(PS_ROW, size="2B (virtual 10MB)") if a.get("size")
                                                       else PS_ROW]}
    fmt = '{{.Labels}}|{{.Label "tier"}}|{{.Label "nope"}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}'
    result = invoke(inventory, "ps", "-H", "web1", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stdout == "app=shop,tier=front|front||data,/srv/a-very-lo…|1|app,bridge\n"
    assert calls.calls[-1] == ("web1", "ps", {"all": False})
    full = invoke(inventory, "ps", "-H", "web1", "--no-trunc", "--format", "{{.Mounts}}")
    assert full.stdout == "data,/srv/a-very-long-host-path\n"
    sized = invoke(inventory, "ps", "-H", "web1", "--format", "{{.Names}} {{.Size}}")
    assert sized.stdout == "web 2B (virtual 10MB)\n"
    assert calls.calls[-1] == ("web1", "ps", {"all": False, "size": True})  # docker: .Size turns on --size


def test_ps_quiet_wins_over_a_format(inventory, calls):
    """docker: ps -q --format X prints the IDs (NewContainerFormat: quiet -> {{.ID}}) and warns on stderr."""
    calls.answers["ps"] = lambda h, a: {"containers": [PS_ROW]}
    result = invoke(inventory, "ps", "-H", "web1", "-q", "--format", "{{.Names}}")
    assert (result.exit_code, result.stdout) == (0, "e" * 12 + "\n")
    assert "WARNING: Ignoring custom format, because both --format and --quiet are set." in result.stderr
