"""Docker's time stamps: RFC 3339 UTC with nanoseconds, formatted and parsed without datetime (a leaf module)."""

import re
import time


def format_ns(ns=None):
    """RFC 3339 UTC with nanoseconds, as Docker's json-file log: ``2026-11-28T01:02:03.123456789Z``."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1000000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".{:09d}Z".format(frac)


_STAMP_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{0,9}))?Z?$")


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; calendar.timegm's job
    without importing calendar, datetime and locale on every command)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_ns(text):
    """Inverse of ``format_ns`` (accepts 0-9 fractional digits); returns epoch nanoseconds."""
    m = _STAMP_RE.match(text)
    if not m:
        raise ValueError("not an RFC 3339 UTC time stamp: {!r}".format(text))
    y, mo, d, h, mi, s = (int(v) for v in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError("not an RFC 3339 UTC time stamp: {!r}".format(text))
    sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    return sec * 1000000000 + int(((m.group(7) or "") + "000000000")[:9])
