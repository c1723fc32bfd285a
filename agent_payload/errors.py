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


#: Every kind the wire carries, by name (protocol.ERROR_KINDS); an unknown name decodes as Internal.
KINDS = {cls.kind: cls for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Conflict,
                                   Unavailable, Internal)}


def as_agent_error(exc):
    """``exc`` as an AgentError: itself, the kind an OSError's errno implies, else Internal "<type>: <text>"."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, OSError):
        return from_oserror(exc)
    return Internal("{}: {}".format(type(exc).__name__, exc))


def to_wire(exc, trace=None):
    """The wire form of any exception: {"kind", "message", "errno", "details"} (see protocol.result_error).

    An AgentError keeps its own details; an unexpected exception (a bug) carries ``trace()`` when given
    (``traceback.format_exc``: only where reading source files is safe, never inside a container's root).
    """
    err = as_agent_error(exc)
    details = err.details
    if trace is not None and not isinstance(exc, (AgentError, OSError)):
        details = trace()
    return {"kind": err.kind, "message": err.message, "errno": err.errno, "details": details}


def from_wire(error, context=None, checked=False):
    """The AgentError a wire error stands for (the inverse of ``to_wire``); an unknown kind is Internal.

    ``context`` prefixes the message ("exec failed: ..."). ``checked``: the request was validated before the
    work began, so an InvalidArgument from inside (a user missing from the container's /etc/passwd, -w on a
    file) is about this container on this host: FailedPrecondition, never the controller's "bad input,
    nothing changed" (exit 2).
    """
    cls = KINDS.get(error.get("kind"), Internal)
    if checked and cls is InvalidArgument:
        cls = FailedPrecondition
    message = error.get("message")
    if context is not None:
        message = "{}: {}".format(context, message)
    return cls(message, errno=error.get("errno"), details=error.get("details"))
