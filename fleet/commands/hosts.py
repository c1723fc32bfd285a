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
                        d.get("overlay_state") or ("yes" if d["overlay"] else "no"), ",".join(d["namespaces"]),
                        tables.human_size(d["disk_free"]), d.get("boot_hook", "-"),
                        d.get("firewall", "-") if d.get("firewall") != "none" else "none (proxy only)"]]))
    return exit_status(results)


# ---- system prune

def prune_warning(all_: bool, volumes: bool) -> str:
    """docker system prune's warning: what will go, in its order."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_ else "all dangling images")
    items.append("all build cache" if all_ else "unused build cache")
    return "WARNING! This will remove:\n" + "".join("  - {}\n".format(i) for i in items)


def _prune_sections(data: dict) -> list[tuple[str, list[str]]]:
    images = data.get("images") or {}
    return [("Deleted Containers:", list((data.get("containers") or {}).get("deleted") or [])),
            ("Deleted Networks:", list((data.get("networks") or {}).get("removed") or [])),
            ("Deleted Volumes:", list((data.get("volumes") or {}).get("removed") or [])),
            ("Deleted Images:", ["untagged: " + u for u in images.get("untagged") or []]
             + ["deleted: " + i for i in images.get("deleted") or []]),
            ("Deleted build cache objects:", list((data.get("build_cache") or {}).get("deleted") or []))]


def system_prune(session: Session, patterns: list[str], all_: bool, volumes: bool, force: bool, as_json: bool,
                 stdin=None) -> int:
    """docker system prune on every selected host: asked once here (unless -f), then run everywhere.

    As docker, the answer is read from stdin even when it is no terminal: anything but y/yes is no.
    """
    import sys

    from fleet.commands.images import confirm, host_errors

    hosts = session.select(patterns)
    if not force and not confirm(prune_warning(all_, volumes), stdin or sys.stdin):
        return 0
    results = session.run_hosts(hosts, "system_prune", {"all": all_, "volumes": volumes})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    ok = [r for r in results if r.ok]
    width = max((len(r.host.name) for r in ok), default=0)
    for title, _ in _prune_sections({}):
        lines = [(r.host.name, item) for r in ok for t, items in _prune_sections(r.data) if t == title
                 for item in items]
        if lines:
            body = [item if len(hosts) == 1 else "{:<{}}  {}".format(h, width, item) for h, item in lines]
            sys.stdout.write("\n".join([title] + body) + "\n\n")  # docker: a blank line after each section
    host_errors(results)
    total = sum(r.data.get("reclaimed") or 0 for r in ok)
    output("Total reclaimed space: {}".format(tables.human_size(total)))
    return exit_status(results)


# ---- version, info

VERSION_FIELDS = {"Host": "HOST", "Client": "CLIENT", "Server": "SERVER"}
INFO_FIELDS = {"Host": "HOST", "Name": "NAME", "ServerVersion": "SERVER VERSION", "Containers": "CONTAINERS",
               "ContainersRunning": "RUNNING", "ContainersPaused": "PAUSED", "ContainersStopped": "STOPPED",
               "Images": "IMAGES", "Driver": "STORAGE DRIVER", "DockerRootDir": "ROOT DIR",
               "CgroupDriver": "CGROUP DRIVER", "CgroupVersion": "CGROUP VERSION", "FirewallBackend": "FIREWALL",
               "KernelVersion": "KERNEL", "OperatingSystem": "OS", "OSType": "OSTYPE", "Architecture": "ARCH",
               "NCPU": "CPUS", "MemTotal": "MEMORY", "RegistryConfig": "REGISTRIES", "Payload": "PAYLOAD",
               "ProtocolVersion": "PROTOCOL", "PythonVersion": "PYTHON"}


def client_version() -> dict:
    """docker version's Client part for this controller: fleet's version, the payload it ships, protocol, python."""
    import platform
    import sys

    from agent_payload.protocol import GO_ARCH, PROTOCOL_VERSION
    from fleet import __version__
    from fleet.transport import pyzcache

    return {"Version": __version__, "Payload": pyzcache.current().sha256, "ProtocolVersion": PROTOCOL_VERSION,
            "PythonVersion": "{}.{}.{}".format(*sys.version_info[:3]),
            "Os": "linux" if sys.platform.startswith("linux") else sys.platform,
            "Arch": GO_ARCH.get(platform.machine(), platform.machine())}


def _block(title: str, pairs: list, align: bool = True) -> str:
    """docker's ``Key:  value`` lines under a title: values aligned as ``version``'s tabwriter does, or one
    space after the colon as ``info``'s (a list value goes one per line, indented one more)."""
    width = max((len(k) for k, _ in pairs), default=0) + 2 if align else 0
    lines = [title]
    for key, value in pairs:
        if isinstance(value, list):
            lines.append(" {}:".format(key))
            lines.extend("  {}".format(v) for v in value)
        else:
            lines.append(" {:<{}}{}".format(key + ":", width, value) if align else " {}: {}".format(key, value))
    return "\n".join(lines)


def version(session: Session, patterns: list[str], fmt: str | None, as_json: bool) -> int:
    """docker version: the Client section (this controller), then a Server section per host."""
    from fleet.commands.images import host_errors

    formatter = None
    if fmt is not None and not as_json:
        from fleet.render import formatting
        formatter = formatting.compile_format(fmt, VERSION_FIELDS, maps=("Client", "Server"))
    client = client_version()
    results = session.run(patterns, "version", {})
    if as_json:
        import json
        output(json.dumps({"Client": client, "Servers": json.loads(tables.to_json(results))}, indent=2))
        return exit_status(results)
    if formatter is not None:
        text = formatter.render([{"Host": r.host.name, "Client": client, "Server": r.data} for r in results if r.ok])
        if text or formatter.table:
            output(text)
        host_errors(results)
        return exit_status(results)
    blocks = [_block("Client: fleet", [("Version", client["Version"]), ("Protocol version", client["ProtocolVersion"]),
                                       ("Payload", client["Payload"]), ("Python version", client["PythonVersion"]),
                                       ("OS/Arch", "{}/{}".format(client["Os"], client["Arch"]))])]
    for r in results:
        if not r.ok:
            blocks.append(_block("Server: {}".format(r.host.name), [("Error", tables.error_text(r.error))]))
            continue
        d = r.data
        blocks.append(_block("Server: {}".format(r.host.name), [
            ("Version", d.get("Version", "")), ("Protocol version", d.get("ProtocolVersion", "")),
            ("Payload", d.get("Payload", "")), ("Python version", d.get("PythonVersion", "")),
            ("Kernel version", d.get("KernelVersion", "")),
            ("OS/Arch", "{}/{}".format(d.get("Os", ""), d.get("Arch", "")))]))
    output("\n\n".join(blocks))
    return exit_status(results)


def info(session: Session, patterns: list[str], fmt: str | None, as_json: bool) -> int:
    """docker info per host: a ``Server: HOST`` block of docker's lines each (or --json, --format)."""
    from fleet.commands.images import list_formatted

    if fmt is not None and not as_json:
        return list_formatted(session, patterns, "info", {}, fmt, INFO_FIELDS,
                              lambda host, d: [dict(d, Host=host)], maps=("RegistryConfig", "FirewallBackend"))
    results = session.run(patterns, "info", {})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    blocks = []
    for r in results:
        title = "Server: {}".format(r.host.name)
        if not r.ok:
            blocks.append(_block(title, [("Error", tables.error_text(r.error))], align=False))
            continue
        d = r.data
        registries = d.get("RegistryConfig") or {}
        blocks.append(_block(title, [
            ("Containers", d.get("Containers")), (" Running", d.get("ContainersRunning")),
            (" Paused", d.get("ContainersPaused")), (" Stopped", d.get("ContainersStopped")),
            ("Images", d.get("Images")), ("Server Version", d.get("ServerVersion")),
            ("Storage Driver", d.get("Driver")), ("Cgroup Driver", d.get("CgroupDriver")),
            ("Cgroup Version", d.get("CgroupVersion")),
            ("Firewall Backend", (d.get("FirewallBackend") or {}).get("Driver", "")),
            ("Kernel Version", d.get("KernelVersion")), ("Operating System", d.get("OperatingSystem")),
            ("OSType", d.get("OSType")), ("Architecture", d.get("Architecture")), ("CPUs", d.get("NCPU")),
            ("Total Memory", _gib(d.get("MemTotal") or 0)), ("Name", d.get("Name")),
            ("Docker Root Dir", d.get("DockerRootDir")), ("Payload", d.get("Payload")),
            ("Python Version", d.get("PythonVersion")),
            ("Insecure Registries", list(registries.get("InsecureRegistries") or [])),
            ("Registry Mirrors", list(registries.get("Mirrors") or []))], align=False))
    output("\n\n".join(blocks))
    return exit_status(results)


def _gib(size: int) -> str:
    """docker info's Total Memory: binary units (go-units BytesSize), e.g. 1.944GiB."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return "{:.4g}{}".format(value, units[i])
