"""The hand CLI through the warm server: ``python3 <pyz> run ...`` typed on a host hands argv, environment, cwd
and fds 0, 1, 2 to the server's worker; status, output and signals as when it runs by itself."""

import os
import pty
import signal
import subprocess

import pytest

from agent_payload.state.paths import Paths
from tests.helpers import images, warm
from tests.helpers.runtime import BUSYBOX, _cleanup
from tests.helpers.warm import alive, poll

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                 reason="needs root and /usr/bin/busybox (busybox-static)")]
RUN = ["run", "--rm", "--network", "none", "busybox:latest"]


@pytest.fixture(scope="module")
def built():
    return warm.build()


@pytest.fixture
def host(tmp_path, built):
    h = warm.Host(tmp_path, built)
    paths = Paths(root=str(h.root), config_dir=str(tmp_path / "etc"))
    try:
        images.Fixture(paths).image(["busybox:latest"], [images._layer_with_links()])
        yield h
    finally:
        h.close(remove=False)
        _cleanup(paths)
        h.close()


def _front_imports(proc):
    """The modules the front process imported (``-X importtime`` lines on its stderr)."""
    lines = proc.stderr.decode().splitlines()
    return {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}


def _started(host):
    assert host.hand("ping").returncode == 0  # by itself; then it starts the server
    return host.server()


def test_status_and_output_go_where_they_go_without_the_server(host):
    script = 'echo out; echo err >&2; echo "$0 in $PWD"; exit 3'
    direct = host.hand(*RUN + ["sh", "-c", script, "arg0"], env={"FLEET_WARM": "0"})
    _started(host)
    cmd = [warm.PYTHON, "-X", "importtime", str(host.pyz)] + RUN + ["sh", "-c", script, "arg0"]
    handed = subprocess.run(cmd, env=host.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                            cwd="/tmp")
    assert direct.returncode == handed.returncode == 3
    assert direct.stdout == handed.stdout == b"out\narg0 in /\n"
    assert handed.stderr.decode().endswith("err\n")
    mods = _front_imports(handed)
    assert "agent_payload.warm.client" in mods  # it was handed over: the front imported none of this
    assert not {"agent_payload.handcli", "json", "argparse", "agent_payload.ops", "socket", "signal"} & mods


def test_argparse_errors_and_environment_cwd_travel(host, tmp_path):
    _started(host)
    bad = host.hand("bogus")
    assert bad.returncode == 2 and b"invalid choice: 'bogus'" in bad.stderr
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n")
    os.chmod(str(tmp_path), 0o755)
    proc = subprocess.run([warm.PYTHON, str(host.pyz)] + RUN[:-1] + ["--env-file", "env", "-e", "FROM_HOST",
                                                                      "busybox:latest", "env"],
                          env=dict(host.env, FROM_HOST="h\u00e9"), cwd=str(tmp_path), capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "FROM_FILE=yes\n" in proc.stdout.decode() and "FROM_HOST=h\u00e9\n" in proc.stdout.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_front_reaches_the_worker_and_the_front_dies_of_it(host, sig):
    _started(host)
    codes = []
    for env in ({"FLEET_WARM": "0"}, {}):
        proc = subprocess.Popen([warm.PYTHON, str(host.pyz)] + RUN + ["sh", "-c", "echo ready; sleep 30"],
                                env=dict(host.env, **env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout.readline() == b"ready\n"
            proc.send_signal(sig)
            codes.append(proc.wait(timeout=20))  # without forwarding: 30 s of sleep, a timeout here
        finally:
            proc.kill()
            proc.stdout.close()
    assert codes == [-sig, -sig]


def test_without_a_live_server_it_runs_by_itself_and_starts_one(host):
    direct = subprocess.run([warm.PYTHON, "-X", "importtime", str(host.pyz), "ping"], env=host.env,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert direct.returncode == 0 and "agent_payload.handcli" in _front_imports(direct)
    pid = host.server()
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not alive(pid), what="the server's death")
    assert os.path.exists(host.sock)  # stale
    again = subprocess.run([warm.PYTHON, "-X", "importtime", str(host.pyz), "ping"], env=host.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert again.returncode == 0 and "agent_payload.handcli" in _front_imports(again)
    assert host.server() != pid


def test_a_terminal_or_fleet_warm_0_keeps_the_command_in_its_own_process(host):
    _started(host)
    off = subprocess.run([warm.PYTHON, "-X", "importtime", str(host.pyz), "ping"], env=dict(host.env, FLEET_WARM="0"),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert off.returncode == 0 and "agent_payload.handcli" in _front_imports(off)
    master, slave = pty.openpty()
    try:
        tty = subprocess.run([warm.PYTHON, "-X", "importtime", str(host.pyz), "ping"], env=host.env, stdin=slave,
                             capture_output=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert tty.returncode == 0 and "agent_payload.handcli" in _front_imports(tty)
