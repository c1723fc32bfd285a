"""The compose file as YAML: finding it, loading it with line numbers (YAML 1.2 scalars, as compose's go-yaml v3
reads them), and the project name.

Mappings load as ``LineDict`` and sequences as ``LineList``: plain dict/list subclasses that remember the line of
each key or item, so an error found after rendering and validation can still name the line it came from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fleet.compose.errors import ComposeError, ComposeFileNotFound

# compose's DefaultFileNames, in its order of preference.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
INVENTORY_VAR = "fleet_compose"
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class LineDict(dict):
    """A mapping that remembers its own line and the line of each key."""

    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}


class LineList(list):
    """A sequence that remembers its own line and the line of each item."""

    line: int | None = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: list[int | None] = []


def key_text(path: tuple) -> str:
    """``("ports", 0, "published")`` -> ``ports[0].published``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += "[{}]".format(step)
        else:
            out += ("." if out else "") + str(step)
    return out


def locate(tree: Any, path: tuple) -> int | None:
    """The line of the deepest element of ``path`` the loader recorded (None when none is known)."""
    line = getattr(tree, "line", None)
    node = tree
    for step in path:
        if isinstance(node, LineDict) and step in node:
            line = node.lines.get(step, line)
            node = node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            line = node.lines[step] if step < len(node.lines) and node.lines[step] else line
            node = node[step]
        else:
            break
    return line


def find_compose_file(explicit: str | None, cwd: str | os.PathLike, inventory_vars: dict | None = None) -> Path:
    """``-f FILE``; else compose.yaml, compose.yml, docker-compose.yml (docker-compose.yaml) in ``cwd``; else the
    inventory var ``fleet_compose``. Relative paths are relative to ``cwd``. ComposeError when none exists."""
    base = Path(cwd)
    if explicit:
        path = base / os.path.expanduser(explicit)
        if not path.is_file():
            raise ComposeFileNotFound(explicit, "no such file")
        return path
    for name in DEFAULT_FILES:
        if (base / name).is_file():
            return base / name
    configured = (inventory_vars or {}).get(INVENTORY_VAR)
    if configured not in (None, ""):
        if not isinstance(configured, str):
            raise ComposeError(str(configured), "inventory var {} must be a path, got {}".format(
                INVENTORY_VAR, type(configured).__name__))
        path = base / os.path.expanduser(configured)
        if not path.is_file():
            raise ComposeFileNotFound(configured, "no such file (inventory var {})".format(INVENTORY_VAR))
        return path
    raise ComposeFileNotFound(str(base), "no compose file: give -f FILE, add one of {} here, or set the inventory "
                              "var {}".format(", ".join(DEFAULT_FILES), INVENTORY_VAR))


def project_name(explicit: str | None, declared: Any, file: Path) -> str:
    """``-p`` over the file's ``name:`` over the file's directory name normalised as compose does."""
    for value, what in ((explicit, "-p"), (declared, "name")):
        if value is None:
            continue
        if not isinstance(value, str) or not _PROJECT_NAME.fullmatch(value):
            raise ComposeError(file, "invalid project name {!r} (from {}): it must contain only lowercase letters, "
                               "digits, '-' and '_', and start with a letter or digit".format(value, what),
                               key=None if what == "-p" else "name")
        return value
    name = re.sub(r"[^a-z0-9_-]", "", file.resolve().parent.name.lower()).lstrip("_-")
    if not name:
        raise ComposeError(file, "cannot derive a project name from the directory {!r}: give -p NAME or a top-level "
                           "name:".format(file.resolve().parent.name))
    return name


def project_name_of(path: str | os.PathLike, explicit: str | None = None) -> str:
    """The project name of the compose file at ``path`` (``-p``, its ``name:``, or its directory's name) without
    loading the services (``fleet deploy history``, ``fleet down``)."""
    file = Path(path)
    return project_name(explicit, load_yaml(file).get("name"), file)


# ---- YAML, as compose reads it


def _loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 core scalars (``no``/``on`` stay strings, ``80:80`` is not base 60, dates are
        strings: go-yaml v3, compose's parser, reads them so), duplicate keys refused, line numbers kept."""

    dropped = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
               "tag:yaml.org,2002:timestamp"}
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in dropped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                   r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))

    def construct_int(loader: Any, node: Any) -> int:
        text = loader.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_float(loader: Any, node: Any) -> float:
        text = loader.construct_scalar(node).lower()
        return float(text.replace(".inf", "inf").replace(".nan", "nan"))

    def construct_mapping(loader: Any, node: Any) -> LineDict:
        loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor), which compose's fragments use
        out = LineDict()
        out.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise ComposeError(loader.name, "a mapping key must be a scalar", line=line) from None
            if key in out.lines:
                raise ComposeError(loader.name, "mapping key {!r} already defined at line {}".format(
                    key, out.lines[key]), line=line)
            out[key] = loader.construct_object(value_node, deep=True)
            out.lines[key] = line
        return out

    def construct_sequence(loader: Any, node: Any) -> LineList:
        out = LineList(loader.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.lines = [child.start_mark.line + 1 for child in node.value]
        return out

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", construct_sequence)
    return Loader


def load_yaml(path: Path) -> LineDict:
    """The top-level mapping of the compose file at ``path``; ComposeError names the file and line."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ComposeError(path, "cannot read file: {}".format(reason)) from None
    loader = _loader()(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ComposeError(path, "YAML syntax error: {}".format(problem),
                           line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if data is None:
        raise ComposeError(path, "empty compose file")
    if not isinstance(data, LineDict):
        raise ComposeError(path, "the top level must be a mapping (services:, networks:, ...)", line=1)
    return data
