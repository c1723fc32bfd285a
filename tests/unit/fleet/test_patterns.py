"""Unit tests for fleet.inventory.patterns: each pattern form, the order of operations, repeated -H, errors."""

import logging
import textwrap

import pytest

from fleet.errors import PatternError, UsageError
from fleet.inventory import load_inventory, select
from fleet.inventory.patterns import order_terms, split_pattern

INVENTORY = """
    all:
      hosts:
        loner:
        fe80::1:
      children:
        prod:
          children:
            web:
              hosts:
                web01:
                web02:
                web12:
            db:
              hosts:
                db01:
                db02:
        staging:
          hosts:
            web03:
            db03:
        canary:
          hosts:
            web02:
            db03:
        dbx:
          hosts:
            db01:
"""


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The shared test inventory: prod(web, db), staging, canary, dbx, two ungrouped hosts."""
    path = tmp_path_factory.mktemp("inv") / "inv.yml"
    path.write_text(textwrap.dedent(INVENTORY))
    return load_inventory([path])


def names(inventory, *patterns):
    """Names of the hosts ``select`` returns for ``patterns``."""
    return [host.name for host in select(inventory, list(patterns))]


ALL = ["loner", "fe80::1", "web01", "web02", "web12", "db01", "db02", "web03", "db03"]


@pytest.mark.parametrize("pattern, expected", [
    ("all", ALL),
    ("*", ALL),
    ("web", ["web01", "web02", "web12"]),
    ("prod", ["web01", "web02", "web12", "db01", "db02"]),
    ("ungrouped", ["loner", "fe80::1"]),
    ("web02", ["web02"]),
    ("fe80::1", ["fe80::1"]),
    ("web0*", ["web01", "web02", "web03"]),
    ("web[12]*", ["web12"]),
    ("web0[12]", ["web01", "web02"]),
    ("db?", ["db01"]),                           # matches the group dbx by name (no host has 3 characters)
    ("db*", ["db01", "db02", "db03"]),
    ("d*", ["db01", "db02", "db03"]),
    ("~^web0[13]$", ["web01", "web03"]),
    ("~1", ["fe80::1", "web01", "web12", "db01"]),          # re.search: anywhere in the name
    ("~^stag", ["web03", "db03"]),               # regex on group names too
    ("web:db", ["web01", "web02", "web12", "db01", "db02"]),
    ("web,db", ["web01", "web02", "web12", "db01", "db02"]),
    ("db , web", ["web01", "web02", "web12", "db01", "db02"]),
    ("prod:&canary", ["web02"]),
    ("prod:!web", ["db01", "db02"]),
    ("all:!prod:!loner", ["fe80::1", "web03", "db03"]),
    ("!prod", ["loner", "fe80::1", "web03", "db03"]),           # only exclusions: "all" is implied
    ("&canary", ["web02", "db03"]),                             # only intersections: "all" is implied
    ("web*:&staging", ["web03"]),
    ("canary,loner,fe80::1", ["loner", "fe80::1", "web02", "db03"]),
    ("web:!nothing-like-this", ["web01", "web02", "web12"]),    # an exclusion matching nothing is ignored
])
def test_pattern_forms(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


@pytest.mark.parametrize("pattern, expected", [
    # Ansible order: unions, then intersections, then exclusions, regardless of where they are written.
    ("!web01:web", ["web02", "web12"]),
    ("&canary:prod:staging", ["web02", "db03"]),
    ("!db03:&canary:all", ["web02"]),
    ("web:!web02:db:&prod", ["web01", "web12", "db01", "db02"]),
])
def test_order_of_operations(inventory, pattern, expected):
    assert names(inventory, pattern) == expected


@pytest.mark.parametrize("terms, ordered", [
    (["!a", "b", "&c", "d"], ["b", "d", "&c", "!a"]),
    (["!a"], ["all", "!a"]),
    (["&a", "!b"], ["all", "&a", "!b"]),
])
def test_order_terms(terms, ordered):
    assert order_terms(terms) == ordered


@pytest.mark.parametrize("pattern, terms", [
    ("a:b", ["a", "b"]),
    ("a,b:c", ["a", "b:c"]),               # a comma means: split only on commas
    ("a:&b:!c", ["a", "&b", "!c"]),
    ("web[1:2]:db", ["web[1:2]", "db"]),   # ':' inside [...] does not split
    ("fe80::1", ["fe80::1"]),
    ("!fe80::1", ["!fe80::1"]),
    ("2001:db8::1,web", ["2001:db8::1", "web"]),
    ("  a ,, b , ", ["a", "b"]),
    ("~web[:db", ["~web[:db"]),            # an unbalanced '[' is kept (the regex error is then reported)
    ("~a[[:x]]:b", ["~a[[:x]]", "b"]),
    ("", []),
])
def test_split_pattern(pattern, terms):
    assert split_pattern(pattern) == terms


def test_repeated_patterns_are_a_union_in_inventory_order(inventory):
    assert names(inventory, "db01", "web01") == ["web01", "db01"]
    assert names(inventory, "web", "web01", "db02") == ["web01", "web02", "web12", "db02"]
    # each -H is evaluated on its own: an exclusion in one does not remove hosts selected by another
    assert names(inventory, "web:!web01", "web01") == ["web01", "web02", "web12"]


def test_empty_list_means_all(inventory):
    assert names(inventory) == ALL


@pytest.mark.parametrize("patterns, message", [
    (["nosuch"], 'no hosts match pattern "nosuch"'),
    (["web:nosuch"], 'no hosts match pattern "nosuch"'),
    (["web:&nosuch"], 'no hosts match pattern "&nosuch"'),
    (["zz*"], 'no hosts match pattern "zz*"'),
    (["~^zz"], 'no hosts match pattern "~^zz"'),
    (["web", "nosuch"], 'no hosts match pattern "nosuch"'),
    (["web:&db"], 'host pattern "web:&db" selects no hosts'),
    (["web:!web"], 'host pattern "web:!web" selects no hosts'),
    (["~web[", ], 'invalid regular expression in host pattern "~web["'),
    (["  "], "empty host pattern"),
    (["web:!"], 'empty term "!"'),
])
def test_pattern_errors(inventory, patterns, message):
    with pytest.raises(PatternError) as info:
        select(inventory, patterns)
    assert message in str(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_no_match_error_gives_hints(inventory):
    with pytest.raises(PatternError) as info:
        select(inventory, ["web1"])
    text = str(info.value)
    assert "did you mean" in text and "web" in text
    assert "groups: canary, db, dbx, prod, staging" in text
    assert "hosts: loner, fe80::1, web01, web02, web12, ..." in text


def test_exclusion_that_matches_nothing_only_warns(inventory, caplog):
    with caplog.at_level(logging.WARNING, logger="fleet.inventory.patterns"):
        assert names(inventory, "db:!typo") == ["db01", "db02"]
    assert '"!typo"' in caplog.text


def test_group_and_host_with_the_same_name(tmp_path):
    path = tmp_path / "inv.ini"
    path.write_text("[web]\nweb\nw2\n[other]\nw3\n")
    inv = load_inventory([path])
    assert [h.name for h in select(inv, ["web"])] == ["web", "w2"]
    assert [h.name for h in select(inv, ["all:!web"])] == ["w3"]


def test_empty_inventory(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  vars: {x: 1}\n")
    with pytest.raises(PatternError, match="the inventory has no hosts"):
        select(load_inventory([path]), ["all"])
