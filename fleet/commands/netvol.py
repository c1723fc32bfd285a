"""Fleet-wide ``network``, ``volume`` and ``port``: one table each, HOST first, docker's columns after it."""

from __future__ import annotations

import sys

from fleet.commands.common import Session, exit_status, inspect_output, note, output
from fleet.errors import UsageError
from fleet.render import tables


def _labels(items: list[str]) -> dict:
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError('invalid label "{}": want KEY[=VALUE]'.format(item))
        labels[key] = value
    return labels


def _table(results, headers, rows_of, as_json) -> int:
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.host_table(headers, results, rows_of))
    return exit_status(results)


# ---------------------------------------------------------------- networks

def _name_table(results, header: str, as_json: bool) -> int:
    """network rm / volume rm: one row per host and name (docker acts on each); 1 if any name failed."""
    if as_json:
        output(tables.to_json(results))
    else:
        output(tables.name_table([header, "RESULT"], results, "removed", "removed", id_of=str))
    return 1 if tables.names_failed(results) else exit_status(results)


def network_create(session: Session, patterns: list[str], name: str, driver: str, subnet: str | None,
                   gateway: str | None, internal: bool, labels: list[str], as_json: bool) -> int:
    """Create a bridge network on each host (same name everywhere; subnets are per host unless --subnet)."""
    args = {"name": name, "driver": driver, "subnet": subnet, "gateway": gateway, "internal": internal,
            "labels": _labels(labels)}
    results = session.run(patterns, "network_create", args)
    return _table(results, ["NETWORK ID", "NAME"], lambda d: [[tables.short_id(d["id"]), d["name"]]], as_json)


def network_ls(session: Session, patterns: list[str], filters: list[str], quiet: bool, no_trunc: bool,
               as_json: bool) -> int:
    """docker's NETWORK ID, NAME, DRIVER, SCOPE after HOST."""
    results = session.run(patterns, "network_ls", {"filters": list(filters)})
    if quiet and not as_json:  # docker's -q: bare IDs, every host's, one per line
        _bare(results, lambda d: [n["id"] if no_trunc else n["id"][:12] for n in d["networks"]])
        return exit_status(results)

    def rows(d):
        return [[n["id"] if no_trunc else n["id"][:12], n["name"], n["driver"], n["scope"]] for n in d["networks"]]
    return _table(results, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows, as_json)


def _bare(results, ids_of) -> None:
    text = tables.bare_ids(results, ids_of)
    if text:
        output(text)
    for r in results:
        if not r.ok:
            note("{}: {}".format(r.host.name, tables.error_text(r.error)))


def network_inspect(session: Session, patterns: list[str], networks: list[str], fmt: str | None = None) -> int:
    from fleet.render import formatting

    template = formatting.compile_inspect(fmt)
    return inspect_output(session.run(patterns, "network_inspect", {"networks": list(networks)}), "networks",
                          template)


def network_rm(session: Session, patterns: list[str], networks: list[str], as_json: bool) -> int:
    results = session.run(patterns, "network_rm", {"networks": list(networks)})
    return _name_table(results, "NETWORK", as_json)


def network_prune(session: Session, patterns: list[str], force: bool, as_json: bool, stdin=None) -> int:
    hosts = session.select(patterns)
    if not force:
        _confirm("This will remove all custom networks not used by at least one container on {} host(s).".format(
            len(hosts)), stdin)
    results = session.run_hosts(hosts, "network_prune", {})
    return _table(results, ["NETWORK", "RESULT"], lambda d: [[n, "removed"] for n in d["removed"]], as_json)


def network_connect(session: Session, patterns: list[str], network: str, container: str, aliases: list[str],
                    ip: str | None, as_json: bool) -> int:
    results = session.run(patterns, "network_connect", {"network": network, "container": container,
                                                         "aliases": list(aliases), "ip": ip})
    return _table(results, ["NETWORK", "CONTAINER", "IP"],
                  lambda d: [[d["network"], d["container"], d.get("ip") or ""]], as_json)


def network_disconnect(session: Session, patterns: list[str], network: str, container: str, as_json: bool) -> int:
    results = session.run(patterns, "network_disconnect", {"network": network, "container": container})
    return _table(results, ["NETWORK", "CONTAINER", "RESULT"],
                  lambda d: [[d["network"], d["container"], "disconnected"]], as_json)


# ---------------------------------------------------------------- volumes

def volume_create(session: Session, patterns: list[str], name: str | None, driver: str, labels: list[str],
                  options: list[str], as_json: bool) -> int:
    opts = _labels(options)
    results = session.run(patterns, "volume_create", {"name": name, "driver": driver, "labels": _labels(labels),
                                                       "options": opts})
    return _table(results, ["VOLUME NAME"], lambda d: [[d["Name"]]], as_json)


def volume_ls(session: Session, patterns: list[str], filters: list[str], quiet: bool, as_json: bool) -> int:
    """docker's DRIVER, VOLUME NAME after HOST."""
    results = session.run(patterns, "volume_ls", {"filters": list(filters)})
    if quiet and not as_json:  # docker's -q: bare names, every host's, one per line
        _bare(results, lambda d: [v["name"] for v in d["volumes"]])
        return exit_status(results)
    return _table(results, ["DRIVER", "VOLUME NAME"], lambda d: [[v["driver"], v["name"]] for v in d["volumes"]],
                  as_json)


def volume_inspect(session: Session, patterns: list[str], volumes: list[str], fmt: str | None = None) -> int:
    from fleet.render import formatting

    template = formatting.compile_inspect(fmt)
    return inspect_output(session.run(patterns, "volume_inspect", {"volumes": list(volumes)}), "volumes", template)


def volume_rm(session: Session, patterns: list[str], volumes: list[str], force: bool, as_json: bool) -> int:
    results = session.run(patterns, "volume_rm", {"volumes": list(volumes), "force": force})
    return _name_table(results, "VOLUME NAME", as_json)


def volume_prune(session: Session, patterns: list[str], all_: bool, force: bool, as_json: bool, stdin=None) -> int:
    hosts = session.select(patterns)
    if not force:
        _confirm("This will remove {} local volumes not used by at least one container on {} host(s).".format(
            "all" if all_ else "anonymous", len(hosts)), stdin)
    results = session.run_hosts(hosts, "volume_prune", {"all": all_})
    if as_json:
        output(tables.to_json(results))
        return exit_status(results)
    output(tables.host_table(["DELETED VOLUMES", "RECLAIMED"], results,
                             lambda d: [[len(d["removed"]), tables.human_size(d["reclaimed"])]]))
    return exit_status(results)


def _confirm(question: str, stdin=None) -> None:
    stdin = stdin or sys.stdin
    sys.stderr.write("WARNING! {}\nAre you sure you want to continue? [y/N] ".format(question))
    sys.stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("aborted: nothing was removed")


# ---------------------------------------------------------------- port

def port(session: Session, patterns: list[str], container: str, private_port: str | None, as_json: bool) -> int:
    """docker's ``port``: each published port of the container on every host, with the host's address."""
    results = session.run(patterns, "port", {"container": container, "port": private_port})
    if not as_json:
        for r in results:
            if r.ok:
                for warning in r.data.get("warnings") or []:
                    note("{}: warning: {}".format(r.host.name, warning))

    def rows(d):
        return [["{}/{}".format(p["container_port"], p["proto"]), "{}:{}".format(p["host_ip"], p["host_port"])]
                for p in d["ports"]]
    return _table(results, ["PORT", "PUBLISHED"], rows, as_json)
