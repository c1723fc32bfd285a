"""docker's ``--format`` for listings (ps, images, stats, events): Go templates (render/gotemplate.py) over rows.

A row is a dict of docker's field names (commands build them with :func:`image_row`, :func:`container_row`,
:func:`stats_row`); a callable value is a method taking arguments (``{{.Label "k"}}``).  The row reaches the
template as a Go struct, so an unknown field is docker's error (``can't evaluate field Nope in type
*formatter.ContainerContext``), found before any host is contacted (docker's ps runs the template on an empty
row for the same reason).

``table`` as the first word prints a header row and aligns the tab-separated columns like docker's tabwriter;
``\\t`` and ``\\n`` typed literally become a tab and a newline; ``json`` alone means ``{{json .}}``.
Every command adds ``{{.Host}}``; a ``table`` format that does not use it gets a HOST column first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fleet.errors import UsageError
from fleet.render import gofmt, gotemplate

#: Field -> header of ``fleet images --format`` (docker's image formatter).
IMAGE_FIELDS = {
    "Host": "HOST", "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
}

#: Field -> header of ``fleet ps --format`` (docker's container formatter; ``Label`` is a method).
CONTAINER_FIELDS = {
    "Host": "HOST", "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
    "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
}

#: Field -> header of ``fleet stats --format`` (docker's stats formatter).
STATS_FIELDS = {
    "Host": "HOST", "Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

#: The Go type docker's error names for each field table (``can't evaluate field X in type T``).
TYPE_NAMES = {id(IMAGE_FIELDS): "*formatter.ImageContext", id(CONTAINER_FIELDS): "*formatter.ContainerContext",
              id(STATS_FIELDS): "*container.statsContext"}

#: What ``--format table`` alone means: the command's default columns (docker's default table formats).
DEFAULT_TABLES = {
    id(IMAGE_FIELDS): "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    id(CONTAINER_FIELDS): "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t"
                          "{{.Names}}",
    id(STATS_FIELDS): "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                      "{{.BlockIO}}\t{{.PIDs}}",
}

# docker's tabwriter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0) -> min cell width 10, padding 3
_MIN_WIDTH, _PADDING = 10, 3
_FIELD_ERRORS = ("can't evaluate field", "wrong number of args for", "has arguments", 'printing "."',
                 "is not a method", "undefined variable")


def _method(fn, arity=1):
    fn.arity = arity
    return fn


@dataclass
class Formatter:
    """A compiled ``--format``: ``render(rows)`` gives the text to print (no trailing newline)."""

    spec: str
    fields: dict
    table: bool
    template: gotemplate.Template
    type_name: str = "*formatter.Context"
    used: set = field(default_factory=set)
    host_column: bool = False  #: a table that does not show .Host gets a HOST column first

    def uses(self, name: str) -> bool:
        """Whether the template reads field ``name`` (on an empty row: docker's ps turns on -s for .Size)."""
        return name in self.used

    def _record(self, row: dict):
        return gotemplate.Record(row, self.type_name, methods=True)

    def line(self, row: dict) -> str:
        """One row through the template (UsageError with Go's message if it fails on this row)."""
        try:
            return (row["Host"] + "\t" if self.host_column else "") + self.template.execute(self._record(row))
        except gotemplate.TemplateError as exc:
            raise _usage(self.spec, str(exc), self.fields) from None

    def header(self) -> str:
        """The header row: each field shows its header, functions leave it as is (docker's HeaderFunctions);
        an error ends the header where it happened, as docker's does."""
        row = {k: v for k, v in self.fields.items()}
        return ("HOST\t" if self.host_column else "") + self.template.execute(
            gotemplate.Record(row, self.type_name, methods=True), header=True)

    def render(self, rows: list[dict]) -> str:
        """All rows; with ``table``, a header row first and the tab-separated cells aligned."""
        lines = [self.line(r) for r in rows]
        if not self.table:
            return "\n".join(lines)
        return align([self.header()] + lines)


def align(lines: list[str]) -> str:
    """Pad tab-separated cells to a common width per column (all columns but the last), like text/tabwriter."""
    split = [line.split("\t") for line in "\n".join(lines).split("\n")]
    widths: dict[int, int] = {}
    for cells in split:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + _PADDING, _MIN_WIDTH)
    return "\n".join("".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1]
                     for cells in split).rstrip("\n")


def _usage(spec: str, message: str, fields: dict) -> UsageError:
    m = re.search(r"can't evaluate field (\w+)", message)
    if m:
        message += " (unknown field .{}; the fields are {})".format(
            m.group(1), " ".join("." + f for f in fields if f != "Label") +
            (' .Label "KEY"' if "Label" in fields or fields is CONTAINER_FIELDS else ""))
    return UsageError('invalid --format "{}": {}'.format(spec, message))


def _sample(fields: dict, used: set, maps: tuple = ()) -> dict:
    """An empty row (docker's ps checks its template on one) that records which fields are read."""
    class Probe(dict):
        def __getitem__(self, key):
            used.add(key)
            return dict.__getitem__(self, key)

        def get(self, key, default=None):
            used.add(key)
            return dict.get(self, key, default)
    row = Probe((k, {} if k in maps else "") for k in fields)
    if fields is CONTAINER_FIELDS:
        row["Label"] = _method(lambda key: "")
    if "Actor" in fields:
        row["Actor"] = {"ID": "", "Attributes": {}}
    return row


def compile_format(spec: str, fields: dict, type_name: str | None = None, maps: tuple = ()) -> Formatter:
    """Compile a ``--format`` string for rows with ``fields`` (field -> header); UsageError (exit 2) on a syntax
    error or an unknown field, before any host is contacted. ``maps``: the fields whose values are objects
    (``version``'s ``.Server``), whose keys the check cannot know and so takes as they come."""
    text = spec
    if text.strip() == "json":
        text = "{{json .}}"
    if text.strip() == "table" and id(fields) in DEFAULT_TABLES:
        text = DEFAULT_TABLES[id(fields)]
    table = text.startswith("table")
    if table:
        text = text[len("table"):]
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    host_column = table and "{{" in text and not re.search(r"{{[^}]*\.Host\b", text)
    try:
        template = gotemplate.parse(text)
    except gotemplate.TemplateError as exc:
        raise _usage(spec, "template parsing error: {}".format(exc), fields) from None
    used: set = set()
    formatter = Formatter(spec=spec, fields=fields, table=table, template=template,
                          type_name=type_name or TYPE_NAMES.get(id(fields), "*formatter.Context"), used=used,
                          host_column=host_column)
    try:
        template.execute(gotemplate.Record(_sample(fields, used, maps), formatter.type_name, methods=True))
    except gotemplate.TemplateError as exc:
        if any(s in str(exc) for s in _FIELD_ERRORS):
            raise _usage(spec, str(exc), fields) from None
    return formatter


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

    labels, mounts = dict(c.get("labels") or {}), list(c.get("mounts") or [])
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
        "Size": c.get("size") or "0B",  # docker: 0B unless the sizes were computed (-s, or .Size in the format)
        "Labels": ",".join(sorted("{}={}".format(k, v) for k, v in labels.items())),
        "Label": _method(lambda key: labels.get(key, "") if isinstance(key, str) else _wrong_type(key)),
        "Mounts": ",".join(m if no_trunc else _ellipsis(m, 15) for m in (x.get("name") or "" for x in mounts)),
        "LocalVolumes": str(sum(1 for x in mounts if x.get("driver") == "local")),
        "Networks": ",".join(sorted(c.get("networks") or [])),
    }


def _wrong_type(value):
    raise gofmt.ArgTypeError("wrong type for value; expected string; got {}".format(gofmt.type_name(value)))


def _ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: at most ``width`` characters, the last one "…" when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


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


# ---------------------------------------------------------------- inspect -f

#: Keys whose objects are Go maps in docker's inspect types (a missing key prints ``<no value>``); every other
#: object is a struct, where an unknown field fails the typed pass.
INSPECT_MAPS = {"Labels", "Networks", "Ports", "ExposedPorts", "Volumes", "Options", "Containers", "Data",
                "Sysctls", "Tmpfs", "StorageOpt", "DriverOpts", "Annotations", "Status", "Attributes"}
#: Keys that are Go slices in docker's inspect types: null (a nil slice) prints ``[]`` as Go does.
INSPECT_SLICES = {"Cmd", "Entrypoint", "Env", "Binds", "Links", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
                  "CapAdd", "CapDrop", "GroupAdd", "SecurityOpt", "Devices", "Aliases", "DNSNames", "Mounts",
                  "OnBuild", "Shell", "RepoTags", "RepoDigests", "Layers", "Args", "VolumesFrom", "Ulimits",
                  "DeviceRequests", "DeviceCgroupRules", "ConsoleSize", "MaskedPaths", "ReadonlyPaths", "Log"}


def _typed(value, key=None, parent=None):
    """Decoded JSON as docker's typed inspect structs: objects become structs unless they are maps."""
    if isinstance(value, dict):
        if key in INSPECT_MAPS or (parent, key) == ("LogConfig", "Config"):
            # a port's bindings are a slice ([] when null, as Go prints a nil slice)
            return {k: gofmt.NilSlice() if v is None and key == "Ports" else _typed(v, k, key)
                    for k, v in value.items()}
        return gotemplate.Record({k: _typed(v, k, key) for k, v in value.items()}, "struct", printable=True)
    if isinstance(value, list):
        return [_typed(v, None, key) for v in value]
    if value is None and key in INSPECT_SLICES:
        return gofmt.NilSlice()
    if value is None and key in INSPECT_MAPS:
        return gofmt.NilMap()
    return value


@dataclass
class InspectFormat:
    """``inspect -f``: docker's TemplateInspector.  Each object renders on the typed structs first; if that
    fails, on the raw JSON with ``missingkey=error`` (docker's fallback), whose error is the one reported."""

    spec: str
    typed: gotemplate.Template
    raw: gotemplate.Template

    def render(self, obj: dict) -> str:
        try:
            return self.typed.execute(_typed(obj))
        except gotemplate.TemplateError:
            pass
        try:
            return self.raw.execute(obj)
        except gotemplate.TemplateError as exc:
            raise UsageError('invalid --format "{}": template parsing error: {}'.format(self.spec, exc)) from None


def compile_inspect(spec: str | None):
    """``inspect -f`` compiled before any host is contacted: None for the JSON list (no format, or ``json``);
    UsageError (exit 2) on a syntax error."""
    if spec is None or spec.strip() == "json" or spec == "":
        return None
    try:
        return InspectFormat(spec, gotemplate.parse(spec), gotemplate.parse(spec, missing_error=True))
    except gotemplate.TemplateError as exc:
        raise UsageError('invalid --format "{}": template parsing error: {}'.format(spec, exc)) from None
