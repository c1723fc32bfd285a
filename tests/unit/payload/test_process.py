"""process.drop_privileges: the one privilege-finalising step of the init and of exec'd processes (runc's
finalizeNamespace), in runc's order, the seccomp filter where runc installs it."""

import signal
from types import SimpleNamespace

import pytest

from agent_payload.linux.consts import PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG
from agent_payload.runtime import caps, exec as execmod, process, user

PR_SET_DUMPABLE = execmod.PR_SET_DUMPABLE


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(process.libc, "prctl", lambda option, value: seen.append(("prctl", option, value)))
    monkeypatch.setattr(process.seccomp, "install", lambda f: seen.append(("seccomp", f)))
    monkeypatch.setattr(caps, "drop_bounding", lambda keep: seen.append(("bounding", keep)))
    monkeypatch.setattr(caps, "apply_sets", lambda keep: seen.append(("capset", keep)))
    monkeypatch.setattr(user, "chown_stdio", lambda who: seen.append(("chown_stdio", who)))
    monkeypatch.setattr(user, "switch", lambda who: seen.append(("setuid", who)))
    return seen


def test_without_no_new_privs_the_filter_goes_in_while_still_privileged(calls):
    process.drop_privileges(SimpleNamespace(no_new_privileges=False), "who", 7, "F",
                            after_switch=((PR_SET_PDEATHSIG, signal.SIGKILL),))
    assert calls == [("seccomp", "F"), ("bounding", 7), ("prctl", PR_SET_KEEPCAPS, 1), ("chown_stdio", "who"),
                     ("setuid", "who"), ("prctl", PR_SET_PDEATHSIG, signal.SIGKILL), ("prctl", PR_SET_KEEPCAPS, 0),
                     ("capset", 7)]


def test_with_no_new_privs_the_filter_goes_in_last(calls):
    process.drop_privileges(SimpleNamespace(no_new_privileges=True), "who", 7, "F",
                            after_switch=((PR_SET_DUMPABLE, 0),))
    assert calls == [("prctl", PR_SET_NO_NEW_PRIVS, 1), ("bounding", 7), ("prctl", PR_SET_KEEPCAPS, 1),
                     ("chown_stdio", "who"), ("setuid", "who"), ("prctl", PR_SET_DUMPABLE, 0),
                     ("prctl", PR_SET_KEEPCAPS, 0), ("capset", 7), ("seccomp", "F")]


def test_unconfined_installs_no_filter(calls):
    for nnp in (False, True):
        del calls[:]
        process.drop_privileges(SimpleNamespace(no_new_privileges=nnp), "who", 7, None)
        assert not [c for c in calls if c[0] == "seccomp"]
