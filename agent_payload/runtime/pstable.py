"""``docker top CONTAINER [ps OPTIONS]`` without a ``ps`` binary: ps's columns rendered from /proc.

Docker runs the host's ``ps`` with the options given (default ``-ef``) and keeps the rows whose PID belongs to
the container.  The payload reads /proc itself for the container's PIDs and renders what procps would print
for the common options: ``-ef``/``-f`` (UID PID PPID C STIME TTY TIME CMD), ``aux``/``u`` (USER PID %CPU %MEM
VSZ RSS TTY STAT START TIME COMMAND), BSD ``ax`` (PID TTY STAT TIME COMMAND), ``-e`` (PID TTY TIME CMD) and
``-o``/``o``/``--format`` with procps keywords (``key=HEADER`` renames a column).  Selection options (-e -A -a
x a ...) select nothing more: the container's processes are the rows, as with docker.  Anything else is
InvalidArgument with ps's wording; a format without a PID column is docker's "Couldn't find PID field".
"""

import os
import time

from .. import errors

FULL = ["uid_name", "pid", "ppid", "c", "stime", "tname", "time", "cmd"]  # -f: ps's UID column shows names
USER_FORMAT = ["user", "pid", "pcpu", "pmem", "vsz", "rss", "tname", "stat", "start_time", "time", "command"]
BSD_DEFAULT = ["pid", "tname", "stat", "time", "command"]
SYSV_DEFAULT = ["pid", "tname", "time", "ucmd"]  # ps -e: the command name alone

#: procps keyword -> its header
HEADERS = {
    "pid": "PID", "tgid": "TGID", "ppid": "PPID", "pgid": "PGID", "pgrp": "PGRP", "sid": "SID", "sess": "SESS",
    "user": "USER", "euser": "EUSER", "uname": "USER", "ruser": "RUSER", "uid": "UID", "euid": "EUID",
    "ruid": "RUID", "group": "GROUP", "egroup": "EGROUP", "gid": "GID", "egid": "EGID", "uid_name": "UID",
    "comm": "COMMAND", "ucmd": "CMD", "ucomm": "COMMAND", "fname": "COMMAND",
    "args": "COMMAND", "command": "COMMAND", "cmd": "CMD",
    "etime": "ELAPSED", "etimes": "ELAPSED", "time": "TIME", "cputime": "TIME", "times": "TIME",
    "stat": "STAT", "s": "S", "state": "S", "rss": "RSS", "rssize": "RSS", "rsz": "RSZ", "vsz": "VSZ",
    "vsize": "VSZ", "pcpu": "%CPU", "%cpu": "%CPU", "pmem": "%MEM", "%mem": "%MEM", "nlwp": "NLWP",
    "thcount": "THCNT", "tty": "TT", "tname": "TTY", "tt": "TT", "stime": "STIME", "start_time": "START",
    "start": "STARTED", "c": "C", "ni": "NI", "nice": "NI", "psr": "PSR",
}
_SELECT_SYSV = set("eAaNdTxHwc")  # selection, output width, hierarchy: no change to a container's rows
_SELECT_BSD = set("axTrwecfhHg")
_SYSV_WITH_ARG = set("oO")
_BSD_WITH_ARG = set("oO")


def parse(tokens):
    """ps options -> [(keyword, header)]; InvalidArgument for what ps would refuse or docker could not use."""
    words = []
    for t in tokens or []:
        if not isinstance(t, str):
            raise errors.InvalidArgument("ps options must be strings")
        words.extend(t.split())
    custom, full, user_fmt, bsd, i = [], False, False, False, 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name in ("--format", "--formats"):
                if not eq:
                    if i >= len(words):
                        raise errors.InvalidArgument("ps: error: list of keywords must follow " + name)
                    value, i = words[i], i + 1
                custom.extend(_keywords(value))
            elif name not in ("--cols", "--columns", "--width", "--forest"):
                raise errors.InvalidArgument("ps: error: unknown gnu long option: {}".format(word))
            elif name != "--forest" and not eq:
                i += 1  # the width's value
            continue
        sysv = word.startswith("-")
        letters = word[1:] if sysv else word
        if not letters:
            raise errors.InvalidArgument("ps: error: unsupported option: {}".format(word))
        bsd = bsd or not sysv
        for j, ch in enumerate(letters):
            if ch in (_SYSV_WITH_ARG if sysv else _BSD_WITH_ARG):
                value = letters[j + 1:]
                if not value:
                    if i >= len(words):
                        raise errors.InvalidArgument("ps: error: list of keywords must follow -{}".format(ch))
                    value, i = words[i], i + 1
                custom.extend(_keywords(value))
                break
            if sysv and ch in ("f", "F"):
                full = True
            elif not sysv and ch == "u":
                user_fmt = True
            elif ch not in (_SELECT_SYSV if sysv else _SELECT_BSD):
                raise errors.InvalidArgument("ps: error: unsupported {} option: {}".format(
                    "SysV" if sysv else "BSD", ("-" if sysv else "") + ch))
    if custom:
        columns = custom
    elif user_fmt:
        columns = [(k, HEADERS[k]) for k in USER_FORMAT]
    elif full or not words:
        columns = [(k, HEADERS[k]) for k in FULL]
    else:
        columns = [(k, HEADERS[k]) for k in (BSD_DEFAULT if bsd else SYSV_DEFAULT)]
    if not any(k == "pid" for k, _ in columns):
        raise errors.InvalidArgument("Couldn't find PID field in ps output")
    return columns


def _keywords(value):
    """``pid,comm`` or ``pid=ID`` (a header after ``=`` takes the rest of the list, as in procps)."""
    out = []
    rest = value
    while rest:
        part, _, rest = rest.partition(",")
        key, eq, header = part.partition("=")
        if eq:
            header = header + ("," + rest if rest else "")
            rest = ""
        key = key.strip().lower()
        if not key:
            continue
        if key not in HEADERS:
            raise errors.InvalidArgument('ps: error: unknown user-defined format specifier "{}"'.format(key))
        out.append((key, header if eq else HEADERS[key]))
    if not out:
        raise errors.InvalidArgument("ps: error: improper list")
    return out


class Host:
    """What every row needs from the host, read once: user and group names, clock ticks, boot time, memory."""

    def __init__(self):
        self.users = _names("/etc/passwd")
        self.groups = _names("/etc/group")
        self.hz = os.sysconf("SC_CLK_TCK")
        self.page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        self.boot = _boot_time()
        self.now = time.time()
        self.mem_kb = _mem_total()


def read(pid):
    """One process's /proc facts as a dict (None if it exited meanwhile)."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            data = f.read().decode("utf-8", "replace")
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            cmdline = f.read()
        with open("/proc/{}/status".format(pid), "rb") as f:
            status = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    ids = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = [int(v) for v in value.split()]
        elif key == "VmLck":
            ids["locked"] = value.split()[0] != "0"
    return {"pid": pid, "comm": data[data.find("(") + 1:data.rfind(")")], "state": fields[0],
            "ppid": int(fields[1]), "pgrp": int(fields[2]), "sid": int(fields[3]), "tty_nr": int(fields[4]),
            "tpgid": int(fields[5]), "utime": int(fields[11]), "stime": int(fields[12]),
            "nice": int(fields[16]), "nlwp": int(fields[17]),
            "start": int(fields[19]), "vsize": int(fields[20]), "rss": int(fields[21]),
            "processor": int(fields[36]) if len(fields) > 36 else 0,
            "args": [a.decode("utf-8", "replace") for a in cmdline.split(b"\0")[:-1]] if cmdline else [],
            "uid": ids.get("Uid", [0, 0])[:2], "gid": ids.get("Gid", [0, 0])[:2], "locked": ids.get("locked", False)}


def render(key, p, host):
    """The text procps prints for keyword ``key`` of process ``p`` (from ``read``)."""
    cpu = (p["utime"] + p["stime"]) / host.hz
    started = host.boot + p["start"] / host.hz
    elapsed = max(host.now - started, 0.0)
    ruid, euid = p["uid"]
    rgid, egid = p["gid"]
    if key in ("pid", "tgid"):
        return str(p["pid"])
    simple = {"ppid": p["ppid"], "pgid": p["pgrp"], "pgrp": p["pgrp"], "sid": p["sid"], "sess": p["sid"],
              "uid": euid, "euid": euid, "ruid": ruid, "gid": egid, "egid": egid, "nlwp": p["nlwp"],
              "thcount": p["nlwp"], "ni": p["nice"], "nice": p["nice"], "psr": p["processor"],
              "rss": p["rss"] * host.page_kb,
              "rssize": p["rss"] * host.page_kb, "rsz": p["rss"] * host.page_kb, "vsz": p["vsize"] // 1024,
              "vsize": p["vsize"] // 1024, "etimes": int(elapsed)}
    if key in simple:
        return str(simple[key])
    if key in ("user", "euser", "uname", "uid_name"):
        return host.users.get(euid, str(euid))
    if key == "ruser":
        return host.users.get(ruid, str(ruid))
    if key in ("group", "egroup"):
        return host.groups.get(egid, str(egid))
    if key in ("comm", "ucmd", "ucomm"):
        return p["comm"]
    if key == "fname":
        return p["comm"][:8]
    if key in ("args", "command", "cmd"):
        return " ".join(p["args"]) if p["args"] else "[{}]".format(p["comm"])
    if key == "etime":
        return _elapsed(elapsed)
    if key in ("time", "cputime"):
        return _clock(cpu)
    if key == "times":
        return str(int(cpu))
    if key in ("s", "state"):
        return p["state"]
    if key == "stat":
        return _stat(p)
    if key in ("pcpu", "%cpu"):
        return "{:.1f}".format(min(cpu * 100.0 / elapsed, 999.9) if elapsed > 0 else 0.0)
    if key in ("pmem", "%mem"):
        return "{:.1f}".format(p["rss"] * host.page_kb * 100.0 / host.mem_kb if host.mem_kb else 0.0)
    if key in ("tty", "tt", "tname"):
        return tty_name(p["tty_nr"])
    if key == "c":
        return str(min(int(cpu * 100 / elapsed), 99) if elapsed > 0 else 0)
    if key in ("stime", "start_time"):
        return _start(started, host.now)
    if key == "start":
        return time.strftime("%H:%M:%S", time.localtime(started)) if host.now - started < 86400 else \
            time.strftime("%b %d", time.localtime(started))
    raise errors.InvalidArgument('ps: error: unknown user-defined format specifier "{}"'.format(key))


def table(pids, ps_args=None):
    """``{"titles", "processes"}`` for ``pids`` in the format the ps options ask for."""
    columns = parse(ps_args)
    host = Host()
    rows = []
    for pid in pids:
        p = read(pid)
        if p is not None:
            rows.append([render(key, p, host) for key, _ in columns])
    return {"titles": [header for _, header in columns], "processes": rows}


# ---------------------------------------------------------------- formats and host facts

def tty_name(tty_nr):
    """The terminal's name as ps shows it (``pts/0``, ``tty1``, ``ttyS0``), ``?`` without one."""
    if tty_nr == 0:
        return "?"
    major, minor = (tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)
    if 136 <= major <= 143:
        return "pts/{}".format((major - 136) * 256 + minor)
    if major == 4:
        return "tty{}".format(minor) if minor < 64 else "ttyS{}".format(minor - 64)
    return "?"


def _clock(seconds):
    """procps TIME: [DD-]HH:MM:SS."""
    days, rest = divmod(int(seconds), 86400)
    text = "{:02d}:{:02d}:{:02d}".format(rest // 3600, rest % 3600 // 60, rest % 60)
    return "{}-{}".format(days, text) if days else text


def _elapsed(seconds):
    """procps ELAPSED: [[DD-]HH:]MM:SS."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    text = "{:02d}:{:02d}".format(rest // 60, rest % 60)
    if days:
        return "{}-{:02d}:{}".format(days, hours, text)
    return "{:02d}:{}".format(hours, text) if hours else text


def _start(started, now):
    """procps STIME/START: HH:MM within a day, else MonDD within a year, else the year."""
    if now - started < 86400:
        return time.strftime("%H:%M", time.localtime(started))
    if now - started < 365 * 86400:
        return time.strftime("%b%d", time.localtime(started))
    return time.strftime("%Y", time.localtime(started))


def _stat(p):
    """procps STAT: the state and its flags (< high priority, N low, L locked pages, s session leader,
    l threaded, + foreground process group)."""
    out = p["state"]
    if p["nice"] < 0:
        out += "<"
    elif p["nice"] > 0:
        out += "N"
    if p["locked"]:
        out += "L"
    if p["sid"] == p["pid"]:
        out += "s"
    if p["nlwp"] > 1:
        out += "l"
    if p["tpgid"] != -1 and p["tpgid"] == p["pgrp"]:
        out += "+"
    return out


def _names(path):
    names = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    names.setdefault(int(fields[2]), fields[0])
    except OSError:
        pass
    return names


def _boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def _mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
