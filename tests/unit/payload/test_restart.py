"""Restart policies: docker's parsing and messages, the restart decision, the back-off, boot's rule, ps text."""

import pytest

from agent_payload import errors
from agent_payload.runtime import boot, restart, status
from agent_payload.runtime.records import format_ns


@pytest.mark.parametrize("text,want", [
    (None, {"Name": "no", "MaximumRetryCount": 0}),
    ("", {"Name": "no", "MaximumRetryCount": 0}),
    ("no", {"Name": "no", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
    ("on-failure:", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("always:0", {"Name": "always", "MaximumRetryCount": 0}),
])
def test_parse_accepts_dockers_forms(text, want):
    assert restart.parse(text) == want


@pytest.mark.parametrize("text,message", [
    ("sometimes", "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
                  "or 'unless-stopped'"),
    (":3", "invalid restart policy format: no policy provided before colon"),
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    ("always:2", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ("no:-1", "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be "
              "negative"),
    ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
])
def test_parse_rejects_with_dockers_messages(text, message):
    with pytest.raises(errors.InvalidArgument) as exc:
        restart.parse(text)
    assert exc.value.message == message


def test_restart_and_rm_conflict():
    restart.check_auto_remove(restart.parse("no"), True)
    restart.check_auto_remove(restart.parse("always"), False)
    with pytest.raises(errors.InvalidArgument, match="^Conflicting options: cannot specify both --restart and --rm$"):
        restart.check_auto_remove(restart.parse("on-failure"), True)


def test_should_restart_per_policy():
    always, unless = restart.parse("always"), restart.parse("unless-stopped")
    on_failure, limited = restart.parse("on-failure"), restart.parse("on-failure:2")
    assert not restart.should_restart(restart.parse("no"), 1, False, 0)
    assert restart.should_restart(always, 0, False, 5) and restart.should_restart(always, 0, True, 0)
    assert restart.should_restart(unless, 0, False, 0) and not restart.should_restart(unless, 1, True, 0)
    assert restart.should_restart(on_failure, 1, False, 1000) and not restart.should_restart(on_failure, 0, False, 0)
    assert restart.should_restart(limited, 3, False, 1) and not restart.should_restart(limited, 3, False, 2)


def test_backoff_doubles_caps_at_a_minute_and_resets_after_ten_seconds():
    b = restart.Backoff()
    delays = [b.next(0.5) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert b.next(10.0) == 0.1  # a run of 10 s starts over
    assert b.next(9.9) == 0.2


def test_boot_rule_is_dockers_at_daemon_start():
    ran = {"status": "exited", "started_at": format_ns(), "exit_code": 137, "restart_count": 0}
    cfg = lambda name: {"restart_policy": restart.parse(name)}  # noqa: E731
    assert boot.wants_start(cfg("always"), dict(ran, manually_stopped=True))
    assert boot.wants_start(cfg("unless-stopped"), ran)
    assert not boot.wants_start(cfg("unless-stopped"), dict(ran, manually_stopped=True))
    assert boot.wants_start(cfg("on-failure"), ran)
    assert not boot.wants_start(cfg("on-failure"), dict(ran, exit_code=0))
    assert not boot.wants_start(cfg("on-failure:2"), dict(ran, restart_count=2))
    assert not boot.wants_start(cfg("no"), ran)
    assert not boot.wants_start(cfg("always"), dict(ran, started_at=None, status="created"))  # never started
    assert not boot.wants_start(cfg("always"), dict(ran, status="running"))


def test_status_text_restarting():
    now = 10 ** 18
    finished = format_ns(now - 3 * 10 ** 9)
    text = status.status_text({"status": "restarting", "exit_code": 2, "finished_at": finished}, now)
    assert text == "Restarting (2) 3 seconds ago"


def test_cron_and_unit_text_escape_and_carry_private_roots():
    from agent_payload.state.paths import Paths

    paths = Paths(root="/srv/fl%eet", config_dir="/etc/fleet")
    cron = boot.cron_text(paths, ["/usr/bin/python3", "/srv/p/ab.pyz"])
    assert cron.splitlines()[-1] == "@reboot root FLEET_ROOT=/srv/fl\\%eet /usr/bin/python3 /srv/p/ab.pyz boot " \
                                    ">/dev/null 2>&1"
    unit = boot.unit_text(paths, ["/usr/bin/python3", "/srv/p/ab.pyz"])
    assert "Environment=FLEET_ROOT=/srv/fl%%eet" in unit
    assert "ExecStart=/usr/bin/python3 /srv/p/ab.pyz boot" in unit
    assert "Type=oneshot" in unit and "KillMode=process" in unit  # its end kills nothing it left behind


def test_start_rewrites_a_boot_unit_an_older_payload_wrote(tmp_path, monkeypatch):
    """A host upgraded to a newer payload: its unit still names the old .pyz (and an old KillMode); the next start
    or restart rewrites it, so the next boot runs this payload. A host without a hook gets none from a start."""
    from types import SimpleNamespace

    from agent_payload.ops import lifecycle
    from agent_payload.state.paths import Paths

    monkeypatch.setenv("FLEET_HOOK_ROOT", str(tmp_path))
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    paths = Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc"))
    ctx = SimpleNamespace(paths=paths, launcher=["/usr/bin/python3", "/p/new.pyz"],
                          runtime=lambda: SimpleNamespace(restart=lambda refs, time: None))
    req = SimpleNamespace(containers=["c"], time=None)
    monkeypatch.setattr(lifecycle, "containers_of", lambda req: [])
    lifecycle.op_restart(ctx, req, None)
    assert boot.installed(paths) == "none"

    unit = tmp_path / "etc" / "systemd" / "system" / boot.UNIT_NAME
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nType=oneshot\nExecStart=/usr/bin/python3 /p/old.pyz boot\n")
    lifecycle.op_restart(ctx, req, None)
    text = unit.read_text()
    assert "ExecStart=/usr/bin/python3 /p/new.pyz boot" in text and "KillMode=process" in text
