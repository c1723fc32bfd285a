"""Image commands across hosts: `pull` (with per-host progress) and `images`."""

from __future__ import annotations

from fleet.commands.common import Session, exit_status, note, output
from fleet.errors import UsageError
from fleet.render import tables


def validate_reference(image: str) -> str:
    """Check an image reference locally (exit 2 before any host is touched); return the normalised form."""
    from agent_payload import errors
    from agent_payload.image import reference

    try:
        return reference.parse(image).string()
    except errors.InvalidArgument as exc:
        raise UsageError(exc.message) from None


def progress_printer(quiet: bool):
    """Print one line per host and layer whenever its status changes (not per chunk)."""
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


def pull(session: Session, patterns: list[str], image: str, quiet: bool, as_json: bool) -> int:
    """Pull an image on every selected host."""
    validate_reference(image)
    results = session.run(patterns, "pull", {"image": image}, on_event=progress_printer(quiet or as_json))
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["IMAGE", "DIGEST", "LAYERS", "DOWNLOADED", "ENDPOINT"], results,
                                 lambda d: [[d["image"], d["digest"], d["layers"], d["downloaded"],
                                             d.get("endpoint") or ""]]))
    return exit_status(results)


def images(session: Session, patterns: list[str], all_: bool, quiet: bool, as_json: bool) -> int:
    """List images on every selected host."""
    results = session.run(patterns, "images", {"all": all_})
    if as_json:
        output(tables.to_json(results))
    elif quiet:
        output("\n".join("{} {}".format(r.host.name, tables.short_id(i["id"]))
                         for r in results if r.ok for i in r.data["images"]))
    else:
        output(tables.host_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], results,
                                 lambda d: [[i["repository"], i["tag"], tables.short_id(i["id"]),
                                             tables.ago(i.get("created")), tables.human_size(i["size"])]
                                            for i in d["images"]]))
    if not all(r.ok for r in results) and quiet:
        for r in results:
            if not r.ok:
                note("{}: {}".format(r.host.name, tables.error_text(r.error)))
    return exit_status(results)
