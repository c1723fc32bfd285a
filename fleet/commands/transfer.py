"""``commit`` (a container's changes -> a new image on each host) and ``cp`` (files between this machine and
containers on many hosts: tars staged under each host's fleet root and moved with SFTP)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile

from fleet.commands.common import Session, exit_status, note, output, raise_if_rejected_input
from fleet.commands.images import validate_reference
from fleet.errors import RemoteError, UsageError
from fleet.render import tables

CP_STDIO = "-"


# ---- commit

def commit(session: Session, patterns: list[str], container: str, repository: str | None, author: str | None,
           message: str | None, changes: list[str], pause: bool, as_json: bool) -> int:
    """Create an image from CONTAINER's changes on every selected host; prints the new image IDs."""
    if repository:
        validate_reference(repository)
        if "@" in repository:
            raise UsageError("refusing to create a tag with a digest reference")
    results = session.run(patterns, "commit", {"container": container, "repository": repository or None,
                                               "author": author or "", "message": message or "",
                                               "changes": list(changes), "pause": pause})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["IMAGE ID", "REPOSITORY"], results,
                                 lambda d: [[d.get("id"), d.get("repository") or "<none>"]]))
    return exit_status(results)


# ---- cp

def split_cp_arg(arg: str) -> tuple[str | None, str]:
    """docker's splitCpArg: (container, path) for ``CONTAINER:PATH``; (None, path) for a local path.

    A path that starts with "/" or "." is local even with a colon in it (``./a:b``), as docker has it.
    """
    if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
        return None, arg
    container, path = arg.split(":", 1)
    return container, path


def _agent(exc) -> RemoteError:
    return RemoteError(getattr(exc, "kind", "Internal"), getattr(exc, "message", str(exc)))


def _local_kind(path: str):
    from agent_payload import archive

    try:
        return archive.kind_of(os.stat(path))
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise UsageError('"{}": {}'.format(path, archive.ERR_NOT_DIR)) from None


def _extract_local(tar_path: str, dest: str, out: dict, contents: bool, keep_owner: bool) -> str:
    """Extract a fetched copy tar at the local ``dest`` by docker's rules; returns where it landed."""
    from agent_payload import archive, errors

    try:
        where, new = archive.plan(out["type"] == "dir", out["base"], contents, dest, _local_kind(dest))
        try:
            fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise errors.NotFound('"{}": {}'.format(where, archive.ERR_NO_DIR))
        try:
            with open(tar_path, "rb") as f:
                archive.extract(f, fd, out["base"], new, owner=None, keep_owner=keep_owner)
        finally:
            os.close(fd)
    except errors.AgentError as exc:
        raise _agent(exc) from None
    return os.path.join(where, new) if new else where


def cp(session: Session, patterns: list[str], src: str, dest: str, archive_: bool, follow_link: bool,
       as_json: bool) -> int:
    """docker cp between this machine and containers on every selected host (see `fleet cp --help`)."""
    s_container, s_path = split_cp_arg(src) if src != CP_STDIO else (None, CP_STDIO)
    d_container, d_path = split_cp_arg(dest) if dest != CP_STDIO else (None, CP_STDIO)
    if s_container is not None and d_container is not None:
        raise UsageError("copying between containers is not supported")
    if s_container is None and d_container is None:
        raise UsageError("must specify at least one container source")
    container = s_container if s_container is not None else d_container
    if not container:
        raise UsageError('invalid container name in "{}"'.format(src if s_container is not None else dest))
    if not (s_path if s_container is not None else d_path):
        raise UsageError("container path must not be empty")
    hosts = session.select(patterns)
    if s_container is not None:
        results = _cp_out(session, hosts, container, s_path, d_path, archive_, follow_link)
    else:
        results = _cp_in(session, hosts, s_path, container, d_path, archive_, follow_link)
    raise_if_rejected_input(results)
    if d_path == CP_STDIO and s_container is not None:
        for r in results:  # the tar went to stdout: errors go to stderr
            if not r.ok:
                note("{}: {}".format(r.host.name, r.error))
        return exit_status(results)
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["COPIED", "SIZE", "TO"], results,
                                 lambda d: [["Successfully copied", tables.human_size(d.get("size") or 0),
                                             d.get("to")]]))
    return exit_status(results)


def _cp_in(session, hosts, src, container, dest, archive_, follow_link):
    from agent_payload import archive, errors
    from fleet.transport import files, invoke

    fd, tar_path = tempfile.mkstemp(prefix="fleet-cp-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            if src == CP_STDIO:
                while True:
                    chunk = sys.stdin.buffer.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                info, base, contents = {"type": "dir", "size": os.path.getsize(tar_path)}, ".", True
            else:
                contents = archive.contents_only(src)
                base = archive.base_name(os.path.abspath(src) if contents or src in (".", "..") else src)
                try:
                    info = archive.write_tree(f, src, base, follow_link=follow_link)
                except FileNotFoundError:
                    raise UsageError("lstat {}: no such file or directory".format(src.rstrip("/"))) from None
                except NotADirectoryError:
                    raise UsageError('"{}": {}'.format(src, archive.ERR_NOT_DIR)) from None
                except errors.AgentError as exc:
                    raise UsageError(exc.message) from None
        args = {"container": container, "path": dest, "base": base, "is_dir": info["type"] == "dir",
                "contents": contents, "archive": archive_}

        async def work(conn, host, payload):
            staging = files.new_staging_path(host)
            try:
                await files.put_file(conn, tar_path, staging)
                data = (await invoke.call(conn, host, payload, "cp_in", dict(args, staging=staging))).data
            finally:
                await files.remove_quietly(conn, staging)
            return dict(data, size=info["size"], to="{}:{}".format(container, data.get("path") or dest))

        return files.run_on_hosts(hosts, work, session.run_options())
    finally:
        os.unlink(tar_path)


@contextlib.asynccontextmanager
async def _fetched(conn, staging: str, prefix: str):
    """A host's staging tar brought to a temp file here (and removed on the host whatever happens): its path,
    deleted on the way out."""
    from fleet.transport import files

    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tar")
    os.close(fd)
    try:
        try:
            await files.get_file(conn, staging, tmp)
        finally:
            await files.remove_quietly(conn, staging)
        yield tmp
    finally:
        os.unlink(tmp)


def _write_out(path: str, stream) -> None:
    """A local file's bytes onto ``stream``'s binary side."""
    with open(path, "rb") as f:
        shutil.copyfileobj(f, stream.buffer, 1 << 20)
    stream.buffer.flush()


def _cp_out(session, hosts, container, src, dest, archive_, follow_link):
    from agent_payload import archive
    from fleet.transport import files, invoke

    if dest == CP_STDIO and len(hosts) > 1:
        raise UsageError("cp to stdout (-) needs exactly one host; {} are selected".format(len(hosts)))
    if dest != CP_STDIO and len(hosts) > 1:
        if _local_kind(dest) == "file":
            raise UsageError('"{}": {} (several hosts copy into DEST/<host>/)'.format(dest, archive.ERR_NOT_DIR))
    contents = archive.contents_only(src)

    async def work(conn, host, payload):
        out = (await invoke.call(conn, host, payload, "cp_out",
                                 {"container": container, "path": src, "follow_link": follow_link})).data
        async with _fetched(conn, out["staging"], "fleet-cp-") as tmp:
            if dest == CP_STDIO:
                _write_out(tmp, sys.stdout)
                return {"size": out.get("size"), "to": CP_STDIO}
            target = dest
            if len(hosts) > 1:
                target = os.path.join(dest, host.name)
                os.makedirs(target, exist_ok=True)
            where = _extract_local(tmp, target, out, contents, archive_)
            return {"size": out.get("size"), "to": where, "type": out.get("type")}

    return files.run_on_hosts(hosts, work, session.run_options())


# ---- export to stdout

TERMINAL_REFUSAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def export_stdout(session: Session, patterns: list[str], container: str, stdout=None) -> int:
    """docker export CONTAINER: the tar of the container's filesystem on stdout (one host; never a terminal)."""
    from fleet.transport import files, invoke

    stdout = stdout or sys.stdout
    if stdout.isatty():
        raise UsageError(TERMINAL_REFUSAL)
    hosts = session.select(patterns)
    if len(hosts) != 1:
        raise UsageError("export to stdout needs exactly one host; {} are selected (pass -o PATH to write the tar "
                         "on each host)".format(len(hosts)))

    async def work(conn, host, payload):
        out = (await invoke.call(conn, host, payload, "export_out", {"container": container})).data
        async with _fetched(conn, out["staging"], "fleet-export-") as tmp:
            _write_out(tmp, stdout)
            return {"size": out.get("size"), "sha256": out.get("sha256")}

    results = files.run_on_hosts(hosts, work, session.run_options())
    raise_if_rejected_input(results)
    for r in results:  # the tar went to stdout: errors go to stderr
        if not r.ok:
            note("{}: {}".format(r.host.name, r.error))
    return exit_status(results)
