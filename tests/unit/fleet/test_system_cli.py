"""fleet system prune, version and info (issue 13, item 10): docker's prompt asked once on the controller, the
per-section output, and the Client/Server and info blocks."""

import json

import pytest
from typer.testing import CliRunner

from fleet import cli
from fleet.commands import hosts
from fleet.errors import RemoteError
from tests.helpers import cli_fakes

inventory, calls = cli_fakes.inventory, cli_fakes.calls  # fixtures by assignment

PRUNED = {"containers": {"deleted": ["c" * 64], "reclaimed": 1000},
          "networks": {"removed": ["net1"]},
          "volumes": {"removed": ["v" * 64], "reclaimed": 2000},
          "images": {"untagged": ["busybox:latest"], "deleted": ["sha256:" + "1" * 64], "reclaimed": 3000},
          "build_cache": {"deleted": [], "reclaimed": 0}, "reclaimed": 6000}


def invoke(inventory, *args, input=None):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args), input=input)


def test_prune_warning_is_dockers():
    assert hosts.prune_warning(False, False) == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n  - all dangling images\n"
        "  - unused build cache\n")
    assert hosts.prune_warning(True, True) == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all images without at least one container associated to them\n  - all build cache\n")


@pytest.mark.parametrize("answer", ["", "n\n", "no\n", "yes please\n"])
def test_system_prune_asks_once_and_anything_but_y_is_no(inventory, calls, answer):
    """docker reads the answer from stdin even when it is no terminal; anything but y/yes is no: nothing runs."""
    result = invoke(inventory, "system", "prune", "-H", "all", input=answer)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Are you sure you want to continue? [y/N]") == 1
    assert "WARNING! This will remove:" in result.stderr and calls.calls == []


def test_system_prune_y_runs_everywhere_with_dockers_sections(inventory, calls):
    calls.answers["system_prune"] = lambda h, a: PRUNED
    result = invoke(inventory, "system", "prune", "-H", "web1", "--volumes", "-a", input="y\n")
    assert result.exit_code == 0, result.output
    assert calls.calls == [("web1", "system_prune", {"all": True, "volumes": True})]
    assert result.stdout == (
        "Deleted Containers:\n" + "c" * 64 + "\n\n"
        "Deleted Networks:\nnet1\n\n"
        "Deleted Volumes:\n" + "v" * 64 + "\n\n"
        "Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:" + "1" * 64 + "\n\n"
        "Total reclaimed space: 6kB\n")


def test_system_prune_f_several_hosts_and_a_failed_one(inventory, calls):
    calls.answers["system_prune"] = lambda h, a: (RemoteError("Internal", "disk on fire") if h.name == "db1"
                                                  else dict(PRUNED, volumes=None, images={}))
    result = invoke(inventory, "system", "prune", "-H", "all", "-f")
    assert result.exit_code == 1
    assert [c[0] for c in calls.calls] == ["web1", "web2", "db1"]
    assert "Are you sure" not in result.stderr and "db1: disk on fire" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Deleted Containers:", "web1  " + "c" * 64, "web2  " + "c" * 64]
    assert lines[-1] == "Total reclaimed space: 12kB" and "Deleted Volumes:" not in lines


SERVER = {"Version": "0.1.0", "Payload": "a" * 64, "ProtocolVersion": 1, "PythonVersion": "3.9.2",
          "KernelVersion": "6.1.0", "Os": "linux", "Arch": "amd64", "Hostname": "web1"}


def test_version_client_and_server_sections(inventory, calls):
    calls.answers["version"] = lambda h, a: SERVER if h.name == "web1" else RemoteError("Unavailable", "down")
    result = invoke(inventory, "version", "-H", "web")
    assert result.exit_code == 1
    text = result.stdout
    assert text.startswith("Client: fleet\n Version:  ")
    assert "\n\nServer: web1\n Version:" in text and " Payload:          " + "a" * 64 in text
    assert " Kernel version:   6.1.0" in text and " OS/Arch:          linux/amd64" in text
    assert "Server: web2\n Error: down" in text
    out = invoke(inventory, "version", "-H", "web1", "--format", "{{.Host}} {{.Server.Version}} "
                 "{{.Client.Version}} {{.Server.Payload}}").stdout
    from fleet import __version__
    assert out == "web1 0.1.0 {} {}\n".format(__version__, "a" * 64)
    data = json.loads(invoke(inventory, "version", "-H", "web1", "--json").stdout)
    assert data["Client"]["Version"] == __version__ and data["Servers"][0]["Payload"] == "a" * 64


def test_payload_and_controller_versions_agree():
    import agent_payload
    import fleet
    assert agent_payload.__version__ == fleet.__version__


INFO = {"Name": "web1", "ServerVersion": "0.1.0", "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0,
        "ContainersStopped": 2, "Images": 4, "Driver": "overlay2", "DockerRootDir": "/var/lib/fleet",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2", "FirewallBackend": {"Driver": "nftables"},
        "KernelVersion": "6.1.0", "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux",
        "Architecture": "x86_64", "NCPU": 2, "MemTotal": 2 * 1024 ** 3,
        "RegistryConfig": {"Mirrors": ["http://10.0.0.2:5000"], "InsecureRegistries": ["10.0.0.2:5000",
                                                                                      "127.0.0.0/8"]},
        "Payload": "a" * 64, "ProtocolVersion": 1, "PythonVersion": "3.9.2"}


@pytest.mark.parametrize("argv", [["info"], ["system", "info"]])
def test_info_blocks_json_and_format(inventory, calls, argv):
    calls.answers["info"] = lambda h, a: dict(INFO, Name=h.name)
    text = invoke(inventory, *argv, "-H", "web").stdout
    assert text.startswith("Server: web1\n Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 4\n")
    for line in (" Storage Driver: overlay2", " Cgroup Driver: cgroupfs", " Cgroup Version: 2",
                 " Firewall Backend: nftables", " Total Memory: 2GiB", " Docker Root Dir: /var/lib/fleet",
                 " Insecure Registries:\n  10.0.0.2:5000\n  127.0.0.0/8", " Registry Mirrors:\n  http://10.0.0.2:5000"):
        assert line in text
    assert "\n\nServer: web2\n" in text
    fmt = invoke(inventory, *argv, "-H", "web", "--format", "{{.Host}} {{.ContainersRunning}} {{.CgroupVersion}}")
    assert fmt.stdout == "web1 1 2\nweb2 1 2\n"
    nested = invoke(inventory, *argv, "-H", "web1", "--format",
                    "{{index .RegistryConfig.InsecureRegistries 0}} {{.FirewallBackend.Driver}}")
    assert nested.stdout == "10.0.0.2:5000 nftables\n", nested.stderr  # objects' keys pass the up-front check
    data = json.loads(invoke(inventory, *argv, "-H", "web1", "--json").stdout)
    assert data[0]["host"] == "web1" and data[0]["Images"] == 4
    bad = invoke(inventory, *argv, "-H", "web1", "--format", "{{.Nope}}")
    assert bad.exit_code == 2 and ".Nope" in bad.stderr
