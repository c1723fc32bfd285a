"""A container's output on this machine, byte for byte: raw for one host, ``host | `` lines for several.

Two kinds of events carry it (agent_payload/protocol.py): ``output`` (raw chunks of the interactive ops) and
``log`` (one line each: exec, attached run, start -a, logs; ``protocol.log_bytes`` gives its exact bytes).
Everything goes to the binary layer of stdout or stderr (stderr stays stderr), never through a text decode.

raw: the bytes as they come (``logs -t`` puts the time and a space before each line, as docker).  Prefixed:
every line gets its host's prefix, the line's bytes unchanged, a newline added only to a last line that had none.
``raw_wanted`` is docker's rule for scripts: one host selected and stdout not a terminal (or an attach) is raw,
so ``fleet exec -H db1 pg pg_dump > dump.sql`` works; --prefix/--no-prefix force either way.
"""

from __future__ import annotations

import sys

from agent_payload import protocol


def raw_wanted(hosts, prefix: bool | None, attached: bool = False, stdout=None) -> bool:
    """Whether output goes raw: ``prefix`` True/False (--prefix/--no-prefix) decides; else raw for exactly one
    host when stdout is not a terminal, or always for one host when ``attached`` (docker attach's bytes)."""
    if prefix is not None:
        return not prefix
    if len(hosts) != 1:
        return False
    if attached:
        return True
    stdout = stdout or sys.stdout
    try:
        return not stdout.isatty()
    except (AttributeError, ValueError):
        return True


def write(stream: str, data: bytes) -> None:
    """``data`` to stdout or stderr (``stream``), through the binary layer, flushed (text written before first)."""
    out = sys.stderr if stream == "stderr" else sys.stdout
    buf = getattr(out, "buffer", None)
    out.flush()
    if buf is None:  # a text-only stand-in (some test harnesses): the best it can take
        out.write(data.decode("utf-8", "replace"))
        out.flush()
        return
    buf.write(data)
    buf.flush()


class Printer:
    """on_event for ``output`` and ``log`` events of many hosts (``events``: the kinds it prints).

    ``prefixes``: {"stdout": fn(name) -> str, "stderr": ...} (render/colours.HostPrefix on a terminal); default
    plain ``name | `` padded to the longest host name.  Call ``flush`` at the end (partial prefixed lines).
    """

    def __init__(self, hosts, raw: bool, timestamps: bool = False, prefixes=None, events=("output", "log")):
        width = max((len(h.name) for h in hosts), default=0)
        self.raw, self.timestamps, self.events, self.buffers = raw, timestamps, tuple(events), {}

        def plain(name):
            return "{} | ".format(name.ljust(width))
        self.prefixes = prefixes or {"stdout": plain, "stderr": plain}

    def __call__(self, host, name, data):
        if name not in self.events:
            return
        if name == "output":
            stream, chunk = protocol.decode_output(data)
            if self.raw:
                write(stream, chunk)
                return
            key = (host.name, stream)
            *lines, self.buffers[key] = (self.buffers.get(key, b"") + chunk).split(b"\n")
            if lines:
                write(stream, b"".join(self._prefix(host.name, stream) + line + b"\n" for line in lines))
            return
        stream = "stderr" if data.get("stream") == "stderr" else "stdout"
        line = protocol.log_bytes(data)
        if self.timestamps:
            line = (data.get("time") or "").encode("utf-8") + b" " + line
        if self.raw:
            write(stream, line)
            return
        write(stream, self._prefix(host.name, stream) + line + (b"" if line.endswith(b"\n") else b"\n"))

    def _prefix(self, name: str, stream: str) -> bytes:
        return self.prefixes[stream](name).encode("utf-8")

    def flush(self):
        """Print what is left of unterminated prefixed lines (each with a newline)."""
        for (name, stream), rest in self.buffers.items():
            if rest:
                write(stream, self._prefix(name, stream) + rest + b"\n")
        self.buffers.clear()
