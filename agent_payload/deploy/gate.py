"""The health gate a new container must pass before it takes over (and that a failed one is judged by).

- with a healthcheck: it must become ``healthy`` (``unhealthy``, an exit or a restart fail it at once);
- without: it must stay running, its RestartCount unchanged, for ``monitor`` seconds;
- plus the ``probe`` when given: ``http://[HOST]:PORT/PATH`` (GET answered 2xx or 3xx) or ``tcp://[HOST]:PORT``
  (a connection accepted).  Without HOST the probe goes to the NEW container itself: PORT is a host port resolved
  through the container's published bindings to its own IP and container port (with start-first the host port
  still routes to the old container); a PORT it does not publish is taken as its container port.  The probe is
  retried until it passes;
- all within ``timeout`` seconds.

``wait`` returns None when the container passed, else the reason it failed (a sentence).
"""

import http.client
import socket
import time
import urllib.parse

from agent_payload import errors
from agent_payload.runtime import health

POLL = 0.1
PROBE_TIMEOUT = 2.0


def parse_probe(probe):
    """(scheme, host or None, port, path) of a probe URL; InvalidArgument naming it when malformed."""
    try:
        parts = urllib.parse.urlsplit(probe)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in ("http", "tcp") or not port:
        raise errors.InvalidArgument("invalid probe {!r}: expected http://[HOST]:PORT[/PATH] or tcp://[HOST]:PORT"
                                     .format(probe))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname or None, port, path


def probe_address(rec, host, port):
    """(ip, port) the probe connects to for container record ``rec`` (see the module doc)."""
    if host:
        return host, port
    settings = rec.get("network_settings") or {}
    cport = port
    for b in list(settings.get("ports") or []) + list(rec.get("ports") or []):
        if b.get("host_port") == port:
            cport = b["container_port"]
            break
    if rec.get("network") == "host":
        return "127.0.0.1", port
    for ep in settings.get("endpoints") or []:
        if ep.get("ip"):
            return ep["ip"], cport
    return None, cport


def probe_once(scheme, address, path):
    """None when the probe passes, else what went wrong."""
    ip, port = address
    try:
        if scheme == "tcp":
            socket.create_connection((ip, port), timeout=PROBE_TIMEOUT).close()
            return None
        conn = http.client.HTTPConnection(ip, port, timeout=PROBE_TIMEOUT)
        try:
            conn.request("GET", path, headers={"User-Agent": "fleet-deploy-probe"})
            resp = conn.getresponse()
            resp.read(65536)
        finally:
            conn.close()
        if 200 <= resp.status < 400:
            return None
        return "HTTP {} {}".format(resp.status, resp.reason)
    except (OSError, http.client.HTTPException) as exc:
        return str(exc) or exc.__class__.__name__


def _ended(rec, base_restarts):
    """Why the container is no longer in its first run (exited, restarting or restarted), or None."""
    count = rec.get("restart_count") or 0
    if rec["status"] == "exited":
        why = "exited with code {}".format(rec.get("exit_code"))
        return why + (": " + rec["error"] if rec.get("error") else "")
    if rec["status"] == "restarting" or count > base_restarts:
        return "restarted ({} restarts, last exit code {})".format(
            count, rec.get("exit_code") if rec.get("exit_code") is not None else rec.get("last_exit_code"))
    if rec["status"] not in ("running",):
        return "is {}".format(rec["status"])
    return None


def wait_completed(runtime, ref, timeout=60.0, sleep=time.sleep, clock=time.monotonic):
    """Gate of a one-shot service (others depend on it with ``service_completed_successfully``): it must exit
    with code 0 within ``timeout``; None when it did, else why not."""
    deadline = clock() + timeout
    while True:
        rec = runtime.lookup(ref)
        if rec["status"] == "exited":
            if rec.get("exit_code") == 0:
                return None
            return "container exited with code {}{}".format(rec.get("exit_code"),
                                                            ": " + rec["error"] if rec.get("error") else "")
        if clock() >= deadline:
            return "container did not complete within {:g}s (it is {})".format(timeout, rec["status"])
        sleep(POLL)


def wait(runtime, ref, monitor=5.0, probe=None, timeout=60.0, sleep=time.sleep, clock=time.monotonic):
    """Gate the started container ``ref``; None when it passes, else why it failed."""
    deadline = clock() + timeout
    probe_spec = parse_probe(probe) if probe else None
    rec = runtime.lookup(ref)
    base = rec.get("restart_count") or 0
    has_health = health.probe_argv(rec.get("healthcheck")) is not None
    up_since = clock()
    passed = False
    last_probe = None
    while True:
        rec = runtime.lookup(ref)
        why = _ended(rec, base)
        if why:
            return "container " + why
        if not passed:
            if has_health:
                status = (rec.get("health") or {}).get("Status")
                if status == "unhealthy":
                    log = ((rec.get("health") or {}).get("Log") or [{}])[-1]
                    out = (log.get("Output") or "").strip()
                    return "container is unhealthy" + (": " + out[-200:] if out else "")
                passed = status == "healthy"
            else:
                passed = clock() - up_since >= monitor
        if passed and probe_spec is not None:
            scheme, host, port, path = probe_spec
            address = probe_address(rec, host, port)
            if address[0] is None:
                return "probe {}: the container has no address to probe".format(probe)
            last_probe = probe_once(scheme, address, path)
            if last_probe is None:
                return None
        elif passed:
            return None
        if clock() >= deadline:
            if not passed:
                return ("container did not become healthy within {:g}s".format(timeout) if has_health else
                        "container did not stay up for {:g}s within {:g}s".format(monitor, timeout))
            return "probe {} did not pass within {:g}s: {}".format(probe, timeout, last_probe)
        sleep(POLL)
