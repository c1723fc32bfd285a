"""Shared test configuration: in CI (CI=true) a skipped integration test is a failure, not a pass.

The payload makes a ``fleet`` parent cgroup under each controller on first use (as dockerd makes ``docker``);
a test session removes the ones it caused, once empty, so the machine is left as it was found.
"""

import glob
import os

import pytest

# Helpers' asserts (e.g. "overlay mount leaked" in fixture teardown) report values as a test module's would.
pytest.register_assert_rewrite("tests.helpers")


def _in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and item.get_closest_marker("integration") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = "integration test skipped under CI=true (skips are failures in CI): {}".format(reason)


def pytest_collection_modifyitems(config, items):
    # Integration tests need root (namespaces, mounts, sshd); outside CI they skip with a reason.
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root")
        for item in items:
            if item.get_closest_marker("integration") is not None:
                item.add_marker(skip)


_CGROUP_PARENTS = "/sys/fs/cgroup/*/fleet"
_parents_before = set()
_bridge_before = []


def _host_bridge():
    return os.path.exists("/sys/class/net/fleet0")


def pytest_sessionstart(session):
    _parents_before.update(glob.glob(_CGROUP_PARENTS))
    _bridge_before.append(_host_bridge())


def pytest_sessionfinish(session, exitstatus):
    if _bridge_before and not _bridge_before[0] and _host_bridge():
        # containers in tests on this machine use --network none; bridges belong in lab hosts' namespaces only
        import subprocess
        import sys
        subprocess.run(["ip", "link", "del", "fleet0"], check=False)
        subprocess.run(["nft", "delete", "table", "ip", "fleet"], check=False, stderr=subprocess.DEVNULL)
        sys.stderr.write("\nERROR: a test built fleet's bridge (fleet0) in this machine's own network namespace; "
                         "removed it (check net.ipv4.ip_forward too)\n")
        session.exitstatus = 1
    for path in sorted(set(glob.glob(_CGROUP_PARENTS)) - _parents_before):
        try:
            os.rmdir(path)  # only succeeds when empty: a container still running elsewhere keeps its parent
        except OSError:
            pass
