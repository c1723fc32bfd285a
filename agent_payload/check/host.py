"""The host's own checks: free space of ``/`` and of the state root's filesystem, and container log sizes."""

import os

from . import CRITICAL, OK, UNKNOWN, WARNING, perf, row


def human(n):
    """Bytes as docker prints sizes (binary units here: thresholds are MiB/GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("{:.0f}{}" if unit == "B" else "{:.1f}{}").format(n, unit)
        n /= 1024.0


def _pct(x):
    return int(x) if float(x).is_integer() else x


def disk_status(free_pct, warn_pct, crit_pct):
    """CRITICAL below ``crit_pct`` percent free, WARNING below ``warn_pct``, else OK."""
    if free_pct < crit_pct:
        return CRITICAL
    if free_pct < warn_pct:
        return WARNING
    return OK


def disks(paths, thresholds):
    """(rows, metrics) of ``disk:/`` and ``disk:<root>``."""
    rows, metrics = [], []
    for path in ("/", paths.root):
        name = "disk:" + path
        try:
            st = os.statvfs(path)
        except OSError as exc:
            rows.append(row(name, UNKNOWN, "cannot stat the filesystem of {}: {}".format(path, exc.strerror)))
            continue
        size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        free_pct = round(100.0 * free / size, 2) if size else 100.0
        warn, crit = thresholds["disk_warn_pct"], thresholds["disk_crit_pct"]
        status = disk_status(free_pct, warn, crit)
        detail = "{}% free ({} of {})".format(free_pct, human(free), human(size))
        if status != OK:
            detail += ", under {}%".format(_pct(crit if status == CRITICAL else warn))
        used_pct = round(100 - free_pct, 2)  # as check_disk: what is used, so that the thresholds are upper ones
        rows.append(row(name, status, detail, [
            perf("used_pct", used_pct, "%", _pct(100 - warn), _pct(100 - crit), 0, 100),
            perf("free", free, "B", min=0, max=size)]))
        metrics.append({"path": path, "free_bytes": free, "size_bytes": size})
    return rows, metrics


def log_files(log_path):
    """A json log and its rotated files (``.1``, ``.2`` ...) that exist."""
    from agent_payload.runtime.logs import rotated_paths
    return [p for p in rotated_paths(log_path) + [log_path] if os.path.isfile(p)]


def log_size(log_path):
    """(bytes, files) of a container's json log, rotated files included."""
    total, files = 0, 0
    for p in log_files(log_path):
        try:
            total += os.stat(p).st_size
            files += 1
        except FileNotFoundError:
            continue  # rotated away meanwhile
    return total, files


def log_status(size, warn, crit):
    if size >= crit:
        return CRITICAL
    if size >= warn:
        return WARNING
    return OK


def logs(records, thresholds):
    """``log:<name>`` rows of the containers whose json log is over a threshold (others give no row)."""
    warn, crit = thresholds["log_warn_bytes"], thresholds["log_crit_bytes"]
    out = []
    for rec in sorted(records, key=lambda r: r["name"]):
        if not rec.get("log_path"):
            continue
        size, files = log_size(rec["log_path"])
        status = log_status(size, warn, crit)
        if status == OK:
            continue
        out.append(row("log:" + rec["name"], status, "json log {} in {} file{}, over {}".format(
            human(size), files, "" if files == 1 else "s", human(crit if status == CRITICAL else warn)),
            [perf("size", size, "B", warn, crit, 0)]))
    return out
