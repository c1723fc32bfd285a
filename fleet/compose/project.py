"""load_project: a compose file, the selected hosts and ``-e`` vars -> a ProjectPlan, every error found up front.

1. The file is YAML-parsed once (line numbers kept) and its top level validated.
2. Every service is validated unrendered (unknown keys, wrong types of values that are not templates), so a bad
   key is reported even for a service no selected host runs; ``depends_on`` gives the start order (a cycle or an
   unknown service is an error).
3. Per host: each service's ``x-fleet.hosts`` pattern (fleet's host patterns, over the selected hosts) says whether
   the host runs it; if so the service is rendered with the host's vars, validated again and converted into a
   ServiceSpec. Two services publishing one host port on a host is an error naming both and the host.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fleet.compose import model, netplan
from fleet.compose.convert import Converter, Where, baseline_args, dependencies, validate
from fleet.compose.errors import ComposeError
from fleet.compose.plan import ProjectPlan
from fleet.compose.render import TreeRenderer, host_context
from fleet.compose.source import LineDict, load_yaml
from fleet.compose import source
from fleet.compose.values import binding_text, overlaps
from fleet.inventory.models import has_template

_SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")


def load_project(path: str | Path, project_name: str | None, hosts: list, extra_vars: dict | None = None
                 ) -> ProjectPlan:
    """Load, validate, render per host and convert the compose file at ``path`` (ComposeError: exit 2)."""
    file = Path(path)
    tree = load_yaml(file)
    top = Where(str(file), None, None, tree)
    validate(model.ComposeFile, tree, top, skip=has_template)
    services = tree["services"]
    if not isinstance(services, dict) or not services:
        raise top.error(("services",), "must be a mapping of at least one service")
    for name in services:
        if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
            raise top.error(("services", name), "invalid service name {!r}: letters, digits, '.', '_' and '-' only"
                            .format(name))
    name = source.project_name(project_name, tree.get("name"), file)
    extra_vars = dict(extra_vars or {})
    renderer = TreeRenderer()
    static = renderer.tree(LineDict({k: v for k, v in tree.items() if k in ("networks", "volumes")}), extra_vars,
                           file=str(file), host=None, service=None)  # project-wide: -e vars only
    networks = netplan.top_networks(top, name, static.get("networks"))
    volumes = netplan.top_volumes(top, name, static.get("volumes"))
    for service, raw in services.items():  # unknown keys and wrong literal types, whichever hosts run it
        _check_unrendered(Where(str(file), service, None, raw), raw)
    order = _order(file, tree, services)
    plan = ProjectPlan(name=name, file=file, services=order, networks={}, volumes={})
    baseline = baseline_args()
    used_networks: set = set()
    used_volumes: set = set()
    selectors: dict = {}
    for host in hosts:
        context = host_context(host, extra_vars)
        chosen: dict = {}
        for service in order:
            raw = services[service]
            where = Where(str(file), service, host.name, raw)
            pattern = _hosts_pattern(renderer, raw, context, where, tree)
            if pattern is not None:
                if pattern not in selectors:
                    selectors[pattern] = _select(pattern, hosts, where)
                if host.name not in selectors[pattern]:
                    continue
            rendered = renderer.tree(raw, context, file=str(file), host=host.name, service=service,
                                     path=("services", service), root=tree)
            where = Where(str(file), service, host.name, rendered)
            svc = validate(model.Service, rendered, where)
            conv = Converter(where, svc, name, file.parent, networks, volumes, baseline)
            chosen[service] = conv.run()
            used_networks.update(conv.used_networks)
            used_volumes.update(conv.used_volumes)
        check_host_ports(file, host.name, chosen, services)
        plan.hosts[host.name] = chosen
    plan.networks = {key: value for key, value in networks.items() if key in used_networks}
    plan.volumes = {key: value for key, value in volumes.items() if key in used_volumes}
    return plan


_NESTED = (("ports", model.PortLong), ("volumes", model.VolumeLong), ("env_file", model.EnvFile))
_NESTED_MAPS = (("networks", model.ServiceNetwork), ("depends_on", model.Dependency))


def _check_unrendered(where: Where, raw: Any) -> None:
    """The service's keys and literal values, templates left aside (they are checked per host once rendered)."""
    validate(model.Service, raw, where, skip=has_template)
    for key, cls in _NESTED:
        for index, item in enumerate(raw.get(key) if isinstance(raw.get(key), list) else []):
            if isinstance(item, dict):
                validate(cls, item, where, (key, index), skip=has_template)
    for key, cls in _NESTED_MAPS:
        for name, item in (raw.get(key) if isinstance(raw.get(key), dict) else {}).items():
            if isinstance(item, dict):
                validate(cls, item, where, (key, name), skip=has_template)


def _hosts_pattern(renderer: TreeRenderer, raw: Any, context: dict, where: Where, tree: Any) -> str | None:
    xf = raw.get("x-fleet") if isinstance(raw, dict) else None
    if not isinstance(xf, dict) or xf.get("hosts") is None:
        return None
    value = renderer.tree(xf["hosts"], context, file=where.file, host=where.host, service=where.service,
                          path=("services", where.service, "x-fleet", "hosts"), root=tree)
    if not isinstance(value, str) or not value.strip():
        raise where.error(("x-fleet", "hosts"), "must be a host pattern such as 'web*:!web3', got {!r}".format(value))
    return value


def _select(pattern: str, hosts: list, where: Where) -> set:
    """Names of the hosts among ``hosts`` that ``pattern`` selects (Ansible's pattern rules, fleet's matcher); a
    term matching none of them selects nothing rather than failing (they may be outside this run's -H)."""
    from fleet.errors import PatternError
    from fleet.inventory.models import Group, Inventory
    from fleet.inventory.patterns import order_terms, select, split_pattern

    groups = {g for host in hosts for g in host.groups} | {"all", "ungrouped"}
    inventory = Inventory(hosts={host.name: host for host in hosts}, groups={g: Group(name=g) for g in groups})

    def match(term: str) -> set:
        try:
            return {host.name for host in select(inventory, [term])}
        except PatternError as exc:
            if "no hosts match" in str(exc) or "selects no hosts" in str(exc):
                return set()
            raise where.error(("x-fleet", "hosts"), str(exc)) from None

    terms = split_pattern(pattern)
    if not terms:
        raise where.error(("x-fleet", "hosts"), "empty host pattern")
    chosen: set = set()
    for term in order_terms(terms):
        operator, expression = (term[0], term[1:]) if term[0] in "&!" else ("", term)
        if not expression:
            raise where.error(("x-fleet", "hosts"), 'empty term "{}" in host pattern "{}"'.format(term, pattern))
        matched = match(expression)
        if operator == "&":
            chosen &= matched
        elif operator == "!":
            chosen -= matched
        else:
            chosen |= matched
    return chosen


def _order(file: Path, tree: Any, services: dict) -> list:
    """Service names in dependency order (depends_on first; otherwise file order); cycles and unknown services are
    errors."""
    deps: dict = {}
    for service, raw in services.items():
        where = Where(str(file), service, None, raw)
        body = raw.get("depends_on") if isinstance(raw, dict) else None
        depends = dependencies(where, validate_depends(where, body)) if body is not None else {}
        required = _required(where, body)
        known = {}
        for dep in depends:
            if has_template(dep):
                raise where.error(("depends_on",), "service names in depends_on cannot be templates")
            if dep not in services:
                if not required.get(dep, True):
                    continue
                raise where.error(("depends_on", dep) if isinstance(body, dict) else ("depends_on",),
                                  "depends on undefined service {}".format(dep))
            if dep == service:
                raise where.error(("depends_on",), "service {} depends on itself".format(service))
            known[dep] = depends[dep]
        deps[service] = known
    order: list = []
    state: dict = {}

    def visit(service: str, trail: list) -> None:
        if state.get(service) == "done":
            return
        if state.get(service) == "visiting":
            cycle = trail[trail.index(service):] + [service]
            raise ComposeError(file, "dependency cycle: " + " -> ".join(cycle), service=service, key="depends_on",
                               line=_line(services[service], "depends_on"))
        state[service] = "visiting"
        for dep in deps[service]:
            visit(dep, trail + [service])
        state[service] = "done"
        order.append(service)

    for service in services:
        visit(service, [])
    return order


def validate_depends(where: Where, body: Any) -> Any:
    """depends_on's own shape (a list of names or a mapping), checked before the services are rendered."""
    if isinstance(body, list):
        if not all(isinstance(item, str) for item in body):
            raise where.error(("depends_on",), "must be a list of service names or a mapping")
        return body
    if isinstance(body, dict):
        return body
    raise where.error(("depends_on",), "must be a list of service names or a mapping, got {!r}".format(body))


def _required(where: Where, body: Any) -> dict:
    if not isinstance(body, dict):
        return {}
    return {name: (item or {}).get("required", True) is not False for name, item in body.items()
            if isinstance(item, dict) or item is None}


def _line(raw: Any, key: str) -> int | None:
    return raw.lines.get(key) if isinstance(raw, LineDict) else None


def check_host_ports(file: Path, host: str, chosen: dict, raw_services: dict) -> None:
    """Two services (or one twice) publishing the same host port, protocol and address on ``host``: an error."""
    seen: list = []
    for service, spec in chosen.items():
        for binding in spec.bindings:
            for other_service, other in seen:
                if overlaps(binding, other):
                    who = ("services {} and {} both publish".format(other_service, service) if other_service !=
                           service else "service {} publishes twice".format(service))
                    raise ComposeError(file, "{} host port {}".format(who, binding_text(binding)), service=service,
                                       key="ports", line=_line(raw_services[service], "ports"), host=host)
            seen.append((service, binding))
