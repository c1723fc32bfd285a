"""Image commands across hosts: pull, images, rmi, tag, history, image prune, image inspect, system df.

Every flag and reference is checked here first, so bad input exits 2 before any host is contacted.
"""

from __future__ import annotations

import re
import sys

from fleet.commands.common import Session, exit_status, inspect_output, note, output
from fleet.errors import UsageError
from fleet.render import tables

IMAGE_HEADERS = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
_ID = re.compile(r"^(sha256:)?[0-9a-f]{1,64}$")
_PLATFORM_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
FILTER_KEYS = ("dangling", "reference")
PRUNE_WARNING = {
    False: "WARNING! This will remove all dangling images.",
    True: "WARNING! This will remove all images without at least one container associated to them.",
}


def validate_reference(image: str) -> str:
    """Check an image reference locally (exit 2 before any host is touched); return the normalised form."""
    from agent_payload import errors
    from agent_payload.image import reference

    try:
        return reference.parse(image).string()
    except errors.InvalidArgument as exc:
        raise UsageError(exc.message) from None


def familiar(image: str) -> str:
    """The short form docker prints (``nginx:latest``) of a reference; UsageError when it is invalid."""
    from agent_payload.image import reference

    validate_reference(image)
    return reference.parse(image).familiar()


def validate_image(value: str) -> str:
    """An image argument that may be a reference or an (abbreviated) image ID."""
    if _ID.match(value):
        return value
    validate_reference(value)
    return value


def validate_platform(platform: str | None) -> str | None:
    """``os/arch[/variant]`` (containerd's platform syntax), lowercased as containerd normalises it."""
    if platform is None:
        return None
    parts = platform.split("/")
    if not 2 <= len(parts) <= 3 or not all(_PLATFORM_PART.match(p) for p in parts):
        raise UsageError('invalid platform "{}": expected os/arch[/variant], e.g. linux/arm64/v8'.format(platform))
    return platform.lower()


def validate_filters(filters: list[str]) -> list[str]:
    """``-f key=value`` for images: keys dangling (true/false) and reference (a non-empty pattern)."""
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError('bad format of filter "{}" (expected name=value)'.format(f))
        if key not in FILTER_KEYS:
            raise UsageError('invalid filter "{}": supported keys are {}'.format(key, ", ".join(FILTER_KEYS)))
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise UsageError('invalid filter "dangling={}": expected true or false'.format(value))
        if key == "reference" and not value:
            raise UsageError('invalid filter "reference=": the pattern is empty')
    return list(filters)


def _explicit_tag_or_digest(image: str) -> bool:
    last = image.rsplit("/", 1)[-1]
    return "@" in image or ":" in last


def progress_printer(quiet: bool):
    """Print one line per host and layer whenever its status changes (not per chunk); used by `run`."""
    seen: dict = {}

    def on_event(host, name, data):
        if quiet or name != "progress":
            return
        key = (host.name, data.get("layer"))
        status = data.get("status")
        if seen.get(key) != status:
            seen[key] = status
            note("{}: {}: {}".format(host.name, data.get("layer"), status))
    return on_event


def run_with_progress(session: Session, patterns, op: str, args: dict, image: str, done_text: str, quiet: bool):
    """Run a pull or push with the live per-host view on stderr; returns the results."""
    from fleet.render.progress import ProgressView

    hosts = session.select(patterns)
    view = ProgressView(hosts, image, done_text, quiet=quiet)
    view.start()
    results = session.run_hosts(hosts, op, args, view.on_event)
    view.finish(results)
    return results


def host_errors(results) -> None:
    """Failed hosts as ``host: error`` lines on stderr (for outputs that have no ERROR column)."""
    for r in results:
        if not r.ok:
            note("{}: {}".format(r.host.name, tables.error_text(r.error)))


def pull(session: Session, patterns: list[str], image: str, all_tags: bool, platform: str | None, quiet: bool,
         as_json: bool) -> int:
    """Pull an image (or, with --all-tags, every tag of its repository) on every selected host."""
    label = familiar(image)
    if all_tags:
        if _explicit_tag_or_digest(image):
            raise UsageError('tag can\'t be used with --all-tags/-a: "{}"'.format(image))
        label = label.rsplit(":", 1)[0] + " (all tags)"
    platform = validate_platform(platform)
    results = run_with_progress(session, patterns, "pull", {"image": image, "all_tags": all_tags,
                                                            "platform": platform},
                                label, "Pull complete", quiet or as_json)

    def pulled(d):
        return d["pulled"] if "pulled" in d else [d]

    if as_json:
        output(tables.to_json(results))
    elif quiet:
        text = tables.bare_ids(results, lambda d: [p["image"] for p in pulled(d)])  # docker pull -q: the reference
        if text:
            output(text)
        host_errors(results)
    else:
        output(tables.host_table(["IMAGE", "DIGEST", "LAYERS", "DOWNLOADED", "ENDPOINT"], results,
                                 lambda d: [[p["image"], p["digest"], p.get("layers"),
                                             p.get("downloaded"), p.get("endpoint") or ""]
                                            for p in pulled(d)]))
    return exit_status(results)


def print_formatted(results, formatter, rows_of) -> None:
    """``--format`` output: ``rows_of(host, data)`` gives a host's row dicts; failed hosts go to stderr."""
    rows = [row for r in results if r.ok for row in rows_of(r.host.name, r.data)]
    text = formatter.render(rows)
    if text or formatter.table:
        output(text)
    host_errors(results)


def list_formatted(session: Session, patterns, op: str, args: dict, fmt: str, fields: dict, rows_of,
                   maps: tuple = ()) -> int:
    """Any listing with ``--format``: compile (exit 2 on a bad template) before a host is contacted, then print;
    ``maps``: the fields that hold objects (see ``formatting.compile_format``)."""
    from fleet.render import formatting

    formatter = formatting.compile_format(fmt, fields, maps=maps)
    results = session.run(patterns, op, args)
    print_formatted(results, formatter, rows_of)
    return exit_status(results)


def images(session: Session, patterns: list[str], all_: bool, digests: bool, quiet: bool, filters: list[str],
           fmt: str | None, no_trunc: bool, as_json: bool, repository: str | None = None) -> int:
    """List images on every selected host, docker's columns after HOST; ``repository`` (``images REPO[:TAG]``)
    is docker's reference filter."""
    filters = list(filters)
    if repository is not None:
        if not repository.strip():
            raise UsageError('invalid reference "{}": the repository is empty'.format(repository))
        filters.append("reference=" + repository)
    args = {"all": all_, "digests": digests, "filters": validate_filters(filters)}
    if fmt is not None and not as_json:
        from fleet.render import formatting
        return list_formatted(session, patterns, "images", args, fmt, formatting.IMAGE_FIELDS,
                              lambda host, d: [formatting.image_row(host, i, no_trunc) for i in d["images"]])
    results = session.run(patterns, "images", args)

    def image_id(i):
        return i["id"] if no_trunc else tables.short_id(i["id"])

    if as_json:
        output(tables.to_json(results))
    elif quiet:
        text = tables.bare_ids(results, lambda d: [image_id(i) for i in d["images"]])
        if text:
            output(text)
        host_errors(results)
    else:
        headers = IMAGE_HEADERS[:2] + (["DIGEST"] if digests else []) + IMAGE_HEADERS[2:]
        output(tables.host_table(headers, results, lambda d: [
            [i.get("repository") or "<none>", i.get("tag") or "<none>"]
            + ([i.get("digest") or "<none>"] if digests else [])
            + [image_id(i), tables.ago(i.get("created")), tables.human_size(i.get("size"))]
            for i in d["images"]]))
    return exit_status(results)


def rmi(session: Session, patterns: list[str], images_: list[str], force: bool, as_json: bool) -> int:
    """Remove images: untag each reference, delete images left without tags (-f: even if in use by a container)."""
    if not images_:
        raise UsageError("rmi needs at least one image")
    for image in images_:
        validate_image(image)
    results = session.run(patterns, "rmi", {"images": list(images_), "force": force})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["RESULT"], results, _rmi_rows))
    return 1 if tables.names_failed(results) else exit_status(results)


def _rmi_rows(data: dict) -> list[list[str]]:
    """docker rmi's lines per name in order: "Untagged: ...", "Deleted: ...", or the name's error."""
    if "results" not in data:  # an older payload: totals only
        return [["Untagged: " + u] for u in data.get("untagged", [])] + [["Deleted: " + i]
                                                                         for i in data.get("deleted", [])]
    rows = []
    for n in data["results"]:
        if n["ok"]:
            rows += [["Untagged: " + u] for u in n["untagged"]] + [["Deleted: " + i] for i in n["deleted"]]
        else:
            rows.append([tables.daemon_error(n["error"])])
    return rows


def tag(session: Session, patterns: list[str], source: str, target: str, as_json: bool) -> int:
    """Create TARGET as another name for SOURCE on every selected host."""
    validate_image(source)
    validate_reference(target)
    if "@" in target:
        raise UsageError('refusing to create a tag with a digest reference: "{}"'.format(target))
    results = session.run(patterns, "tag", {"source": source, "target": target})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["IMAGE ID", "TARGET"], results,
                                 lambda d: [[tables.short_id(d.get("id")), d.get("target")]]))
    return exit_status(results)


def _ellipsis(text: str, width: int) -> str:
    text = " ".join(text.split())  # docker shows a multi-line RUN on one line
    return text if len(text) <= width else text[:width - 1] + "…"


def history(session: Session, patterns: list[str], image: str, no_trunc: bool, quiet: bool, as_json: bool) -> int:
    """Show the layers (build steps) of an image on every selected host."""
    validate_image(image)
    results = session.run(patterns, "history", {"image": image})

    def layer_id(h):
        if not h.get("id") or h["id"] == "<missing>":
            return "<missing>"
        return h["id"] if no_trunc else tables.short_id(h["id"])

    if as_json:
        output(tables.to_json(results))
    elif quiet:
        text = tables.bare_ids(results, lambda d: [layer_id(h) for h in d["history"]])
        if text:
            output(text)
        host_errors(results)
    else:
        output(tables.host_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], results, lambda d: [
            [layer_id(h), tables.ago(h.get("created")),
             (h.get("created_by") or "") if no_trunc else _ellipsis(h.get("created_by") or "", 45),
             tables.human_size(h.get("size")), h.get("comment") or ""] for h in d["history"]]))
    return exit_status(results)


def confirm(message: str, stdin=None, stream=None) -> bool:
    """docker's prompt: ``message`` then "Are you sure you want to continue? [y/N]"; only y/yes proceeds."""
    stdin = stdin or sys.stdin
    stream = stream or sys.stderr
    stream.write(message + "\nAre you sure you want to continue? [y/N] ")
    stream.flush()
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def image_prune(session: Session, patterns: list[str], all_: bool, force: bool, as_json: bool, stdin=None) -> int:
    """Remove dangling images (-a: every image no container uses) on every selected host."""
    stdin = stdin or sys.stdin
    hosts = session.select(patterns)
    if not force:
        if not stdin.isatty():
            raise UsageError("image prune asks for confirmation and stdin is not a terminal: pass -f/--force")
        if not confirm(PRUNE_WARNING[all_], stdin):
            return 0
    results = session.run_hosts(hosts, "image_prune", {"all": all_})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    rows = tables.host_table(["RESULT"], results, lambda d: [["Untagged: " + u] for u in d.get("untagged", [])]
                             + [["Deleted: " + i] for i in d.get("deleted", [])])
    if any(not r.ok or r.data.get("untagged") or r.data.get("deleted") for r in results):
        output(rows)
    total = sum(r.data.get("reclaimed") or 0 for r in results if r.ok)
    output("Total reclaimed space: {}".format(tables.human_size(total)))
    return exit_status(results)


def image_inspect(session: Session, patterns: list[str], images_: list[str], fmt: str | None = None) -> int:
    """docker's inspect objects as one JSON list, each with the host it came from; errors on stderr (-f: a Go
    template per object)."""
    from fleet.render import formatting

    template = formatting.compile_inspect(fmt)
    if not images_:
        raise UsageError("image inspect needs at least one image")
    for image in images_:
        validate_image(image)
    return inspect_output(session.run(patterns, "image_inspect", {"images": list(images_)}), "images", template)


DF_TYPES = (("images", "Images"), ("containers", "Containers"), ("volumes", "Local Volumes"),
            ("build_cache", "Build Cache"))


def _reclaimable(row: dict) -> str:
    value = row.get("reclaimable")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = row.get("size") or 0
        pct = int(round(100.0 * value / size)) if size else 0
        return "{} ({}%)".format(tables.human_size(value), pct)
    return "" if value is None else str(value)


def system_df(session: Session, patterns: list[str], as_json: bool, verbose: bool = False) -> int:
    """Disk usage of images, containers, local volumes and build cache on every selected host (docker's rows;
    -v: docker's per-object sections)."""
    results = session.run(patterns, "system_df", {"verbose": True} if verbose else {})
    if as_json:
        output(tables.to_json(results))
    elif verbose:
        output(_df_verbose(results))
    else:
        output(tables.host_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], results, lambda d: [
            [label, row.get("total", 0), row.get("active", 0), tables.human_size(row.get("size")), _reclaimable(row)]
            for key, label in DF_TYPES if key in d or key != "volumes"  # an older payload has no volumes row
            for row in [d.get(key) or {}]]))
    return exit_status(results)


def _df_verbose(results) -> str:
    """docker system df -v: the images, containers, local volumes and build cache sections, each host's rows."""
    from fleet.commands.containers import _ellipsis_quoted

    def section(key):
        return lambda d: (d.get("verbose") or {}).get(key) or []

    size = tables.human_size
    parts = ["Images space usage:\n", tables.host_table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"], results,
        lambda d: [[i.get("repository") or "<none>", i.get("tag") or "<none>", tables.short_id(i["id"]),
                    tables.ago(i.get("created")), size(i.get("size")), size(i.get("shared_size")),
                    size(i.get("unique_size")), i.get("containers", 0)] for i in section("images")(d)]),
        "\nContainers space usage:\n", tables.host_table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"], results,
        lambda d: [[tables.short_id(c["id"]), c.get("image"), _ellipsis_quoted(c.get("command") or ""),
                    c.get("local_volumes", 0), size(c.get("size")), tables.ago(c.get("created")), c.get("status"),
                    c.get("names")] for c in section("containers")(d)]),
        "\nLocal Volumes space usage:\n", tables.host_table(
        ["VOLUME NAME", "LINKS", "SIZE"], results,
        lambda d: [[v["name"], v.get("links", 0), size(v.get("size"))] for v in section("volumes")(d)]),
        "\nBuild cache usage: {}\n".format(size(sum((r.data.get("build_cache") or {}).get("size") or 0
                                                     for r in results if r.ok))),
        tables.host_table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"], results,
                          lambda d: [])]
    return "\n".join(parts)


def ps_formatted(session: Session, patterns: list[str], all_: bool, no_trunc: bool, fmt: str) -> int:
    """``fleet ps --format``: containers through the same formatter as images (docker's ps fields)."""
    from fleet.render import formatting

    return list_formatted(session, patterns, "ps", {"all": all_}, fmt, formatting.CONTAINER_FIELDS,
                          lambda host, d: [formatting.container_row(host, c, no_trunc) for c in d["containers"]])
