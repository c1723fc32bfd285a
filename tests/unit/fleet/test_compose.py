"""fleet.compose: finding and loading the file, validation errors (file, service, key, line), project name,
depends_on order, x-fleet host selection and per-host jinja2 rendering."""

import pytest

from fleet.compose import ComposeError, ComposeFileNotFound, find_compose_file, load_project, project_name_of
from fleet.errors import UsageError
from tests.helpers.compose import HOSTS, error, host, load, specs, write

WEB = """\
services:
  web:
    image: nginx
"""


# --- finding the file and naming the project ----------------------------------------------------------------------

def test_find_compose_file_order_explicit_and_inventory_var(tmp_path):
    write(tmp_path, WEB, "docker-compose.yml")
    assert find_compose_file(None, tmp_path, {}) == tmp_path / "docker-compose.yml"
    write(tmp_path, WEB, "compose.yml")
    assert find_compose_file(None, tmp_path, {}) == tmp_path / "compose.yml"
    write(tmp_path, WEB, "compose.yaml")
    assert find_compose_file(None, tmp_path, {"fleet_compose": "other.yml"}) == tmp_path / "compose.yaml"
    write(tmp_path, WEB, "deploy/app.yml")
    assert find_compose_file("deploy/app.yml", tmp_path, {}) == tmp_path / "deploy/app.yml"
    with pytest.raises(ComposeError, match="no such file"):
        find_compose_file("missing.yml", tmp_path, {})
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_compose_file(None, empty, {"fleet_compose": str(tmp_path / "deploy/app.yml")}) == \
        tmp_path / "deploy/app.yml"
    with pytest.raises(ComposeFileNotFound, match="no compose file.*fleet_compose") as info:
        find_compose_file(None, empty, {})
    assert info.value.exit_code == 2 and isinstance(info.value, UsageError)


def test_project_name_flag_over_name_over_directory(tmp_path):
    directory = tmp_path / "My Shop.v2"
    path = write(directory, WEB)
    assert load_project(path, None, HOSTS, {}).name == "myshopv2" == project_name_of(path)
    path.write_text("name: shop\n" + WEB)
    assert load_project(path, None, HOSTS, {}).name == "shop" == project_name_of(path)
    assert load_project(path, "other", HOSTS, {}).name == "other"
    with pytest.raises(ComposeError, match="invalid project name 'Bad Name'"):
        load_project(path, "Bad Name", HOSTS, {})


# --- validation errors ----------------------------------------------------------------------------------------------

def test_unknown_service_key_names_file_service_key_and_line(tmp_path):
    exc = error(tmp_path, """\
        services:
          web:
            image: nginx
            prots: ["80:80"]
        """)
    assert (exc.service, exc.key, exc.line) == ("web", "prots", 4)
    assert "unknown key 'prots'" in str(exc) and "compose.yaml, line 4" in str(exc) and "service web" in str(exc)
    assert exc.exit_code == 2


def test_compose_keys_fleet_does_not_support_say_so(tmp_path):
    exc = error(tmp_path, WEB + "    privileged: true\n")
    assert "key 'privileged' is not supported by fleet" in str(exc) and exc.line == 4
    exc = error(tmp_path, WEB + "secrets: {}\n")
    assert "key 'secrets' is not supported by fleet" in str(exc) and exc.line == 4
    exc = error(tmp_path, WEB + "servics: {}\n")
    assert "unknown key 'servics'" in str(exc)


def test_nested_unknown_key_has_its_line(tmp_path):
    exc = error(tmp_path, WEB + "    healthcheck:\n      test: [CMD, 'true']\n      intervall: 5s\n")
    assert (exc.key, exc.line) == ("healthcheck.intervall", 6)
    exc = error(tmp_path, WEB + "    ports:\n      - target: 80\n        publishd: 8080\n")
    assert (exc.key, exc.line) == ("ports[0].publishd", 6)


def test_extension_keys_and_version_are_accepted(tmp_path):
    plan = load(tmp_path, """\
        version: "3.9"
        x-defaults: &defaults
          restart: always
        services:
          web:
            <<: *defaults
            image: nginx
            x-owner: team-a
            healthcheck:
              test: [CMD, "true"]
              x-note: fast
        networks:
          default:
            x-comment: ok
        """)
    assert plan.for_host("web1")["web"].create_args["restart"] == "always"


def test_wrong_types_are_errors_with_lines(tmp_path):
    exc = error(tmp_path, WEB + "    cap_add: NET_ADMIN\n")
    assert (exc.key, exc.line) == ("cap_add", 4) and "must be a list of strings, got a string" in str(exc)
    exc = error(tmp_path, WEB + "    read_only: maybe\n")
    assert exc.key == "read_only" and "must be true or false" in str(exc)
    exc = error(tmp_path, WEB + "    environment: 5\n")
    assert exc.key == "environment"
    exc = error(tmp_path, "services:\n  web:\n    image: [nginx]\n")
    assert exc.key == "image" and "must be a string, got a list" in str(exc)
    exc = error(tmp_path, "services:\n  web:\n    command: echo\n")
    assert "missing required key 'image'" in str(exc)
    exc = error(tmp_path, WEB + "    ports: ['99999:80']\n")
    assert exc.key == "ports[0]" and "invalid hostPort: 99999" in str(exc)


def test_bad_key_is_found_in_a_service_no_selected_host_runs(tmp_path):
    exc = error(tmp_path, WEB + "    x-fleet: {hosts: nothing*}\n    volume: [/x]\n")
    assert (exc.service, exc.key, exc.host) == ("web", "volume", None)
    exc = error(tmp_path, WEB + "    x-fleet: {hosts: nothing*}\n    ports:\n      - {target: 80, publish: 8080}\n")
    assert (exc.key, exc.line) == ("ports[0].publish", 6)
    exc = error(tmp_path, WEB + "    x-fleet: {hosts: nothing*}\n    networks:\n      default: {alias: [x]}\n")
    assert (exc.key, exc.line) == ("networks.default.alias", 6)


def test_yaml_errors_duplicates_and_empty(tmp_path):
    exc = error(tmp_path, "services:\n  web:\n    image: nginx\n    image: busybox\n")
    assert exc.line == 4 and "already defined at line 3" in str(exc)
    exc = error(tmp_path, "services:\n  web: [\n")
    assert "YAML syntax error" in str(exc) and exc.line
    assert "empty compose file" in str(error(tmp_path, ""))
    assert "at least one service" in str(error(tmp_path, "services: {}\n"))
    assert "invalid service name" in str(error(tmp_path, "services:\n  'we b':\n    image: nginx\n"))


def test_yaml_1_2_scalars_as_compose_reads_them(tmp_path):
    spec = specs(tmp_path, WEB + "    restart: no\n    ports:\n      - 8080:80\n      - 53:53/udp\n")["web"]
    assert spec.create_args["restart"] is None  # "no", a string (YAML 1.1 would make it false)
    assert spec.create_args["publish"] == ["8080:80", "53:53/udp"]  # not base 60


# --- depends_on -----------------------------------------------------------------------------------------------------

def test_services_in_dependency_order(tmp_path):
    plan = load(tmp_path, """\
        services:
          web:
            image: nginx
            depends_on:
              api: {condition: service_healthy}
              cache: {condition: service_started, required: false}
          api:
            image: busybox
            depends_on: [db]
          db:
            image: busybox
          gone:
            image: busybox
            depends_on:
              optional: {condition: service_started, required: false}
        """)
    assert plan.services == ["db", "api", "web", "gone"]
    assert plan.select_services(["web", "db"]) == ["db", "web"] and plan.select_services([]) == plan.services
    with pytest.raises(ComposeError, match="no such service: wbe"):
        plan.select_services(["wbe"])
    web = plan.for_host("web1")["web"]
    assert web.depends_on == {"api": "service_healthy", "cache": "service_started"}
    assert plan.for_host("web1")["api"].depends_on == {"db": "service_started"}


def test_dependency_cycle_unknown_service_and_bad_condition(tmp_path):
    exc = error(tmp_path, """\
        services:
          a: {image: busybox, depends_on: [b]}
          b: {image: busybox, depends_on: [c]}
          c: {image: busybox, depends_on: [a]}
        """)
    assert "dependency cycle: a -> b -> c -> a" in str(exc) and exc.key == "depends_on" and exc.line == 2
    exc = error(tmp_path, "services:\n  a: {image: busybox, depends_on: [nope]}\n")
    assert "depends on undefined service nope" in str(exc) and exc.service == "a"
    exc = error(tmp_path, "services:\n  a:\n    image: busybox\n    depends_on:\n"
                          "      a: {condition: service_started}\n")
    assert "depends on itself" in str(exc)
    exc = error(tmp_path, """\
        services:
          a: {image: busybox}
          b:
            image: busybox
            depends_on:
              a: {condition: service_ready}
        """)
    assert exc.key == "depends_on.a.condition" and exc.line == 6 and "service_ready" in str(exc)


# --- x-fleet: hosts and probe ---------------------------------------------------------------------------------------

def test_x_fleet_hosts_selects_with_fleets_patterns(tmp_path):
    plan = load(tmp_path, """\
        services:
          web:
            image: nginx
            x-fleet: {hosts: "web*:!web2:cache*"}
          db:
            image: busybox
            x-fleet: {hosts: db}
          all:
            image: busybox
        """)
    assert list(plan.for_host("web1")) == ["web", "all"]
    assert list(plan.for_host("web2")) == ["all"]
    assert list(plan.for_host("db1")) == ["db", "all"]
    with pytest.raises(ComposeError, match="not among the hosts"):
        plan.for_host("web9")
    exc = error(tmp_path, WEB + "    x-fleet: {hosts: '~web['}\n")
    assert exc.key == "x-fleet.hosts" and "invalid regular expression" in str(exc)


def test_x_fleet_probe_is_validated(tmp_path):
    base = WEB + "    ports: ['8080:80', '127.0.0.1:5432:5432']\n    x-fleet: {probe: '%s'}\n"
    assert specs(tmp_path, base % "http://:8080/healthz")["web"].probe == "http://:8080/healthz"
    assert specs(tmp_path, base % "tcp://:5432")["web"].probe == "tcp://:5432"
    for bad, words in (("http://example.com:8080/", "give no host"), ("https://:8080/", "want http"),
                       ("tcp://:5432/x", "no path"), ("http://:0/", "port in 1-65535"),
                       ("http://:9090/", "not a host port the service publishes")):
        exc = error(tmp_path, base % bad)
        assert exc.key == "x-fleet.probe" and words in str(exc), (bad, str(exc))


# --- templates ------------------------------------------------------------------------------------------------------

CANARY = """\
services:
  web:
    image: "reg.lan:5000/app:{{ app_version }}"
    environment:
      ROLE: "{{ inventory_hostname }} in {{ group_names | join(',') }}"
    ports:
      - target: 80
        published: "{{ web_port }}"
"""


def test_strings_rendered_per_host_with_inventory_and_extra_vars(tmp_path):
    hosts = [host("web1", ["web"], app_version="1.5", web_port=8080),
             host("web2", ["web"], app_version="1.4", web_port=8081)]
    plan = load(tmp_path, CANARY, hosts=hosts)
    one, two = plan.for_host("web1")["web"], plan.for_host("web2")["web"]
    assert (one.image, two.image) == ("reg.lan:5000/app:1.5", "reg.lan:5000/app:1.4")
    assert one.create_args["image"] == "reg.lan:5000/app:1.5"
    assert one.create_args["env"] == ["ROLE=web1 in web"]
    assert (one.create_args["publish"], two.create_args["publish"]) == (["8080:80"], ["8081:80"])
    assert one.config_hash != two.config_hash
    plan = load(tmp_path, CANARY, hosts=hosts, extra_vars={"app_version": "2.0"})  # -e wins over host vars
    assert {plan.for_host(h.name)["web"].image for h in hosts} == {"reg.lan:5000/app:2.0"}


def test_undefined_var_names_var_host_service_and_line(tmp_path):
    hosts = [host("web1", ["web"], app_version="1.5", web_port=8080), host("web2", ["web"], web_port=8081)]
    exc = error(tmp_path, CANARY, hosts=hosts)
    assert (exc.host, exc.service, exc.key, exc.line) == ("web2", "web", "image", 3)
    assert "undefined variable 'app_version'" in str(exc) and "(host web2)" in str(exc)


def test_undefined_var_in_a_service_the_host_does_not_run_is_not_an_error(tmp_path):
    plan = load(tmp_path, """\
        services:
          db:
            image: "postgres:{{ pg_version }}"
            x-fleet: {hosts: db}
        """, hosts=[host("web1", ["web"]), host("db1", ["db"], pg_version="16")])
    assert plan.for_host("web1") == {} and plan.for_host("db1")["db"].image == "postgres:16"
    exc = error(tmp_path, WEB + "    x-fleet:\n      hosts: '{{ where }}'\n")
    assert (exc.key, exc.line, exc.host) == ("x-fleet.hosts", 5, "web1") and "'where'" in str(exc)


def test_rendered_values_are_validated(tmp_path):
    exc = error(tmp_path, CANARY, hosts=[host("web1", ["web"], app_version="1.5", web_port=70000)])
    assert (exc.key, exc.line, exc.host) == ("ports[0]", 7, "web1") and "invalid hostPort: 70000" in str(exc)
    exc = error(tmp_path, CANARY, hosts=[host("web1", ["web"], app_version="Bad Tag!", web_port=80)])
    assert exc.key == "image" and exc.host == "web1"
    exc = error(tmp_path, WEB + "    read_only: '{{ ro }}'\n", hosts=[host("web1", ro="sometimes")])
    assert exc.key == "read_only" and exc.host == "web1"
    exc = error(tmp_path, WEB + "    user: '{{ 1 + }}'\n")
    assert "template syntax error" in str(exc) and exc.key == "user"
