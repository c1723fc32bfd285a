"""Network and volume ops: ``network_*``, ``volume_*`` and ``port`` (docker's objects, columns and messages)."""

from agent_payload import errors


def _filters(items, keys):
    """{key: [values]} of ``-f key=value`` strings; unknown keys are InvalidArgument (docker's message)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise errors.InvalidArgument('bad format of filter (expected name=value): "{}"'.format(item))
        if key not in keys:
            raise errors.InvalidArgument("invalid filter '{}'".format(key))
        out.setdefault(key, []).append(value)
    return out


def _labels_match(labels, wanted):
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _labels(labels):
    from agent_payload.runtime.spec import check_labels
    return check_labels(labels)


def _configs(ctx):
    """{container id: config} of every container (what uses which volume)."""
    from agent_payload.runtime.volumes import all_configs
    return all_configs(ctx.paths)


# ---------------------------------------------------------------- networks

def _networks(ctx):
    from agent_payload.net import sandbox_alive
    from agent_payload.net.networks import Networks
    return Networks(ctx.paths, alive=sandbox_alive(ctx.paths))


def network_object(nets, rec):
    """docker's ``network inspect`` object."""
    containers = {}
    if not rec.get("predefined"):
        for cid, ep in sorted(nets.endpoints(rec).items()):
            containers[cid] = {"Name": ep["name"], "EndpointID": cid[:12] + rec["id"][:12], "MacAddress": ep["mac"],
                               "IPv4Address": "{}/{}".format(ep["ip"], ep["prefix"]), "IPv6Address": ""}
    config = [{"Subnet": rec["subnet"], "Gateway": rec["gateway"]}] if rec.get("subnet") else []
    options = {"com.docker.network.bridge.name": rec["bridge"]} if rec.get("bridge") else {}
    options.update(rec.get("options") or {})
    return {"Name": rec["name"], "Id": rec["id"], "Created": rec.get("created") or "0001-01-01T00:00:00Z",
            "Scope": "local", "Driver": rec["driver"], "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config}, "Internal": bool(rec.get("internal")),
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": containers, "Options": options, "Labels": dict(rec.get("labels") or {})}


def op_network_create(ctx, req, emit):
    """{"name", "driver", "subnet", "gateway", "internal", "labels"} -> {"id", "name"}."""
    rec = _networks(ctx).create(req.name, driver=req.driver or "bridge", subnet=req.subnet, gateway=req.gateway,
                                internal=req.internal, labels=_labels(req.labels))
    return {"id": rec["id"], "name": rec["name"]}


def op_network_ls(ctx, req, emit):
    """{"filters"} -> {"networks": [{"id", "name", "driver", "scope", "subnet", "internal", "labels"}]}."""
    filters = _filters(req.filters, ("name", "id", "driver", "label", "type"))
    rows = []
    for rec in _networks(ctx).list():
        if filters.get("name") and not any(v in rec["name"] for v in filters["name"]):
            continue
        if filters.get("id") and not any(rec["id"].startswith(v) for v in filters["id"]):
            continue
        if filters.get("driver") and rec["driver"] not in filters["driver"]:
            continue
        if filters.get("label") and not _labels_match(rec.get("labels") or {}, filters["label"]):
            continue
        kind = "builtin" if rec.get("predefined") or rec.get("default") else "custom"
        if filters.get("type") and kind not in filters["type"]:
            continue
        rows.append({"id": rec["id"], "name": rec["name"], "driver": rec["driver"], "scope": "local",
                     "subnet": rec.get("subnet"), "internal": bool(rec.get("internal")),
                     "labels": dict(rec.get("labels") or {})})
    return {"networks": rows}


def op_network_inspect(ctx, req, emit):
    """{"networks": [ref]} -> {"networks": [docker's object]} (every reference resolved first)."""
    from agent_payload.ops.pername import inspect_each

    nets = _networks(ctx)

    def one(ref):
        try:
            rec = nets.get(ref)
        except errors.NotFound:  # docker inspect's words (the daemon's own are "network X not found")
            raise errors.NotFound("No such network: {}".format(ref)) from None
        return network_object(nets, rec)
    return inspect_each(req.networks, one, "networks")


def _remove_bridge(ctx):
    from agent_payload.net import firewall, links

    def remove(rec):
        firewall.network_down(ctx.paths, rec)
        links.remove_link(rec["bridge"])
    return remove


def op_network_rm(ctx, req, emit):
    """{"networks": [ref]} -> {"removed": [name], "results": per name} (in use or predefined: Conflict, docker's
    messages); each name is its own operation, as docker's."""
    from agent_payload.ops.pername import per_name

    nets = _networks(ctx)
    return per_name(req.networks, lambda ref: nets.remove(ref, _remove_bridge(ctx))["name"], "removed")


def op_network_prune(ctx, req, emit):
    """{} -> {"removed": [name]}: user networks without containers."""
    return {"removed": _networks(ctx).prune(_remove_bridge(ctx))}


def op_network_connect(ctx, req, emit):
    """{"network", "container", "aliases", "ip"} -> {"network", "container", "ip"|null}."""
    return ctx.runtime().connect(req.container, req.network, aliases=req.aliases, ip=req.ip)


def op_network_disconnect(ctx, req, emit):
    """{"network", "container", "force"} -> {"network", "container"}."""
    return ctx.runtime().disconnect(req.container, req.network)


# ---------------------------------------------------------------- volumes

def _volumes(ctx):
    from agent_payload.runtime.volumes import Volumes
    return Volumes(ctx.paths)


def volume_object(rec):
    """docker's ``volume inspect`` object."""
    return {k: rec[k] for k in ("CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope")}


def op_volume_create(ctx, req, emit):
    """{"name"|null, "driver", "labels", "options"} -> docker's volume object."""
    return volume_object(_volumes(ctx).create(req.name, labels=_labels(req.labels), driver=req.driver or "local",
                                              options=req.options))


def op_volume_ls(ctx, req, emit):
    """{"filters"} -> {"volumes": [{"name", "driver", "labels", "mountpoint", "in_use"}]}."""
    filters = _filters(req.filters, ("name", "driver", "label", "dangling"))
    vols = _volumes(ctx)
    configs = _configs(ctx)
    rows = []
    for rec in vols.list():
        used = bool(vols.users(rec["Name"], configs))
        if filters.get("name") and not any(v in rec["Name"] for v in filters["name"]):
            continue
        if filters.get("driver") and rec["Driver"] not in filters["driver"]:
            continue
        if filters.get("label") and not _labels_match(rec.get("Labels") or {}, filters["label"]):
            continue
        dangling = filters.get("dangling")
        if dangling:
            if dangling[-1] not in ("true", "false", "1", "0"):
                raise errors.InvalidArgument("invalid filter 'dangling={}'".format(dangling[-1]))
            if (dangling[-1] in ("true", "1")) == used:
                continue
        rows.append({"name": rec["Name"], "driver": rec["Driver"], "labels": rec.get("Labels") or {},
                     "mountpoint": rec["Mountpoint"], "in_use": used})
    return {"volumes": rows}


def op_volume_inspect(ctx, req, emit):
    from agent_payload.ops.pername import inspect_each

    vols = _volumes(ctx)
    return inspect_each(req.volumes, lambda name: volume_object(vols.get(name)), "volumes")


def op_volume_rm(ctx, req, emit):
    """{"volumes": [name], "force"} -> {"removed": [name], "results": per name} (in use: Conflict naming the
    containers); each name is its own operation, as docker's."""
    from agent_payload.ops.pername import per_name

    vols, configs = _volumes(ctx), _configs(ctx)
    names = req.volumes
    if not names:
        raise errors.InvalidArgument("volume rm requires at least 1 argument")
    force = req.force

    def remove(name):
        try:
            vols.get(name)
        except errors.NotFound:
            if not force:  # docker: -f ignores missing volumes
                raise
            return None
        users = vols.users(name, configs)
        if users:
            raise errors.Conflict("remove {}: volume is in use - [{}]".format(name, ", ".join(users)))
        return vols.remove(name, configs)

    return per_name(names, remove, "removed")


def op_volume_prune(ctx, req, emit):
    """{"all"} -> {"removed": [name], "reclaimed": bytes}: unused anonymous volumes (all unused with "all")."""
    removed, reclaimed = _volumes(ctx).prune(_configs(ctx), all=req.all)
    return {"removed": removed, "reclaimed": reclaimed}


# ---------------------------------------------------------------- port

def op_port(ctx, req, emit):
    """{"container", "port": "80[/tcp]"|null} -> {"id", "ports": [{"container_port", "proto", "host_ip",
    "host_port"}], "warnings": [str]} (docker's port; a port not published: NotFound as docker's message)."""
    rec = ctx.runtime().lookup(req.container)
    settings = rec.get("network_settings") or {}
    bindings = (settings.get("ports") or []) if rec.get("status") == "running" else []
    wanted = req.port
    if wanted:
        port, _, proto = wanted.partition("/")
        proto = proto or "tcp"
        if not port.isdigit():
            raise errors.InvalidArgument("Error: invalid port ({}): want PORT[/PROTO]".format(wanted))
        bindings = [b for b in bindings if b["container_port"] == int(port) and b["proto"] == proto]
        if not bindings:
            raise errors.NotFound("Error: No public port '{}/{}' published for {}".format(port, proto, rec["name"]))
    from agent_payload.net import firewall
    backend = firewall.backend(ctx.paths).name
    warnings = []
    if bindings and backend != "none" and _host_firewall_active():
        warnings.append("published ports bypass the host firewall (ufw/firewalld): traffic DNAT'ed to containers "
                        "goes through FORWARD, not INPUT; bind to 127.0.0.1 (-p 127.0.0.1:PORT:PORT) to keep a port "
                        "local")
    return {"id": rec["id"], "name": rec["name"], "backend": backend,
            "ports": [{"container_port": b["container_port"], "proto": b["proto"],
                       "host_ip": b.get("host_ip") or "0.0.0.0", "host_port": b["host_port"]} for b in bindings],
            "warnings": warnings}


def _host_firewall_active():
    """ufw or firewalld running on this host (their INPUT rules do not see DNAT'ed traffic)."""
    import os
    return os.path.exists("/run/firewalld/firewalld.pid") or (os.path.exists("/etc/ufw/ufw.conf") and _ufw_enabled())


def _ufw_enabled():
    try:
        with open("/etc/ufw/ufw.conf") as f:
            return any(line.strip().lower() == "enabled=yes" for line in f)
    except OSError:
        return False


# ---------------------------------------------------------------- run/create

def network_flags(ctx, req, mode):
    """Check a ``run``/``create`` request's network flags before anything is pulled; returns a finisher taking the
    image config that gives the spec fields {"network", "networks", "ports"} (``-P`` needs the image's EXPOSE).

    ``req.network`` is the mode as sent (already syntax-checked into ``mode``; None = the default network, or
    "none" when daemon.json says "bridge": "none"); ``network_aliases``, ``ip``, ``publish`` (-p values),
    ``publish_all`` (-P).
    """
    from agent_payload.net import ports
    from agent_payload.net.networks import DEFAULT_NAME

    if req.network is None and ctx.images().config.bridge == "none":
        mode = "none"
    aliases, ip, publish, publish_all = req.network_aliases, req.ip, req.publish, req.publish_all
    bindings = ports.parse_all(publish)  # syntax first: "-p" errors name the value
    user_network = mode not in ("bridge", "host", "none", DEFAULT_NAME) and not mode.startswith("container:")
    if user_network:
        try:
            _networks(ctx).get(mode)
        except errors.NotFound:
            raise errors.InvalidArgument("network {} not found".format(mode))
    if (aliases or ip) and not user_network:
        raise errors.InvalidArgument("network-scoped aliases and --ip are supported only for containers in user "
                                     "defined networks")
    from agent_payload import hostopts
    mac = hostopts.check_mac(req.mac_address)
    if mac is not None and (mode in ("host", "none") or mode.startswith("container:")):
        raise errors.InvalidArgument("conflicting options: mac-address and the network mode")
    if ip is not None:
        import ipaddress
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise errors.InvalidArgument("invalid IPv4 address: {}".format(ip))
    if mode.startswith("container:") or mode == "none":
        if bindings or publish_all:
            raise errors.InvalidArgument("conflicting options: port publishing and the container type network "
                                         "mode" if mode != "none" else "conflicting options: port publishing and "
                                         "--network none")
        if mode.startswith("container:"):
            ctx.runtime().lookup(mode.split(":", 1)[1])  # NotFound: "No such container: X"

    def finish(image_config):
        cfg = image_config.get("config") or {}
        out = {"network": mode, "networks": {}, "ports": []}
        if user_network:
            out["networks"][mode] = {"aliases": list(aliases), "ip": ip}
        if mac is not None:  # docker: the MAC of the container's first endpoint (the default bridge's too)
            out["networks"].setdefault(mode, {"aliases": [], "ip": None})["mac"] = mac
        if mode != "host":  # docker: published ports are discarded in host mode
            out["ports"] = ports.parse_all(publish, publish_all, exposed=list((cfg.get("ExposedPorts") or {})))
        return out
    return finish
