"""THE remote call: one exec that both checks for the payload and runs it, with an upload only when missing.

Hot path (the host's warm payload server is up): no exec at all.  A ``direct-streamlocal`` channel to its unix
socket ``<fleet_root>/payload/<sha256>.sock`` (named by the payload hash: version skew is impossible); a forked
child of the server writes one hello line, then takes the request exactly as ``--rpc`` does on stdin and answers
the same way.  No channel, or one that closes before the hello (nothing ran), falls back to the exec below,
which (re)starts the server for next time; once the request is sent a broken channel is a PayloadCrash, never a
retry.  Host var ``fleet_warm: false`` never tries the socket.

Warm path (payload present): one exec per host.  Cold path::

    exec  P missing: drain stdin, exit 97    (P present: run it; from its unpacked code cache P.d once made)
    sftp  mkdir -p DIR; put P.tmp-<rand>; chmod; rename P.tmp-<rand> -> P   (atomic: never a half file at P)
    exec  same command, request flagged verify_payload (the payload checks its own sha256 once)

All quoting of remote command strings happens here (shlex.quote); user input only ever travels inside the
JSON request on stdin, never in the command line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh

from agent_payload import protocol
from fleet.errors import PayloadCrash, TransportError, from_wire
from fleet.transport.payload import _CHECK, Payload

DEFAULT_ROOT = "/var/lib/fleet"
EventCallback = Callable[[str, dict], None]
#: How long a warm server's child may take to say hello before the call falls back to exec (nothing ran yet).
HELLO_TIMEOUT = 5.0


@dataclass
class Invocation:
    """What one remote call produced: result data, whether an upload happened, and the events seen."""

    data: dict
    uploaded: bool = False


def payload_path(host, payload: Payload) -> str:
    root = host.vars.get("fleet_root", DEFAULT_ROOT)
    return "{}/payload/{}".format(root.rstrip("/"), payload.filename)


def warm_socket_path(host, payload: Payload) -> str:
    """The host's warm payload server socket for this payload: the .pyz path with ``.sock`` for ``.pyz``."""
    return payload_path(host, payload)[:-4] + ".sock"


# Runs the payload from its unpacked code cache (<sha256>.d, made by the zipapp on its first run), skipping
# runpy and zipimport (~8 ms per command); argv[0] stays the .pyz so the payload still knows its identity.
# Root runs this code, so first (payload._CHECK, the reasoning is at payload._MAIN): the payload/ dir and the
# .pyz must be owned by this user and writable by nobody else, or nothing runs (exit 3, a message naming them);
# the cache tree likewise, or the .pyz's own __main__ runs instead, which replaces the cache.
_FROM_CACHE = _CHECK + (
    "sys.argv = sys.argv[1:]\n"
    "p = sys.argv[0]\n"
    "if not (_trusted(os.path.dirname(p), True) and _trusted(p, False)):\n"
    "    sys.stderr.write('fleet payload {} or its directory is not owned by uid {} or is writable by others: '\n"
    "                     'refusing to run it; remove it to have it uploaded again\\n'.format(p, os.geteuid()))\n"
    "    sys.exit(3)\n"
    "if _trusted_tree(p[:-4] + '.d'):\n"
    "    sys.path.insert(0, p[:-4] + '.d')\n"
    "    from agent_payload.cli import main\n"
    "    sys.exit(main())\n"
    "import runpy\n"
    "runpy.run_path(p, run_name='__main__')\n")


def remote_command(host, payload: Payload) -> str:
    """The shell command line for one payload run (every interpolated value quoted).

    -S -E: the payload is stdlib-only, so site-packages and PYTHON* variables are skipped (faster, hermetic).
    When the payload is missing the shell still drains stdin before exiting, so that our write of the request
    never races the channel closing (a BrokenPipeError on a cold host otherwise).
    """
    pyz = payload_path(host, payload)
    return ("if [ -f {p} ]; then exec {py} -S -E -c {code} {p} --rpc; "
            "else cat >/dev/null; exit {missing}; fi").format(
        p=shlex.quote(pyz), py=shlex.quote(host.python), code=shlex.quote(_FROM_CACHE),
        missing=protocol.EXIT_PAYLOAD_MISSING)


async def _mkdir(sftp, path: str, mode: int) -> None:
    """mkdir ``path`` if missing, with exactly ``mode`` (the server applies its umask to mkdir: chmod after)."""
    if await sftp.isdir(path):
        return
    try:
        await sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode & 0o700))
    except asyncssh.SFTPFailure:
        if not await sftp.isdir(path):  # another upload made it meanwhile
            raise
        return
    await sftp.chmod(path, mode)


async def upload(conn, host, payload: Payload) -> None:
    """Put the payload at its content-addressed path: temp name, then an atomic rename.

    Modes are explicit, never the remote umask: a state root this makes is 0700 (the payload's first run sets it
    up and makes it 0710, agent_payload/state/perms.py), the payload/ dir 0755 and the .pyz 0644, both checked by
    every run (_FROM_CACHE).  A <sha>.d left without its .pyz is removed: the payload unpacks its own.
    """
    final = payload_path(host, payload)
    directory = final.rsplit("/", 1)[0]
    root = directory.rsplit("/", 1)[0] or "/"
    tmp = "{}/.{}.tmp-{}".format(directory, payload.filename, secrets.token_hex(4))
    async with conn.start_sftp_client() as sftp:
        parent = root.rsplit("/", 1)[0]
        if parent:
            await sftp.makedirs(parent, exist_ok=True)
        await _mkdir(sftp, root, 0o700)
        await _mkdir(sftp, directory, 0o755)
        await sftp.chmod(directory, 0o755)
        if await sftp.lexists(final[:-4] + ".d"):
            await sftp.rmtree(final[:-4] + ".d", ignore_errors=True)
        # 0600 while it is written (a fd opened on a wider file would outlive the chmod), 0644 once complete
        async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as f:
            await f.write(payload.data)
        await sftp.chmod(tmp, 0o644)
        try:
            await sftp.posix_rename(tmp, final)
        except Exception:
            await sftp.remove(tmp)
            raise


async def read_result(proc, on_event: EventCallback | None) -> dict | None:
    """Read the payload's stdout: events go to ``on_event``; returns the result line (None if there was none)."""
    return await read_lines(proc.stdout, on_event)


async def read_lines(stream, on_event: EventCallback | None) -> dict | None:
    """``read_result`` on a stream of lines: an exec's stdout or a warm server connection."""
    result = None
    async for line in stream:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue  # not ours (a noisy login script); the result line is what counts
        if msg.get("type") == "event" and on_event is not None:
            on_event(msg.get("event"), msg.get("data") or {})
        elif msg.get("type") == "result":
            result = msg
    return result


async def _exec(conn, command: str, request: dict, on_event: EventCallback | None):
    """Run ``command`` with ``request`` on stdin; return (exit_status, result or None, stderr tail)."""
    proc = await conn.create_process(command, encoding="utf-8", errors="replace")
    try:
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.write_eof()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the remote side exited without reading; its exit status says why
        result = await read_result(proc, on_event)
        stderr = await proc.stderr.read()
        completed = await proc.wait()
    finally:
        proc.close()
    return completed.exit_status, result, stderr[-2000:]


def quickack(conn) -> None:
    """Have the kernel acknowledge the next segments from this host at once (Linux TCP_QUICKACK; else a no-op).

    sshd leaves Nagle's algorithm on for channels without a terminal, so a small packet it sends while its
    previous one is unacknowledged waits for our ACK, which Linux delays by up to 40 ms when we have nothing to
    send: the warm server's hello right after the channel confirmation, and the channel's EOF and close right
    after the result line (exec: its exit status).  Measured on the lab: a warm call 92 ms -> 5 ms.  The flag is
    not sticky (the kernel drops back to delayed ACKs), hence a call before each wait.
    """
    sock = conn.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_QUICKACK"):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass  # not TCP (a unix-socket proxy, a test double): nothing to speed up


def _hello_ok(line: str, payload: Payload) -> bool:
    try:
        hello = json.loads(line)
    except ValueError:
        return False
    return (isinstance(hello, dict) and hello.get("type") == "warm" and hello.get("payload") == payload.sha256
            and hello.get("protocol") == protocol.PROTOCOL_VERSION)


async def open_warm(conn, host, payload: Payload):
    """A connection to the host's warm payload server, past its hello: (reader, writer), or None to use exec.

    None when ``fleet_warm`` is false, when the channel cannot be opened (no server, sshd refuses
    streamlocal forwarding) or when it closes, errs, times out or says something else than the expected
    hello: nothing was sent, so nothing ran.
    """
    if not host.warm:
        return None
    try:
        quickack(conn)
        reader, writer = await conn.open_unix_connection(warm_socket_path(host, payload), encoding="utf-8",
                                                         errors="replace")
    except (asyncssh.Error, OSError):
        return None
    try:
        quickack(conn)
        line = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT)
    except (asyncssh.Error, OSError, asyncio.TimeoutError):
        line = ""
    if _hello_ok(line, payload):
        return reader, writer
    writer.close()
    return None


async def _warm(conn, host, payload: Payload, request: dict, on_event: EventCallback | None):
    """Run ``request`` through the warm server: its result line, or None when there is no server (use exec)."""
    opened = await open_warm(conn, host, payload)
    if opened is None:
        return None
    reader, writer = opened
    try:
        writer.write(json.dumps(request) + "\n")
        writer.write_eof()
        quickack(conn)
        result = await read_lines(reader, on_event)
    except (asyncssh.Error, OSError) as exc:
        raise PayloadCrash("warm payload connection broke after the request was sent: {}".format(exc)) from None
    finally:
        writer.close()
    if result is None:
        raise PayloadCrash("warm payload connection closed without a result")
    return result


async def call(conn, host, payload: Payload, op: str, args: dict,
               on_event: EventCallback | None = None) -> Invocation:
    """Run ``op`` on ``host`` over ``conn``; upload the payload first only if the host lacks it."""
    request = protocol.request(op, args, payload.sha256)
    result = await _warm(conn, host, payload, request, on_event)
    if result is not None:
        if not result.get("ok"):
            raise from_wire(result.get("error") or {})
        return Invocation(data=result.get("data") or {})
    command = remote_command(host, payload)
    status, result, stderr = await _exec(conn, command, request, on_event)
    uploaded = False
    if status == protocol.EXIT_PAYLOAD_MISSING and result is None:
        try:
            await upload(conn, host, payload)
        except Exception as exc:  # asyncssh.SFTPError and OSError alike
            raise TransportError("payload upload to {} failed: {}".format(payload_path(host, payload), exc)) from None
        uploaded = True
        request["verify_payload"] = True
        status, result, stderr = await _exec(conn, command, request, on_event)
    if result is None:
        hint = ""
        if status == 127:
            hint = " (is {} installed? set ansible_python_interpreter in the inventory)".format(host.python)
        raise PayloadCrash("payload exited with status {} without a result{}: {}".format(
            status, hint, stderr.strip() or "(no stderr)"))
    if not result.get("ok"):
        raise from_wire(result.get("error") or {})
    return Invocation(data=result.get("data") or {}, uploaded=uploaded)
