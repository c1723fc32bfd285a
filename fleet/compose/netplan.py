"""Networks and volumes: the top-level ones as NetworkDef/VolumeDef, and a service's networks as create args.

As compose: a service without ``networks:`` joins ``default`` (``{project}_default``, unless the top-level
``networks: default:`` says otherwise); a project network is ``{project}_{name}`` on each host unless it has a
``name:``; an ``external`` one is used by its name as it is. On every network the service is reachable by its
service name (an alias) and by its ``aliases``. The first network by ``priority`` (highest first, then by name) is
the container's ``network`` at create; the others are connected before it starts (``extra_networks``).
"""

from __future__ import annotations

from typing import Any

from fleet.compose import model
from fleet.compose.plan import NetworkDef, VolumeDef

DEFAULT = "default"


def _labels(where: Any, raw: Any, path: tuple) -> dict:
    from fleet.compose.convert import RESERVED_LABEL_PREFIXES, _pairs

    out = {}
    for entry in _pairs(raw):
        key, _, value = entry.partition("=")
        if not key.strip():
            raise where.error(path, "invalid label {!r}: empty name".format(entry))
        if key.startswith(RESERVED_LABEL_PREFIXES):
            raise where.error(path, "label {!r}: the com.docker.compose.* labels are set by fleet".format(key))
        out[key] = value
    return out


def _external(where: Any, body: Any, key: str, path: tuple) -> tuple:
    """(external?, the name it has on the host)."""
    ext = body.external
    if isinstance(ext, dict):
        if ext.get("name") and body.name and ext["name"] != body.name:
            raise where.error(path + ("external", "name"), "conflicts with name:")
        return True, ext.get("name") or body.name or key
    return bool(ext), body.name or key


def top_networks(where: Any, project: str, raw: Any) -> dict:
    from fleet.compose.convert import validate

    out = {}
    for key, body in dict(raw or {}).items():
        path = ("networks", key)
        net = validate(model.TopNetwork, body, where, path)
        external, name = _external(where, net, str(key), path)
        if external:
            for attr in ("driver", "internal", "labels"):
                if getattr(net, attr) is not None:
                    raise where.error(path + (attr,), "an external network takes no {}".format(attr))
            out[str(key)] = NetworkDef(name_on_host=name, external=True)
            continue
        if net.driver not in (None, "bridge"):
            raise where.error(path + ("driver",), "network driver {!r} is not supported by fleet (bridge)".format(
                net.driver))
        labels = _labels(where, net.labels, path + ("labels",))
        labels.update({"com.docker.compose.project": project, "com.docker.compose.network": str(key)})
        out[str(key)] = NetworkDef(name_on_host=net.name or "{}_{}".format(project, key), internal=bool(net.internal),
                                   labels=labels)
    if DEFAULT not in out:
        out[DEFAULT] = NetworkDef(name_on_host="{}_{}".format(project, DEFAULT), labels={
            "com.docker.compose.project": project, "com.docker.compose.network": DEFAULT})
    return out


def top_volumes(where: Any, project: str, raw: Any) -> dict:
    from fleet.compose.convert import validate

    out = {}
    for key, body in dict(raw or {}).items():
        path = ("volumes", key)
        vol = validate(model.TopVolume, body, where, path)
        external, name = _external(where, vol, str(key), path)
        if external:
            for attr in ("driver", "labels"):
                if getattr(vol, attr) is not None:
                    raise where.error(path + (attr,), "an external volume takes no {}".format(attr))
            out[str(key)] = VolumeDef(name_on_host=name, external=True)
            continue
        if vol.driver not in (None, "local"):
            raise where.error(path + ("driver",), "volume driver {!r} is not supported by fleet (local)".format(
                vol.driver))
        labels = _labels(where, vol.labels, path + ("labels",))
        labels.update({"com.docker.compose.project": project, "com.docker.compose.volume": str(key)})
        out[str(key)] = VolumeDef(name_on_host=vol.name or "{}_{}".format(project, key), labels=labels)
    return out


def service_networks(conv: Any) -> tuple:
    """((network, network_aliases, ip) of create, [(name_on_host, aliases)] connected before start)."""
    from fleet.compose.convert import validate

    where, service = conv.where, conv.where.service
    raw = conv.svc.networks
    entries = {name: None for name in raw} if isinstance(raw, list) else dict(raw or {DEFAULT: None})
    chosen = []
    for name, body in entries.items():
        path = ("networks", name)
        if name not in conv.networks:
            raise where.error(path, "service {} refers to undefined network {}: declare it under the top-level "
                              "networks:".format(service, name))
        net = validate(model.ServiceNetwork, body, where, path)
        aliases = [service] + [a for a in (net.aliases or []) if a != service]
        chosen.append((-(net.priority or 0), str(name), aliases, net.ipv4_address, path))
    chosen.sort(key=lambda item: (item[0], item[1]))
    for index, (_prio, name, _aliases, ip, path) in enumerate(chosen):
        if ip is not None and index:
            raise where.error(path + ("ipv4_address",), "fleet sets an address only on the service's first network "
                              "({})".format(chosen[0][1]))
        conv.used_networks.append(name)
    first = chosen[0]
    extra = [(conv.networks[name].name_on_host, aliases) for _p, name, aliases, _ip, _path in chosen[1:]]
    return (conv.networks[first[1]].name_on_host, first[2], first[3]), extra
