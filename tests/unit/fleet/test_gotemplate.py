"""render/gotemplate: Go's text/template as docker users write it; every expectation is what Go prints for the
same template and data (text/template's exec and fmt's %v rules, docker's cli/templates functions)."""

import pytest

from fleet.render import gofmt, gotemplate
from fleet.render.gotemplate import Record, TemplateError

DATA = {
    "Name": "/web", "Id": "abc123",
    "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0, "Health": {"Status": "healthy"}},
    "Config": {"Labels": {"tier": "front", "com.example.team": "ops"}, "Env": ["A=1", "B=2"], "Cmd": None,
               "Image": "nginx:1.25"},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "app": {"IPAddress": "10.1.0.5"}}},
    "Mounts": [{"Name": "data", "Destination": "/data"}, {"Name": "", "Destination": "/cache"}],
    "Ratio": 0.25, "Big": 1e6, "Empty": "", "Zero": 0, "Nil": None, "List": [], "Map": {},
}


def render(text, data=DATA, **kw):
    return gotemplate.parse(text, **kw).execute(data)


@pytest.mark.parametrize("text,expected", [
    # fields, nested fields, map keys, missing keys (Go: <no value>), literal text
    ("{{.Name}}", "/web"),
    ("{{ .State.Status }}", "running"),
    ("{{.State.Health.Status}}", "healthy"),
    ("{{.NetworkSettings.Networks.bridge.IPAddress}}", "172.17.0.2"),
    ("{{.Config.Labels.tier}}", "front"),
    ("{{.Config.Labels.nope}}", "<no value>"),
    ("{{.NetworkSettings.Networks.nope.IPAddress}}", "<no value>"),
    ("id={{.Id}}!", "id=abc123!"),
    # Go's %v printing: bools, numbers, floats, nil, slices, maps in key order
    ("{{.State.Running}} {{.State.Pid}} {{.Ratio}} {{.Big}}", "true 42 0.25 1e+06"),
    ("{{.Nil}}", "<nil>"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[com.example.team:ops tier:front]"),
    ("{{.List}} {{.Map}}", "[] map[]"),
    # json (docker's: compact, no HTML escaping)
    ("{{json .Config.Labels}}", '{"tier":"front","com.example.team":"ops"}'),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ("{{json .Nil}} {{json .State.Pid}} {{json \"<a&b>\"}}", 'null 42 "<a&b>"'),
    # index: maps (labels with dots), slices, nested
    ('{{index .Config.Labels "com.example.team"}}', "ops"),
    ('{{index .Config.Labels "missing"}}|', "|"),  # a map of strings: its zero value ""
    ("{{index .Config.Env 1}}", "B=2"),
    ('{{index .NetworkSettings.Networks "app" "IPAddress"}}', "10.1.0.5"),
    ('{{(index .Mounts 0).Name}}', "data"),
    # range: slices, maps in sorted key order, variables, else, $ for the root
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}", "app=10.1.0.5;bridge=172.17.0.2;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}} {{end}}", "com.example.team tier "),
    ("{{range .List}}x{{else}}none{{end}}", "none"),
    ("{{range .Nil}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Env}}{{$.Name}}{{end}}", "/web/web"),
    ("{{range .Mounts}}{{if .Name}}{{.Name}}{{else}}{{.Destination}}{{end}},{{end}}", "data,/cache,"),
    ("{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}}{{end}}", "A=1"),
    ("{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}", "B=2"),
    # if / else if / else, truthiness (0, "", nil, empty slices and maps are false), with
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{if eq .State.Status "exited"}}x{{else if eq .State.Status "running"}}r{{else}}o{{end}}', "r"),
    ("{{if .Empty}}a{{else if .Zero}}b{{else if .Nil}}c{{else if .List}}d{{else if .Map}}e{{else}}f{{end}}", "f"),
    ("{{if .Config.Labels.nope}}y{{else}}n{{end}}", "n"),
    ("{{with .State.Health}}{{.Status}}{{end}}", "healthy"),
    ("{{with .Config.Labels.nope}}y{{else}}n{{end}}", "n"),
    ("{{with $h := .State.Health}}{{$h.Status}}{{end}}", "healthy"),
    # variables: declare, assign, scope
    ("{{$n := .Name}}{{$n}}", "/web"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ("{{$x := \"a\"}}{{range .Config.Env}}{{$x := .}}{{end}}{{$x}}", "a"),
    # pipelines and parenthesised pipelines
    ("{{.Name | printf \"%q\"}}", '"/web"'),
    ("{{.Config.Image | upper | lower}}", "nginx:1.25"),
    ("{{len (split .Config.Image \":\")}}", "2"),
    ('{{join (split "a,b,c" ",") "+"}}', "a+b+c"),
    # docker's functions
    ("{{upper .State.Status}} {{title \"hello wORLD\"}} {{lower \"ABC\"}}", "RUNNING Hello WORLD abc"),
    ('{{pad "x" 2 1}}|{{pad "" 2 1}}|', "  x ||"),
    ("{{truncate .Id 3}} {{truncate .Id 10}}", "abc abc123"),
    ('{{split "a:b" ":"}}', "[a b]"),
    # comparisons and logic (Go returns the deciding operand for and/or)
    ("{{eq .State.Pid 42}} {{ne .State.Pid 42}} {{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}}",
     "true false true true false true"),
    ('{{eq .State.Status "a" "b" "running"}}', "true"),
    ('{{eq .Config.Labels.nope "x"}} {{eq .Nil "x"}}', "false false"),  # a missing value equals nothing
    ("{{and .Zero (index .List 5)}} {{or .Name (index .List 5)}} {{.Zero | or 3}}", "0 /web 3"),  # short-circuit
    ('{{and .State.Running .Name}} {{or .Empty "dflt"}} {{not .Empty}} {{and .Zero .Name}}', "/web dflt true 0"),
    ("{{len .Config.Env}} {{len .Config.Labels}} {{len .Name}} {{len \"é\"}}", "2 2 4 2"),
    ('{{slice .Id 1 3}} {{slice .Config.Env 1}}', "bc [B=2]"),
    ('{{print 1 2 "a" "b" 3}}', "1 2ab3"),
    ('{{println "x" 1}}', "x 1\n"),
    # printf verbs as Go renders them
    ('{{printf "%s|%5s|%-5s|%.2s" "ab" "ab" "ab" "abc"}}', "ab|   ab|ab   |ab"),
    ('{{printf "%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%b" 42 42 42 42 42 255 255 8 5}}',
     "42|   42|42   |00042|+42|ff|FF|10|101"),
    ('{{printf "%v|%v|%v|%v" .State.Running .Config.Env .Config.Labels .Nil}}',
     "true|[A=1 B=2]|map[com.example.team:ops tier:front]|<nil>"),
    ('{{printf "%q|%q" "a\\"b" .Config.Env}}', '"a\\"b"|["A=1" "B=2"]'),
    ('{{printf "%.2f|%6.1f|%e|%g|%v" .Ratio .Ratio .Big .Ratio .Ratio}}', "0.25|   0.2|1.000000e+06|0.25|0.25"),
    ('{{printf "%t|%T|%T|%T" true "s" 1 .Config.Env}}', "true|string|int|[]string"),
    ('{{printf "%d|%s" "x" 5}}', "%!d(string=x)|%!s(int=5)"),
    ('{{printf "%s %s" "a"}}', "a %!s(MISSING)"),
    ('{{printf "%s" "a" "b"}}', "a%!(EXTRA string=b)"),
    ('{{printf "100%%"}}', "100%"),
    ('{{printf "%v" .Config.Labels.nope}}', "<nil>"),  # a missing value reaches a function as nil
    # constants and string escapes
    ('{{"a\\tb"}}|{{`raw\\n`}}|{{\'A\'}}|{{0x10}}|{{1.5}}|{{-3}}|{{true}}', "a\tb|raw\\n|65|16|1.5|-3|true"),
    # trim markers and comments
    ("a  {{- .Id -}}  b", "aabc123b"),
    ("a \n {{-  .Id  -}} \n b|{{ .Id\t-}}\n|", "aabc123b|abc123|"),
    ("a {{- /* note */ -}} b", "ab"),
    ("{{/* only a comment */}}x", "x"),
    ("{{-3}}", "-3"),  # no space after {{-: a number, not a trim marker
    ("x\n{{- range .Config.Env}}\n  {{.}}\n{{- end}}\n", "x\n  A=1\n  B=2\n"),
])
def test_go_semantics(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text,error", [
    ("{{.Name", "template: :1: unclosed action"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{if .Name}}x", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("x\n{{nope .Name}}", 'template: :2: function "nope" not defined'),
    ("{{define \"x\"}}{{end}}", "not supported"),
    ("{{(.Name}}", "unclosed left paren"),
    ("{{if .Name}}{{break}}{{end}}", "{{break}} outside {{range}}"),
    ("{{range .L}}{{else}}{{continue}}{{end}}", "{{continue}} outside {{range}}"),
])
def test_parse_errors_in_gos_words(text, error):
    with pytest.raises(TemplateError) as err:
        gotemplate.parse(text)
    assert error in str(err.value)


ROW = Record({"Names": "web", "Label": lambda key: {"tier": "front"}.get(key, "")}, "*formatter.ContainerContext",
             methods=True)


@pytest.mark.parametrize("text,data,error", [
    # a struct (docker's formatter contexts): an unknown field is an error, with Go's position and node
    ("{{.Nope}}", ROW, 'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type '
                       '*formatter.ContainerContext'),
    ("ab {{.Names}} {{.Nope}}", ROW, 'template: :1:16: executing "" at <.Nope>'),
    ("{{.Names 1}}", ROW, "wrong number of args for Names: want 0 got 1"),
    # missingkey=error (docker inspect's raw fallback)
    ("{{.Nope}}", DATA, 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.State.Nope}}", DATA, 'at <.State.Nope>: map has no entry for key "Nope"'),
    # functions' errors
    ("{{index .Config.Env 5}}", DATA, "error calling index: index out of range: 5"),
    ('{{eq .State.Pid "42"}}', DATA, "error calling eq: incompatible types for comparison"),
    ("{{upper .State.Pid}}", DATA, '<upper>: wrong type for value; expected string; got int'),
    ("{{len .State.Pid}}", DATA, "error calling len: len of type int"),
    ("{{range .Name}}{{end}}", DATA, "range can't iterate over /web"),
    ("{{.Nil.X}}", DATA, "nil pointer evaluating interface {}.X"),
    ("{{$nope}}", DATA, 'undefined variable "$nope"'),
    ("{{and}}", DATA, "wrong number of args for and: want at least 1 got 0"),
    ("{{upper}}", DATA, "wrong number of args for upper: want 1 got 0"),
])
def test_execution_errors_in_gos_words(text, data, error):
    with pytest.raises(TemplateError) as err:
        render(text, data, missing_error=data is DATA)
    assert error in str(err.value)


def test_methods_with_arguments_and_pipelines_into_them():
    assert render('{{.Label "tier"}}|{{.Label "nope"}}|{{"tier" | .Label}}', ROW) == "front||front"


def test_header_mode_keeps_headers_and_stops_at_an_error():
    tmpl = gotemplate.parse("{{upper .Names}}\t{{json .Names}}\t{{.Nope}}\tafter")
    assert tmpl.execute(Record({"Names": "NAMES"}, "x", methods=True), header=True) == "NAMES\tNAMES\t"


@pytest.mark.parametrize("value,expected", [
    (1.0, "1"), (0.1, "0.1"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (1e21, "1e+21"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (float("inf"), "+Inf"),
])
def test_floats_print_as_go(value, expected):
    assert gofmt.go_float(value) == expected


def test_record_json_leaves_methods_out_and_printing_a_row_is_refused():
    assert render("{{json .}}", ROW) == '{"Names":"web"}'
    with pytest.raises(TemplateError, match='printing "."'):
        render("{{.}}", ROW)
