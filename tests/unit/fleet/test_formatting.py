"""docker's --format subset: every images and ps field, the table prefix, json, \\t, errors for unknown fields."""

import json

import pytest

from fleet.errors import UsageError
from fleet.render import formatting

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
IMAGE = {"repository": "nginx", "tag": "latest", "id": "sha256:" + "ab" * 32, "digest": "sha256:" + "cd" * 32,
         "created": "2023-11-14T21:13:20Z", "size": 187_000_000, "containers": 2}
CONTAINER = {"id": "f" * 64, "name": "web", "image": "nginx", "command": '"/docker-entrypoint.sh nginx -g daemon off;"',
             "created": "2023-11-14T22:08:20.123456789Z", "state": "running", "status": "Up 5 minutes",
             "ports": "0.0.0.0:80->80/tcp"}


def _image(spec, image=IMAGE, no_trunc=False):
    f = formatting.compile_format(spec, formatting.IMAGE_FIELDS)
    return f.render([formatting.image_row("web1", image, no_trunc, now=NOW)])


def _container(spec, no_trunc=False):
    f = formatting.compile_format(spec, formatting.CONTAINER_FIELDS)
    return f.render([formatting.container_row("web1", CONTAINER, no_trunc, now=NOW)])


@pytest.mark.parametrize("field,expected", [
    ("Host", "web1"), ("Repository", "nginx"), ("Tag", "latest"), ("ID", "abababababab"),
    ("Digest", "sha256:" + "cd" * 32), ("CreatedSince", "About an hour ago"),
    ("CreatedAt", "2023-11-14 21:13:20 +0000 UTC"), ("Size", "187MB"), ("Containers", "2"),
])
def test_every_image_field(field, expected):
    assert _image("{{.%s}}" % field) == expected


@pytest.mark.parametrize("field,expected", [
    ("Host", "web1"), ("ID", "f" * 12), ("Image", "nginx"), ("Command", '"/docker-entrypoint.…"'),
    ("CreatedAt", "2023-11-14 22:08:20 +0000 UTC"), ("RunningFor", "4 minutes ago"),  # 299.88 s ago, floored
    ("Status", "Up 5 minutes"),
    ("Ports", "0.0.0.0:80->80/tcp"), ("Names", "web"), ("State", "running"),
])
def test_every_container_field(field, expected):
    assert _container("{{.%s}}" % field) == expected


def test_no_trunc_keeps_full_ids_and_commands():
    assert _image("{{.ID}}", no_trunc=True) == "sha256:" + "ab" * 32
    assert _container("{{.ID}} {{.Command}}", no_trunc=True) == "f" * 64 + " " + CONTAINER["command"]


def test_missing_values_render_as_docker_does():
    bare = {"repository": None, "tag": None, "id": "sha256:" + "01" * 32, "digest": None, "created": None, "size": 0}
    assert _image("{{.Repository}}|{{.Tag}}|{{.Digest}}|{{.Size}}|{{.Containers}}", image=bare) == \
        "<none>|<none>|<none>|0B|N/A"


def test_spaces_in_actions_and_literal_text():
    assert _image("{{ .Repository }}:{{.Tag}} on {{ .Host }}") == "nginx:latest on web1"


def test_backslash_t_becomes_a_tab_and_backslash_n_a_newline():
    assert _image(r"{{.Repository}}\t{{.Tag}}") == "nginx\tlatest"
    assert _image(r"{{.Repository}}\n{{.Tag}}") == "nginx\nlatest"


def test_table_prefix_prints_headers_aligned_and_adds_host_first():
    f = formatting.compile_format(r"table {{.Repository}}\t{{.Tag}}\t{{.Size}}", formatting.IMAGE_FIELDS)
    rows = [formatting.image_row("web1", IMAGE, now=NOW),
            formatting.image_row("database-host", dict(IMAGE, repository="registry.example:5000/app"), now=NOW)]
    lines = f.render(rows).splitlines()
    assert lines[0].split() == ["HOST", "REPOSITORY", "TAG", "SIZE"]
    assert lines[1].split() == ["web1", "nginx", "latest", "187MB"]
    assert lines[2].split() == ["database-host", "registry.example:5000/app", "latest", "187MB"]
    # columns line up: every cell starts where its header does (tabwriter, padding 3, min width 10)
    for col in ("REPOSITORY", "TAG", "SIZE"):
        start = lines[0].index(col)
        assert all(line[start - 1] == " " and line[start] != " " for line in lines[1:])
    assert lines[0].index("REPOSITORY") == len("database-host") + 3
    assert lines[0].index("TAG") - lines[0].index("REPOSITORY") == len("registry.example:5000/app") + 3
    assert lines[1][lines[0].index("TAG"):].startswith("latest    187MB")  # min width 10


def test_table_that_names_host_is_not_given_a_second_one():
    f = formatting.compile_format(r"table {{.ID}}\t{{.Host}}", formatting.IMAGE_FIELDS)
    assert f.render([]).split() == ["IMAGE", "ID", "HOST"]


def test_table_with_no_rows_prints_the_header():
    f = formatting.compile_format(r"table {{.Names}}\t{{.Status}}", formatting.CONTAINER_FIELDS)
    assert f.table and f.render([]).split() == ["HOST", "NAMES", "STATUS"]


def test_json_of_the_row_and_of_a_field():
    out = json.loads(_image("{{json .}}"))
    assert out["Host"] == "web1" and out["Repository"] == "nginx" and out["Size"] == "187MB"
    assert set(out) == set(formatting.IMAGE_FIELDS)
    assert _image("{{json .Tag}}") == '"latest"'
    assert json.loads(_container("json"))["Names"] == "web"  # bare "json" means {{json .}}


def test_functions_upper_lower_title_truncate():
    assert _image("{{upper .Repository}} {{lower .Tag}} {{title .Repository}} {{truncate .Repository 3}}") == \
        "NGINX latest Nginx ngi"


@pytest.mark.parametrize("spec,needle", [
    ("{{.Nope}}", ".Nope"),
    ("table {{.Repository}}\\t{{.Names}}", ".Names"),  # a ps field is unknown to images
    ("{{.Repository", "unclosed"),
    ("{{}}", "missing value for command"),  # Go's words for an empty action
    ("{{.}}", '"."'),
    ("{{range .Repository}}", "unexpected EOF"),  # range is supported now; this one has no {{end}}
    ("{{truncate .Tag x}}", "truncate"),
    ("{{.Tag .Repository}}", "wrong number of args for Tag"),  # docker's fields are methods
])
def test_unknown_fields_and_syntax_are_usage_errors(spec, needle):
    with pytest.raises(UsageError) as err:
        formatting.compile_format(spec, formatting.IMAGE_FIELDS)
    assert needle in str(err.value) and err.value.exit_code == 2
    assert spec in str(err.value)


def test_jinja_syntax_in_literal_text_is_inert():
    # the sandbox never sees user text as template code: it is printed verbatim
    assert _image("{% for x in y %}{{.Tag}}{# c #}") == "{% for x in y %}latest{# c #}"


def test_field_values_are_not_evaluated():
    evil = dict(IMAGE, repository="{{ 7*7 }}")
    assert _image("{{.Repository}}", image=evil) == "{{ 7*7 }}"


def test_table_alone_is_the_commands_default_columns():
    """docker: --format table is the default table (ps: ID, IMAGE, COMMAND, CREATED, STATUS, PORTS, NAMES)."""
    lines = _container("table").splitlines()
    assert lines[0].split() == ["HOST", "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1].split()[:3] == ["web1", "f" * 12, "nginx"]
    assert _image("table").splitlines()[0].split() == ["HOST", "REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]


def test_go_template_actions_in_listings():
    """range, if/else, printf, index and variables work in ps/images formats as in docker's."""
    assert _image('{{if eq .Tag "latest"}}L{{else}}T{{end}} {{printf "%-8s|" .Repository}} '
                  '{{$r := .Repository}}{{range split "a,b" ","}}{{$r}}-{{.}} {{end}}') == \
        "L nginx   | nginx-a nginx-b "


def test_error_positions_are_the_users_template_not_the_added_host_column():
    with pytest.raises(UsageError) as err:
        formatting.compile_format(r"table {{.Repository}}\t{{.Nope}}", formatting.IMAGE_FIELDS)
    assert 'template: :1:18: executing "" at <.Nope>' in str(err.value)  # after "table " and \t are taken out
