"""fleet.compose: each compose key mapped onto the create op's args (checked against the request schema), networks
and volumes, healthchecks, rollout configs, the canonical spec JSON / config hash and per-host port conflicts."""

import hashlib
import json

import pytest

from agent_payload.requests import REQUESTS
from tests.helpers.compose import error, host, load, specs

WEB = """\
services:
  web:
    image: nginx
"""


def web(tmp_path, extra, **kwargs):
    """The web service's spec on web1 with ``extra`` (indented service keys) appended."""
    return specs(tmp_path, WEB + extra, **kwargs)["web"]


def test_process_keys_map_onto_create_args(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_SHELL", "local")
    monkeypatch.delenv("NOT_SET", raising=False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.env").write_text("# comment\nFILE_ONLY=1\nOVERRIDDEN=file\n")
    spec = web(tmp_path, """\
    command: nginx -g 'daemon off;'
    entrypoint: [/docker-entrypoint.sh]
    env_file: [conf/app.env, {path: missing.env, required: false}]
    environment:
      OVERRIDDEN: compose
      NUMBER: 5
      FLAG: true
      FROM_SHELL:
      NOT_SET:
    labels: [team=a, tier=front]
    user: "101:101"
    working_dir: /srv
    hostname: web-host
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    read_only: true
    init: false
    stop_signal: SIGQUIT
    stop_grace_period: 1m30s
    restart: on-failure:3
    mem_limit: 256m
    cpus: 0.5
    deploy:
      resources:
        limits: {pids: 100}
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: 3}
""")
    args = spec.create_args
    assert args["command"] == ["nginx", "-g", "daemon off;"]
    assert args["entrypoint"] == ["/docker-entrypoint.sh"]
    assert args["env"] == ["FILE_ONLY=1", "FLAG=true", "FROM_SHELL=local", "NUMBER=5", "OVERRIDDEN=compose"]
    assert {k: v for k, v in args["labels"].items() if not k.startswith(("com.docker", "fleet."))} == \
        {"team": "a", "tier": "front"}
    assert (args["user"], args["workdir"], args["hostname"]) == ("101:101", "/srv", "web-host")
    assert (args["cap_add"], args["cap_drop"], args["read_only"], args["init"]) == (["NET_ADMIN"], ["ALL"], True,
                                                                                   False)
    assert (args["stop_signal"], args["stop_timeout"], spec.stop_grace_period) == ("SIGQUIT", 90, 90.0)
    assert args["restart"] == "on-failure:3"
    assert (args["memory"], args["cpus"], args["pids_limit"]) == ("256m", "0.5", "100")
    assert (args["log_driver"], args["log_opts"]) == ("json-file", ["max-size=10m", "max-file=3"])
    assert args["name"] == "app-web-1" and args["image"] == "nginx"
    _fits_create_schema(args)


def _fits_create_schema(args):
    """Every arg is one the create op knows (healthcheck and expose: the new args part C adds)."""
    assert set(args) - set(REQUESTS["create"]) <= {"healthcheck", "expose"}


def test_flag_values_are_checked_like_run_flags(tmp_path):
    exc = error(tmp_path, WEB + "    stop_signal: SIGNOPE\n")
    assert (exc.key, exc.line) == ("stop_signal", 4) and "Invalid signal: SIGNOPE" in str(exc)
    exc = error(tmp_path, WEB + "    env_file: nope.env\n")
    assert exc.key == "env_file" and "nope.env" in str(exc)
    exc = error(tmp_path, WEB + "    labels: {com.docker.compose.service: x}\n")
    assert exc.key == "labels" and "set by fleet" in str(exc)
    exc = error(tmp_path, WEB + "    restart: sometimes\n")
    assert exc.key == "restart" and "invalid restart policy" in str(exc)
    exc = error(tmp_path, WEB + "    mem_limit: lots\n")
    assert exc.key == "mem_limit" and "invalid memory size" in str(exc)
    exc = error(tmp_path, WEB + "    mem_limit: 64m\n    deploy: {resources: {limits: {memory: 128m}}}\n")
    assert "mem_limit and deploy.resources.limits.memory are set to different values" in str(exc)
    exc = error(tmp_path, WEB + "    stop_grace_period: 10\n")
    assert exc.key == "stop_grace_period" and "must be a string" in str(exc)
    exc = error(tmp_path, WEB + "    stop_grace_period: 10x\n")
    assert exc.key == "stop_grace_period" and "invalid duration" in str(exc)


def test_ports_short_and_long_syntax_and_expose(tmp_path):
    spec = web(tmp_path, """\
    ports:
      - 80
      - "8080:80"
      - 127.0.0.1:8443:443
      - "9000-9001:9000-9001/udp"
      - {target: 53, published: 5353, protocol: udp, host_ip: 127.0.0.1}
      - {target: 81, published: "8100-8110"}
      - {target: 82, host_ip: 127.0.0.1, mode: host}
    expose: [3000, "4000/udp", "5000-5001"]
""")
    assert spec.create_args["publish"] == ["80", "8080:80", "127.0.0.1:8443:443", "9000-9001:9000-9001/udp",
                                           "127.0.0.1:5353:53/udp", "8100-8110:81", "127.0.0.1::82"]
    assert spec.create_args["expose"] == ["3000/tcp", "4000/udp", "5000/tcp", "5001/tcp"]
    exc = error(tmp_path, WEB + "    ports:\n      - {target: 80, protocol: sctp}\n")
    assert exc.key == "ports[0]" and exc.line == 5 and "sctp ports are not supported" in str(exc)
    exc = error(tmp_path, WEB + "    ports: ['1.2.3:80:80']\n")
    assert "invalid ip address" in str(exc)


def test_volumes_named_bind_anonymous_and_long(tmp_path):
    (tmp_path / "static").mkdir()
    spec = web(tmp_path, """\
    volumes:
      - data:/var/lib/data
      - ./static:/usr/share/nginx/html:ro
      - /cache
      - shared:/shared:nocopy
      - {type: bind, source: ./static, target: /b}
      - {type: bind, source: ./made, target: /c, bind: {create_host_path: true}}
      - {type: volume, source: data, target: /d, read_only: true}
      - {type: volume, target: /e}
      - {type: tmpfs, target: /tmp, tmpfs: {size: 64m, mode: 1777}}
volumes:
  data:
  shared:
    external: true
    name: the-shared-one
""")
    root = str(tmp_path.resolve())
    assert spec.create_args["volumes"] == ["app_data:/var/lib/data", root + "/static:/usr/share/nginx/html:ro",
                                           "/cache", root + "/made:/c"]
    assert spec.create_args["mounts"] == [
        "type=volume,source=the-shared-one,target=/shared,volume-nocopy",
        "type=bind,source={}/static,target=/b".format(root),
        "type=volume,source=app_data,target=/d,readonly", "type=volume,target=/e",
        "type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1777"]
    assert spec.named_volumes == ["app_data", "the-shared-one"]
    plan = load(tmp_path, WEB + "    volumes: [data:/x]\nvolumes:\n  data: {labels: {a: b}}\n  unused: {}\n")
    assert list(plan.volumes) == ["data"]
    assert plan.volumes["data"].name_on_host == "app_data" and plan.volumes["data"].labels == {
        "a": "b", "com.docker.compose.project": "app", "com.docker.compose.volume": "data"}
    exc = error(tmp_path, WEB + "    volumes: [nope:/x]\n")
    assert exc.key == "volumes[0]" and "undefined volume nope" in str(exc)
    exc = error(tmp_path, WEB + "    volumes: ['./x:relative']\n")
    assert "must be absolute" in str(exc)
    exc = error(tmp_path, WEB + "    volumes: ['./x:/x:z']\n")
    assert "invalid volume mode 'z'" in str(exc)


def test_networks_default_aliases_first_and_extra(tmp_path):
    plan = load(tmp_path, WEB)
    spec = plan.for_host("web1")["web"]
    assert (spec.create_args["network"], spec.create_args["network_aliases"]) == ("app_default", ["web"])
    assert spec.extra_networks == [] and plan.networks["default"].name_on_host == "app_default"
    assert plan.networks["default"].labels == {"com.docker.compose.project": "app",
                                               "com.docker.compose.network": "default"}
    plan = load(tmp_path, WEB + """\
    networks:
      front:
      back: {aliases: [www], priority: 10, ipv4_address: 172.30.0.5}
      outside:
networks:
  front: {}
  back: {internal: true, labels: [tier=back]}
  outside: {external: true, name: corp-net}
  unused: {}
""")
    spec = plan.for_host("web1")["web"]
    assert (spec.create_args["network"], spec.create_args["network_aliases"], spec.create_args["ip"]) == \
        ("app_back", ["web", "www"], "172.30.0.5")
    assert spec.extra_networks == [("app_front", ["web"]), ("corp-net", ["web"])]
    assert sorted(plan.networks) == ["back", "front", "outside"]
    assert plan.networks["back"].internal and plan.networks["back"].labels["tier"] == "back"
    assert plan.networks["outside"].external and plan.networks["outside"].name_on_host == "corp-net"
    exc = error(tmp_path, WEB + "    networks: [nope]\n")
    assert exc.key == "networks.nope" and "undefined network nope" in str(exc)
    plan = load(tmp_path, WEB + "networks:\n  default: {name: '{{ net }}'}\n", extra_vars={"net": "shared"})
    assert plan.networks["default"].name_on_host == "shared"
    exc = error(tmp_path, WEB + "networks:\n  default: {name: '{{ net }}'}\n")
    assert (exc.key, exc.line, exc.host) == ("networks.default.name", 5, None) and "'net'" in str(exc)
    exc = error(tmp_path, WEB + "networks:\n  default: {driver: overlay}\n")
    assert exc.key == "networks.default.driver" and exc.service is None and exc.line == 5


@pytest.mark.parametrize("text, expected, checks", [
    ("test: curl -f http://localhost/", ["CMD-SHELL", "curl -f http://localhost/"], True),
    ("test: [CMD, wget, -q, http://localhost/]", ["CMD", "wget", "-q", "http://localhost/"], True),
    ("test: [CMD-SHELL, 'exit 0']", ["CMD-SHELL", "exit 0"], True),
    ("test: [NONE]", ["NONE"], False),
    ("disable: true", ["NONE"], False),
])
def test_healthcheck_forms(tmp_path, text, expected, checks):
    spec = web(tmp_path, "    healthcheck:\n      {}\n      interval: 1m30s\n".format(text)
               if "NONE" not in str(expected) else "    healthcheck:\n      {}\n".format(text))
    hc = spec.create_args["healthcheck"]
    assert hc["Test"] == expected and spec.has_healthcheck is checks
    if checks:
        assert hc["Interval"] == 90 * 10 ** 9


def test_healthcheck_durations_and_errors(tmp_path):
    spec = web(tmp_path, "    healthcheck:\n      test: [CMD, 'true']\n      interval: 500ms\n      timeout: 2s\n"
                         "      start_period: 1.5s\n      retries: 5\n")
    assert spec.create_args["healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5 * 10 ** 8,
                                               "Timeout": 2 * 10 ** 9, "StartPeriod": 15 * 10 ** 8, "Retries": 5}
    assert not web(tmp_path, "").has_healthcheck
    assert "healthcheck" not in web(tmp_path, "    healthcheck:\n").create_args
    spec = web(tmp_path, "    healthcheck:\n      interval: 5s\n")  # the image's test, another interval
    assert spec.create_args["healthcheck"]["Test"] == [] and not spec.has_healthcheck
    exc = error(tmp_path, WEB + "    healthcheck:\n      test: [RUN, x]\n")
    assert exc.key == "healthcheck.test" and "NONE, CMD or CMD-SHELL" in str(exc)
    exc = error(tmp_path, WEB + "    healthcheck:\n      test: [CMD, 'true']\n      interval: 5 seconds\n")
    assert exc.key == "healthcheck.interval" and exc.line == 6
    exc = error(tmp_path, WEB + "    healthcheck:\n      test: [CMD, 'true']\n      start_interval: 1s\n")
    assert "unknown key 'start_interval'" in str(exc)


def test_update_and_rollback_config(tmp_path):
    spec = web(tmp_path, "")
    assert (spec.update.parallelism, spec.update.delay, spec.update.failure_action, spec.update.monitor,
            spec.update.max_failure_ratio, spec.update.order) == (1, 0.0, "pause", 5.0, 0.0, "stop-first")
    assert spec.rollback == spec.update
    spec = web(tmp_path, """\
    deploy:
      update_config: {parallelism: 0, delay: 10s, failure_action: rollback, monitor: 1m, max_failure_ratio: 0.25,
                      order: start-first}
      rollback_config: {parallelism: 2, failure_action: continue}
""")
    assert (spec.update.parallelism, spec.update.delay, spec.update.failure_action, spec.update.monitor,
            spec.update.max_failure_ratio, spec.update.order) == (0, 10.0, "rollback", 60.0, 0.25, "start-first")
    assert (spec.rollback.parallelism, spec.rollback.failure_action) == (2, "continue")
    exc = error(tmp_path, WEB + "    deploy:\n      rollback_config: {failure_action: rollback}\n")
    assert exc.key == "deploy.rollback_config.failure_action" and "pause or continue" in str(exc)
    exc = error(tmp_path, WEB + "    deploy:\n      update_config: {order: random}\n")
    assert exc.key == "deploy.update_config.order"
    exc = error(tmp_path, WEB + "    deploy:\n      update_config: {parallelism: -1}\n")
    assert "must be >= 0" in str(exc)
    exc = error(tmp_path, WEB + "    deploy:\n      replicas: 2\n")
    assert (exc.key, exc.line) == ("deploy.replicas", 5)


# --- the spec JSON and the config hash ------------------------------------------------------------------------------

TWO = """\
services:
  web:
    image: nginx:1.27
    environment: {MODE: prod}
    ports: ["8080:80"]
  worker:
    image: busybox
    command: [sleep, "3600"]
"""


def test_spec_json_and_hash_are_what_the_labels_carry(tmp_path):
    spec = specs(tmp_path, TWO)["web"]
    assert json.loads(spec.spec_json) == {"image": "nginx:1.27", "create": {
        "name": "app-web-1", "env": ["MODE=prod"], "publish": ["8080:80"], "network": "app_default",
        "network_aliases": ["web"]}}
    assert spec.spec_json == json.dumps(json.loads(spec.spec_json), sort_keys=True, separators=(",", ":"))
    assert spec.config_hash == hashlib.sha256(spec.spec_json.encode()).hexdigest()
    labels = spec.create_args["labels"]
    assert labels == {"com.docker.compose.project": "app", "com.docker.compose.service": "web",
                      "com.docker.compose.config-hash": spec.config_hash,
                      "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
                      "fleet.deploy.spec": spec.spec_json}


def test_default_valued_keys_do_not_change_the_hash(tmp_path):
    before = specs(tmp_path, TWO)
    after = specs(tmp_path, TWO.replace("    ports:", """\
    read_only: false
    restart: "no"
    cap_add: []
    labels: {}
    volumes: []
    x-note: ignored
    deploy:
      update_config: {order: stop-first, parallelism: 1}
    ports:"""))
    assert after["web"].config_hash == before["web"].config_hash
    assert after["web"].spec_json == before["web"].spec_json
    for change in ("read_only: true", "labels: {team: a}", "stop_grace_period: 5s"):
        changed = specs(tmp_path, TWO.replace("    ports:", "    {}\n    ports:".format(change)))
        assert changed["web"].config_hash != before["web"].config_hash, change
    labelled = specs(tmp_path, TWO.replace("    ports:", "    labels: {team: a}\n    ports:"))["web"]
    assert json.loads(labelled.spec_json)["create"]["labels"] == {"team": "a"}  # the user's, not fleet's


def test_changing_one_env_var_changes_only_that_services_hash(tmp_path):
    before = specs(tmp_path, TWO)
    after = specs(tmp_path, TWO.replace("MODE: prod", "MODE: canary"))
    assert after["web"].config_hash != before["web"].config_hash
    assert after["worker"].config_hash == before["worker"].config_hash
    reordered = specs(tmp_path, TWO.replace("{MODE: prod}", "[MODE=prod]"))
    assert reordered["web"].config_hash == before["web"].config_hash


def test_secret_looking_env_names(tmp_path):
    spec = web(tmp_path, "    environment: {DB_PASSWORD: x, api_token: y, SSH_KEY: z, Secret_Sauce: w, MODE: m}\n")
    assert spec.secret_env_names == ["DB_PASSWORD", "SSH_KEY", "Secret_Sauce", "api_token"]


# --- host ports -----------------------------------------------------------------------------------------------------

PORTS = """\
services:
  web:
    image: nginx
    ports: ["{web}"]
  api:
    image: nginx
    x-fleet: {{hosts: "{api_hosts}"}}
    ports: ["{api}"]
"""


def test_two_services_publishing_one_host_port_on_a_host(tmp_path):
    exc = error(tmp_path, PORTS.format(web="8080:80", api="8080:8000", api_hosts="web1"))
    assert "services web and api both publish host port 8080/tcp" in str(exc) and exc.host == "web1"
    assert (exc.service, exc.key, exc.line) == ("api", "ports", 8)
    exc = error(tmp_path, PORTS.format(web="8080:80", api="127.0.0.1:8080:8000", api_hosts="all"))
    assert "both publish host port 127.0.0.1:8080/tcp" in str(exc)
    exc = error(tmp_path, WEB + "    ports: ['8080:80', '8080:81']\n")
    assert "service web publishes twice host port 8080/tcp" in str(exc)
    load(tmp_path, PORTS.format(web="8080:80", api="8080:8000", api_hosts="db*").replace(
        "    ports: [\"8080:80\"]", "    ports: [\"8080:80\"]\n    x-fleet: {hosts: web*}"))  # not on one host
    for web_port, api_port, hosts in (("8080:80", "8080:80/udp", "all"),
                                      ("127.0.0.1:8080:80", "127.0.0.2:8080:80", "all"), ("80", "80", "all"),
                                      ("8080-8090:80", "8080:80", "all")):
        load(tmp_path, PORTS.format(web=web_port, api=api_port, api_hosts=hosts))


def test_templated_ports_are_checked_per_host(tmp_path):
    text = PORTS.format(web="8080:80", api="{{ api_port }}:8000", api_hosts="all")
    hosts = [host("web1", ["web"], api_port=8081), host("web2", ["web"], api_port=8080)]
    exc = error(tmp_path, text, hosts=hosts)
    assert exc.host == "web2" and "services web and api both publish host port 8080/tcp" in str(exc)
    load(tmp_path, text, hosts=hosts[:1])


def test_blkio_config_maps_onto_the_block_io_flags(tmp_path):
    spec = web(tmp_path, """\
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sda, rate: 12mb}]
      device_write_bps: [{path: /dev/sda, rate: 1024}]
      device_read_iops: [{path: /dev/sda, rate: 120}]
      device_write_iops: [{path: /dev/sdb, rate: 30}]
""")
    args = spec.create_args
    assert (args["blkio_weight"], args["blkio_weight_device"]) == ("300", ["/dev/sda:400"])
    assert (args["device_read_bps"], args["device_write_bps"]) == (["/dev/sda:12mb"], ["/dev/sda:1024"])
    assert (args["device_read_iops"], args["device_write_iops"]) == (["/dev/sda:120"], ["/dev/sdb:30"])
    _fits_create_schema(args)
    exc = error(tmp_path, WEB + "    blkio_config: {device_read_bps: [{path: sda, rate: 1mb}]}\n")
    assert exc.key == "blkio_config" and "bad format for device path" in str(exc)
    exc = error(tmp_path, WEB + "    blkio_config: {weight: 5}\n")
    assert "Range of blkio weight is from 10 to 1000" in str(exc)
    exc = error(tmp_path, WEB + "    blkio_config: {device_read_bps: [{path: /dev/sda}]}\n")
    assert "rate" in str(exc)
