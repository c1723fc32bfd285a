"""Registry commands across hosts: login, logout, push, and configure (daemon.json from the inventory).

The login password travels only inside the JSON request on stdin (see transport/invoke.py): never on a
command line, never printed, never in --json output, and scrubbed from any error text as a last guard.
"""

from __future__ import annotations

import sys

from fleet.commands.common import Session, exit_status, note, output
from fleet.commands.images import familiar, run_with_progress
from fleet.errors import UsageError
from fleet.render import tables

PASSWORD_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."

#: Inventory host var -> (daemon.json key, expected type).
DAEMON_VARS = {
    "fleet_registry_mirrors": ("registry-mirrors", list),
    "fleet_insecure_registries": ("insecure-registries", list),
    "fleet_registries": ("registries", dict),
}


def _validate_registry(registry: str | None) -> str | None:
    if registry is None:
        return None
    if not registry or any(c.isspace() for c in registry):
        raise UsageError('invalid registry "{}"'.format(registry))
    return registry


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "********") if secret else text


def read_credentials(username: str | None, password: str | None, password_stdin: bool, stdin=None,
                     prompt_user=input, prompt_password=None):
    """docker login's rules for where the username and password come from; returns (username, password).

    -p warns; --password-stdin needs -u and reads the whole of stdin (trailing newline dropped); anything
    missing is prompted for on a terminal, and is a usage error without one.
    """
    import getpass

    stdin = stdin or sys.stdin
    prompt_password = prompt_password or getpass.getpass
    if password is not None and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password is not None:
        note(PASSWORD_WARNING)
    if password_stdin:
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = stdin.read().rstrip("\r\n")
    if username is None or password is None:
        if not stdin.isatty():
            raise UsageError("cannot perform an interactive login from a non TTY device: "
                             "pass -u USER and --password-stdin")
        if username is None:
            username = prompt_user("Username: ").strip()
        if password is None:
            password = prompt_password("Password: ")
    if not username:
        raise UsageError("username is required")
    if not password:
        raise UsageError("password is required")
    return username, password


def login(session: Session, patterns: list[str], registry: str | None, username: str | None, password: str | None,
          password_stdin: bool, as_json: bool, stdin=None) -> int:
    """Log every selected host in to a registry (docker.io when none is given)."""
    registry = _validate_registry(registry)
    username, password = read_credentials(username, password, password_stdin, stdin)
    hosts = session.select(patterns)
    try:
        results = session.run_hosts(hosts, "login", {"registry": registry, "username": username,
                                                     "password": password})
    except UsageError as exc:
        raise UsageError(_scrub(str(exc), password)) from None
    for r in results:  # a payload must never echo the password; if one ever does, it stops here
        if not r.ok:
            r.error.args = tuple(_scrub(str(a), password) for a in r.error.args)
            if hasattr(r.error, "message"):
                r.error.message = _scrub(r.error.message, password)
            if getattr(r.error, "details", None):
                r.error.details = None
    if as_json:
        output(_scrub(tables.to_json(results), password))
    else:
        output(_scrub(tables.host_table(["REGISTRY", "STATUS"], results,
                                        lambda d: [[d.get("registry") or "", d.get("status") or ""]]), password))
    return exit_status(results)


def logout(session: Session, patterns: list[str], registry: str | None, as_json: bool) -> int:
    """Remove the stored credentials for a registry on every selected host."""
    registry = _validate_registry(registry)
    results = session.run(patterns, "logout", {"registry": registry})
    if as_json:
        output(tables.to_json(results))
    else:
        def rows(d):
            name = d.get("registry") or ""
            said = "Removing login credentials for " if d.get("removed") else "Not logged in to "
            return [[name, said + name]]
        output(tables.host_table(["REGISTRY", "RESULT"], results, rows))
    return exit_status(results)


def push(session: Session, patterns: list[str], image: str, quiet: bool, as_json: bool) -> int:
    """Push an image from every selected host to its registry, with the live per-host progress view."""
    label = familiar(image)
    results = run_with_progress(session, patterns, "push", {"image": image}, label, "Push complete",
                                quiet or as_json)
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["IMAGE", "DIGEST", "SIZE", "ENDPOINT"], results, lambda d: [
            [d.get("image"), d.get("digest"), tables.human_size(d.get("size")), d.get("endpoint") or ""]]))
    return exit_status(results)


def daemon_settings(host) -> dict:
    """The daemon.json keys a host's inventory vars set (only those that are set); UsageError on a wrong type."""
    daemon: dict = {}
    extra = host.vars.get("fleet_daemon")
    if extra is not None:
        if not isinstance(extra, dict):
            raise UsageError("host {}: fleet_daemon must be a mapping of daemon.json keys, got {}".format(
                host.name, type(extra).__name__))
        daemon.update({str(k): v for k, v in extra.items()})
    for var, (key, kind) in DAEMON_VARS.items():
        if var not in host.vars:
            continue
        value = host.vars[var]
        if not isinstance(value, kind):
            raise UsageError("host {}: {} must be a {}, got {}".format(
                host.name, var, "list" if kind is list else "mapping", type(value).__name__))
        if kind is list and not all(isinstance(v, str) for v in value):
            raise UsageError("host {}: {} must be a list of strings".format(host.name, var))
        if key in daemon and daemon[key] != value:
            raise UsageError("host {}: {} and fleet_daemon[{!r}] disagree; set one".format(host.name, var, key))
        daemon[key] = value
    return daemon


def configure(session: Session, patterns: list[str], as_json: bool) -> int:
    """Write each host's registry settings from the inventory into its /etc/fleet/daemon.json."""
    hosts = session.select(patterns)
    settings = {h.name: daemon_settings(h) for h in hosts}  # every host checked before any is contacted
    results = session.run_hosts(hosts, "configure", {}, args_for=lambda h: {"daemon": settings[h.name]})
    if as_json:
        output(tables.to_json(results))
    else:
        from fleet.transport.fanout import HostResult

        # the table shows which keys each host was sent; the payload's data does not name the host
        rows = [HostResult(r.host, data=dict(r.data or {}, sent=sorted(settings[r.host.name])), error=r.error)
                for r in results]
        output(tables.host_table(["CHANGED", "KEYS"], rows, lambda d: [
            ["yes" if d.get("changed") else "no", ",".join(d["sent"]) or "-"]]))
    return exit_status(results)
