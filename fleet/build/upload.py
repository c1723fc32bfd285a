"""Sending a build context to a host: only when the host lacks it (by sha256), over SFTP, through the payload's
``build_context`` op (which checks the digest and renames the upload into ``<root>/build/contexts/``).

The same mechanism as ``fleet cp``: a staging file under the host's fleet root (fleet/transport/files.py), removed
whatever happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet.build.context import BuildContext


async def ensure_context(conn, host, payload, ctx: BuildContext) -> int:
    """Make ``ctx`` present on ``host``; the number of bytes sent (0 when the host had it already)."""
    from fleet.transport import files, invoke

    have = (await invoke.call(conn, host, payload, "build_context", {"sha256": ctx.sha256})).data
    if have.get("present"):
        return 0
    staging = files.new_staging_path(host)
    try:
        await files.put_file(conn, ctx.tar_path, staging)
        kept = (await invoke.call(conn, host, payload, "build_context",
                                  {"sha256": ctx.sha256, "staging": staging})).data
    finally:
        await files.remove_quietly(conn, staging)
    if not kept.get("present"):
        from fleet.errors import RemoteError
        raise RemoteError("Internal", "the build context {} was uploaded but not kept".format(ctx.sha256[:12]))
    return ctx.size
