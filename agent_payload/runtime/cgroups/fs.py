"""The one checked cgroupfs I/O path: every cgroup write, mkdir and rmdir of fleet goes through here."""

import errno as _errno
import os
import time

from ... import errors

def fail(exc, path, data=None):
    """Map an OSError on a cgroup file to an AgentError naming the file."""
    what = "" if data is None else "writing {!r} to ".format(str(data))
    msg = "cgroup: {}{}: {}".format(what, path, exc.strerror or exc)
    if exc.errno in (_errno.EINVAL, _errno.ERANGE, _errno.EOVERFLOW):
        return errors.InvalidArgument(msg, errno=exc.errno)
    if exc.errno == _errno.ENOENT:
        msg += " (controller not available here?)"
    elif exc.errno == _errno.EBUSY:
        msg += " (in use: processes inside, or below current usage)"
    return errors.FailedPrecondition(msg, errno=exc.errno)


def open_dir(directory, is_cgroupfs):
    """An O_DIRECTORY fd on ``directory``, refused unless it lives on a cgroup filesystem."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise fail(exc, directory)
    if not is_cgroupfs(os.fstat(fd).st_dev):
        os.close(fd)
        raise errors.FailedPrecondition("cgroup: refusing to touch {}: not on a cgroup filesystem".format(directory))
    return fd


def _check_name(name):
    if not name or "/" in name or name in (".", ".."):
        raise errors.Internal("cgroup: bad file name {!r}".format(name))


def _write(directory, name, data, is_cgroupfs):
    """THE cgroup writer: write ``data`` to ``directory/name`` after proving both are on cgroupfs.

    The directory is opened first and its st_dev checked against the cgroup mounts of mountinfo; the file is
    opened relative to that fd without following links and checked again, so no symlink or mount swap can
    redirect the write. Errors become InvalidArgument (EINVAL: bad value) or FailedPrecondition, file named.
    """
    _check_name(name)
    path = os.path.join(directory, name)
    dfd = open_dir(directory, is_cgroupfs)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        raise fail(exc, path, data)
    finally:
        os.close(dfd)
    try:
        if not is_cgroupfs(os.fstat(fd).st_dev):
            raise errors.FailedPrecondition("cgroup: refusing to write {}: not on a cgroup filesystem".format(path))
        os.write(fd, str(data).encode())
    except OSError as exc:
        raise fail(exc, path, data)
    finally:
        os.close(fd)


def read(directory, name, default=Ellipsis):
    """Text of ``directory/name``; ``default`` if given and the file is missing."""
    _check_name(name)
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        if default is not Ellipsis:
            return default
        raise errors.FailedPrecondition("cgroup: {} does not exist (controller not available here?)".format(path),
                                        errno=_errno.ENOENT)
    except OSError as exc:
        raise fail(exc, path)


def read_int(directory, name):
    """Integer value of a one-number file; None if missing; "max" -> -1."""
    text = read(directory, name, None)
    if text is None:
        return None
    text = text.strip()
    return -1 if text == "max" else int(text)


def read_keyed(directory, name):
    """``key value`` lines (memory.stat, cpu.stat, memory.events, oom_control) as {key: int}; {} if missing."""
    out = {}
    for line in (read(directory, name, "") or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def mkdir(parent, name, is_cgroupfs):
    """mkdir ``parent/name`` on cgroupfs; True if created, False if it existed."""
    _check_name(name)
    dfd = open_dir(parent, is_cgroupfs)
    try:
        os.mkdir(name, 0o755, dir_fd=dfd)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise fail(exc, os.path.join(parent, name))
    finally:
        os.close(dfd)


def rmdir(parent, name, is_cgroupfs):
    """rmdir ``parent/name`` on cgroupfs; False if it was already gone; EBUSY etc. raise."""
    _check_name(name)
    try:
        dfd = open_dir(parent, is_cgroupfs)
    except errors.FailedPrecondition as exc:
        if exc.errno == _errno.ENOENT:
            return False
        raise
    try:
        os.rmdir(name, dir_fd=dfd)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise fail(exc, os.path.join(parent, name))
    finally:
        os.close(dfd)


def mkdir_p(base, rel, is_cgroupfs):
    """Create each component of ``rel`` under ``base``; returns the absolute dirs this call created, in order."""
    created, cur = [], base
    for part in rel.split("/"):
        if mkdir(cur, part, is_cgroupfs):
            created.append(os.path.join(cur, part))
        cur = os.path.join(cur, part)
    return created


def poll(predicate, timeout, interval=0.01):
    """Call ``predicate`` until truthy or ``timeout`` s passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
