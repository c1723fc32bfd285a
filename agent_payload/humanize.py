"""Docker's human-readable durations and sizes (go-units), shared by the payload and the controller's tables.

Pure and stdlib-only: the controller imports this module too, so both sides print the same words.
"""


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
