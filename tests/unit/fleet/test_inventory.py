"""Unit tests for fleet.inventory: YAML/INI loading, precedence, group_vars/host_vars, ranges, templates, errors."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.errors import InventoryError, UsageError
from fleet.inventory import Group, Host, Inventory, load_inventory
from fleet.inventory.models import expand_range, split_port

REPO = Path(__file__).resolve().parents[3]


def write(directory, name, text):
    """Write a dedented file under ``directory`` (creating parents) and return its path."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path, name, text):
    """Load a single inventory file written from ``text``."""
    return load_inventory([write(tmp_path, name, text)])


def error(tmp_path, name, text):
    """Load a file that must fail; return the InventoryError."""
    path = write(tmp_path, name, text)
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    assert info.value.file == str(path)
    return info.value


# --- formats ------------------------------------------------------------------------------------------------------

def test_yaml_basic_and_defaults(tmp_path):
    inv = load(tmp_path, "inv.yml", """
        all:
          hosts:
            solo:
          children:
            web:
              hosts:
                web01: {ansible_host: 10.0.0.1, ansible_port: 2222, ansible_user: ops}
                web02:
    """)
    assert isinstance(inv, Inventory)
    assert list(inv.hosts) == ["solo", "web01", "web02"]
    web01 = inv.hosts["web01"]
    assert (web01.address, web01.port, web01.user, web01.python) == ("10.0.0.1", 2222, "ops", "python3")
    web02 = inv.hosts["web02"]
    assert (web02.address, web02.port, web02.user, web02.ssh_key, web02.known_hosts) == ("web02", 22, None, None, None)
    assert web02.groups == ["all", "web"]
    assert inv.hosts["solo"].groups == ["all", "ungrouped"]
    assert inv.groups["ungrouped"].hosts == ["solo"]
    assert set(inv.groups) == {"all", "ungrouped", "web"}
    assert inv.sources == [str(tmp_path / "inv.yml")]


def test_ini_basic(tmp_path):
    inv = load(tmp_path, "hosts.ini", """
        # comment
        loose1 ansible_port=2200
        ; another comment

        [web]
        web01 ansible_host=10.0.0.1 note="a b" flag=True ratio=1.5 quoted='42' n=42  # trailing comment
        web02:2022

        [web:vars]
        http_port = 8080
        greeting = "hello world"
    """)
    assert list(inv.hosts) == ["loose1", "web01", "web02"]
    assert inv.hosts["loose1"].groups == ["all", "ungrouped"] and inv.hosts["loose1"].port == 2200
    v = inv.hosts["web01"].vars
    assert v["note"] == "a b" and v["flag"] is True and v["ratio"] == 1.5
    assert v["quoted"] == "42" and v["n"] == 42 and v["ansible_host"] == "10.0.0.1"
    assert v["http_port"] == 8080 and v["greeting"] == "hello world"
    assert inv.hosts["web02"].port == 2022


@pytest.mark.parametrize("raw, expected", [
    ("42", 42), ("'42'", "42"), ('"42"', "42"), ("True", True), ("False", False), ("true", "true"),
    ("10.0.0.1", "10.0.0.1"), ("[1, 2]", [1, 2]), ("{'a': 1}", {"a": 1}), ("/usr/bin/python3", "/usr/bin/python3"),
    ("{{ x }}", "{{ x }}"), ("None", None), ("1.5", 1.5),
])
def test_ini_values_parse_like_ansible(raw, expected):
    from fleet.inventory.loader import _ini_value
    assert _ini_value(raw) == expected


def test_ini_children_and_sections_before_children(tmp_path):
    inv = load(tmp_path, "inv", """
        [prod:children]
        web
        db
        [web]
        w1
        [db]
        d1
        [prod:vars]
        env=prod
    """)
    assert inv.groups["prod"].children == ["web", "db"]
    assert inv.hosts["w1"].groups == ["all", "prod", "web"] and inv.hosts["d1"].vars["env"] == "prod"


def test_yaml_children_nesting_and_multiple_groups(tmp_path):
    inv = load(tmp_path, "inv.yaml", """
        all:
          children:
            dc1:
              children:
                web:
                  hosts: {a: null, b: null}
                  children:
                    canary:
                      hosts: {a: null}
            db:
              hosts: {b: null, c: null}
    """)
    assert inv.hosts["a"].groups == ["all", "canary", "dc1", "web"]
    assert inv.hosts["b"].groups == ["all", "db", "dc1", "web"]
    assert inv.hosts["c"].groups == ["all", "db"]
    assert inv.groups["web"] == Group(name="web", hosts=["a", "b"], children=["canary"], vars={})
    assert [h.name for h in inv.group_hosts("dc1")] == ["a", "b"]


def test_top_level_groups_without_all(tmp_path):
    inv = load(tmp_path, "inv.yml", """
        web:
          hosts: {w1: null}
        db:
          hosts: {d1: null}
    """)
    assert inv.hosts["w1"].groups == ["all", "web"] and set(inv.groups["all"].children) >= {"web", "db"}


def test_unknown_extension_sniffs_format(tmp_path):
    assert list(load(tmp_path, "a", "all:\n  hosts:\n    h1:\n").hosts) == ["h1"]
    assert list(load(tmp_path, "b", "h1\nh2 x=1\n").hosts) == ["h1", "h2"]


# --- ranges and names ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("web[01:03]", ["web01", "web02", "web03"]),
    ("web[1:3]", ["web1", "web2", "web3"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("n[0:10:5]", ["n0", "n5", "n10"]),
    ("r[1:2]-[a:b].lan", ["r1-a.lan", "r1-b.lan", "r2-a.lan", "r2-b.lan"]),
    ("[:2]x", ["0x", "1x", "2x"]),
    ("plain", ["plain"]),
])
def test_expand_range(spec, expected):
    assert expand_range(spec) == expected


@pytest.mark.parametrize("spec", ["web[3:1]", "web[01:3]", "web[1]", "web[1:]", "web[a:3]", "web[1:3:0]", "web[1:3"])
def test_expand_range_errors(spec):
    with pytest.raises(ValueError):
        expand_range(spec)


@pytest.mark.parametrize("spec, expected", [
    ("web01", ("web01", None)), ("web01:2222", ("web01", 2222)), ("[fe80::1]:22", ("fe80::1", 22)),
    ("fe80::1", ("fe80::1", None)), ("2001:db8::10", ("2001:db8::10", None)), ("web[01:03]", ("web[01:03]", None)),
    ("web[01:03]:2200", ("web[01:03]", 2200)),
])
def test_split_port(spec, expected):
    assert split_port(spec) == expected


def test_ranges_in_yaml_and_ini_and_ipv6(tmp_path):
    yml = load(tmp_path, "a.yml", "all:\n  hosts:\n    web[01:02]:\n      x: 1\n    '[fe80::1]:2200':\n")
    assert list(yml.hosts) == ["web01", "web02", "fe80::1"] and yml.hosts["web02"].vars["x"] == 1
    assert yml.hosts["fe80::1"].port == 2200
    ini = load(tmp_path, "b.ini", "[db]\ndb-[a:b] x=2\n")
    assert list(ini.hosts) == ["db-a", "db-b"] and ini.hosts["db-b"].vars["x"] == 2


# --- precedence ---------------------------------------------------------------------------------------------------

def test_precedence_all_parent_child_siblings_host(tmp_path):
    inv = load(tmp_path, "inv.yml", """
        all:
          vars: {v: all, a: all, p: all, s: all, h: all}
          children:
            parent:
              vars: {v: parent, p: parent, s: parent, h: parent}
              children:
                child:
                  vars: {v: child, h: child}
                  hosts:
                    h1: {h: host}
            beta:
              vars: {s: beta, sib: beta}
              hosts: {h1: null}
            alpha:
              vars: {s: alpha, sib: alpha}
              hosts: {h1: null}
    """)
    v = inv.hosts["h1"].vars
    assert v["a"] == "all" and v["p"] == "parent" and v["v"] == "child" and v["h"] == "host"
    # parent is depth 1 like alpha/beta, so at depth 1 alphabetical order decides: alpha < beta < parent
    assert v["s"] == "parent" and v["sib"] == "beta"


def test_group_priority_breaks_sibling_ties(tmp_path):
    inv = load(tmp_path, "inv.yml", """
        all:
          children:
            alpha: {vars: {x: alpha, ansible_group_priority: 10}, hosts: {h: null}}
            beta: {vars: {x: beta}, hosts: {h: null}}
    """)
    assert inv.hosts["h"].vars["x"] == "alpha"


def test_multiple_files_merge_later_wins(tmp_path):
    one = write(tmp_path, "one.yml", "all:\n  vars: {x: 1, y: 1}\n  children:\n    web:\n      hosts: {w1: {k: 1}}\n")
    two = write(tmp_path, "two.ini", "[web]\nw1 k=2\nw2\n[all:vars]\nx=2\n")
    inv = load_inventory([one, str(two)])
    assert list(inv.hosts) == ["w1", "w2"] and inv.sources == [str(one), str(two)]
    assert inv.hosts["w1"].vars == {"x": 2, "y": 1, "k": 2}


def test_group_vars_and_host_vars(tmp_path):
    write(tmp_path, "group_vars/all.yml", "x: gv_all\nonly_gv: 1\n")
    write(tmp_path, "group_vars/web/10-a.yml", "w: a\n")
    write(tmp_path, "group_vars/web/20-b.yaml", "w: b\n")
    write(tmp_path, "host_vars/w1.yml", "h: host_vars\nansible_port: 2200\n")
    write(tmp_path, "host_vars/w2", "")  # empty file is fine
    inv = load(tmp_path, "inv.ini", "[web]\nw1 h=inline\nw2\n[all:vars]\nx=inline\n[web:vars]\nw=inline\n")
    w1 = inv.hosts["w1"]
    assert w1.vars["x"] == "gv_all" and w1.vars["only_gv"] == 1 and w1.vars["w"] == "b"
    assert w1.vars["h"] == "host_vars" and w1.port == 2200
    assert inv.groups["web"].vars == {"w": "b"}


def test_group_vars_must_be_mapping(tmp_path):
    bad = write(tmp_path, "group_vars/web.yml", "- a\n- b\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([write(tmp_path, "inv.ini", "[web]\nw1\n")])
    assert info.value.file == str(bad) and "mapping" in str(info.value)


# --- templates ----------------------------------------------------------------------------------------------------

def test_templates_render_chains_and_keep_native_types(tmp_path):
    inv = load(tmp_path, "inv.yml", """
        all:
          vars:
            lab_dir: /lab
            base: "{{ lab_dir }}/state"
            fleet_known_hosts: "{{ base }}/known_hosts"
            ansible_port: "{{ port_base + 1 }}"
            port_base: 2200
            nested: {path: "{{ base }}", list: ["{{ inventory_hostname }}", 3]}
            label: "{{ inventory_hostname_short }}-{{ group_names | join(',') }}"
          hosts:
            h1.example.com: {host_index: 7, ansible_host: "10.0.0.{{ host_index }}"}
    """)
    h = inv.hosts["h1.example.com"]
    assert h.known_hosts == "/lab/state/known_hosts" and h.address == "10.0.0.7" and h.port == 2201
    assert h.vars["ansible_port"] == 2201 and h.vars["nested"] == {"path": "/lab/state", "list": ["h1.example.com", 3]}
    assert h.vars["label"] == "h1-"


@pytest.mark.parametrize("vars_yaml, message", [
    ('{a: "{{ nope }}"}', "undefined variable 'nope' in a"),
    ('{a: "x{{ nope.attr }}"}', "undefined variable 'nope' in a"),
    ('{a: "{{ a }}"}', "recursive template: a -> a"),
    ('{a: "{{ b }}", b: "{{ c }}", c: "{{ a }}"}', "recursive template: a -> b -> c -> a"),
    ('{a: "{{ b"}', "template syntax error in a"),
    ('{a: "{{ 1 / 0 }}"}', "cannot render a: ZeroDivisionError"),
    ('{a: "{{ \'\'.__class__.__mro__ }}"}', "cannot render a: SecurityError"),
])
def test_template_errors_name_file_host_and_variable(tmp_path, vars_yaml, message):
    err = error(tmp_path, "inv.yml", "all:\n  hosts:\n    h1:\n  vars: " + vars_yaml + "\n")
    assert message in str(err) and err.entry == "host h1"


def test_template_error_names_the_file_that_defined_the_value(tmp_path):
    gv = write(tmp_path, "group_vars/all.yml", 'fleet_known_hosts: "{{ lab_dir }}/known_hosts"\n')
    with pytest.raises(InventoryError) as info:
        load_inventory([write(tmp_path, "inv.ini", "h1\n")])
    assert info.value.file == str(gv) and "undefined variable 'lab_dir' in fleet_known_hosts" in str(info.value)


def test_template_depth_is_bounded(tmp_path):
    chain = ", ".join('v{}: "{{{{ v{} }}}}"'.format(i, i + 1) for i in range(40))
    err = error(tmp_path, "inv.yml", "all:\n  hosts: {h1: null}\n  vars: {" + chain + ", v40: end}\n")
    assert "nested deeper than" in str(err)


def test_no_template_means_no_jinja_import(tmp_path):
    code = ("import sys; from fleet.inventory import load_inventory; load_inventory([sys.argv[1]]); "
            "assert 'jinja2' not in sys.modules, 'jinja2 imported'")
    path = write(tmp_path, "inv.ini", "h1 x=1\n")
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, check=True)


def test_import_is_cheap():
    code = ("import sys, fleet.inventory; bad = {'jinja2', 'yaml', 'pydantic'} & set(sys.modules); "
            "assert not bad, bad; from fleet.inventory import load_inventory, select, Host; "
            "bad = {'jinja2', 'yaml'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- validation and error reporting -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, entry, message", [
    ("p.yml", "all:\n  hosts:\n    h1: {ansible_port: abc}\n", "host h1", "ansible_port must be an integer"),
    ("p.yml", "all:\n  hosts:\n    h1: {ansible_port: 70000}\n", "host h1", "an integer in 1-65535"),
    ("p.yml", "all:\n  hosts:\n    h1: {ansible_port: 0}\n", "host h1", "1-65535"),
    ("p.yml", "all:\n  hosts:\n    h1: {ansible_port: true}\n", "host h1", "ansible_port must be an integer"),
    ("p.yml", "all:\n  hosts:\n    h1: {ansible_port: 22.5}\n", "host h1", "ansible_port must be an integer"),
    ("p.ini", "h1 ansible_port=ssh\n", "host h1", "ansible_port must be an integer"),
    ("s.yml", "all:\n  hosts:\n\th1:\n", "line 3", "YAML syntax error"),
    ("s.yml", "all:\n  hosts:\n    h1: [oops\n", "line 4", "YAML syntax error"),
    ("l.yml", "all:\n  hosts:\n    - h1\n    - h2\n", "group all", "hosts must be a mapping"),
    ("l.yml", "all:\n  children:\n    web:\n      hosts: [h1]\n", "group web", "hosts must be a mapping"),
    ("t.yml", "- all\n", None, "top level must be a mapping"),
    ("t.yml", "web01:\n  ansible_host: 1.2.3.4\n", "group web01", "unknown key 'ansible_host'"),
    ("t.yml", "all:\n  host:\n    h1:\n", "group all", "unknown key 'host'"),
    ("t.yml", "all: [a]\n", "group all", "must be a mapping"),
    ("t.yml", "all:\n  vars: [a]\n", "group all", "vars must be a mapping"),
    ("t.yml", "all:\n  children: [web]\n", "group all", "children must be a mapping"),
    ("t.yml", "all:\n  hosts:\n    h1: str\n", "host h1", "host vars must be a mapping"),
    ("e.yml", "", None, "empty inventory"),
    ("n.yml", "all:\n  hosts:\n    'bad host':\n", "host bad host", "invalid host name"),
    ("n.yml", "all:\n  hosts:\n    'web*':\n", "host web*", "invalid host name"),
    ("n.yml", "all:\n  hosts:\n    'web[3:1]':\n", "host web[3:1]", "begin <= end"),
    ("n.yml", "'bad group':\n  hosts: {h: null}\n", "group bad group", "invalid group name"),
    ("n.ini", "[web]\n!bad\n", "line 2 (host !bad)", "invalid host name"),
    ("i.ini", "[web\nh1\n", "line 1", "invalid section header"),
    ("i.ini", "[web:hosts]\nh1\n", "line 1", "invalid section header"),
    ("i.ini", "[web]\nh1 novalue\n", "line 2", "expected key=value"),
    ("i.ini", "[web]\nh1 a=\"unterminated\n", "line 2", "unbalanced quote"),
    ("i.ini", "[web:vars]\nnovalue\n", "line 2", "expected key=value"),
    ("i.ini", "[web:vars]\nx=1\n", "line 1", "undefined group"),
    ("i.ini", "[prod:children]\nweb\n", "line 2", "undefined group 'web'"),
    ("c.yml", "a:\n  children:\n    b:\n      children:\n        a:\n", "group a", "group cycle: a -> b -> a"),
    ("c.ini", "[a:children]\nb\n[b:children]\na\n", "group a", "group cycle"),
    ("g.yml", "all:\n  vars: {ansible_group_priority: high}\n  hosts: {h: null}\n", "group all", "priority"),
])
def test_errors_name_file_and_entry(tmp_path, name, text, entry, message):
    err = error(tmp_path, name, text)
    assert err.entry == entry and message in str(err)
    assert isinstance(err, UsageError) and err.exit_code == 2
    assert str(err).startswith("inventory {}".format(tmp_path / name))


def test_unreadable_files(tmp_path):
    with pytest.raises(InventoryError, match="cannot read file: No such file"):
        load_inventory([tmp_path / "missing.yml"])
    with pytest.raises(InventoryError, match="cannot read file"):
        load_inventory([tmp_path])
    (tmp_path / "bin.ini").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InventoryError, match="cannot read file"):
        load_inventory([tmp_path / "bin.ini"])
    with pytest.raises(InventoryError, match="no inventory file"):
        load_inventory([])


def test_error_in_second_file_names_that_file(tmp_path):
    good = write(tmp_path, "good.yml", "all:\n  hosts: {h1: null}\n")
    bad = write(tmp_path, "bad.ini", "[web\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([good, bad])
    assert info.value.file == str(bad)


def test_ssh_key_expands_home(tmp_path):
    inv = load(tmp_path, "inv.ini", "h1 ansible_ssh_private_key_file=~/.ssh/id_fleet\n")
    assert inv.hosts["h1"].ssh_key == os.path.expanduser("~/.ssh/id_fleet")


def test_host_model_direct():
    host = Host.from_vars("n", ["web", "all"], {"ansible_port": "2222"})
    assert host.port == 2222 and host.groups == ["all", "web"] and host.address == "n"


# --- shipped examples ---------------------------------------------------------------------------------------------

def test_examples_yaml_and_ini_describe_the_same_fleet():
    yml = load_inventory([REPO / "inventories" / "example.yml"])
    ini = load_inventory([REPO / "inventories" / "example.ini"])
    assert list(yml.hosts) == list(ini.hosts)
    assert yml.hosts == ini.hosts
    web03, db01 = yml.hosts["web03"], yml.hosts["db01"]
    assert (web03.address, web03.port, web03.user) == ("10.0.0.13", 2222, "deploy")
    assert web03.known_hosts == "/var/lib/fleet-lab/known_hosts" and web03.groups == ["all", "prod", "web"]
    assert (db01.address, db01.port, db01.python) == ("10.0.0.21", 2201, "/usr/bin/python3.11")
    assert yml.hosts["cache-b"].ssh_key == os.path.expanduser("~/.ssh/fleet_cache")


def test_error_for_host_without_vars_names_the_file_that_lists_it(tmp_path):
    first = write(tmp_path, "first.yml", "all:\n  hosts: {h1: null}\n")
    second = write(tmp_path, "second.ini", "h2\n[all:vars]\nansible_port=nope\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([first, second])
    assert info.value.file == str(second) and info.value.entry == "host h1"
    path = write(tmp_path, "third.ini", "h3\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([first, path, write(tmp_path, "fourth.yml", "all:\n  vars: {x: '{{ y }}'}\n")])
    assert info.value.file == str(tmp_path / "fourth.yml")
