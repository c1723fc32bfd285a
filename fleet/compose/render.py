"""Per-host rendering of a compose file's strings with the inventory's jinja2 renderer (sandboxed, StrictUndefined).

Every string value is a template, rendered with the host's inventory vars, overridden by ``-e`` extra vars, plus
Ansible's magic vars (``inventory_hostname``, ``inventory_hostname_short``, ``group_names``). As in the inventory, a
value that is exactly one ``{{ expr }}`` keeps the expression's type (``published: "{{ web_port }}"`` is an int).
Mapping keys are not templates (they name services, networks, variables). The loader's line numbers are kept.
"""

from __future__ import annotations

import re
from typing import Any

from fleet.compose.errors import ComposeError
from fleet.compose.source import LineDict, LineList, key_text, locate
from fleet.inventory.models import Renderer, has_template


def host_context(host: Any, extra_vars: dict) -> dict:
    """The variables a host's templates see: its merged inventory vars, the magic vars, then ``-e`` values."""
    context = dict(host.vars)
    context.update(inventory_hostname=host.name, inventory_hostname_short=host.name.split(".")[0],
                   group_names=[g for g in host.groups if g not in ("all", "ungrouped")])
    context.update(extra_vars or {})
    return context


class TreeRenderer(Renderer):
    """The inventory's Renderer (its environment and its compiled-template cache) applied to a compose tree."""

    def tree(self, value: Any, context: dict, *, file: str, host: str | None, service: str | None,
             path: tuple = (), root: Any = None) -> Any:
        """``value`` with every string rendered; ComposeError names the variable, the host, the service, the key."""
        root = value if root is None else root
        if isinstance(value, LineDict):
            out = LineDict()
            out.line, out.lines = value.line, dict(value.lines)
            for key, item in value.items():
                out[key] = self.tree(item, context, file=file, host=host, service=service, path=path + (key,),
                                     root=root)
            return out
        if isinstance(value, LineList):
            out_list = LineList(self.tree(item, context, file=file, host=host, service=service,
                                          path=path + (index,), root=root) for index, item in enumerate(value))
            out_list.line, out_list.lines = value.line, list(value.lines)
            return out_list
        if isinstance(value, str) and has_template(value):
            try:
                return self._compile(value)(context)
            except Exception as exc:  # user templates can raise anything (UndefinedError, TypeError, SecurityError)
                raise _template_error(exc, file, host, service, path, locate(root, path)) from None
        return value


def _template_error(exc: Exception, file: str, host: str | None, service: str | None, path: tuple,
                    line: int | None) -> ComposeError:
    from jinja2 import TemplateSyntaxError, UndefinedError

    if isinstance(exc, UndefinedError):
        match = re.match(r"'([^']+)' is undefined", str(exc))
        message = "undefined variable {!r}".format(match.group(1)) if match else "undefined value ({})".format(exc)
    elif isinstance(exc, TemplateSyntaxError):
        message = "template syntax error: {}".format(exc.message)
    else:
        message = "cannot render: {}: {}".format(type(exc).__name__, exc)
    key = key_text(path[2:] if service else path)
    return ComposeError(file, message, service=service, key=key or None, line=line, host=host)
