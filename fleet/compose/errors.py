"""ComposeError: bad input in a compose file (exit 2), naming the file, the service, the key and the line."""

from __future__ import annotations

from fleet.errors import UsageError


class ComposeError(UsageError):
    """A compose file is unreadable or invalid; raised before any host is touched (exit status 2).

    ``file``, ``service``, ``key`` (a path such as ``ports[0].published``), ``line`` (1-based, when the YAML loader
    knows it) and ``host`` (for values rendered per host) are kept as attributes for --json.
    """

    def __init__(self, file: str, message: str, service: str | None = None, key: str | None = None,
                 line: int | None = None, host: str | None = None) -> None:
        self.file, self.service, self.key, self.line, self.host = str(file), service, key, line, host
        self.reason = message
        where = self.file + (", line {}".format(line) if line else "")
        parts = [where]
        if service:
            parts.append("service {}".format(service))
        if key:
            parts.append(key)
        text = "compose file {}: {}".format(": ".join(parts), message)
        if host:
            text += " (host {})".format(host)
        super().__init__(text)


class ComposeFileNotFound(ComposeError):
    """No compose file: none given and none found (``fleet services``/``history`` may go on without one)."""
