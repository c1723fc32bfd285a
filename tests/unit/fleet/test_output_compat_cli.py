"""What scripts read from stdout (issue 13, items 3 and 4), with the fan-out faked: ``ps -q`` and ``images -q``
print bare IDs; with one host ``run -d`` prints the full ID alone and attached ``run`` puts its summary on stderr;
with several hosts ``run`` keeps its table on stdout."""

from typer.testing import CliRunner

from fleet import cli
from fleet.errors import RemoteError
from tests.helpers import cli_fakes

inventory, calls = cli_fakes.inventory, cli_fakes.calls  # fixtures by assignment (ruff flags imported fixtures)

CID = "c" * 64


def invoke(inventory, *args):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args))


def _container(name="web"):
    return {"id": CID, "name": name, "image": "nginx", "command": '"nginx"', "created": None,
            "state": "running", "status": "Up", "ports": ""}


def test_ps_q_is_bare_ids_for_one_host_and_for_several(inventory, calls):
    calls.answers["ps"] = lambda h, a: ({"containers": [_container()]} if h.name != "db1"
                                        else RemoteError("Internal", "boom"))
    one = invoke(inventory, "ps", "-H", "web1", "-q")
    assert one.exit_code == 0 and one.stdout == "c" * 12 + "\n"
    full = invoke(inventory, "ps", "-H", "web1", "-q", "--no-trunc")
    assert full.stdout == CID + "\n"
    several = invoke(inventory, "ps", "-H", "all", "-aq")
    assert several.stdout == ("c" * 12 + "\n") * 2 and "db1: boom" in several.stderr and several.exit_code == 1
    qualified = invoke(inventory, "ps", "-H", "web", "--format", "{{.Host}} {{.ID}}")
    assert qualified.stdout == "web1 {0}\nweb2 {0}\n".format("c" * 12)


def test_images_q_is_bare_ids(inventory, calls):
    img = {"repository": "nginx", "tag": "latest", "id": "sha256:" + "ab" * 32, "created": None, "size": 1}
    calls.answers["images"] = lambda h, a: {"images": [img, dict(img, tag="1.25")]}
    several = invoke(inventory, "images", "-H", "web", "-q")
    assert several.exit_code == 0 and several.stdout == "abababababab\n" * 4  # a row per tag, as docker's
    assert invoke(inventory, "images", "-H", "web1", "-q", "--no-trunc").stdout == (img["id"] + "\n") * 2


def test_run_d_on_one_host_prints_the_full_id_only(inventory, calls):
    calls.answers["run"] = lambda h, a: {"id": CID, "name": "web", "image": "nginx", "exit_code": None,
                                         "ports": ""}
    one = invoke(inventory, "run", "-H", "web1", "-d", "--name", "web", "nginx")
    assert one.exit_code == 0 and one.stdout == CID + "\n" and one.stderr == ""
    several = invoke(inventory, "run", "-H", "web", "-d", "--name", "web", "nginx")
    lines = several.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "ID", "NAME", "IMAGE", "PORTS"]
    assert [line.split()[:2] for line in lines[1:]] == [["web1", "c" * 12], ["web2", "c" * 12]]


def test_run_d_failing_on_one_host_names_it_on_stderr(inventory, calls):
    calls.answers["run"] = lambda h, a: RemoteError("Conflict", 'the container name "/web" is already in use')
    one = invoke(inventory, "run", "-H", "web1", "-d", "--name", "web", "nginx")
    assert one.exit_code == 125 and one.stdout == ""  # docker run: 125 when the engine failed
    assert "web1" in one.stderr and "already in use" in one.stderr
    several = invoke(inventory, "run", "-H", "web", "-d", "--name", "web", "nginx")
    assert several.exit_code == 1  # several hosts: fleet's partial failure rule


def test_run_failing_on_one_host_exits_125_attached_too(inventory, calls):
    """docker run attached: 125 when no container ran (docker/cli run.go), the container's code else (the -i/-t
    path decides with the same common.run_status)."""
    calls.answers["run"] = lambda h, a: RemoteError("NotFound", "manifest unknown")
    assert invoke(inventory, "run", "-H", "web1", "busybox", "true").exit_code == 125
    assert invoke(inventory, "run", "-H", "web", "busybox", "true").exit_code == 1


def test_attached_run_summary_goes_to_stderr_on_one_host_and_stays_on_stdout_for_several(inventory, calls):
    calls.answers["run"] = lambda h, a: {"id": CID, "name": "job", "image": "busybox", "exit_code": 3,
                                         "ports": ""}
    one = invoke(inventory, "run", "-H", "web1", "--name", "job", "busybox", "true")
    assert one.exit_code == 3 and one.stdout == ""  # the (faked) container wrote nothing
    assert one.stderr.splitlines()[0].split() == ["HOST", "CONTAINER", "ID", "NAME", "EXIT", "CODE"]
    several = invoke(inventory, "run", "-H", "web", "--name", "job", "busybox", "true")
    assert several.exit_code == 1 and several.stdout.splitlines()[0].split()[:3] == ["HOST", "CONTAINER", "ID"]


def test_network_volume_history_and_pull_q_are_bare(inventory, calls):
    """docker network ls -q / volume ls -q print IDs / names, history -q layer IDs, pull -q the reference."""
    calls.answers["network_ls"] = lambda h, a: {"networks": [{"id": "n" * 64, "name": "app", "driver": "bridge",
                                                              "scope": "local"}]}
    calls.answers["volume_ls"] = lambda h, a: {"volumes": [{"name": "data", "driver": "local"}]}
    calls.answers["history"] = lambda h, a: {"history": [{"id": "sha256:" + "2" * 64}, {"id": "<missing>"}]}
    calls.answers["pull"] = lambda h, a: {"image": "docker.io/library/nginx:latest", "id": "sha256:" + "3" * 64,
                                          "digest": "sha256:" + "4" * 64, "layers": 1, "downloaded": 0}
    assert invoke(inventory, "network", "ls", "-H", "web", "-q").stdout == ("n" * 12 + "\n") * 2
    assert invoke(inventory, "network", "ls", "-H", "web1", "-q", "--no-trunc").stdout == "n" * 64 + "\n"
    assert invoke(inventory, "volume", "ls", "-H", "web1", "-q").stdout == "data\n"
    assert invoke(inventory, "history", "-H", "web1", "-q", "nginx").stdout == "2" * 12 + "\n<missing>\n"
    assert invoke(inventory, "pull", "-H", "web1", "-q", "nginx").stdout == "docker.io/library/nginx:latest\n"
