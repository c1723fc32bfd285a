"""Compose files for ``fleet deploy``: load, validate, render per host, map onto fleet's create args, hash.

    from fleet.compose import load_project, ComposeError
    plan = load_project("compose.yaml", None, hosts, extra_vars)
    plan.for_host("web1")["web"].create_args      # the create op's request, compose labels included

``ComposeError`` is a UsageError (exit 2) naming the file, the service, the key and the line.
"""

from typing import TYPE_CHECKING

from fleet.compose.errors import ComposeError, ComposeFileNotFound

if TYPE_CHECKING:
    from fleet.compose.plan import NetworkDef, ProjectPlan, ServiceSpec, UpdateConfig, VolumeDef
    from fleet.compose.project import check_host_ports, load_project
    from fleet.compose.source import find_compose_file, project_name_of

__all__ = ["ComposeError", "ComposeFileNotFound", "NetworkDef", "ProjectPlan", "ServiceSpec", "UpdateConfig",
           "VolumeDef", "check_host_ports", "find_compose_file", "load_project", "project_name_of"]

# Resolved on first use (PEP 562): importing fleet.compose for ComposeError does not load pydantic or yaml.
_EXPORTS = {"NetworkDef": "plan", "ProjectPlan": "plan", "ServiceSpec": "plan", "UpdateConfig": "plan",
            "VolumeDef": "plan", "check_host_ports": "project", "load_project": "project",
            "find_compose_file": "source", "project_name_of": "source"}


def __getattr__(name: str):
    """Import the public names lazily from their modules."""
    if name not in _EXPORTS:
        raise AttributeError("module 'fleet.compose' has no attribute {!r}".format(name))
    import importlib

    value = getattr(importlib.import_module("fleet.compose." + _EXPORTS[name]), name)
    globals()[name] = value
    return value
