"""HEALTHCHECK: docker's health checks (moby ``daemon/health.go``), run by a monitor process the shim forks per run.

Config (config.json ``healthcheck``, docker's shape, durations in ns): {"Test": ["CMD", arg...] | ["CMD-SHELL",
cmd] | ["NONE"], "Interval", "Timeout", "StartPeriod", "Retries"}; the image's HEALTHCHECK fills what the
``--health-*`` flags leave unset (docker's merge); ``--no-healthcheck`` is ["NONE"].

Rules kept from docker: first probe one interval after the start; defaults 30 s interval, 30 s timeout, 3
retries, no start period; a probe is ``exec`` inside the container (CMD-SHELL through ``/bin/sh -c``); exit 0 is
healthy, anything else a failure; failures inside the start period do not count while the container is still
"starting"; ``FailingStreak`` >= retries makes it "unhealthy", one success "healthy"; a probe that outlives the
timeout is killed and recorded as exit -1 "Health check exceeded timeout (30s)"; output (stdout and stderr)
kept to 4096 bytes; the last 5 results in ``Log``.  State.Health = {"Status", "FailingStreak", "Log": [{"Start",
"End", "ExitCode", "Output"}]} lives in state.json, written under the container lock by the monitor.

The monitor is a child of the shim (never a thread: the shim forks), started when a run is up and killed when
it ends; each probe runs in its own child (``exec.execute``) so that a timeout can kill the probe's processes.
"""

import json
import os
import select
import signal
import time
import traceback

from .. import errors, events
from . import process, records, resolver
from .policy import MIN_DURATION, check_healthcheck as check  # noqa: F401  (health.check: callers' spelling)

DEFAULT_INTERVAL = 30 * 10 ** 9
DEFAULT_TIMEOUT = 30 * 10 ** 9
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096
MAX_LOG = 5
STATUSES = ("starting", "healthy", "unhealthy", "none")
#: the keywords of ``from_flags``: the ``run``/``create`` request fields of docker's health flags
FLAG_ARGS = ("health_cmd", "health_interval", "health_timeout", "health_retries", "health_start_period",
             "no_healthcheck")


# ---------------------------------------------------------------- configuration

def _duration(value, key):
    from .logs import parse_duration

    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise errors.InvalidArgument("argument {} must be a duration".format(key))
    flag = "--" + key.replace("_", "-")
    ns = value if isinstance(value, int) else parse_duration(value.strip())
    if ns is None:
        raise errors.InvalidArgument('invalid argument "{}" for "{}" flag: time: invalid duration "{}"'.format(
            value, flag, value))
    if ns < 0:
        raise errors.InvalidArgument("{} cannot be negative".format(flag))
    return ns


def from_flags(health_cmd=None, no_healthcheck=False, health_retries=None, health_interval=None,
               health_timeout=None, health_start_period=None):
    """The ``--health-*``/``--no-healthcheck`` flags (keywords: FLAG_ARGS) as the user's healthcheck dict, or None.

    ``health_cmd`` is a string or None and ``no_healthcheck`` a boolean (the op's request decode checked
    them); the retries and durations are checked here with docker's CLI messages (strings as typed or numbers).
    """
    retries = health_retries
    if retries is None:
        retries = 0
    elif isinstance(retries, str):
        try:
            retries = int(retries.strip())
        except ValueError:
            raise errors.InvalidArgument('invalid argument "{}" for "--health-retries" flag: strconv.ParseInt: '
                                         'parsing "{}": invalid syntax'.format(retries, retries))
    elif isinstance(retries, bool) or not isinstance(retries, int):
        raise errors.InvalidArgument("argument health_retries must be an integer")
    interval = _duration(health_interval, "health_interval")
    timeout = _duration(health_timeout, "health_timeout")
    start_period = _duration(health_start_period, "health_start_period")
    have = bool(health_cmd) or interval or timeout or start_period or retries
    if no_healthcheck:
        if have:
            raise errors.InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    if retries < 0:
        raise errors.InvalidArgument("--health-retries cannot be negative")
    return check({"Test": ["CMD-SHELL", health_cmd] if health_cmd else [], "Interval": interval, "Timeout": timeout,
                  "StartPeriod": start_period, "Retries": retries})


def merge(user, image):
    """Docker's merge: the user's healthcheck, its unset fields taken from the image's; either may be None."""
    image = check(image) if image else None
    if user is None:
        return image
    if image is None:
        return user
    out = dict(user)
    if not out.get("Test"):
        out["Test"] = list(image.get("Test") or [])
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        if not out.get(key):
            out[key] = image.get(key) or 0
    return out


def probe_argv(hc):
    """The command a probe runs, or None when there is no health check (absent, empty or NONE)."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test[1:]) or None


def initial(config):
    """State.Health at the start of a run: "starting" with no streak and no log; None without a health check."""
    if probe_argv(config.get("healthcheck")) is None:
        return None
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def status_of(record):
    """The ps/filter health word of a record: "starting", "healthy", "unhealthy" or "none"."""
    health = record.get("health")
    return health.get("Status") if health else "none"


def ps_suffix(record):
    """Docker's health suffix of ``Up ...``: " (healthy)", " (unhealthy)", " (health: starting)" or ""."""
    health = record.get("health")
    if not health:
        return ""
    word = health.get("Status")
    return " (health: starting)" if word == "starting" else " ({})".format(word)


def apply_result(health, result, started_ns, hc):
    """docker's handleProbeResult: a new State.Health after one probe ``result`` {Start, End, ExitCode, Output}."""
    health = {"Status": health.get("Status", "starting"), "FailingStreak": health.get("FailingStreak", 0),
              "Log": (list(health.get("Log") or []) + [result])[-MAX_LOG:]}
    retries = hc.get("Retries") or DEFAULT_RETRIES
    if result["ExitCode"] == 0:
        health.update(Status="healthy", FailingStreak=0)
        return health
    if health["Status"] == "starting" and records.parse_ns(result["Start"]) - started_ns < (hc.get("StartPeriod")
                                                                                            or 0):
        return health  # a failure inside the start period does not count
    health["FailingStreak"] += 1
    if health["FailingStreak"] >= retries:
        health["Status"] = "unhealthy"
    return health


def go_duration(ns):
    """Go's time.Duration.String() for the timeout message ("30s", "500ms", "1m30s", "1.5s")."""
    if ns < 10 ** 9:
        for unit, size in (("ms", 10 ** 6), ("µs", 10 ** 3)):
            if ns >= size:
                return "{:g}{}".format(ns / size, unit)
        return "{}ns".format(ns)
    hours, rest = divmod(ns, 3600 * 10 ** 9)
    minutes, rest = divmod(rest, 60 * 10 ** 9)
    text = "{:.9f}".format(rest / 1e9).rstrip("0").rstrip(".") + "s"
    if hours:
        return "{}h{}m{}".format(hours, minutes, text)
    return "{}m{}".format(minutes, text) if minutes else text


# ---------------------------------------------------------------- the monitor (a child of the shim)

def start_monitor(paths, container_id, pid, pid_start):
    """Fork the health monitor of this run (None without a health check); the shim stops it with ``stop_monitor``."""
    try:
        config = records.read_config(paths, container_id)
    except errors.NotFound:
        return None
    hc = config.get("healthcheck")
    if probe_argv(hc) is None:
        return None
    child = os.fork()
    if child:
        return child
    code = 0
    try:
        from ..linux import libc
        from ..linux.consts import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG

        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)  # a timed-out probe's orphans come back here to be reaped
        process.close_fds_except(2)  # stderr is shim.log; no log pipe or file of the shim stays open here
        _monitor(paths, container_id, pid, pid_start, hc)
    except BaseException:
        traceback.print_exc()
        code = 1
    os._exit(code)


def stop_monitor(child):
    """Kill and reap the monitor; then reap what a probe in flight left to the shim (call after the init is reaped).

    Zombies must not pile up in the shim (a subreaper), and on cgroup v1 a cgroup is not removable while
    one of its tasks is an unreaped zombie.
    """
    if not child:
        return
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(child, 0)
    except ChildProcessError:
        pass
    reap_orphans()


def reap_orphans():
    """Reap every exited child without blocking (a subreaper's chore)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _monitor(paths, container_id, pid, pid_start, hc):
    argv = probe_argv(hc)
    interval = hc.get("Interval") or DEFAULT_INTERVAL
    timeout = hc.get("Timeout") or DEFAULT_TIMEOUT
    while True:
        time.sleep(interval / 1e9)
        if not records.is_alive(pid, pid_start):
            return
        state = records.read_state(paths, container_id)
        if state.get("pid") != pid or state.get("status") != "running":
            continue  # not published yet (the start is still being recorded) or being stopped
        if state.get("paused"):
            continue  # docker does not probe a frozen container either (the exec would hang)
        result = _probe(paths, container_id, argv, timeout)
        with records.container_lock(paths, container_id):
            state = records.read_state(paths, container_id)
            if state.get("pid") != pid or state.get("status") != "running":
                return
            started = records.parse_ns(state["started_at"]) if state.get("started_at") else 0
            before = (state.get("health") or {}).get("Status")
            state["health"] = apply_result(state.get("health") or {}, result, started, hc)
            records.write_state(paths, container_id, state)
        if state["health"]["Status"] != before:
            events.container_of(paths, container_id, "health_status: " + state["health"]["Status"])


def _descendants(root):
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(entry), "rb") as f:
                data = f.read().decode("ascii", "replace")
            parents[int(entry)] = int(data[data.rfind(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _probe(paths, container_id, argv, timeout_ns):
    """One probe: ``exec`` argv in the container from a child; {Start, End, ExitCode, Output}."""
    from . import exec as execmod  # only in a probe's child: every command that imports health would pay for it

    start = records.format_ns()
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        out, code = [], -1
        try:
            res = execmod.execute(resolver.lookup(paths, container_id), argv,
                                  emit=lambda name, data: out.append(data.get("line", "")))
            code = res["exit_code"]
        except errors.AgentError as exc:
            out.append(exc.message)
        except BaseException as exc:  # noqa: BLE001 - reported as the probe's output
            out.append("{}: {}".format(type(exc).__name__, exc))
        data = json.dumps({"code": code, "output": "".join(out)[:MAX_OUTPUT * 4]}).encode()
        try:
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    buf, deadline, timed_out = b"", time.monotonic() + timeout_ns / 1e9, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
    os.close(r)
    if timed_out:
        for p in [child] + _descendants(child):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.waitpid(child, 0)
    if timed_out:
        deadline = time.monotonic() + 1.0  # the killed exec helpers were reparented to us: reap them
        while _descendants(os.getpid()) and time.monotonic() < deadline:
            reap_orphans()
            time.sleep(0.01)
    reap_orphans()
    end = records.format_ns()
    if timed_out:
        return {"Start": start, "End": end, "ExitCode": -1,
                "Output": "Health check exceeded timeout ({})".format(go_duration(timeout_ns))}
    try:
        res = json.loads(buf.decode())
    except ValueError:
        res = {"code": -1, "output": "health check probe died"}
    output = res["output"].encode("utf-8", "replace")[:MAX_OUTPUT].decode("utf-8", "ignore")
    return {"Start": start, "End": end, "ExitCode": res["code"], "Output": output}
