"""Load Ansible YAML/INI inventories (plus group_vars/ and host_vars/) into an Inventory, rendering templates."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory import models
from fleet.inventory.models import Group, Host, Inventory

# Variable precedence (lowest first; later wins key by key, no deep merge, as Ansible's hash_behaviour=replace):
#   1. group vars, groups sorted by (depth, ansible_group_priority, name): "all" (depth 0) first, then each
#      parent before its children (depth = longest path from "all"), siblings alphabetically;
#      a group's vars are its inventory-file vars overlaid by group_vars/<group>[.yml|.yaml|.json|/*] files;
#   2. host vars from the inventory files, overlaid by host_vars/<host>[...] files.
# The same group or host in several -i files merges its vars, the later file winning.
# Templates are rendered per host on the merged vars: each templated value is rendered once the values it
# references are rendered (a depth-first walk, bounded by MAX_TEMPLATE_DEPTH, that reports cycles).

YAML_SUFFIXES = (".yml", ".yaml", ".json")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")
_YAML_GROUP_KEYS = ("hosts", "children", "vars")
_INI_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?")
_INI_TOKEN = re.compile(r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|[^\s"'])+""")
_SPACE = re.compile(r"\s*")


class _RawGroup:
    """A group while files are being read: member names, child names, vars and where each var came from."""

    def __init__(self, name: str, file: str) -> None:
        self.name, self.file = name, file
        self.hosts: list[str] = []
        self.children: list[str] = []
        self.vars: dict[str, Any] = {}
        self.origins: dict[str, str] = {}


class _Builder:
    """Accumulates groups and hosts across every inventory file before vars are merged and rendered."""

    def __init__(self) -> None:
        self.groups: dict[str, _RawGroup] = {}
        self.hosts: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}  # name -> (vars, origins)
        self.host_files: dict[str, str] = {}  # name -> first file that lists it
        self.declared: set[str] = {"all", "ungrouped"}
        self.group("all", "-")
        self.group("ungrouped", "-")

    def group(self, name: Any, file: str, entry: str | None = None) -> _RawGroup:
        """Return the group ``name``, creating it; ``entry`` names where it was seen for error messages."""
        name = str(name)
        if not models.valid_group_name(name):
            raise InventoryError(file, "invalid group name {!r}".format(name), entry or "group " + name)
        if name not in self.groups:
            self.groups[name] = _RawGroup(name, file)
        return self.groups[name]

    def add_hosts(self, group: str, spec: Any, variables: dict[str, Any], file: str, entry: str) -> None:
        """Add the host(s) named by ``spec`` (ranges and ``:port`` allowed) to ``group`` with their vars."""
        name, port = models.split_port(str(spec))
        try:
            names = models.expand_range(name)
        except ValueError as exc:
            raise InventoryError(file, str(exc), entry) from None
        for host in names:
            if not models.valid_host_name(host):
                raise InventoryError(file, "invalid host name {!r}".format(host), entry)
            host_vars, origins = self.hosts.setdefault(host, ({}, {}))
            self.host_files.setdefault(host, file)
            extra = {str(k): v for k, v in variables.items()}
            if port is not None:
                extra = {"ansible_port": port, **extra}
            host_vars.update(extra)
            origins.update(dict.fromkeys(extra, file))
            members = self.groups[group].hosts
            if host not in members:
                members.append(host)

    def add_child(self, parent: str, child: str, file: str, entry: str) -> None:
        """Make ``child`` a child group of ``parent``."""
        kids = self.group(parent, file, entry).children
        self.group(child, file, entry)
        if child not in kids:
            kids.append(child)

    def set_vars(self, group: str, variables: Any, file: str, entry: str) -> None:
        """Merge a mapping of vars into ``group`` (later files win)."""
        if variables is None:
            return
        if not isinstance(variables, dict):
            raise InventoryError(file, "vars must be a mapping, got {}".format(_kind(variables)), entry)
        target = self.group(group, file, entry)
        target.vars.update({str(k): v for k, v in variables.items()})
        target.origins.update(dict.fromkeys(map(str, variables), file))


def load_inventory(paths: list[str | Path]) -> Inventory:
    """Load and merge inventory files (YAML or INI, as Ansible's ``-i``); raise InventoryError, never return part."""
    if not paths:
        raise InventoryError("-", "no inventory file given")
    builder = _Builder()
    sources: list[str] = []
    for path in paths:
        if str(path) in sources:
            continue
        sources.append(str(path))
        text = _read(Path(path))
        if _format(Path(path), text) == "yaml":
            _parse_yaml(builder, str(path), text)
        else:
            _parse_ini(builder, str(path), text)
    return _finish(builder, sources)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InventoryError(path, "cannot read file: {}".format(reason)) from None


def _format(path: Path, text: str) -> str:
    """YAML by suffix, INI for .ini/.cfg; otherwise YAML only if the text parses to a mapping."""
    if path.suffix in YAML_SUFFIXES:
        return "yaml"
    if path.suffix in (".ini", ".cfg"):
        return "ini"
    import yaml

    try:
        return "yaml" if isinstance(yaml.safe_load(text), dict) else "ini"
    except yaml.YAMLError:
        return "ini"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", dict: "a mapping"}.get(type(value), type(value).__name__)


def _load_yaml(file: str, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(file, "YAML syntax error: {}".format(problem),
                             "line {}".format(mark.line + 1) if mark else None) from None


def _parse_yaml(builder: _Builder, file: str, text: str) -> None:
    data = _load_yaml(file, text)
    if data is None:
        raise InventoryError(file, "empty inventory")
    if not isinstance(data, dict):
        raise InventoryError(file, "top level must be a mapping of group names (e.g. all:), got {}"
                             .format(_kind(data)))
    for name, body in data.items():
        _yaml_group(builder, file, str(name), body, top=True)


def _yaml_group(builder: _Builder, file: str, name: str, body: Any, top: bool = False) -> None:
    entry = "group " + name
    builder.group(name, file, entry)
    builder.declared.add(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(file, "a group must be a mapping with hosts/children/vars, got {}".format(_kind(body)),
                             entry)
    for key in body:
        if key not in _YAML_GROUP_KEYS:
            hint = " (top-level keys are group names, e.g. all:)" if top else ""
            raise InventoryError(file, "unknown key {!r}: expected hosts, children or vars{}".format(key, hint), entry)
    hosts = body.get("hosts")
    if hosts is not None and not isinstance(hosts, dict):
        raise InventoryError(file, "hosts must be a mapping of host name to vars (or null), got {}"
                             .format(_kind(hosts)), entry)
    for host, host_vars in (hosts or {}).items():
        if host_vars is not None and not isinstance(host_vars, dict):
            raise InventoryError(file, "host vars must be a mapping or null, got {}".format(_kind(host_vars)),
                                 "host {}".format(host))
        builder.add_hosts(name, host, host_vars or {}, file, "host {}".format(host))
    builder.set_vars(name, body.get("vars"), file, entry)
    children = body.get("children")
    if children is not None and not isinstance(children, dict):
        raise InventoryError(file, "children must be a mapping of group names, got {}".format(_kind(children)), entry)
    for child, child_body in (children or {}).items():
        builder.add_child(name, str(child), file, "group {}".format(child))
        _yaml_group(builder, file, str(child), child_body)


def _ini_value(raw: str) -> Any:
    """Parse an INI value as Ansible does (a Python literal, else the raw string); quoted values stay strings."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw
    return value


def _ini_tokens(line: str) -> list[str]:
    """Split a host line on whitespace, honouring quotes; ``#`` at the start of a token begins a comment."""
    tokens, pos = [], 0
    while True:
        pos = _SPACE.match(line, pos).end()
        if pos >= len(line) or line[pos] == "#":
            return tokens
        match = _INI_TOKEN.match(line, pos)
        if not match:
            raise ValueError("unbalanced quote")
        tokens.append(match.group())
        pos = match.end()


def _parse_ini(builder: _Builder, file: str, text: str) -> None:
    group, state = "all", "hosts"
    pending: dict[str, str] = {}  # group referenced by :children or :vars -> where, checked at the end
    for number, raw_line in enumerate(text.splitlines(), 1):
        line, entry = raw_line.strip(), "line {}".format(number)
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _INI_SECTION.fullmatch(line)
            if not match or match.group(2) not in (None, "vars", "children"):
                raise InventoryError(file, "invalid section header {}".format(line), entry)
            group, state = match.group(1), match.group(2) or "hosts"
            builder.group(group, file, entry)
            if state == "vars":
                pending.setdefault(group, "{}: section [{}:vars] is for an undefined group".format(entry, group))
            else:
                builder.declared.add(group)
        elif state == "hosts":
            try:
                tokens = _ini_tokens(line)
            except ValueError as exc:
                raise InventoryError(file, "{} in {!r}".format(exc, line), entry) from None
            host_vars = {}
            for token in tokens[1:]:
                key, sep, value = token.partition("=")
                if not sep or not key:
                    raise InventoryError(file, "expected key=value after the host name, got {!r}".format(token), entry)
                host_vars[key] = _ini_value(value)
            builder.add_hosts(group, tokens[0], host_vars, file, "{} (host {})".format(entry, tokens[0]))
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise InventoryError(file, "expected key=value in [{}:vars], got {!r}".format(group, line), entry)
            builder.set_vars(group, {key.strip(): _ini_value(value.strip())}, file, entry)
        else:
            child = line.split("#", 1)[0].strip()
            builder.add_child(group, child, file, entry)
            pending.setdefault(child, "{}: [{}:children] includes an undefined group {!r}".format(entry, group, child))
    for name, message in pending.items():
        if name not in builder.declared:
            where, _, detail = message.partition(": ")
            raise InventoryError(file, detail, where)


def _vars_files(directory: Path, kind: str, name: str) -> list[Path]:
    """group_vars/<name>, <name>.yml/.yaml/.json, or every such file in a <name>/ directory (sorted)."""
    base = directory / kind / name
    if base.is_dir():
        return sorted(p for p in base.iterdir() if p.is_file() and p.suffix in VARS_SUFFIXES)
    return [p for p in (Path(str(base) + suffix) for suffix in VARS_SUFFIXES) if p.is_file()]


def _overlay_vars(sources: list[str], kind: str, name: str, target: dict, origins: dict) -> None:
    """Merge group_vars/host_vars files found next to each inventory source into ``target``."""
    seen: set[Path] = set()
    for source in sources:
        directory = Path(source).parent
        if directory in seen:
            continue
        seen.add(directory)
        if not (directory / kind).is_dir():
            continue
        for path in _vars_files(directory, kind, name):
            data = _load_yaml(str(path), _read(path))
            if data is None:
                continue
            if not isinstance(data, dict):
                raise InventoryError(path, "must be a mapping of variables, got {}".format(_kind(data)),
                                     "{} {}".format(kind.split("_")[0], name))
            target.update({str(k): v for k, v in data.items()})
            origins.update(dict.fromkeys(map(str, data), str(path)))


def _depths(builder: _Builder) -> dict[str, int]:
    """Longest path from ``all`` for every group; every group without a parent becomes a child of ``all``."""
    parented = {child for group in builder.groups.values() for child in group.children}
    for name in builder.groups:
        if name != "all" and name not in parented:
            builder.groups["all"].children.append(name)
    depths: dict[str, int] = {}

    def walk(name: str, depth: int, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise InventoryError(builder.groups[name].file, "group cycle: " + " -> ".join(cycle), "group " + name)
        if depths.get(name, -1) >= depth:
            return
        depths[name] = depth
        for child in builder.groups[name].children:
            walk(child, depth + 1, path + [name])

    walk("all", 0, [])
    for name in builder.groups:  # a cycle unreachable from "all" (a <-> b, both parented) is still a cycle
        if name not in depths:
            walk(name, 1, [])
    return depths


def _finish(builder: _Builder, sources: list[str]) -> Inventory:
    """Resolve the group tree, merge vars by precedence, render templates and build validated models."""
    depths = _depths(builder)
    ancestors: dict[str, set[str]] = {}
    for group in sorted(builder.groups.values(), key=lambda g: depths[g.name]):
        ancestors.setdefault(group.name, set()).add(group.name)
        for child in group.children:
            ancestors.setdefault(child, set()).update(ancestors[group.name])
    for group in builder.groups.values():
        _overlay_vars(sources, "group_vars", group.name, group.vars, group.origins)
    memberships: dict[str, set[str]] = {name: set() for name in builder.hosts}
    for group in builder.groups.values():
        for host in group.hosts:
            memberships[host] |= ancestors[group.name]
    # As Ansible: a host in no group but "all" is in "ungrouped", and only such hosts are.
    ungrouped = {h for h in builder.hosts if memberships[h] <= {"all", "ungrouped"}}
    builder.groups["ungrouped"].hosts = [h for h in builder.hosts if h in ungrouped]
    renderer = models.Renderer()
    hosts: dict[str, Host] = {}
    for name, (host_vars, host_origins) in builder.hosts.items():
        groups = (memberships[name] - {"ungrouped"}) | {"all"} | ({"ungrouped"} if name in ungrouped else set())
        merged, origins = {}, {}
        for group in sorted(groups, key=lambda g: (depths[g], _priority(builder.groups[g]), g)):
            merged.update(builder.groups[group].vars)
            origins.update(builder.groups[group].origins)
        merged.update(host_vars)
        origins.update(host_origins)
        _overlay_vars(sources, "host_vars", name, merged, origins)
        default_file = builder.host_files[name]
        rendered = renderer.render(name, merged, origins, sorted(groups), default_file)
        hosts[name] = _host(name, sorted(groups), rendered, origins, default_file)
    groups_out = {}
    for group in builder.groups.values():
        members = set(group.hosts)
        groups_out[group.name] = Group(name=group.name, hosts=[h for h in builder.hosts if h in members],
                                       children=group.children, vars=group.vars)
    return Inventory(hosts=hosts, groups=groups_out, sources=sources)


def _priority(group: _RawGroup) -> int:
    value = group.vars.get("ansible_group_priority", 1)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InventoryError(group.origins.get("ansible_group_priority", group.file),
                             "ansible_group_priority must be an integer, got {!r}".format(value), "group " + group.name)
    return value


def _host(name: str, groups: list[str], variables: dict, origins: dict, default_file: str) -> Host:
    from pydantic import ValidationError

    try:
        return Host.from_vars(name, groups, variables)
    except ValidationError as exc:
        error = exc.errors()[0]
        var = models.FIELD_VARS.get(str(error["loc"][0]) if error["loc"] else "", "?")
        message = "{} {}".format(var, error["msg"].replace("Value error, ", "")) if var != "?" else error["msg"]
        if var == "ansible_port" and "must be an integer" not in message:
            message = "ansible_port must be an integer in 1-65535, got {!r}".format(variables.get(var))
        raise InventoryError(origins.get(var, default_file), message, "host " + name) from None
