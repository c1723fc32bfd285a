"""``save`` (one host's images -> an archive on this machine), ``load`` (an archive -> every selected host,
sending each only the layers it lacks) and ``import`` (a filesystem tar -> a one-layer image on every host).

Bytes move by SFTP: ``save`` asks the host for its plan (configs, manifests, tags, blob paths), fetches each
compressed layer blob once straight from the host's store and writes the archive here (agent_payload/image/
archive_formats.py: every layer.tar checked against its diff_id); ``load`` and ``import`` upload staging files
under each host's fleet root (``<root>/tmp/cp-*.tar``), as ``cp`` does. The payload's ops are ``save``,
``load_probe``, ``load`` and ``import`` (agent_payload/ops/archive.py). ``load`` reads and checks the whole
archive here first (every layer against its diff_id), so a bad archive is exit 2 before any host is touched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from fleet.commands.common import Session, exit_status, note, output, raise_if_rejected_input
from fleet.commands.images import validate_reference
from fleet.errors import RemoteError, UsageError
from fleet.render import tables

TERMINAL_REFUSAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"
FORMATS = {"docker": "docker", "docker-archive": "docker", "oci": "oci", "oci-archive": "oci"}


def _copy(src, dst) -> None:
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        dst.write(chunk)


def _errors_to_stderr(results) -> None:
    for r in results:
        if not r.ok:
            note("{}: {}".format(r.host.name, r.error))


# ---- save

def save(session: Session, patterns: list[str], images: list[str], output_path: str | None, fmt: str,
         stdout=None) -> int:
    """docker save IMAGE... from one host into ``output_path`` (or stdout, never a terminal)."""
    from fleet.transport import files, invoke

    stdout = stdout or sys.stdout
    kind = FORMATS.get(fmt)
    if kind is None:
        raise UsageError('unknown --format "{}": docker-archive or oci-archive'.format(fmt))
    if not images:
        raise UsageError('"fleet save" requires at least 1 argument.')
    if output_path is None and stdout.isatty():
        raise UsageError(TERMINAL_REFUSAL)
    if output_path is not None:
        directory = os.path.dirname(os.path.abspath(output_path))
        if not os.path.isdir(directory):
            raise UsageError('failed to save image: invalid output path: directory "{}" does not exist'.format(
                directory))
    hosts = session.select(patterns)
    if len(hosts) != 1:
        raise UsageError("save needs exactly one host; {} are selected".format(len(hosts)))

    async def work(conn, host, payload):
        from agent_payload import errors
        from agent_payload.image import archive_formats

        plan = (await invoke.call(conn, host, payload, "save", {"images": list(images)})).data
        where = os.path.dirname(os.path.abspath(output_path)) if output_path else None
        blob_dir = tempfile.mkdtemp(prefix="fleet-save-")
        fd, tmp = tempfile.mkstemp(prefix=".fleet-save-", suffix=".tar", dir=where)
        try:
            local, fetched = {}, 0
            for img in plan["images"]:  # the compressed blobs, each once, straight from the host's store
                for lay in img["layers"]:
                    if lay["digest"] not in local:
                        local[lay["digest"]] = os.path.join(blob_dir, str(len(local)))
                        await files.get_file(conn, lay["path"], local[lay["digest"]])
                        fetched += os.path.getsize(local[lay["digest"]])
            with os.fdopen(fd, "w+b") as f:
                try:
                    info = archive_formats.write_plan(f, plan["images"], kind, lambda d: open(local[d], "rb"))
                except errors.AgentError as exc:
                    raise RemoteError(exc.kind, exc.message) from None
                if output_path is None:
                    f.seek(0)
                    _copy(f, stdout.buffer)
                    stdout.buffer.flush()
            if output_path:
                os.chmod(tmp, 0o644 & ~_umask())
                os.replace(tmp, output_path)
        finally:
            shutil.rmtree(blob_dir, ignore_errors=True)
            if os.path.exists(tmp):
                os.unlink(tmp)
        return {"images": [{"id": i["id"], "tags": [fam for _full, fam in i["tags"]]} for i in plan["images"]],
                "size": info["size"], "layers": info["layers"], "bytes_fetched": fetched}

    results = files.run_on_hosts(hosts, work, session.run_options())
    raise_if_rejected_input(results)
    _errors_to_stderr(results)
    return exit_status(results)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- load

def _spool_stdin(what: str) -> str:
    if sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    fd, tmp = tempfile.mkstemp(prefix="fleet-{}-".format(what), suffix=".tar")
    with os.fdopen(fd, "wb") as f:
        _copy(sys.stdin.buffer, f)
    return tmp


def read_archive(path: str, name: str, layer_dir: str):
    """Open and check an archive: (Archive, {diff_id: local file of the layer's bytes}); UsageError if bad."""
    from agent_payload import errors
    from agent_payload.image import archive_formats, reference

    files_by_diff: dict[str, str] = {}

    def sink(diff_id):
        p = os.path.join(layer_dir, diff_id.split(":", 1)[1])
        files_by_diff[diff_id] = p
        return open(p, "wb")

    try:
        f = open(path, "rb")
    except OSError as exc:
        raise UsageError("open {}: {}".format(path, exc.strerror.lower())) from None
    try:
        arch = archive_formats.open_archive(f, name)
        for img in arch.images:
            for t in img.tags:
                r = reference.parse(t)
                if r.digest is not None:
                    raise errors.InvalidArgument("{}: invalid tag {!r}".format(name, t))
        arch.verify(on_layer=sink)
    except errors.InvalidArgument as exc:
        f.close()
        raise UsageError(exc.message) from None
    return arch, files_by_diff, f


def load(session: Session, patterns: list[str], input_path: str | None, quiet: bool, as_json: bool) -> int:
    """docker load on every selected host: probe which layers each holds, send the rest, load."""
    from fleet.transport import files, invoke

    hosts = session.select(patterns)
    spooled = None
    layer_dir = tempfile.mkdtemp(prefix="fleet-load-")
    try:
        if input_path is None:
            spooled = _spool_stdin("load")
        path = spooled or input_path
        arch, layer_files, f = read_archive(path, input_path or "stdin", layer_dir)
        f.close()
        diff_ids = []
        for img in arch.images:
            for d in img.diff_ids:
                if d not in diff_ids:
                    diff_ids.append(d)

        async def work(conn, host, payload):
            present = set((await invoke.call(conn, host, payload, "load_probe", {"diff_ids": diff_ids}))
                          .data.get("present") or [])
            staged, sent = {}, 0
            try:
                for d in diff_ids:
                    if d not in present:
                        staged[d] = files.new_staging_path(host)
                        await files.put_file(conn, layer_files[d], staged[d])
                        sent += os.path.getsize(layer_files[d])
                images = [{"config": img.config_bytes.decode(), "tags": list(img.tags),
                           "layers": [{"diff_id": d, "staging": staged.get(d)} for d in img.diff_ids]}
                          for img in arch.images]
                data = (await invoke.call(conn, host, payload, "load", {"images": images})).data
            except BaseException:
                for p in staged.values():
                    await files.remove_quietly(conn, p)
                raise
            return dict(data, bytes_sent=sent, layers_sent=len(staged))

        results = files.run_on_hosts(hosts, work, session.run_options())
    finally:
        shutil.rmtree(layer_dir, ignore_errors=True)
        if spooled:
            os.unlink(spooled)
    raise_if_rejected_input(results)
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)

    def lines(data):
        out = []
        for img in data.get("loaded") or []:
            for r in img.get("renamed") or []:
                out.append("The image {} already exists, renaming the old one with ID {} to empty string".format(
                    r["tag"], r["old"]))
            out.extend(["Loaded image: " + t for t in img.get("tags") or []] or ["Loaded image ID: " + img["id"]])
        return out

    if len(results) == 1 and results[0].ok:
        output("\n".join(lines(results[0].data)))  # -q: docker drops the progress only (fleet shows none)
        return 0
    output(tables.host_table(["LOADED", "SENT"], results, lambda d: [
        [line, tables.human_size(d.get("bytes_sent") or 0) if i == 0 else ""]
        for i, line in enumerate(lines(d))]))
    return exit_status(results)


# ---- import

def _is_url(source: str) -> bool:
    return source.startswith("http://") or source.startswith("https://")


def import_(session: Session, patterns: list[str], source: str, repository: str | None, changes: list[str],
            message: str | None, as_json: bool) -> int:
    """docker import FILE|URL|- [REPOSITORY[:TAG]] on every selected host; prints the new image IDs."""
    from fleet.transport import files, invoke

    if repository:
        validate_reference(repository)
        if "@" in repository:
            raise UsageError("refusing to create a tag with a digest reference")
    hosts = session.select(patterns)
    args = {"repository": repository or None, "message": message or "", "changes": list(changes)}
    spooled = None
    try:
        if source == "-":
            spooled = _spool_stdin("import")
        elif not _is_url(source) and not os.path.isfile(source):
            raise UsageError("open {}: no such file or directory".format(source))
        local = spooled or (None if _is_url(source) else source)

        async def work(conn, host, payload):
            if local is None:
                return (await invoke.call(conn, host, payload, "import", dict(args, url=source))).data
            staging = files.new_staging_path(host)
            try:
                await files.put_file(conn, local, staging)
                data = (await invoke.call(conn, host, payload, "import", dict(args, staging=staging))).data
            finally:
                await files.remove_quietly(conn, staging)
            return dict(data, bytes_sent=os.path.getsize(local))

        results = files.run_on_hosts(hosts, work, session.run_options())
    finally:
        if spooled:
            os.unlink(spooled)
    raise_if_rejected_input(results)
    if as_json:
        output(tables.to_json(results))
    elif len(results) == 1 and results[0].ok:
        output(results[0].data["id"])
    else:
        output(tables.host_table(["IMAGE ID"], results, lambda d: [[d.get("id")]]))
    return exit_status(results)
