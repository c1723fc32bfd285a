"""Errors the payload raises: one base class carrying a fixed error kind (see protocol.ERROR_KINDS)."""

import errno as _errno


class AgentError(Exception):
    """An error with a wire kind, a message for humans, and optionally the errno and details."""

    kind = "Internal"

    def __init__(self, message, errno=None, details=None):
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.details = details


class InvalidArgument(AgentError):
    """Bad input: a reference, a flag value, an unknown option."""

    kind = "InvalidArgument"


class NotFound(AgentError):
    """No such container, image or file."""

    kind = "NotFound"


class AlreadyExists(AgentError):
    """A name or object that must be unique already exists."""

    kind = "AlreadyExists"


class FailedPrecondition(AgentError):
    """The object is in the wrong state, or a kernel feature or permission is missing."""

    kind = "FailedPrecondition"


class Conflict(AgentError):
    """The object is in use or busy."""

    kind = "Conflict"


class Unavailable(AgentError):
    """A registry or the network is down, or an operation timed out."""

    kind = "Unavailable"


class Internal(AgentError):
    """A bug."""

    kind = "Internal"


_ERRNO_KINDS = {
    _errno.ENOENT: NotFound,
    _errno.EEXIST: AlreadyExists,
    _errno.EACCES: FailedPrecondition,
    _errno.EPERM: FailedPrecondition,
    _errno.EBUSY: Conflict,
}


def from_oserror(exc):
    """Map an OSError to the AgentError subclass its errno implies (Internal otherwise)."""
    cls = _ERRNO_KINDS.get(exc.errno, Internal)
    where = " ({})".format(exc.filename) if exc.filename else ""
    return cls("{}{}".format(exc.strerror or exc, where), errno=exc.errno)
