"""What fleet's commands send fits the payload's request schema (agent_payload/requests.py): per op, a
representative command line, its captured request checked against the schema (no arg the schema does not
name, every required one present, every value of its declared type).

Requests are captured wherever they leave a command (``cli_fakes.cli_calls``): the fan-out, the interactive
runner (attach, start -a -i, run/exec -i/-t) and cp's payload call next to its SFTP transfer.
"""

import pytest

from agent_payload import requests as schema
from agent_payload.ops import OP_MODULES
from tests.helpers import cli_fakes
from tests.helpers.cli_fakes import _cli
from tests.helpers.images import docker_archive

cli_calls = cli_fakes.cli_calls

C = "c1"
SRC = "{src}"  #: a local directory with a file f in it (made per test)
#: (command line, the op it sends[, its stdin]); every flag a command has that changes its request, where practical.
COMMAND_LINES = [
    (["ping", "-H", "h1"], "ping"),
    (["facts", "-H", "h1"], "facts"),
    (["system", "boot", "-H", "h1"], "boot"),
    (["pull", "-H", "h1", "-a", "--platform", "linux/amd64", "busybox"], "pull"),
    (["push", "-H", "h1", "reg:5000/busybox"], "push"),
    (["login", "-H", "all", "-u", "me", "-p", "secret", "reg:5000"], "login"),
    (["login", "-H", "h1", "-u", "me", "--password-stdin"], "login", "secret\n"),
    (["logout", "-H", "h1", "reg:5000"], "logout"),
    (["configure", "-H", "all"], "configure"),
    (["images", "-H", "h1", "-a", "--digests", "-f", "dangling=true"], "images"),
    (["rmi", "-H", "h1", "-f", "busybox"], "rmi"),
    (["tag", "-H", "h1", "busybox", "mine:1"], "tag"),
    (["history", "-H", "h1", "busybox"], "history"),
    (["image", "prune", "-H", "h1", "-a", "-f"], "image_prune"),
    (["image", "inspect", "-H", "h1", "busybox"], "image_inspect"),
    (["system", "df", "-H", "h1"], "system_df"),
    (["system", "df", "-H", "h1", "-v"], "system_df"),
    (["system", "prune", "-H", "h1", "-a", "--volumes", "-f"], "system_prune"),
    (["version", "-H", "h1"], "version"),
    (["info", "-H", "h1"], "info"),
    (["run", "-d", "-H", "h1", "--name", "w", "--rm", "-e", "A=1", "--entrypoint", "sh", "-w", "/tmp",
      "--hostname", "hn", "-u", "nobody", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--privileged",
      "--read-only", "--security-opt", "no-new-privileges", "--network", "n1", "--network-alias", "a1",
      "--ip", "10.1.0.9", "-p", "8080:80", "-P", "-m", "32m", "--memory-swap", "64m", "--cpus", "0.5",
      "--cpu-shares", "512", "--pids-limit", "50", "-l", "k=v", "--stop-signal", "TERM", "--stop-timeout", "3",
      "--init", "--health-cmd", "true", "--health-interval", "1s", "--health-timeout", "1s",
      "--health-retries", "2", "--health-start-period", "1s", "--log-driver", "json-file",
      "--log-opt", "max-size=1m", "-v", "/data", "--mount", "type=tmpfs,target=/t", "-t", "-i",
      "busybox", "-c", "true"], "run"),
    (["create", "-H", "h1", "--restart", "always", "--no-healthcheck", "busybox"], "create"),
    (["create", "-H", "h1", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", "--dns", "10.9.9.9",
      "--dns-search", "example.com", "--dns-option", "ndots:2", "--expose", "7000-7001/udp", "--tmpfs",
      "/scratch:size=4m,exec", "--shm-size", "8m", "--ulimit", "nofile=512:1024", "--sysctl",
      "net.core.somaxconn=77", "--device", "/dev/loop0:/dev/xloop:r", "--group-add", "staff",
      "--memory-reservation", "32m", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--oom-kill-disable",
      "--mac-address", "92:d0:c6:0a:29:33", "--pull", "never", "--platform", "linux/amd64", "--volumes-from", "c0",
      "--link", "c0:db",
      "busybox"], "create"),
    (["ps", "-H", "h1", "-a", "-s", "-n", "2", "-f", "status=exited"], "ps"),
    (["logs", "-H", "h1", "-n", "5", "-t", "--since", "1m", "--until", "1s", "--details", C], "logs"),
    (["stop", "-H", "h1", "-t", "1", C], "stop"),
    (["rm", "-H", "h1", "-f", "-v", C], "rm"),
    (["start", "-H", "h1", "-a", C], "start"),
    (["start", "-H", "h1", "-a", "-i", "--detach-keys", "ctrl-a,x", C], "start"),
    (["attach", "-H", "h1", C], "attach"),
    (["attach", "-H", "h1", "--no-stdin", "--detach-keys", "ctrl-a,x", C], "attach"),
    (["restart", "-H", "h1", "-t", "1", C], "restart"),
    (["kill", "-H", "h1", "-s", "HUP", C], "kill"),
    (["wait", "-H", "h1", C], "wait"),
    (["rename", "-H", "h1", C, "c2"], "rename"),
    (["inspect", "-H", "h1", C], "inspect"),
    (["top", "-H", "h1", C], "top"),
    (["top", "-H", "h1", C, "-o", "pid,comm"], "top"),
    (["diff", "-H", "h1", C], "diff"),
    (["export", "-H", "h1", "-o", "/tmp/c.tar", C], "export"),
    (["container", "prune", "-H", "h1", "-f"], "container_prune"),
    (["update", "-H", "h1", "-m", "64m", "--memory-swap", "128m", "--cpus", "1", "--cpu-shares", "2",
      "--pids-limit", "9", "--restart", "no", C], "update"),
    (["update", "-H", "h1", "--memory-reservation", "16m", "--cpuset-cpus", "0-1", "--cpuset-mems", "0", C],
     "update"),
    (["stats", "-H", "h1", "-a", "--no-stream"], "stats"),
    (["pause", "-H", "h1", C], "pause"),
    (["unpause", "-H", "h1", C], "unpause"),
    (["exec", "-H", "h1", "-d", "-e", "A=1", "-w", "/", "-u", "0", "--privileged", C, "true"], "exec"),
    (["exec", "-H", "all", "-i", "-e", "A=1", "-w", "/", "-u", "0", "--privileged", C, "sh"], "exec", "echo hi\n"),
    (["exec", "-H", "h1", "-t", C, "sh"], "exec"),
    (["run", "-H", "all", "-i", "--detach-keys", "ctrl-a,x", "busybox", "sh"], "run", "echo hi\n"),
    (["run", "-H", "h1", "-t", "--rm", "busybox"], "run"),
    (["deploy", "-H", "all", "-f", SRC + "/compose.yaml", "--parallelism", "1", "--keep", "3", "-e", "tag=2",
      "--timeout", "60"], "service_swap"),
    (["deploy", "-H", "h1", "-f", SRC + "/compose.yaml"], "deploy_lock"),
    (["deploy", "-H", "h1", "-f", SRC + "/compose.yaml", "--dry-run"], "image_resolve"),
    (["services", "-H", "h1", "-f", SRC + "/compose.yaml"], "service_ls"),
    (["rollback", "-H", "all", "-f", SRC + "/compose.yaml", "web"], "service_rollback"),
    (["down", "-H", "all", "-p", "shop", "-v"], "service_down"),
    (["deploy", "history", "-H", "all", "-p", "shop", "-n", "5", "web"], "deploy_journal"),
    (["check", "-H", "all", "-f", SRC + "/compose.yaml", "--json", "--all"], "check"),
    (["cp", "-H", "all", SRC + "/f", C + ":/tmp/x"], "cp_in"),
    (["cp", "-H", "all", "-a", "-L", SRC + "/.", C + ":/tmp"], "cp_in"),
    (["cp", "-H", "h1", "-", C + ":/tmp"], "cp_in", ""),
    (["cp", "-H", "h1", "-a", "-L", C + ":/etc/hostname", "-"], "cp_out"),
    (["export", "-H", "h1", C], "export_out"),
    (["commit", "-H", "h1", "-a", "me", "-m", "msg", "-c", "ENV A=1", "-p", C, "mine:2"], "commit"),
    (["save", "-H", "h1", "-o", SRC + "/out.tar", "--format", "oci-archive", "busybox", "mine:2"], "save"),
    (["load", "-H", "all", "-i", SRC + "/image.tar"], "load_probe"),
    (["load", "-H", "all", "-q", "-i", SRC + "/image.tar"], "load"),
    (["import", "-H", "all", "-c", "CMD [\"/x\"]", "-m", "msg", SRC + "/f", "imp:1"], "import"),
    (["import", "-H", "h1", "http://10.0.0.9/rootfs.tar.gz"], "import"),
    (["port", "-H", "h1", C, "80/tcp"], "port"),
    # build's context upload (the build op's own line is below)
    (["build", "-H", "h1", "-t", "app:1", "-f", "-", SRC], "build_context", "FROM scratch\nCOPY f /\n"),
    (["network", "create", "-H", "h1", "--driver", "bridge", "--subnet", "10.9.0.0/24", "--gateway",
      "10.9.0.1", "--internal", "--label", "k=v", "n1"], "network_create"),
    (["network", "ls", "-H", "h1", "-f", "name=n"], "network_ls"),
    (["network", "inspect", "-H", "h1", "n1"], "network_inspect"),
    (["network", "rm", "-H", "h1", "n1"], "network_rm"),
    (["network", "prune", "-H", "h1", "-f"], "network_prune"),
    (["network", "connect", "-H", "h1", "--alias", "a", "--ip", "10.9.0.5", "n1", C], "network_connect"),
    (["network", "disconnect", "-H", "h1", "n1", C], "network_disconnect"),
    (["volume", "create", "-H", "h1", "--label", "k=v", "-d", "local", "v1"], "volume_create"),
    (["volume", "ls", "-H", "h1", "-f", "dangling=true"], "volume_ls"),
    (["volume", "inspect", "-H", "h1", "v1"], "volume_inspect"),
    (["volume", "rm", "-H", "h1", "-f", "v1"], "volume_rm"),
    (["volume", "prune", "-H", "h1", "-a", "-f"], "volume_prune"),
    (["events", "-H", "h1", "--since", "10m", "-f", "type=container", "-f", "event=die"], "events"),
    (["events", "-H", "h1", "--until", "0"], "events"),
    # the build op (its context upload is build_context's line): every flag that changes its request
    (["build", "-H", "h1", "-t", "app:1", "-t", "app:latest", "--build-arg", "A=1", "--target", "t", "--label",
      "k=v", "--no-cache", "--pull", "--network", "none", "--no-rm", "--force-rm", "-f", "-", SRC], "build",
     "FROM scratch AS t\nCOPY f /\n"),
]

_OTHER_CHECKS = {
    "str|int": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
    "str|number": lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    "str_list|object": lambda v: isinstance(v, (list, dict)),
    "labels": lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
    "console_size": lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) for i in v),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "network_list": lambda v: isinstance(v, list) and all(
        isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) and isinstance(i[1], list) and
        all(isinstance(a, str) for a in i[1]) for i in v),
    "object_list": lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
}


def fits(op, args):
    """The problems of ``args`` against the schema entry of ``op`` ([] when it fits)."""
    from agent_payload.ops.args import _TYPE_CHECKS

    entry = schema.REQUESTS[op]
    problems = ["{}: {} is not in the schema".format(op, key) for key in args if key not in entry]
    for key, arg in entry.items():
        value = args.get(key)
        if value is None:
            if arg.required:
                problems.append("{}: required {} missing".format(op, key))
        elif not dict(_TYPE_CHECKS, **_OTHER_CHECKS)[arg.type](value):
            problems.append("{}: {}={!r} is not {}".format(op, key, value, arg.type))
    return problems


def test_fits_finds_unknown_missing_and_mistyped_args():
    assert fits("tag", {"source": "a", "target": "b"}) == []
    assert fits("tag", {"source": "a", "taget": "b"}) == ["tag: taget is not in the schema",
                                                          "tag: required target missing"]
    assert fits("kill", {"containers": ["c"], "signal": True}) == ["kill: signal=True is not str|int"]


#: What the hosts answer: enough for attach and start -a -i (inspect: a running container without a TTY) and
#: cp out (the staged copy to fetch) to get on to their requests and on to their end.
ANSWERS = {
    "stats": {"stats": []}, "ps": {"containers": []},
    "inspect": {"containers": [{"Id": "a" * 64, "State": {"Running": True}, "Config": {"Tty": False}}]},
    "cp_out": {"staging": "/var/lib/fleet/tmp/cp-0.tar", "size": 5, "type": "file", "base": "hostname"},
    "cp_out:file": b"a tar",
    "export_out": {"staging": "/var/lib/fleet/tmp/cp-1.tar", "size": 5, "sha256": "sha256:" + "0" * 64},
    "save": {"images": []},
    "load_probe": {"present": []},
    "load": {"loaded": []},
    "import": {"id": "sha256:" + "0" * 64},
    # fleet build: the host holds the context, so the build goes on to the "build" op
    "build_context": {"present": True},
    # deploy: the web service runs on each host (an older config) with a previous version kept for rollback
    "service_ls": {"services": [
        {"id": "b" * 64, "name": "shop-web-1", "project": "shop", "service": "web", "config_hash": "old",
         "image_digest": "sha256:" + "2" * 64, "image": "reg:5000/shop/web:1", "state": "running", "retired": None},
        {"id": "c" * 64, "name": "shop-web-1.cccccccccccc", "project": "shop", "service": "web",
         "config_hash": "older", "image_digest": "sha256:" + "3" * 64, "image": "reg:5000/shop/web:0",
         "state": "exited", "retired": "2026-12-01T00:00:00Z"}]},
    "image_resolve": {"reference": "reg:5000/shop/web:1", "digest": "sha256:" + "1" * 64},
    "service_swap": {"result": "updated", "from": {"id": "b" * 64}, "to": {"id": "d" * 64}},
    "service_rollback": {"result": "updated", "from": {"id": "b" * 64}, "to": {"id": "c" * 64}},
    "build": {"id": "sha256:" + "e" * 64, "tags": ["app:1", "app:latest"], "steps": 1, "cached": 0},
}
COMPOSE = """
name: shop
services:
  web:
    image: "reg:5000/shop/web:{{ tag | default('1') }}"
    ports: ["8000:80"]
    environment: {A: "1"}
    networks: [front, back]
    volumes: ["data:/data"]
    healthcheck: {test: ["CMD", "true"], interval: 2s}
    deploy: {update_config: {order: start-first, monitor: 1s}}
    x-fleet: {probe: "http://:8000/"}
networks: {front: {}, back: {}}
volumes: {data: {}}
"""


@pytest.mark.parametrize("argv,op,stdin", [(c[0], c[1], c[2] if len(c) > 2 else None) for c in COMMAND_LINES],
                         ids=[c[1] for c in COMMAND_LINES])
def test_each_commands_request_fits_the_schema(cli_calls, monkeypatch, tmp_path, argv, op, stdin):
    from fleet.commands import interactive

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    (tmp_path / "src" / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "src" / "image.tar").write_bytes(docker_archive(["mine:2"])[0])
    argv = [a.replace(SRC, str(tmp_path / "src")) for a in argv]
    monkeypatch.setattr(interactive, "terminal_size", lambda fd=1: [24, 80])  # -t sends its size, as on a terminal
    cli_calls.answers.update(ANSWERS)
    result = _cli(cli_calls, *argv, input=stdin)
    sent = [(o, a) for _h, o, a, _b in cli_calls.calls]
    assert sent, result.output
    assert op in [o for o, _ in sent], (sent, result.output)
    for o, a in sent:
        assert fits(o, a) == []


def test_every_op_has_a_command_line():
    assert set(OP_MODULES) == {c[1] for c in COMMAND_LINES}
