"""CLI of the image and registry commands: usage errors exit 2 before any host is contacted, login keeps the
password out of argv and output, configure sends per-host args, and `fleet --help` stays light."""

import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from fleet import cli
from fleet.commands.common import Session
from fleet.errors import RemoteError
from tests.helpers import cli_fakes
from tests.helpers.cli_fakes import INVENTORY

SECRET = "s3cr3t-Pa55!word"

inventory, calls = cli_fakes.inventory, cli_fakes.calls  # fixtures by assignment (ruff flags imported fixtures)


def invoke(inventory, *args, input=None):
    return CliRunner().invoke(cli.app, ["-i", inventory] + list(args), input=input)


@pytest.mark.parametrize("args,needle", [
    (["pull", "-H", "all", "UPPER/Case"], "UPPER/Case"),
    (["pull", "-H", "all", "-a", "nginx:1.25"], "nginx:1.25"),
    (["pull", "-H", "all", "-a", "nginx@sha256:" + "a" * 64], "--all-tags"),
    (["pull", "-H", "all", "--platform", "linux", "nginx"], "linux"),
    (["pull", "-H", "all", "--platform", "linux/arm64/v8/x", "nginx"], "linux/arm64/v8/x"),
    (["image", "pull", "-H", "all", "--platform", "linux/amd 64", "nginx"], "linux/amd 64"),
    (["images", "-H", "all", "-f", "label=x"], "label"),
    (["images", "-H", "all", "-f", "dangling=maybe"], "dangling=maybe"),
    (["images", "-H", "all", "-f", "reference"], "reference"),
    (["image", "ls", "-H", "all", "--format", "{{.Nope}}"], ".Nope"),
    (["ps", "-H", "all", "--format", "table {{.Repository}}"], ".Repository"),
    (["rmi", "-H", "all", "nginx", "Bad Name"], "Bad Name"),
    (["image", "rm", "-H", "all", "UPPER"], "UPPER"),
    (["tag", "-H", "all", "nginx", "BAD:tag"], "BAD:tag"),
    (["tag", "-H", "all", "nginx", "app@sha256:" + "b" * 64], "digest"),
    (["image", "tag", "-H", "all", "Bad!", "app:1"], "Bad!"),
    (["history", "-H", "all", "a b"], "a b"),
    (["image", "inspect", "-H", "all", "nginx", "x y"], "x y"),
    (["push", "-H", "all", "Nope:1"], "Nope:1"),
    (["login", "-H", "all", "bad registry"], "bad registry"),
    (["logout", "-H", "all", "bad registry"], "bad registry"),
    (["images", "-H", "nosuchgroup"], "nosuchgroup"),
])
def test_bad_input_exits_2_with_one_line_before_any_host(inventory, calls, args, needle):
    result = invoke(inventory, *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert calls.calls == []


def test_valid_inputs_reach_the_hosts_with_the_protocol_args(inventory, calls):
    calls.answers["images"] = lambda h, a: {"images": []}
    assert invoke(inventory, "images", "-H", "web", "-a", "--digests", "-f", "dangling=true",
                  "-f", "reference=ngin*").exit_code == 0
    assert calls.calls[0] == ("web1", "images", {"all": True, "digests": True,
                                                 "filters": ["dangling=true", "reference=ngin*"]})
    calls.calls.clear()
    calls.answers["pull"] = lambda h, a: {"pulled": []}
    assert invoke(inventory, "pull", "-H", "db1", "-a", "--platform", "linux/ARM64/v8", "nginx").exit_code == 0
    assert calls.calls == [("db1", "pull", {"image": "nginx", "all_tags": True, "platform": "linux/arm64/v8"})]


def test_images_table_digests_quiet_and_format(inventory, calls):
    img = {"repository": "nginx", "tag": "latest", "id": "sha256:" + "ab" * 32, "digest": "sha256:" + "cd" * 32,
           "created": None, "size": 1_500_000, "containers": 0}
    calls.answers["images"] = lambda h, a: {"images": [img]} if h.name == "web1" else RemoteError("Internal", "boom")
    result = invoke(inventory, "images", "-H", "web", "--digests")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE", "ERROR"]
    assert lines[1].split() == ["web1", "nginx", "latest", img["digest"], "abababababab", "1.5MB"]
    assert lines[2].split() == ["web2", "boom"]
    quiet = invoke(inventory, "images", "-H", "web", "-q")
    assert quiet.stdout == "abababababab\n" and "web2: boom" in quiet.stderr and quiet.exit_code == 1
    fmt = invoke(inventory, "images", "-H", "web", "--format", "{{.Host}} {{.Repository}}:{{.Tag}}")
    assert fmt.stdout == "web1 nginx:latest\n" and "web2: boom" in fmt.stderr and fmt.exit_code == 1


def test_ps_format_uses_the_container_fields(inventory, calls):
    calls.answers["ps"] = lambda h, a: {"containers": [{"id": "e" * 64, "name": "web", "image": "nginx",
                                                        "command": '"nginx"', "created": None, "state": "running",
                                                        "status": "Up", "ports": ""}]}
    result = invoke(inventory, "ps", "-H", "web1", "-a", "--format", r"table {{.Names}}\t{{.State}}")
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [["HOST", "NAMES", "STATE"],
                                                                     ["web1", "web", "running"]]
    assert calls.calls == [("web1", "ps", {"all": True})]


def test_rmi_history_prune_df_tables(inventory, calls):
    calls.answers["rmi"] = lambda h, a: {"untagged": ["nginx:latest"], "deleted": ["sha256:" + "1" * 64]}
    out = invoke(inventory, "rmi", "-H", "web1", "-f", "nginx").stdout.splitlines()
    assert out[0].split() == ["HOST", "RESULT"]
    assert out[1].split() == ["web1", "Untagged:", "nginx:latest"]
    assert out[2].split() == ["web1", "Deleted:", "sha256:" + "1" * 64]
    assert calls.calls[-1] == ("web1", "rmi", {"images": ["nginx"], "force": True})

    step = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / "
    calls.answers["history"] = lambda h, a: {"history": [
        {"id": "sha256:" + "2" * 64, "created": None, "created_by": step, "size": 4_260_000, "comment": "c"},
        {"id": "<missing>", "created": None, "created_by": "x", "size": 0, "comment": ""}]}
    table = invoke(inventory, "history", "-H", "web1", "busybox").stdout
    assert step[:44] + "…" in table and step not in table
    assert "<missing>" in table and "4.26MB" in table
    assert step.strip() in invoke(inventory, "history", "-H", "web1", "--no-trunc", "busybox").stdout
    assert invoke(inventory, "history", "-H", "web1", "-q", "busybox").stdout.split() == [
        "2" * 12, "<missing>"]  # docker's -q: bare IDs (issue 13)

    calls.answers["image_prune"] = lambda h, a: {"deleted": ["sha256:" + "3" * 64], "untagged": [],
                                                 "reclaimed": 2_000_000}
    pruned = invoke(inventory, "image", "prune", "-H", "web", "-f", "-a")
    assert pruned.exit_code == 0
    assert pruned.stdout.splitlines()[-1] == "Total reclaimed space: 4MB"
    assert calls.calls[-1] == ("web2", "image_prune", {"all": True})

    calls.answers["system_df"] = lambda h, a: {
        "images": {"total": 3, "active": 1, "size": 10_000_000, "reclaimable": 5_000_000},
        "containers": {"total": 1, "active": 1, "size": 0, "reclaimable": 0},
        "build_cache": {"total": 0, "active": 0, "size": 0, "reclaimable": 0}}
    df = invoke(inventory, "system", "df", "-H", "db1").stdout.splitlines()
    assert df[0].split() == ["HOST", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split() == ["db1", "Images", "3", "1", "10MB", "5MB", "(50%)"]
    assert df[3].split()[:3] == ["db1", "Build", "Cache"]


def test_image_inspect_is_one_json_list_with_hosts(inventory, calls):
    calls.answers["image_inspect"] = lambda h, a: ({"images": [{"Id": "sha256:x", "RepoTags": ["nginx:latest"]}]}
                                                   if h.name == "web1" else RemoteError("NotFound", "No such image"))
    result = invoke(inventory, "image", "inspect", "-H", "web", "nginx")
    assert json.loads(result.stdout) == [{"host": "web1", "Id": "sha256:x", "RepoTags": ["nginx:latest"]}]
    assert "web2: No such image" in result.stderr and result.exit_code == 1


def test_image_inspect_found_and_missing_prints_the_found_and_exits_1(inventory, calls):
    """docker image inspect found missing: the found object, then "Error: No such image: missing", exit 1."""
    calls.answers["image_inspect"] = lambda h, a: {
        "images": [{"Id": "sha256:x", "RepoTags": ["nginx:latest"]}],
        "errors": [{"image": "missing", "kind": "NotFound", "message": "No such image: missing"}]}
    result = invoke(inventory, "image", "inspect", "-H", "web1", "nginx", "missing")
    assert json.loads(result.stdout) == [{"host": "web1", "Id": "sha256:x", "RepoTags": ["nginx:latest"]}]
    assert result.stderr == "web1: Error: No such image: missing\n" and result.exit_code == 1
    formatted = invoke(inventory, "image", "inspect", "-H", "web1", "-f", "{{.Id}}", "nginx", "missing")
    assert (formatted.stdout, formatted.exit_code) == ("sha256:x\n", 1)


def test_prune_refuses_without_force_when_stdin_is_not_a_tty(inventory, calls):
    result = invoke(inventory, "image", "prune", "-H", "all", input="y\n")
    assert result.exit_code == 2 and "-f" in result.stderr and calls.calls == []


class TTYInput(io.StringIO):
    def isatty(self):
        return True


def test_prune_asks_on_a_tty(inventory, calls, capsys):
    from fleet.commands import images

    calls.answers["image_prune"] = lambda h, a: {"deleted": [], "untagged": [], "reclaimed": 0}
    session = Session(inventories=[inventory])
    assert images.image_prune(session, ["all"], False, False, False, stdin=TTYInput("n\n")) == 0
    assert calls.calls == []
    err = capsys.readouterr().err
    assert err == "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    assert images.image_prune(session, ["all"], False, False, False, stdin=TTYInput("y\n")) == 0
    assert [c[1] for c in calls.calls] == ["image_prune"] * 3
    assert capsys.readouterr().out.strip() == "Total reclaimed space: 0B"


def test_login_password_stdin_travels_only_in_the_request(inventory, calls):
    calls.answers["login"] = lambda h, a: {"registry": a["registry"], "status": "Login Succeeded"}
    result = invoke(inventory, "login", "-H", "web", "-u", "bob", "--password-stdin", "reg:5000", "--json",
                    input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert calls.calls == [(h, "login", {"registry": "reg:5000", "username": "bob", "password": SECRET})
                           for h in ("web1", "web2")]
    assert SECRET not in result.stdout and SECRET not in result.stderr
    assert [h["status"] for h in json.loads(result.stdout)] == ["Login Succeeded"] * 2


def test_login_with_p_warns_and_never_prints_the_password_even_if_a_host_echoes_it(inventory, calls):
    calls.answers["login"] = lambda h, a: RemoteError("Unavailable", "registry said: bad password " + a["password"],
                                                      details={"traceback": a["password"]})
    for extra in ([], ["--json"]):
        result = invoke(inventory, "login", "-H", "all", "-u", "bob", "-p", SECRET, *extra)
        assert result.exit_code == 1
        assert "WARNING! Using --password via the CLI is insecure. Use --password-stdin." in result.stderr
        assert SECRET not in result.stdout and SECRET not in result.stderr
        assert "bad password ********" in result.stdout


def test_login_rejected_input_message_is_scrubbed(inventory, calls):
    calls.answers["login"] = lambda h, a: RemoteError("InvalidArgument", "bad credentials " + a["password"])
    result = invoke(inventory, "login", "-H", "all", "-u", "bob", "--password-stdin", input=SECRET)
    assert result.exit_code == 2 and SECRET not in result.stderr and "********" in result.stderr


@pytest.mark.parametrize("args,input,needle", [
    (["-u", "bob"], "", "non TTY"),
    ([], SECRET, "non TTY"),
    (["-p", SECRET, "--password-stdin", "-u", "bob"], SECRET, "mutually exclusive"),
    (["--password-stdin"], SECRET, "--username"),
    (["-u", "bob", "--password-stdin"], "\n", "password is required"),
])
def test_login_usage_errors(inventory, calls, args, input, needle):
    result = invoke(inventory, "login", "-H", "all", *args, input=input)
    assert result.exit_code == 2 and needle in result.stderr, result.output
    assert SECRET not in result.stderr and calls.calls == []


def test_login_prompts_on_a_tty():
    from fleet.commands import registry

    asked = []
    user, password = registry.read_credentials(None, None, False, stdin=TTYInput(""),
                                               prompt_user=lambda p: asked.append(p) or "bob ",
                                               prompt_password=lambda p: asked.append(p) or SECRET)
    assert (user, password, asked) == ("bob", SECRET, ["Username: ", "Password: "])


def test_the_remote_command_line_never_carries_args():
    """The password could only leak into argv through the remote command; it is built without the args."""
    import inspect

    from fleet.transport import invoke

    assert list(inspect.signature(invoke.remote_command).parameters) == ["host", "payload"]


def test_configure_sends_each_host_its_own_inventory_settings(inventory, calls):
    calls.answers["configure"] = lambda h, a: {"changed": bool(a["daemon"]), "daemon": a["daemon"]}
    result = invoke(inventory, "configure", "-H", "all")
    assert result.exit_code == 0, result.output
    sent = {h: a for h, op, a in calls.calls}
    assert sent["web1"] == {"daemon": {"registry-mirrors": ["http://10.0.0.2:5000"],
                                       "insecure-registries": ["10.0.0.2:5000"], "debug": True}}
    assert sent["web2"] == {"daemon": {"registries": {"reg:5000": {"mirrors": ["http://m:5000"]}}}}
    assert sent["db1"] == {"daemon": {}}
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["web1"] == ["web1", "yes", "debug,insecure-registries,registry-mirrors"]
    assert rows["db1"] == ["db1", "no", "-"]


@pytest.mark.parametrize("var,value,needle", [
    ("fleet_registry_mirrors", '"http://x"', "list"),
    ("fleet_insecure_registries", "[1, 2]", "strings"),
    ("fleet_registries", "[a]", "mapping"),
    ("fleet_daemon", "[a]", "mapping"),
])
def test_configure_checks_every_host_before_contacting_any(tmp_path, calls, var, value, needle):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY.replace("db1: {ansible_host: 10.0.0.3}",
                                      "db1: {{ansible_host: 10.0.0.3, {}: {}}}".format(var, value)))
    result = invoke(str(path), "configure", "-H", "all")
    assert result.exit_code == 2 and "db1" in result.stderr and var in result.stderr and needle in result.stderr
    assert calls.calls == []


def test_fanout_args_for_gives_each_host_its_own_args(monkeypatch):
    import asyncio

    from fleet.transport import fanout, invoke, ssh

    class Conn:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

    async def connect(host, opts):
        return Conn()

    seen = []

    async def call(conn, host, payload, op, args, callback):
        seen.append((host.name, args))
        return SimpleNamespace(data={"ok": host.name}, uploaded=False)

    monkeypatch.setattr(ssh, "connect", connect)
    monkeypatch.setattr(invoke, "call", call)
    hosts = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    payload = SimpleNamespace(sha256="x")
    asyncio.run(fanout.run_async(hosts, "configure", {"same": 1}, payload=payload,
                                 args_for=lambda h: {"daemon": {"for": h.name}}))
    assert sorted(seen) == [("a", {"daemon": {"for": "a"}}), ("b", {"daemon": {"for": "b"}})]
    seen.clear()
    asyncio.run(fanout.run_async(hosts, "ping", {"same": 1}, payload=payload))
    assert sorted(seen) == [("a", {"same": 1}), ("b", {"same": 1})]


def _modules_after(argv):
    code = ("import sys\nfrom fleet import cli\n"
            "try:\n    cli.app({!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('asyncssh', 'jinja2', 'pydantic') if m in sys.modules))\n").format(argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_help_imports_no_heavy_modules():
    assert _modules_after(["--help"]) == "[]"
    # typer itself (>= 0.16) imports pydantic to coerce a subcommand's parameters; ours add no asyncssh or jinja2
    for argv in (["images", "--help"], ["image", "ls", "--help"], ["login", "--help"], ["system", "df", "--help"]):
        assert _modules_after(argv) in ("[]", "['pydantic']"), argv


def test_image_subcommands_and_aliases_exist():
    result = CliRunner().invoke(cli.app, ["image", "--help"])
    for name in ("ls", "rm", "prune", "inspect", "tag", "history", "pull", "push"):
        assert name in result.stdout
    result = CliRunner().invoke(cli.app, ["--help"])
    for name in ("images", "rmi", "tag", "history", "pull", "push", "login", "logout", "configure", "system"):
        assert name in result.stdout


def test_system_df_has_docker_local_volumes_row(inventory, calls):
    """docker system df: rows Images, Containers, Local Volumes, Build Cache (issue 13, item 7)."""
    row = {"total": 2, "active": 1, "size": 4_000_000, "reclaimable": 1_000_000}
    calls.answers["system_df"] = lambda h, a: {"images": row, "containers": row, "volumes": row, "build_cache": row}
    lines = invoke(inventory, "system", "df", "-H", "db1").stdout.splitlines()
    assert [" ".join(line.split()[1:3]) for line in lines[1:]] == [
        "Images 2", "Containers 2", "Local Volumes", "Build Cache"]
    assert lines[3].split() == ["db1", "Local", "Volumes", "2", "1", "4MB", "1MB", "(25%)"]


@pytest.mark.parametrize("argv", [["images", "-H", "web1", "busybox:1"], ["image", "ls", "-H", "web1", "busybox:1"],
                                  ["image", "list", "-H", "web1", "busybox:1"]])
def test_images_repository_argument_is_a_reference_filter(inventory, calls, argv):
    """docker images [REPOSITORY[:TAG]] (and image ls/list): the argument is a reference filter."""
    calls.answers["images"] = lambda h, a: {"images": []}
    result = invoke(inventory, *argv, "-f", "dangling=false")
    assert result.exit_code == 0, result.output
    assert calls.calls == [("web1", "images", {"all": False, "digests": False,
                                               "filters": ["dangling=false", "reference=busybox:1"]})]


@pytest.mark.parametrize("argv,op", [(["network", "list"], "network_ls"), (["volume", "list"], "volume_ls"),
                                     (["container", "list", "-a"], "ps"), (["container", "ls", "-a"], "ps")])
def test_listing_aliases_of_management_commands(inventory, calls, argv, op):
    """docker: container ls/list/ps, image ls/list, network ls/list, volume ls/list are the same listing."""
    calls.answers[op] = lambda h, a: {"networks": [], "volumes": [], "containers": []}
    result = invoke(inventory, *argv, "-H", "web1")
    assert result.exit_code == 0, result.output
    assert [c[1] for c in calls.calls] == [op]


def test_system_df_v_sections(inventory, calls):
    """docker system df -v: "Images space usage:", "Containers space usage:", "Local Volumes space usage:" and
    "Build cache usage: 0B" sections with docker's columns."""
    row = {"total": 1, "active": 1, "size": 0, "reclaimable": 0}
    calls.answers["system_df"] = lambda h, a: {
        "images": row, "containers": row, "volumes": row, "build_cache": row, "verbose": {
            "images": [{"repository": "busybox", "tag": "latest", "id": "sha256:" + "1" * 64, "created": "",
                        "size": 4_000_000, "shared_size": 1_000_000, "unique_size": 3_000_000, "containers": 1}],
            "containers": [{"id": "c" * 64, "image": "busybox", "command": "sleep 300", "local_volumes": 1,
                            "size": 12, "created": "", "status": "Up 2 seconds", "names": "web"}],
            "volumes": [{"name": "data", "links": 1, "size": 2048}], "build_cache": []}}
    result = invoke(inventory, "system", "df", "-H", "web1", "-v")
    assert result.exit_code == 0, result.output
    assert calls.calls == [("web1", "system_df", {"verbose": True})]
    lines = result.stdout.splitlines()
    assert lines[0] == "Images space usage:" and lines[1] == ""
    assert lines[2].split() == ["HOST", "REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "SHARED", "SIZE",
                                "UNIQUE", "SIZE", "CONTAINERS"]
    assert lines[3].split() == ["web1", "busybox", "latest", "1" * 12, "4MB", "1MB", "3MB", "1"]
    i = lines.index("Containers space usage:")
    assert lines[i + 3].split() == ["web1", "c" * 12, "busybox", '"sleep', '300"', "1", "12B", "Up", "2", "seconds",
                                    "web"]
    j = lines.index("Local Volumes space usage:")
    assert lines[j + 2].split() == ["HOST", "VOLUME", "NAME", "LINKS", "SIZE"]
    assert lines[j + 3].split() == ["web1", "data", "1", "2.05kB"]
    assert "Build cache usage: 0B" in lines
