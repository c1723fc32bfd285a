"""Restart policies across reboots: the boot hook (systemd unit or cron @reboot line) and the ``boot`` entry it runs.

Docker restarts containers when its daemon starts; fleet has no daemon, so the first container created with a
restart policy installs a hook that runs ``<payload> boot`` once at boot.  ``boot`` starts every container that
docker's daemon would restart (its rule at daemon start, moby ``daemon.restore``): started before, not running
now, and the restart policy says so for the last exit (``always``: even after a manual stop; ``unless-stopped``:
unless stopped by the user; ``on-failure``: after a non-zero exit, below the retry limit).

Where the hook goes: a systemd unit ``fleet-boot.service`` (enabled with the multi-user.target.wants symlink) when
systemd is PID 1 (``/run/systemd/system`` exists), else ``/etc/cron.d/fleet-boot`` when ``/etc/cron.d`` exists,
else none.  The shims ``boot`` starts leave the unit's cgroup for scopes of their own (cgroups/scope.py), and the
unit has ``KillMode=process``, so its end kills nothing (a unit written before is rewritten and systemd reloaded).
Every path is under ``Paths.hook_root`` (``$FLEET_HOOK_ROOT``, default ``/``), which tests and the lab
use to stay off the machine's real /etc.  The hook names the payload that wrote it (the sha-named .pyz); a newer
payload rewrites it whenever it installs it (atomic writes, idempotent).
"""

import os
import shlex
import sys

from .. import errors
from ..linux import sdbus
from ..state import store
from ..state.paths import DEFAULT_CONFIG_DIR, DEFAULT_ROOT
from . import reaper, records, restart

UNIT_NAME = "fleet-boot.service"
CRON_NAME = "fleet-boot"


def hook_root(paths):
    """The directory the hook paths hang off (``$FLEET_HOOK_ROOT`` or ``/``)."""
    return os.environ.get("FLEET_HOOK_ROOT") or "/"


def _p(paths, *parts):
    return os.path.join(hook_root(paths), *parts)


def kind(paths):
    """Which hook this host gets: "systemd", "cron" or "none"."""
    if os.path.isdir(_p(paths, "run", "systemd", "system")):
        return "systemd"
    if os.path.isdir(_p(paths, "etc", "cron.d")):
        return "cron"
    return "none"


def installed(paths):
    """The kind of hook present on this host ("systemd", "cron") or "none"."""
    if os.path.exists(_p(paths, "etc", "systemd", "system", UNIT_NAME)):
        return "systemd"
    if os.path.exists(_p(paths, "etc", "cron.d", CRON_NAME)):
        return "cron"
    return "none"


def _env(paths):
    env = []
    if paths.root != DEFAULT_ROOT:
        env.append(("FLEET_ROOT", paths.root))
    if paths.config_dir != DEFAULT_CONFIG_DIR:
        env.append(("FLEET_CONFIG_DIR", paths.config_dir))
    return env


def _command(launcher):
    return " ".join(shlex.quote(a) for a in list(launcher) + ["boot"])


def unit_text(paths, launcher):
    """The systemd unit (``%`` and ``$`` escaped as systemd wants)."""
    esc = lambda text: text.replace("%", "%%").replace("$", "$$")  # noqa: E731
    lines = ["# Written by fleet: starts containers with a restart policy at boot (docker's daemon start).",
             "[Unit]", "Description=fleet: start containers with a restart policy",
             "Wants=network-online.target", "After=network-online.target", "", "[Service]", "Type=oneshot",
             "# each shim moves to its own fleet-<id>.scope; should one not, the unit's end must not kill it",
             "KillMode=process"]
    lines += ["Environment=" + esc(shlex.quote("{}={}".format(k, v))) for k, v in _env(paths)]
    lines += ["ExecStart=" + esc(_command(launcher)), "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def cron_text(paths, launcher):
    """The /etc/cron.d line (``%`` is a newline to cron: escaped)."""
    env = "".join("{}={} ".format(k, shlex.quote(v)) for k, v in _env(paths))
    cmd = (env + _command(launcher)).replace("%", "\\%")
    return ("# Written by fleet: starts containers with a restart policy at boot (docker's daemon start).\n"
            "@reboot root {} >/dev/null 2>&1\n".format(cmd))


def _write_if_changed(path, text, mode=0o644):
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    store.write_bytes_atomic(path, text.encode(), mode=mode)
    return True


def install(paths, launcher):
    """Install (or refresh) the boot hook for this payload; returns its kind ("systemd", "cron" or "none")."""
    which = kind(paths)
    if which == "systemd":
        unit_dir = _p(paths, "etc", "systemd", "system")
        os.makedirs(os.path.join(unit_dir, "multi-user.target.wants"), exist_ok=True)
        if _write_if_changed(os.path.join(unit_dir, UNIT_NAME), unit_text(paths, launcher)):
            _daemon_reload(paths)
        link = os.path.join(unit_dir, "multi-user.target.wants", UNIT_NAME)
        if not os.path.islink(link):
            tmp = link + ".tmp-{}".format(os.getpid())
            os.symlink(os.path.join("..", UNIT_NAME), tmp)
            os.rename(tmp, link)
    elif which == "cron":
        _write_if_changed(_p(paths, "etc", "cron.d", CRON_NAME), cron_text(paths, launcher))
    return which


def _daemon_reload(paths):
    """``systemctl daemon-reload`` after a rewrite of the unit on this very host (not under $FLEET_HOOK_ROOT), so
    systemd runs the new text (KillMode=process for units written by older payloads); a note if it fails."""
    if os.path.realpath(hook_root(paths)) != "/" or not os.path.exists(sdbus.SYSTEMD_PRIVATE):
        return
    try:
        with sdbus.Systemd(timeout=60) as systemd:
            systemd.reload()
    except (OSError, sdbus.DBusError) as exc:
        sys.stderr.write("fleet: wrote {} but systemd's daemon-reload failed: {}\n".format(UNIT_NAME, exc))


def install_quietly(paths, launcher):
    """``install`` for create/update: a hook that cannot be written is a note on stderr, not a failed create."""
    try:
        return install(paths, launcher)
    except OSError as exc:
        sys.stderr.write("fleet: could not install the boot hook: {}\n".format(exc))
        return "none"


def refresh(paths, launcher):
    """Rewrite a hook that is already on this host for this payload (start/restart): a host upgraded to a newer
    payload would otherwise boot once more with the unit an older one wrote (its launcher, its KillMode)."""
    if launcher and installed(paths) != "none":
        install_quietly(paths, launcher)


def wants_start(config, state):
    """Docker's rule at daemon start for one container (its shim is gone: ``state`` is reconciled)."""
    if state.get("status") != "exited" or not state.get("started_at"):
        return False
    return restart.should_restart(config.get("restart_policy"), state.get("exit_code"),
                                  state.get("manually_stopped"), state.get("restart_count") or 0)


def boot(runtime, launcher=None):
    """Start every container docker's daemon would restart at its start; refresh the hook.

    Returns {"started": [id], "failed": [{"id", "error"}], "hook": kind}.
    """
    started, failed = [], []
    for cid in sorted(records.list_ids(runtime.paths)):
        try:
            config, state = reaper.load(runtime.paths, cid)
        except errors.NotFound:
            continue
        if not wants_start(config, state):
            continue
        try:
            runtime.start(cid)
            started.append(cid)
        except errors.AgentError as exc:
            failed.append({"id": cid, "error": exc.message})
    records.gc_tombstones(runtime.paths)
    hook = install_quietly(runtime.paths, launcher) if launcher and any_policy(runtime.paths) else \
        installed(runtime.paths)
    return {"started": started, "failed": failed, "hook": hook}


def any_policy(paths):
    """True if some container on this host has a restart policy other than "no"."""
    for cid in records.list_ids(paths):
        cfg = store.read_json(records.Layout(paths, cid).config) or {}
        if ((cfg.get("restart_policy") or {}).get("Name") or "no") != "no":
            return True
    return False
