"""What every fleet-wide command shares: the session (inventory, options), host selection, output, exit status."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import UsageError

DEFAULT_INVENTORY = Path("inventories/lab.yml")


@dataclass
class Session:
    """Global options from the command line."""

    inventories: list[str] = field(default_factory=list)
    forks: int = 50
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    accept_new_host_keys: bool = False
    identity_files: list[str] = field(default_factory=list)

    def inventory_paths(self) -> list[str]:
        if self.inventories:
            return self.inventories
        env = os.environ.get("FLEET_INVENTORY")
        if env:
            return [p for p in env.split(os.pathsep) if p]
        if DEFAULT_INVENTORY.exists():
            return [str(DEFAULT_INVENTORY)]
        raise UsageError("no inventory: pass -i FILE (repeatable) or set FLEET_INVENTORY "
                         "(`fleet lab up` writes inventories/lab.yml)")

    def select(self, patterns: list[str]):
        """Load the inventories and return the hosts matching the -H patterns (UsageError if none)."""
        from fleet.inventory import cache, select

        if not patterns:
            raise UsageError("no hosts given: pass -H PATTERN (e.g. -H all, -H 'web*', -H 'web:!web3')")
        return select(cache.load(self.inventory_paths()), patterns)

    def run_options(self, bounded: bool = True):
        """Fan-out options; ``bounded=False`` lifts the command timeout (logs -f, run in the foreground)."""
        from fleet.transport.fanout import RunOptions
        from fleet.transport.ssh import SSHOptions

        return RunOptions(
            forks=self.forks,
            command_timeout=self.command_timeout if bounded else None,
            ssh=SSHOptions(connect_timeout=self.connect_timeout, accept_new_host_keys=self.accept_new_host_keys,
                           identity_files=list(self.identity_files)))

    def run(self, patterns, op, args, on_event=None, bounded: bool = True, args_for=None):
        """Select hosts and run ``op`` on all of them; returns the per-host results."""
        return self.run_hosts(self.select(patterns), op, args, on_event, bounded, args_for)

    def run_hosts(self, hosts, op, args, on_event=None, bounded: bool = True, args_for=None):
        """Run ``op`` on ``hosts``; bad input that every host rejected alike becomes one UsageError (exit 2).

        ``args_for(host) -> dict``, when given, replaces ``args`` with per-host arguments.
        """
        from fleet.transport import fanout

        results = fanout.run(hosts, op, args, self.run_options(bounded), on_event, args_for=args_for)
        raise_if_rejected_input(results)
        return results


def raise_if_rejected_input(results) -> None:
    """Every host refused the request as InvalidArgument with the same message: that is the user's input.

    The payload validates everything before it acts, so nothing changed anywhere; say it once, exit 2.
    """
    from fleet.errors import RemoteError

    errors = [r.error for r in results]
    if errors and all(isinstance(e, RemoteError) and e.kind == "InvalidArgument" for e in errors):
        messages = {e.message for e in errors}
        if len(messages) == 1:
            raise UsageError(messages.pop())


#: docker run's exit status when the engine failed and no container ran its course (a name in use, an image
#: the registry lacks, a start refused): 125, so that scripts tell it from the container's own codes
RUN_FAILED = 125


def run_status(results) -> int | None:
    """``run``'s status when it failed: 125 for one host (docker's), 1 for several (fleet's partial failure
    rule); None when every host ran the container (its exit code decides)."""
    if all(r.ok for r in results):
        return None
    return RUN_FAILED if len(results) == 1 else 1


def exit_status(results) -> int:
    """0 when every host succeeded, 1 when any failed (the others still finished)."""
    return 0 if all(r.ok for r in results) else 1


def output(text: str) -> None:
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def inspect_output(results, key: str, template=None) -> int:
    """docker's inspect objects from every host as one JSON list, each with its ``host``; failed hosts on stderr.

    ``template`` (render/formatting.compile_inspect, ``-f``): each object's rendering and a newline instead, as
    docker prints them; with several hosts each line starts with ``host | `` (one host: bare lines).
    """
    import json

    objects = []
    for r in results:
        if r.ok:
            for obj in r.data.get(key, []):
                item = {"host": r.host.name}
                item.update(obj)
                objects.append(item)
        else:
            note("{}: {}".format(r.host.name, " ".join(str(r.error).split())))
    status = _inspect_status(results)
    if template is None:
        output(json.dumps(objects, indent=4))
        _report_missing(results)
        return status
    texts = [(obj["host"], template.render(obj)) for obj in objects]  # a failing one: exit 2, nothing printed
    width = max(len(r.host.name) for r in results) if results else 0
    for host, text in texts:
        if len(results) > 1:
            text = "\n".join("{} | {}".format(host.ljust(width), line) for line in text.split("\n"))
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    _report_missing(results)
    return status


def _missing(results) -> list:
    """(host, error) for each name a host that answered did not find (the op's ``errors``)."""
    return [(r.host.name, e) for r in results if r.ok for e in (r.data or {}).get("errors", [])]


def _inspect_status(results) -> int:
    """docker inspect: 1 when a host failed or any name was not found (the found ones are printed all the same)."""
    return 1 if _missing(results) else exit_status(results)


def _report_missing(results) -> None:
    """docker's "Error: No such object: x" (image: "No such image: x") per name not found, after the objects."""
    for host, e in _missing(results):
        sys.stderr.write("{}: Error: {}\n".format(host, e["message"]))
    sys.stderr.flush()

