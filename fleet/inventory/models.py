"""Inventory data model (Host, Group, Inventory), host-name/range rules and the per-host template renderer."""

from __future__ import annotations

import os
import re
import string
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.errors import InventoryError

DEFAULT_PORT = 22
DEFAULT_PYTHON = "python3"

# Host var -> Host field. Everything else stays only in Host.vars.
CONNECTION_VARS = {
    "ansible_host": "address",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_python_interpreter": "python",
    "ansible_ssh_private_key_file": "ssh_key",
    "fleet_known_hosts": "known_hosts",
    "fleet_warm": "warm",
}
FIELD_VARS = {field: var for var, field in CONNECTION_VARS.items()}

# A host name is a DNS-ish name or an IPv4 address; IPv6 literals are checked separately. Pattern syntax
# characters (* ? [ ] , : ! & ~ whitespace) are excluded so every host name is also a valid pattern term.
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_GROUP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_BRACKETED_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d+)")
_HOST_PORT = re.compile(r"(.+):(\d+)")


# Validators are built on the first validation, not at import: a command served from the inventory cache
# (fleet/inventory/cache.py) unpickles models and never validates, so it never pays for the schema build.
_DEFERRED = ConfigDict(defer_build=True)


class Host(BaseModel):
    """One managed machine: connection settings plus its fully merged and rendered variables."""

    model_config = _DEFERRED

    name: str
    address: str
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    user: str | None = None
    python: str = DEFAULT_PYTHON
    ssh_key: str | None = None
    known_hosts: str | None = None
    #: fleet_warm: false -> never reach the host's warm payload server, always exec the payload
    warm: bool = True
    groups: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("port", mode="before")
    @classmethod
    def _integral_port(cls, value: Any) -> int:
        """Accept an int or a string of digits (a rendered template); reject bools, floats and words."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("must be an integer, got {!r}".format(value))
        if isinstance(value, str):
            if not value.strip().isdigit():
                raise ValueError("must be an integer, got {!r}".format(value))
            value = int(value)
        return value

    @classmethod
    def from_vars(cls, name: str, groups: list[str], variables: dict[str, Any]) -> "Host":
        """Build a Host from merged vars; raises pydantic.ValidationError on a bad connection var."""
        def text(key: str) -> str | None:
            value = variables.get(key)
            return None if value is None else str(value)

        key = text("ansible_ssh_private_key_file")
        return cls(
            name=name,
            address=text("ansible_host") or name,
            port=variables.get("ansible_port", DEFAULT_PORT),
            user=text("ansible_user"),
            python=text("ansible_python_interpreter") or DEFAULT_PYTHON,
            ssh_key=os.path.expanduser(key) if key else None,
            known_hosts=text("fleet_known_hosts"),
            warm=variables.get("fleet_warm", True),
            groups=sorted(groups),
            vars=variables,
        )


class Group(BaseModel):
    """A named set of hosts and child groups; ``vars`` are the group's own (unrendered) variables."""

    model_config = _DEFERRED

    name: str
    hosts: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)


class Inventory(BaseModel):
    """Hosts (in file order), groups (always including ``all`` and ``ungrouped``) and the files they came from."""

    model_config = _DEFERRED

    hosts: dict[str, Host] = Field(default_factory=dict)
    groups: dict[str, Group] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)

    def group_hosts(self, group: str) -> list[Host]:
        """Hosts of ``group`` and of all its descendants, in inventory order (empty for an unknown group)."""
        return [host for host in self.hosts.values() if group in host.groups]


def is_ipv6(name: str) -> bool:
    """True if ``name`` is an IPv6 address literal (without brackets)."""
    if ":" not in name or not _IPV6_CHARS.fullmatch(name):
        return False
    import ipaddress  # only reached for names that look like IPv6

    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


def valid_host_name(name: str) -> bool:
    """True if ``name`` is usable as a host name: a hostname, an IPv4 or an IPv6 address."""
    return bool(_HOST_NAME.fullmatch(name)) or is_ipv6(name)


def valid_group_name(name: str) -> bool:
    """True if ``name`` is usable as a group name (letters, digits, ``_ . -``; no pattern characters)."""
    return bool(_GROUP_NAME.fullmatch(name))


def split_port(spec: str) -> tuple[str, int | None]:
    """Split Ansible's ``host:port`` / ``[v6addr]:port`` suffix; a bare IPv6 address keeps its colons."""
    match = _BRACKETED_PORT.fullmatch(spec)
    if match:
        return match.group(1), int(match.group(2))
    match = _HOST_PORT.fullmatch(spec)
    # "web[01:03]" and "fe80::1" must not be split: the host part may not contain a ':' outside a range.
    if match and ":" not in _RANGE.sub("", match.group(1)):
        return match.group(1), int(match.group(2))
    return spec, None


def expand_range(spec: str) -> list[str]:
    """Expand Ansible host ranges: ``web[01:03]``, ``db-[a:c]``, ``n[0:10:5]``, several per name. ValueError if bad."""
    match = _RANGE.search(spec)
    if not match:
        if "[" in spec or "]" in spec:
            raise ValueError("unbalanced '[' or ']' in host name {!r}".format(spec))
        return [spec]
    head, body, tail = spec[:match.start()], match.group(1), spec[match.end():]
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("host range [{}] must be [begin:end] or [begin:end:step]".format(body))
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError("host range [{}] has no end".format(body))
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError("host range [{}] step must be a positive integer".format(body))
    step = int(step_text)
    if begin.isdigit() and end.isdigit():
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ValueError("host range [{}]: zero-padded begin and end must have the same width".format(body))
        if int(begin) > int(end):
            raise ValueError("host range [{}] must have begin <= end".format(body))
        items = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    elif len(begin) == 1 and len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise ValueError("host range [{}] must have begin <= end".format(body))
        items = list(string.ascii_letters[first:last + 1:step])
    else:
        raise ValueError("host range [{}] must be numeric or single letters".format(body))
    names: list[str] = []
    for item in items:
        names.extend(expand_range(head + item + tail))
    return names


# Templates -------------------------------------------------------------------------------------------------------

MAX_TEMPLATE_DEPTH = 32
_SINGLE_EXPRESSION = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.S)


def has_template(value: Any) -> bool:
    """True if ``value`` (or a string nested in it) contains jinja2 markup."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value or "{#" in value
    if isinstance(value, (list, tuple)):
        return any(has_template(item) for item in value)
    if isinstance(value, dict):
        return any(has_template(item) for item in value.values())
    return False


class Renderer:
    """Renders jinja2 templates in one host's merged vars (sandboxed, StrictUndefined); jinja2 loads on first use.

    Each templated var is rendered once every var it references is rendered (depth-first, bounded by
    MAX_TEMPLATE_DEPTH), so chains like ``a: "{{ b }}"``, ``b: "{{ c }}/x"`` reach a fixed point in one pass and
    a cycle (``a -> b -> a``) is reported instead of looping. A value that is exactly one ``{{ expr }}`` keeps the
    expression's type (``"{{ base_port + 1 }}"`` is an int), as in Ansible; any other template renders to a string.
    """

    def __init__(self) -> None:
        self._env: Any = None
        self._names: dict[str, frozenset[str]] = {}
        self._compiled: dict[str, Any] = {}

    def render(self, host: str, variables: dict[str, Any], origins: dict[str, str], groups: list[str],
               default_file: str) -> dict[str, Any]:
        """Return ``variables`` with every template rendered; InventoryError names file, host and variable."""
        if not any(has_template(value) for value in variables.values()):
            return variables
        magic = {"inventory_hostname": host, "inventory_hostname_short": host.split(".")[0],
                 "group_names": [g for g in groups if g not in ("all", "ungrouped")]}
        done: dict[str, Any] = {}
        stack: list[str] = []

        def resolve(key: str) -> Any:
            if key in done:
                return done[key]
            file = origins.get(key, default_file)
            if key in stack:
                cycle = stack[stack.index(key):] + [key]
                raise InventoryError(file, "recursive template: " + " -> ".join(cycle), "host " + host)
            if len(stack) >= MAX_TEMPLATE_DEPTH:
                raise InventoryError(file, "templates nested deeper than {} levels: {}".format(
                    MAX_TEMPLATE_DEPTH, " -> ".join(stack[:5] + ["..."])), "host " + host)
            value = variables[key]
            if has_template(value):
                stack.append(key)
                context = dict(magic)
                for name in self._referenced(value, file, host, key):
                    if name in variables:
                        context[name] = resolve(name)
                stack.pop()
                value = self._guarded(self._value, value, context, file=file, host=host, key=key)
            done[key] = value
            return value

        return {key: resolve(key) for key in variables}

    def _environment(self) -> Any:
        if self._env is None:
            from jinja2 import StrictUndefined
            from jinja2.sandbox import SandboxedEnvironment

            self._env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        return self._env

    def _referenced(self, value: Any, file: str, host: str, key: str) -> set[str]:
        """Top-level variable names used by every template string inside ``value``."""
        from jinja2 import meta

        names: set[str] = set()
        for text in _strings(value):
            if text not in self._names:
                tree = self._guarded(self._environment().parse, text, file=file, host=host, key=key)
                self._names[text] = frozenset(meta.find_undeclared_variables(tree))
            names |= self._names[text]
        return names

    def _value(self, value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {k: self._value(v, context) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, context) for v in value]
        if not has_template(value):
            return value
        return self._compile(value)(context)

    def _compile(self, text: str) -> Any:
        """A callable context -> value; a lone ``{{ expr }}`` becomes a native-typed expression."""
        if text not in self._compiled:
            from jinja2 import TemplateSyntaxError, Undefined

            env = self._environment()
            match = _SINGLE_EXPRESSION.fullmatch(text)
            compiled = None
            if match:
                try:
                    expression = env.compile_expression(match.group(1), undefined_to_none=False)
                except TemplateSyntaxError:  # e.g. whitespace control "{{- x -}}": render as a template
                    expression = None
                if expression is not None:
                    def compiled(context: dict[str, Any], expression: Any = expression) -> Any:
                        result = expression(**context)
                        if isinstance(result, Undefined):
                            str(result)  # StrictUndefined raises UndefinedError naming the variable
                        return result
            if compiled is None:
                template = env.from_string(text)

                def compiled(context: dict[str, Any], template: Any = template) -> Any:
                    return template.render(context)
            self._compiled[text] = compiled
        return self._compiled[text]

    @staticmethod
    def _guarded(function: Any, *args: Any, file: str, host: str, key: str) -> Any:
        """Run ``function``; turn any template failure into an InventoryError naming file, host and variable."""
        try:
            return function(*args)
        except InventoryError:
            raise
        except Exception as exc:  # user templates can raise anything (UndefinedError, TypeError, SecurityError...)
            from jinja2 import TemplateSyntaxError, UndefinedError

            if isinstance(exc, UndefinedError):
                match = re.match(r"'([^']+)' is undefined", str(exc))
                what = "undefined variable {!r}".format(match.group(1)) if match else "undefined value ({})".format(exc)
                message = "{} in {}".format(what, key)
            elif isinstance(exc, TemplateSyntaxError):
                message = "template syntax error in {}: {} (template line {})".format(key, exc.message, exc.lineno)
            else:
                message = "cannot render {}: {}: {}".format(key, type(exc).__name__, exc)
            raise InventoryError(file, message, "host " + host) from None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if has_template(value) else []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return [text for item in items for text in _strings(item)]
