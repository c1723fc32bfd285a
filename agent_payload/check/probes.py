"""``probe:<name>`` rows: http, tcp and exec probes, each bounded by its timeout.

exec follows the Nagios plugin convention: exit 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN, anything else UNKNOWN; the
first line of stdout is the detail; performance data follows a ``|`` (on the first line, and on a later line for
the rest of the output): ``'label'=value[UOM];[warn];[crit];[min];[max]`` separated by spaces.
"""

import json
import os
import re
import select
import signal
import socket
import threading
import time

from agent_payload import errors

from . import CRITICAL, OK, UNKNOWN, WARNING, perf, row

EXIT_STATES = {0: OK, 1: WARNING, 2: CRITICAL, 3: UNKNOWN}
MAX_OUTPUT = 64 * 1024
MAX_BODY = 1024 * 1024
_PERF_RE = re.compile(r"\s*('(?:[^']|'')+'|[^'=\s][^=\s]*)=(\S*)")
_VALUE_RE = re.compile(r"^([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)([^0-9;.+-][^;]*)?$")
_NUMBER_RE = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def exit_state(code):
    """A plugin's exit code as its state (Nagios: anything but 0-3 is UNKNOWN)."""
    return EXIT_STATES.get(code, UNKNOWN)


def _num(text):
    """An int for an integer's digits, else a float."""
    return int(text) if re.match(r"^[-+]?[0-9]+$", text) else float(text)


def parse_perfdata(text):
    """[perfdata items] of a plugin's performance data; malformed items are left out."""
    out = []
    for m in _PERF_RE.finditer(text or ""):
        label, rest = m.group(1), m.group(2)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        fields = (rest.split(";") + [""] * 5)[:5]
        if fields[0] == "U":  # the plugin could not determine the value
            value, uom = None, ""
        else:
            vm = _VALUE_RE.match(fields[0])
            if not vm:
                continue
            value, uom = _num(vm.group(1)), vm.group(2) or ""
        warn, crit = (_num(f) if _NUMBER_RE.match(f) else f or None for f in fields[1:3])
        lo, hi = (_num(f) if _NUMBER_RE.match(f) else None for f in fields[3:5])
        out.append(perf(label, value, uom, warn, crit, lo, hi))
    return out


def parse_output(text):
    """(detail, perfdata) of a plugin's stdout: the first line's text; perfdata after ``|`` on the first line and
    after a ``|`` on a later line (all of the rest of the output)."""
    lines = (text or "").splitlines()
    if not lines:
        return "", []
    first, _, perfs = lines[0].partition("|")
    more = []
    for i, line in enumerate(lines[1:], 1):
        if "|" in line:
            more = [line.partition("|")[2]] + lines[i + 1:]
            break
    return first.strip(), parse_perfdata(" ".join([perfs] + more))


def _plugin_row(name, code, stdout, stderr=""):
    """A plugin's row; with nothing on stdout the first line of its stderr says what happened (exit 127)."""
    detail, perfdata = parse_output(stdout)
    if not detail and (stderr or "").strip():
        detail = stderr.strip().splitlines()[0]
    status = exit_state(code)
    if code not in EXIT_STATES:
        detail = "exit code {}{}".format(code, ": " + detail if detail else "")
    return row(name, status, detail or "(no output, exit code {})".format(code), perfdata)


# ---------------------------------------------------------------- exec

def _kill_tree(pid):
    from agent_payload.runtime.health import _descendants  # the exec helpers a probe's child forked
    for p in _descendants(pid) + [pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _exec_in_container(rec, command, timeout):
    """(exit code, stdout, stderr) of ``command`` run in the container (runtime/exec.py) from a child killed, with the
    processes it forked, after ``timeout`` s; None for the code on a timeout. Errors are raised as AgentError."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        out = {"stdout": [], "stderr": []}
        try:
            from agent_payload.runtime import exec as execmod
            res = execmod.execute(rec, command, emit=lambda ev, d: out.get(d.get("stream"), []).append(d["line"]))
            result = {"code": res["exit_code"], "stdout": "".join(out["stdout"])[:MAX_OUTPUT],
                      "stderr": "".join(out["stderr"])[:MAX_OUTPUT]}
        except errors.AgentError as exc:
            result = {"error": exc.kind, "message": exc.message}
        except BaseException as exc:  # noqa: BLE001 - reported as the probe's failure
            result = {"error": "Internal", "message": "{}: {}".format(type(exc).__name__, exc)}
        data = json.dumps(result).encode()
        try:
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    buf, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_tree(child)
                return None, "", ""
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                buf += chunk
    finally:
        os.close(r)
        os.waitpid(child, 0)
    res = json.loads(buf.decode() or '{"error": "Internal", "message": "the exec helper died"}')
    if "error" in res:
        raise errors.from_wire({"kind": res["error"], "message": res["message"]}, "exec failed", checked=True)
    return res["code"], res["stdout"], res["stderr"]


def _exec_on_host(command, timeout):
    """(exit code, stdout, stderr) of ``command`` on the host in its own session, killed with its group after
    ``timeout`` s (None for the code then)."""
    import subprocess

    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, cwd="/")
    except OSError as exc:
        raise errors.NotFound('exec: "{}": {}'.format(command[0], exc.strerror))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # something left the group holding the pipe: stop waiting for it
            proc.stdout.close()
            proc.stderr.close()
            proc.wait()
        return None, "", ""
    return proc.returncode, out[:MAX_OUTPUT].decode("utf-8", "replace"), err[:MAX_OUTPUT].decode("utf-8", "replace")


def exec_probe(runtime, probe):
    name = "probe:" + probe["name"]
    where = ""
    try:
        if probe["container"] is not None:
            rec = runtime.lookup(probe["container"])
            where = " in container " + rec["name"]
            if rec["status"] != "running":
                return row(name, UNKNOWN, "container {} is not running".format(rec["name"]))
            code, out, err = _exec_in_container(rec, probe["command"], probe["timeout"])
        else:
            code, out, err = _exec_on_host(probe["command"], probe["timeout"])
    except errors.AgentError as exc:
        return row(name, UNKNOWN, "cannot run {}{}: {}".format(probe["command"][0], where, exc.message))
    if code is None:
        return row(name, CRITICAL, "timed out after {}s{}".format(probe["timeout"], where))
    return _plugin_row(name, code, out, err)


# ---------------------------------------------------------------- http, tcp

def _reason(exc):
    inner = getattr(exc, "reason", exc)
    if isinstance(inner, socket.timeout) or "timed out" in str(inner):
        return "timed out"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    return getattr(inner, "strerror", None) or str(inner)


def http_probe(probe):
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None  # the status the URL answers is what is checked (check_http without -f)

    name = "probe:" + probe["name"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    started = time.monotonic()
    try:
        try:
            resp = opener.open(urllib.request.Request(probe["url"], headers={"User-Agent": "fleet-check"}),
                               timeout=probe["timeout"])
        except urllib.error.HTTPError as exc:
            resp = exc  # 4xx/5xx, or a redirect not followed: a response all the same
        with resp:
            code = resp.getcode()
            body = resp.read(MAX_BODY) if probe["body"] is not None else b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return row(name, CRITICAL, "{}: {}".format(probe["url"], _reason(exc)),
                   [perf("time", round(time.monotonic() - started, 6), "s", min=0)])
    took = round(time.monotonic() - started, 6)
    perfdata = [perf("time", took, "s", min=0, max=probe["timeout"])]
    if code not in probe["status"]:
        return row(name, CRITICAL, "HTTP {} from {} (want {})".format(
            code, probe["url"], " or ".join(str(c) for c in probe["status"])), perfdata)
    if probe["body"] is not None and not re.search(probe["body"], body.decode("utf-8", "replace")):
        return row(name, CRITICAL, "HTTP {} from {} but the body does not match /{}/".format(
            code, probe["url"], probe["body"]), perfdata + [perf("size", len(body), "B", min=0)])
    return row(name, OK, "HTTP {} from {} in {:.3f}s".format(code, probe["url"], took), perfdata)


def tcp_probe(probe):
    name = "probe:" + probe["name"]
    target = "{}:{}".format("[{}]".format(probe["host"]) if ":" in probe["host"] else probe["host"], probe["port"])
    started = time.monotonic()
    try:
        sock = socket.create_connection((probe["host"], probe["port"]), timeout=probe["timeout"])
    except (OSError, ValueError) as exc:
        return row(name, CRITICAL, "{}: {}".format(target, _reason(exc)))
    sock.close()
    took = round(time.monotonic() - started, 6)
    return row(name, OK, "connected to {} in {:.3f}s".format(target, took),
               [perf("time", took, "s", min=0, max=probe["timeout"])])


def run(runtime, probe):
    """The row of one checked probe (request.probes)."""
    try:
        if probe["type"] == "http":
            return http_probe(probe)
        if probe["type"] == "tcp":
            return tcp_probe(probe)
        return exec_probe(runtime, probe)
    except Exception as exc:  # noqa: BLE001 - a probe that could not run is UNKNOWN, never the whole check
        return row("probe:" + probe["name"], UNKNOWN, "cannot run: {}: {}".format(type(exc).__name__, exc))


def run_all(runtime, probe_list):
    """The rows of the probes, in their order: the exec ones one after the other (they fork: before any thread
    exists), then the http and tcp ones all at once, so that the whole takes at most the exec timeouts plus the
    longest network timeout."""
    out = [run(runtime, p) if p["type"] == "exec" else None for p in probe_list]
    threads = []
    for i, p in enumerate(probe_list):
        if out[i] is None:
            t = threading.Thread(target=lambda i=i, p=p: out.__setitem__(i, run(runtime, p)), daemon=True)
            t.start()
            threads.append((t, i, p))
    for t, i, p in threads:
        t.join(p["timeout"] + 5)  # a name that will not resolve is not bounded by the socket timeout
        if out[i] is None:
            out[i] = row("probe:" + p["name"], CRITICAL, "timed out after {}s".format(p["timeout"]))
    return out
