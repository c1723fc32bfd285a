"""The check op's rules without containers: request checks, thresholds, disk and log rows, Nagios output and
perfdata parsing, exit-code mapping, host exec, tcp and http probes against this machine's loopback."""

import http.server
import os
import socket
import threading
import time

import pytest

from agent_payload import errors
from agent_payload.check import CRITICAL, OK, UNKNOWN, WARNING, host, probes, request, worst
from agent_payload.ops.args import decode
from agent_payload.state.paths import Paths


def _checked(**args):
    return request.checked(decode("check", args))


def test_defaults_and_an_empty_request():
    services, thresholds, probe_list = _checked()
    assert services == [] and probe_list == []
    assert thresholds == {"disk_warn_pct": 20, "disk_crit_pct": 10, "log_warn_bytes": 100 << 20,
                          "log_crit_bytes": 1 << 30}
    assert decode("check", {}).counters is True


@pytest.mark.parametrize("args,message", [
    ({"thresholds": {"disk_warn_pct": 120}}, "threshold disk_warn_pct must be a number from 0 to 100"),
    ({"thresholds": {"disk_warn_pct": "5"}}, "threshold disk_warn_pct must be a number from 0 to 100"),
    ({"thresholds": {"log_warn_bytes": -1}}, "threshold log_warn_bytes must be a number of bytes >= 0"),
    ({"thresholds": {"disk_warn_pct": 5, "disk_crit_pct": 10}}, "threshold disk_crit_pct (10) must not be above"),
    ({"thresholds": {"log_warn_bytes": 10, "log_crit_bytes": 5}}, "threshold log_crit_bytes (5) must not be below"),
    ({"thresholds": [1]}, "argument thresholds must be an object"),
    ({"services": {"project": "p"}}, "argument services must be a list of objects"),
    ({"services": [{"project": "Shop", "service": "web"}]}, "invalid project name 'Shop'"),
    ({"services": [{"project": "shop"}]}, "services[0].service must be a non-empty string"),
    ({"services": [{"project": "shop", "service": "web", "config_hash": 3}]},
     "services[0].config_hash must be a non-empty string"),
    ({"services": [{"project": "s", "service": "w"}, {"project": "s", "service": "w"}]},
     "services[1] repeats service s/w"),
    ({"probes": [{"type": "tcp", "port": 1}]}, "probes[0].name must be a non-empty string"),
    ({"probes": [{"name": "a b", "type": "tcp", "port": 1}]}, "probes[0].name 'a b' must match"),
    ({"probes": [{"name": "a", "type": "tcp", "port": 1}, {"name": "a", "type": "tcp", "port": 2}]},
     "probes[1].name 'a' is used by another probe"),
    ({"probes": [{"name": "a", "type": "ping"}]}, "probe a.type must be one of http, tcp, exec, not 'ping'"),
    ({"probes": [{"name": "a", "type": "tcp", "port": 70000}]}, "probe a.port must be a port number"),
    ({"probes": [{"name": "a", "type": "tcp", "port": 80, "timeout": 0}]}, "probe a.timeout must be a number"),
    ({"probes": [{"name": "a", "type": "http", "url": "ftp://x/"}]}, "probe a.url must be an http:// or https://"),
    ({"probes": [{"name": "a", "type": "http", "url": "http://x/", "status": [200, "301"]}]},
     "probe a.status must be an HTTP status"),
    ({"probes": [{"name": "a", "type": "http", "url": "http://x/", "body": "("}]},
     "probe a.body is not a valid regular expression"),
    ({"probes": [{"name": "a", "type": "exec", "command": []}]}, "probe a.command must be a non-empty list"),
    ({"probes": [{"name": "a", "type": "exec", "command": ["true"], "container": ""}]},
     "probe a.container must be a non-empty string"),
])
def test_bad_input_is_one_error_naming_it(args, message):
    with pytest.raises(errors.InvalidArgument) as exc:
        _checked(**args)
    assert message in exc.value.message


def test_probe_defaults():
    _s, _t, got = _checked(probes=[{"name": "web", "type": "http", "url": "http://127.0.0.1:8080/healthz"},
                                   {"name": "db", "type": "tcp", "port": 5432, "timeout": 2.5, "extra": 1},
                                   {"name": "x", "type": "exec", "command": ["true"]},
                                   {"name": "y", "type": "http", "url": "http://h/", "status": 204}])
    assert got[0] == {"name": "web", "type": "http", "timeout": 10, "url": "http://127.0.0.1:8080/healthz",
                      "status": [200], "body": None}
    assert got[1] == {"name": "db", "type": "tcp", "timeout": 2.5, "host": "127.0.0.1", "port": 5432}
    assert got[2]["container"] is None and got[3]["status"] == [204]


def test_worst_ranks_as_nagios():
    assert worst([]) == OK
    assert worst([OK, UNKNOWN]) == UNKNOWN
    assert worst([UNKNOWN, WARNING, OK]) == UNKNOWN
    assert worst([WARNING, OK]) == WARNING
    assert worst([WARNING, CRITICAL, UNKNOWN]) == CRITICAL


@pytest.mark.parametrize("free,status", [(50, OK), (20, OK), (19.99, WARNING), (10, WARNING), (9.5, CRITICAL),
                                         (0, CRITICAL)])
def test_disk_status_below_the_thresholds(free, status):
    assert host.disk_status(free, 20, 10) == status


def test_disk_rows_of_both_filesystems(tmp_path):
    paths = Paths(root=str(tmp_path / "root"))
    os.makedirs(paths.root)
    rows, metrics = host.disks(paths, dict(request.THRESHOLDS, disk_warn_pct=100, disk_crit_pct=0))
    assert [r["check"] for r in rows] == ["disk:/", "disk:" + paths.root]
    assert all(r["status"] == WARNING and "under 100%" in r["detail"] for r in rows)
    assert [m["path"] for m in metrics] == ["/", paths.root]
    st = os.statvfs(paths.root)
    assert metrics[1]["size_bytes"] == st.f_blocks * st.f_frsize and 0 < metrics[1]["free_bytes"]
    pct = rows[0]["perfdata"][0]
    assert (pct["label"], pct["uom"], pct["warn"], pct["crit"], pct["min"], pct["max"]) == \
        ("used_pct", "%", 0, 100, 0, 100)
    rows, _ = host.disks(paths, request.THRESHOLDS)
    assert (rows[1]["perfdata"][0]["warn"], rows[1]["perfdata"][0]["crit"]) == (80, 90)
    rows, _ = host.disks(paths, dict(request.THRESHOLDS, disk_warn_pct=100, disk_crit_pct=100))
    assert all(r["status"] == CRITICAL for r in rows)


def test_log_rows_count_the_rotated_files(tmp_path):
    log = tmp_path / "c-json.log"
    log.write_bytes(b"x" * 300)
    (tmp_path / "c-json.log.1").write_bytes(b"x" * 400)
    (tmp_path / "c-json.log.2").write_bytes(b"x" * 500)
    (tmp_path / "c-json.log.4").write_bytes(b"x" * 10000)  # not in the chain (.3 missing): not docker's
    assert host.log_size(str(log)) == (1200, 3)
    recs = [{"name": "web", "log_path": str(log)}, {"name": "gone", "log_path": str(tmp_path / "none.log")}]
    th = dict(request.THRESHOLDS, log_warn_bytes=1000, log_crit_bytes=5000)
    rows = host.logs(recs, th)
    assert [(r["check"], r["status"]) for r in rows] == [("log:web", WARNING)]
    assert "in 3 files" in rows[0]["detail"] and rows[0]["perfdata"][0]["value"] == 1200
    assert [r["status"] for r in host.logs(recs, dict(th, log_crit_bytes=1200))] == [CRITICAL]
    assert host.logs(recs, dict(th, log_warn_bytes=1201, log_crit_bytes=1201)) == []


@pytest.mark.parametrize("code,status", [(0, OK), (1, WARNING), (2, CRITICAL), (3, UNKNOWN), (4, UNKNOWN),
                                         (127, UNKNOWN), (-1, UNKNOWN), (137, UNKNOWN)])
def test_exit_codes_map_to_nagios_states(code, status):
    assert probes.exit_state(code) == status


def test_perfdata_grammar():
    items = probes.parse_perfdata("time=0.5s;1;2;0;10 'disk usage'=75%;80:;@90:95;; 'it''s'=3 "
                                  "count=12c size=-1.5e3KB;;;; load=U;1;2 bad=abc =3 novalue=")
    got = [(p["label"], p["value"], p["uom"], p["warn"], p["crit"], p["min"], p["max"]) for p in items]
    assert got == [("time", 0.5, "s", 1, 2, 0, 10), ("disk usage", 75, "%", "80:", "@90:95", None, None),
                   ("it's", 3, "", None, None, None, None), ("count", 12, "c", None, None, None, None),
                   ("size", -1500.0, "KB", None, None, None, None), ("load", None, "", 1, 2, None, None)]
    assert isinstance(items[1]["value"], int) and isinstance(items[0]["value"], float)


def test_plugin_output_first_line_and_multiline_perfdata():
    assert probes.parse_output("") == ("", [])
    detail, perf = probes.parse_output("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
                                       "/ 15272 MB (77%);\n/boot 68 MB (69%);\n"
                                       "/home 69357 MB (27%);| /boot=68MB;88;93;0;98\n/home=69357MB;253404;\n")
    assert detail == "DISK OK - free space: / 3326 MB (56%);"
    assert [p["label"] for p in perf] == ["/", "/boot", "/home"] and perf[2]["warn"] == 253404
    assert probes.parse_output("just text\nmore")[0] == "just text"
    row = probes._plugin_row("probe:x", 5, "odd | a=1")
    assert row["status"] == UNKNOWN and row["detail"] == "exit code 5: odd" and row["perfdata"][0]["value"] == 1
    assert probes._plugin_row("probe:x", 2, "")["detail"] == "(no output, exit code 2)"
    assert probes._plugin_row("probe:x", 127, "", 'exec: "x": not found\nmore')["detail"] == \
        'exit code 127: exec: "x": not found'  # nothing on stdout: stderr says why


def _exec(command, timeout=10):
    return probes.run(None, {"name": "p", "type": "exec", "command": command, "container": None,
                             "timeout": timeout})


@pytest.mark.parametrize("code,status", [(0, OK), (1, WARNING), (2, CRITICAL), (3, UNKNOWN), (42, UNKNOWN)])
def test_exec_on_the_host_follows_the_plugin_convention(code, status):
    row = _exec(["sh", "-c", "echo 'state {} | v={};5;9'; echo second line; echo oops >&2; exit {}".format(
        code, code, code)])
    assert row["check"] == "probe:p" and row["status"] == status
    assert row["detail"] == ("state {}".format(code) if code <= 3 else "exit code 42: state 42")
    assert row["perfdata"] == [{"label": "v", "value": code, "uom": "", "warn": 5, "crit": 9, "min": None,
                                "max": None}]


def test_exec_on_the_host_not_found_and_timeout():
    row = _exec(["/nonexistent/plugin"])
    assert row["status"] == UNKNOWN and "cannot run /nonexistent/plugin" in row["detail"]
    row = _exec(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3)  # the group goes, the pipe's holder too
    assert row["status"] == CRITICAL and row["detail"] == "timed out after 0.3s"


def test_tcp_probe_connects_or_is_refused():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        row = probes.run(None, {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": port, "timeout": 5})
        assert row["status"] == OK and "connected to 127.0.0.1:{}".format(port) in row["detail"]
        assert row["perfdata"][0]["label"] == "time"
    finally:
        srv.close()
    row = probes.run(None, {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": port, "timeout": 5})
    assert row["status"] == CRITICAL and row["detail"] == "127.0.0.1:{}: connection refused".format(port)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = {"/ok": (200, b"status: ready\n"), "/moved": (301, b"")}.get(self.path, (404, b"nope"))
        self.send_response(code)
        if code == 301:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield "http://127.0.0.1:{}".format(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def _http(url, status=(200,), body=None, timeout=5):
    return probes.run(None, {"name": "web", "type": "http", "url": url, "status": list(status), "body": body,
                             "timeout": timeout})


def test_http_probe_rules(web, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:9")  # never used: probes go straight to the URL
    assert _http(web + "/ok", body="ready")["status"] == OK
    row = _http(web + "/missing")
    assert row["status"] == CRITICAL and row["detail"] == "HTTP 404 from {}/missing (want 200)".format(web)
    assert _http(web + "/missing", status=(404,))["status"] == OK
    row = _http(web + "/ok", body="^healthy")
    assert row["status"] == CRITICAL and "body does not match /^healthy/" in row["detail"]
    row = _http(web + "/moved")  # redirects are not followed
    assert row["status"] == CRITICAL and "HTTP 301" in row["detail"]
    assert _http(web + "/moved", status=(301, 302))["status"] == OK


def test_http_probe_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    row = _http("http://127.0.0.1:{}/".format(port))
    assert row["status"] == CRITICAL and row["detail"].endswith(": connection refused")


def test_network_probes_run_at_once_and_rows_keep_their_order(web):
    silent = socket.socket()  # connections complete (backlog) but no answer ever comes
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = "http://127.0.0.1:{}/".format(silent.getsockname()[1])
    try:
        started = time.monotonic()
        got = probes.run_all(None, [
            {"name": "a", "type": "http", "url": url, "status": [200], "body": None, "timeout": 1},
            {"name": "x", "type": "exec", "command": ["sh", "-c", "echo fine"], "container": None, "timeout": 5},
            {"name": "b", "type": "http", "url": url, "status": [200], "body": None, "timeout": 1},
            {"name": "c", "type": "http", "url": web + "/ok", "status": [200], "body": None, "timeout": 1}])
        took = time.monotonic() - started
    finally:
        silent.close()
    assert [(r["check"], r["status"]) for r in got] == [("probe:a", CRITICAL), ("probe:x", OK), ("probe:b", CRITICAL),
                                                        ("probe:c", OK)]
    assert got[0]["detail"] == url + ": timed out"
    assert took < 1.9, took  # not one after the other
