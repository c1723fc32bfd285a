"""docker's ``--format``: the Go-template subset people use, translated to a sandboxed jinja2 template.

Supported actions (whitespace inside ``{{ }}`` is optional)::

    {{.Field}}            a field of the row (names are the command's; unknown names are a usage error)
    {{.Field.Key.Key}}    a key of a field that is an object (``events``' ``.Actor.Attributes.name``); a
                          missing key is ``<no value>``, as in Go
    {{json .}}            the whole row as a JSON object;  {{json .Field}} one field as JSON
    {{upper .Field}} {{lower .Field}} {{title .Field}} {{truncate .Field N}}

``table`` as the first word prints a header row and aligns the tab-separated columns like docker's tabwriter;
``\\t`` and ``\\n`` typed literally become a tab and a newline; ``json`` alone means ``{{json .}}``.
Every command adds ``{{.Host}}``; a ``table`` format that does not use it gets a HOST column first.

Rows are plain dicts of strings: commands build them with :func:`image_row` and :func:`container_row`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fleet.errors import UsageError

#: Field -> header of ``fleet images --format`` (docker's image formatter).
IMAGE_FIELDS = {
    "Host": "HOST", "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
}

#: Field -> header of ``fleet ps --format`` (docker's container formatter).
CONTAINER_FIELDS = {
    "Host": "HOST", "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
}

_ACTION = re.compile(r"{{(.*?)}}", re.S)
_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)$")
_FUNCS = {"json", "upper", "lower", "title", "truncate"}

# docker's tabwriter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0) -> min cell width 10, padding 3
_MIN_WIDTH, _PADDING = 10, 3


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dig(value, key):
    """Go's ``.Field.Key`` on a map: the key's value, ``<no value>`` when missing or not a map."""
    return value.get(key, "<no value>") if isinstance(value, dict) else "<no value>"


def _truncate(value, n) -> str:
    return str(value)[:int(n)]


@dataclass
class Formatter:
    """A compiled ``--format``: ``render(rows)`` gives the text to print (no trailing newline)."""

    spec: str
    fields: dict
    table: bool
    _template: object
    _literals: list

    def line(self, row: dict) -> str:
        """One row through the template."""
        return self._template.render(_row=row, _lit=self._literals)

    def render(self, rows: list[dict]) -> str:
        """All rows; with ``table``, a header row first and the tab-separated cells aligned."""
        lines = [self.line(r) for r in rows]
        if not self.table:
            return "\n".join(lines)
        header = self.line({k: v for k, v in self.fields.items()})
        return align([header] + lines)


def align(lines: list[str]) -> str:
    """Pad tab-separated cells to a common width per column (all columns but the last), like text/tabwriter."""
    split = [line.split("\t") for line in "\n".join(lines).split("\n")]
    widths: dict[int, int] = {}
    for cells in split:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + _PADDING, _MIN_WIDTH)
    return "\n".join("".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1]
                     for cells in split).rstrip("\n")


def _translate(body: str, fields: dict, spec: str, literals: list) -> str:
    """One Go-template action -> one jinja2 expression (fields are looked up by name, never evaluated)."""
    words = body.strip().split()
    if not words:
        raise UsageError('invalid --format "{}": empty action {{{{}}}}'.format(spec))
    func = None
    if words[0] in _FUNCS:
        func, words = words[0], words[1:]
    if not words:
        raise UsageError('invalid --format "{}": {} needs an argument'.format(spec, func))
    arg, rest = words[0], words[1:]
    if arg == ".":
        if func != "json":
            raise UsageError('invalid --format "{}": "." is only supported as {{{{json .}}}}'.format(spec))
        expr = "_row"
    else:
        m = _FIELD.match(arg)
        if not m:
            raise UsageError('invalid --format "{}": unsupported action {{{{{}}}}}'.format(spec, body.strip()))
        name = m.group(1)
        if name not in fields:
            raise UsageError('invalid --format "{}": unknown field .{} (known: {})'.format(
                spec, name, ", ".join("." + f for f in fields)))
        literals.append(name)
        expr = "_row[_lit[{}]]".format(len(literals) - 1)
        for key in m.group(2).split(".")[1:]:
            literals.append(key)
            expr = "({} | _dig(_lit[{}]))".format(expr, len(literals) - 1)
    if func == "truncate":
        if len(rest) != 1 or not rest[0].isdigit():
            raise UsageError('invalid --format "{}": truncate takes a field and a length'.format(spec))
        return "{{{{ {} | _truncate({}) }}}}".format(expr, int(rest[0]))
    if rest:
        raise UsageError('invalid --format "{}": unexpected {!r} in {{{{{}}}}}'.format(spec, rest[0], body.strip()))
    if func == "json":
        return "{{{{ {} | _json }}}}".format(expr)
    if func in ("upper", "lower", "title"):
        return "{{{{ {} | string | {} }}}}".format(expr, func)
    return "{{{{ {} }}}}".format(expr)


def compile_format(spec: str, fields: dict) -> Formatter:
    """Compile a ``--format`` string for rows with ``fields`` (field -> header); UsageError on anything unknown."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    text = spec
    if text.strip() == "json":
        text = "{{json .}}"
    table = text.startswith("table")
    if table:
        text = text[len("table"):]
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    if table and "{{" in text and not re.search(r"{{[^}]*\.Host\b", text):
        text = "{{.Host}}\t" + text
    literals: list = []
    parts = []
    pos = 0
    for m in _ACTION.finditer(text):
        if m.start() > pos:  # literal text travels as data so that jinja2 syntax in it means nothing
            literals.append(text[pos:m.start()])
            parts.append("{{{{ _lit[{}] }}}}".format(len(literals) - 1))
        parts.append(_translate(m.group(1), fields, spec, literals))
        pos = m.end()
    if "{{" in text[pos:] or "}}" in text[pos:]:
        raise UsageError('invalid --format "{}": unclosed action'.format(spec))
    if pos < len(text):
        literals.append(text[pos:])
        parts.append("{{{{ _lit[{}] }}}}".format(len(literals) - 1))
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["_json"] = _json
    env.filters["_truncate"] = _truncate
    env.filters["_dig"] = _dig
    try:
        template = env.from_string("".join(parts))
    except TemplateError as exc:  # only our own translation reaches jinja2, so this is a bug, said plainly
        raise UsageError('invalid --format "{}": {}'.format(spec, exc)) from None
    return Formatter(spec=spec, fields=fields, table=table, _template=template, _literals=literals)


def image_row(host: str, image: dict, no_trunc: bool = False, now: float | None = None) -> dict:
    """The fields of one image for ``--format`` (docker's names and renderings)."""
    from fleet.render import tables

    image_id = image.get("id") or ""
    return {
        "Host": host,
        "Repository": image.get("repository") or "<none>",
        "Tag": image.get("tag") or "<none>",
        "ID": image_id if no_trunc else tables.short_id(image_id),
        "Digest": image.get("digest") or "<none>",
        "CreatedSince": tables.ago(image.get("created"), now) or "N/A",
        "CreatedAt": created_at(image.get("created")),
        "Size": tables.human_size(image.get("size")),
        "Containers": "N/A" if image.get("containers") is None else str(image.get("containers")),
    }


def container_row(host: str, c: dict, no_trunc: bool = False, now: float | None = None) -> dict:
    """The fields of one container for ``ps --format`` (docker's names and renderings)."""
    from fleet.render import tables

    command = c.get("command") or ""
    if not no_trunc:
        inner = command[1:-1] if len(command) >= 2 and command[0] == command[-1] == '"' else command
        command = '"' + (inner[:19] + "…" if len(inner) > 20 else inner) + '"'
    return {
        "Host": host,
        "ID": (c.get("id") or "") if no_trunc else (c.get("id") or "")[:12],
        "Image": c.get("image") or "",
        "Command": command,
        "CreatedAt": created_at(c.get("created")),
        "RunningFor": tables.ago(c.get("created"), now),
        "Status": c.get("status") or "",
        "Ports": c.get("ports") or "",
        "Names": c.get("name") or "",
        "State": c.get("state") or "",
    }


def created_at(rfc3339: str | None) -> str:
    """docker's CreatedAt: ``2024-05-01 10:20:30 +0000 UTC`` (Go's time.Time String) from RFC 3339."""
    from datetime import datetime, timezone

    if not rfc3339:
        return ""
    text = rfc3339.replace("z", "Z")
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return rfc3339
    stamp = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(2) == "Z" else m.group(2)))
    stamp = stamp.astimezone(timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
