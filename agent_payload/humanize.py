"""Docker's human-readable durations and sizes (go-units), shared by the payload and the controller's tables, and
Go's duration syntax ("1m30s") that docker's flags, HEALTHCHECK and compose files use.

Pure and stdlib-only: the controller imports this module too, so both sides print and read the same words.
"""

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 10 ** 3, "\u00b5s": 10 ** 3, "\u03bcs": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9,
                   "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


def parse_duration(text):
    """Go's time.ParseDuration ("10m", "1h30m", "1.5h", "-5s") in nanoseconds; None if ``text`` is not one."""
    sign, body = 1, text
    if body[:1] in "+-" and body:
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body == "0":
        return 0
    pos, total = 0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if not m:
            return None
        total += int(float(m.group(1)) * _DURATION_UNITS[m.group(2)])
        pos = m.end()
    return sign * total if body else None


def human_duration(seconds):
    """Docker's ``units.HumanDuration`` ("Less than a second", "5 seconds", "About a minute", "3 hours", ...)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return "{} seconds".format(s)
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "{} minutes".format(minutes)
    hours = int(round(seconds / 3600.0))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "{} hours".format(hours)
    if hours < 24 * 7 * 2:
        return "{} days".format(hours // 24)
    if hours < 24 * 30 * 2:
        return "{} weeks".format(hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "{} months".format(hours // 24 // 30)
    return "{} years".format(int(seconds // 3600) // 24 // 365)


def human_size(n):
    """Docker's ``units.HumanSize``: decimal units, 3 significant digits (4.26kB, 187MB)."""
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            break
        n /= 1000.0
    return "{:.3g}{}".format(n, unit)


_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12, "p": 10 ** 15}


def from_human_size(text):
    """go-units FromHumanSize (decimal: "10m" = 10,000,000 bytes); InvalidArgument "invalid size: '...'"."""
    from agent_payload import errors

    m = _SIZE.match(text or "")
    if not m:
        raise errors.InvalidArgument("invalid size: '{}'".format(text))
    try:
        number = float(m.group(1))
    except ValueError:
        raise errors.InvalidArgument("invalid size: '{}'".format(text))
    return int(number * _DECIMAL[(m.group(2) or "").lower()])


_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(value, flag):
    """go-units RAMInBytes ("32m", "1.5g", "512MiB", "100 kb"; binary multiples; a bare number is bytes); ints
    pass through.  InvalidArgument 'invalid argument "V" for "FLAG" flag: invalid size: 'V''."""
    from agent_payload import errors

    def bad():
        return errors.InvalidArgument('invalid argument "{}" for "{}" flag: invalid size: \'{}\''.format(
            value, flag, value))

    if isinstance(value, bool):
        raise bad()
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value).strip())
    if not m:
        raise bad()
    try:
        number = float(m.group(1))
    except ValueError:  # "1.2.3" matches go-units' regex but is no number
        raise bad()
    return int(number * _BINARY.get((m.group(2) or "").lower(), 1))
