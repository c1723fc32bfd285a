"""Compose files for fleet.compose's unit tests: write one, make hosts, load it, expect a ComposeError."""

import textwrap
from pathlib import Path

import pytest

from fleet.compose import ComposeError, load_project
from fleet.inventory import Host


def host(name, groups=(), **variables):
    """A Host as the inventory builds it: groups include ``all``, ``vars`` are the merged, rendered vars."""
    return Host(name=name, address="192.0.2.1", groups=sorted({"all", *groups}), vars=variables)


HOSTS = [host("web1", ["web"]), host("web2", ["web"]), host("db1", ["db"])]


def write(directory, text, name="compose.yaml"):
    """Write a dedented compose file into ``directory`` and return its path."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(directory, text, hosts=None, project="app", extra_vars=None, name="compose.yaml"):
    """Write ``text`` and load it for ``hosts`` (default HOSTS) as project ``project``."""
    return load_project(write(directory, text, name), project, HOSTS if hosts is None else hosts, extra_vars or {})


def specs(directory, text, host_name="web1", **kwargs):
    """{service: ServiceSpec} of one host."""
    return load(directory, text, **kwargs).for_host(host_name)


def error(directory, text, **kwargs):
    """Load a file that must fail; return the ComposeError (always names the file)."""
    with pytest.raises(ComposeError) as info:
        load(directory, text, **kwargs)
    assert info.value.file.endswith(kwargs.get("name", "compose.yaml"))
    return info.value
