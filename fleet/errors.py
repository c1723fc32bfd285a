"""The controller's error tree; remote errors arrive as data and are mapped to RemoteError here."""


class FleetError(Exception):
    """Base of every error fleet reports to the user."""

    exit_code = 1


class UsageError(FleetError):
    """Bad input from the user (flags, image reference, port spec, pattern): exit status 2, nothing changed."""

    exit_code = 2


class InventoryError(UsageError):
    """An inventory file is unreadable or invalid; names the file and the offending entry."""

    def __init__(self, file, message, entry=None):
        self.file = str(file)
        self.entry = entry
        where = "{}: {}".format(self.file, entry) if entry else self.file
        super().__init__("inventory {}: {}".format(where, message))


class PatternError(UsageError):
    """A host pattern is malformed or matches no host."""


class TransportError(FleetError):
    """SSH connection, authentication, host-key or timeout failure for one host."""


class PayloadCrash(FleetError):
    """The payload exited without writing a result line; carries the tail of stderr."""


class RemoteError(FleetError):
    """An error the payload reported as data: kind (see protocol.ERROR_KINDS), message, errno, details."""

    def __init__(self, kind, message, errno=None, details=None):
        self.kind = kind
        self.message = message
        self.errno = errno
        self.details = details
        super().__init__(message)  # the kind travels as data (--json); people read the message


def from_wire(error):
    """Map an ``error`` object from a result line to a RemoteError (the one place wire errors become types)."""
    return RemoteError(error.get("kind", "Internal"), error.get("message", "unknown error"),
                       error.get("errno"), error.get("details"))
