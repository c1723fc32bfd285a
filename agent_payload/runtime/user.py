"""``--user``: resolve ``name|uid[:group|gid]`` against the container's own /etc/passwd and /etc/group as runc does."""

import collections
import errno
import os
import re
import stat

from .. import errors

MAX_ID = 2 ** 31 - 1  # moby/sys/user maxID
MAX_FILE = 16 * 1024 * 1024  # a passwd file larger than this is hostile, not big
USER_RE = re.compile(r"^[^:\s\x00]+(:[^:\s\x00]+)?$")
ERR_NO_PASSWD = "no matching entries in passwd file"
ERR_NO_GROUP = "no matching entries in group file"

#: What the process becomes: ``gid`` first in the group list, ``sgids`` from /etc/group membership.
ExecUser = collections.namedtuple("ExecUser", "uid gid sgids home")
PasswdEntry = collections.namedtuple("PasswdEntry", "name uid gid home")
GroupEntry = collections.namedtuple("GroupEntry", "name gid members")


def check_spec(value):
    """Validate a ``--user`` value before anything happens (syntax and numeric ranges only)."""
    if value is None or value == "":
        return None  # Docker: an empty --user is the image's default (root)
    if not isinstance(value, str) or not USER_RE.match(value):
        raise errors.InvalidArgument("invalid user {!r}: want name|uid[:group|gid]".format(value))
    for part in value.split(":"):
        if part.isdigit() and int(part) > MAX_ID:
            raise errors.InvalidArgument("invalid user {!r}: uids and gids must be in range 0-{}".format(
                value, MAX_ID))
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        return 0  # as moby's parseLine: a garbled number reads as 0


def parse_passwd(text):
    """``name:pw:uid:gid:gecos:home:shell`` lines (blank lines skipped, missing fields empty)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        f = (line.split(":") + [""] * 7)[:7]
        out.append(PasswdEntry(f[0], _int(f[2]), _int(f[3]), f[5]))
    return out


def parse_group(text):
    """``name:pw:gid:member,member`` lines."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        f = (line.split(":") + [""] * 4)[:4]
        out.append(GroupEntry(f[0], _int(f[2]), [m for m in f[3].split(",") if m]))
    return out


def resolve(spec, passwd_text, group_text):
    """moby/sys/user GetExecUser with runc's defaults (uid 0, gid 0, HOME "/").

    ``passwd_text``/``group_text`` are None when the file does not exist. A name that matches no
    passwd entry is an error (Docker's words); a numeric uid without an entry is allowed.
    """
    user_arg, _, group_arg = (spec or "").partition(":")
    uid, gid, sgids, home = 0, 0, [], "/"
    users = parse_passwd(passwd_text) if passwd_text is not None else []
    if user_arg == "":
        matches = [u for u in users if u.uid == uid]
    elif user_arg.isdigit():
        matches = [u for u in users if u.uid == int(user_arg)]
    else:
        matches = [u for u in users if u.name == user_arg]
    matched_name = ""
    if matches:
        matched_name, uid, gid, home = matches[0].name, matches[0].uid, matches[0].gid, matches[0].home
    elif user_arg:
        if not user_arg.isdigit():
            raise errors.InvalidArgument("unable to find user {}: {}".format(user_arg, ERR_NO_PASSWD))
        uid = _ranged(int(user_arg))
    if group_arg or matched_name:
        groups = parse_group(group_text) if group_text is not None else []
        if group_arg:
            if group_arg.isdigit():
                found = [g for g in groups if g.gid == int(group_arg)]
            else:
                found = [g for g in groups if g.name == group_arg]
            if found:
                gid = found[0].gid
            elif not group_arg.isdigit():
                raise errors.InvalidArgument("unable to find group {}: {}".format(group_arg, ERR_NO_GROUP))
            else:
                gid = _ranged(int(group_arg))
        else:
            sgids = [g.gid for g in groups if matched_name in g.members]
    return ExecUser(uid, gid, sgids, home)


def _ranged(value):
    if value > MAX_ID:
        raise errors.InvalidArgument("uids and gids must be in range 0-{}".format(MAX_ID))
    return value


def read_file(path):
    """Text of a small regular file, or None if it does not exist.

    Called after pivot_root, so every symlink resolves inside the container's own root; the file is
    opened non-blocking and must be a regular file (a FIFO or /dev/zero planted by an image must
    neither hang nor exhaust the init).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise errors.InvalidArgument("cannot read {} in the image: {}".format(path, os.strerror(exc.errno)),
                                     errno=exc.errno)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise errors.InvalidArgument("{} in the image is not a regular file".format(path))
        if st.st_size > MAX_FILE:
            raise errors.InvalidArgument("{} in the image is too large ({} bytes)".format(path, st.st_size))
        chunks, total = [], 0
        while total <= MAX_FILE:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)[:MAX_FILE].decode("utf-8", "replace")
    finally:
        os.close(fd)


def lookup(spec, group_add=()):
    """Resolve ``spec`` against /etc/passwd and /etc/group of the current root (the container's, post-pivot);
    ``group_add`` (--group-add: names or GIDs) joins the supplementary groups."""
    group_text = read_file("/etc/group")
    who = resolve(spec, read_file("/etc/passwd"), group_text)
    if not group_add:
        return who
    return who._replace(sgids=add_groups(who.sgids, group_add, group_text))


def add_groups(sgids, names, group_text):
    """runc's GetAdditionalGroups: each name is found in /etc/group, a number need not be; docker's error else."""
    groups = parse_group(group_text) if group_text is not None else []
    out = list(sgids)
    for name in names:
        found = [g.gid for g in groups if g.name == name or (name.isdigit() and g.gid == int(name))]
        if found:
            gid = found[0]
        elif name.isdigit():
            gid = _ranged(int(name))
        else:
            raise errors.InvalidArgument("Unable to find group {}: {}".format(name, ERR_NO_GROUP))
        if gid not in out:
            out.append(gid)
    return out


def switch(user):
    """setgroups, setgid, setuid to ``user`` (Docker's AdditionalGids = primary gid, then the memberships)."""
    os.setgroups([user.gid] + list(user.sgids))
    os.setgid(user.gid)
    os.setuid(user.uid)


def chown_stdio(user):
    """Give the container user its stdio (runc fixStdioPermissions) so reopening /dev/stdout works; skip /dev/null."""
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
            continue
        if st.st_uid == user.uid:
            continue
        try:
            os.fchown(fd, user.uid, user.gid)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise
