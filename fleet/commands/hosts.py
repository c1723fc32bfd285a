"""Host commands: list the selection (`hosts`), reach every host (`ping`), and gather `facts`."""

from __future__ import annotations

from fleet.commands.common import Session, exit_status, output
from fleet.render import tables


def hosts(session: Session, patterns: list[str], as_json: bool) -> int:
    """List the hosts a pattern selects, without contacting them."""
    import json

    selected = session.select(patterns)
    if as_json:
        output(json.dumps([{"host": h.name, "address": h.address, "port": h.port, "user": h.user,
                            "groups": list(h.groups)} for h in selected], indent=2))
    else:
        output(tables.render(["HOST", "ADDRESS", "PORT", "USER", "GROUPS"],
                             [[h.name, h.address, h.port, h.user or "", ",".join(g for g in h.groups if g != "all")]
                              for h in selected]))
    return 0


def ping(session: Session, patterns: list[str], as_json: bool) -> int:
    """Run the payload's ping on every host: proves SSH, the interpreter and the payload."""
    results = session.run(patterns, "ping", {})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(["STATUS", "HOSTNAME", "PYTHON", "PAYLOAD"], results,
                                 lambda d: [["pong", d["hostname"], d["python"], tables.short_id(d["payload"])]]))
    return exit_status(results)


def facts(session: Session, patterns: list[str], as_json: bool) -> int:
    """Kernel, distro, python, cgroup version, overlay and namespace support, free disk per host."""
    results = session.run(patterns, "facts", {})
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(
            ["HOSTNAME", "DISTRO", "KERNEL", "ARCH", "PYTHON", "CGROUP", "OVERLAY", "NAMESPACES", "DISK FREE",
             "BOOT HOOK", "FIREWALL"],
            results,
            lambda d: [[d["hostname"], d["distro"], d["kernel"], d["arch"], d["python"], d["cgroup"],
                        "yes" if d["overlay"] else "no", ",".join(d["namespaces"]),
                        tables.human_size(d["disk_free"]), d.get("boot_hook", "-"),
                        d.get("firewall", "-") if d.get("firewall") != "none" else "none (proxy only)"]]))
    return exit_status(results)
