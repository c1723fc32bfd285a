"""``network connect`` / ``network disconnect``: change a container's networks, live when it runs.

The change is recorded in config.json (``network`` and ``networks``), so the next start builds the same set;
a running container gets (or loses) the interface at once: a new veth into its namespace, an address, the
network's rules. Its embedded resolver (if it has one) sees the change at once, as it reads the container's
endpoints per query. The shim is told (SIGHUP: it re-reads the network settings from state.json, so the end of
the run undoes what was connected); a container that had no user-defined network before gets its resolver then,
and ``connect`` returns once resolv.conf points at it (Docker starts the resolver at connect, too).
"""

import signal
import time

from .. import errors, events
from ..state import store
from . import records

RESOLVER_WAIT = 5.0  # how long connect waits for the shim to start a resolver (it logs why not in shim.log)


def _sandbox(state):
    settings = state.get("network_settings") or {}
    if state.get("status") != "running" or not settings.get("sandbox") or settings.get("shared"):
        return None, settings
    return settings["sandbox"], settings


def _tell_shim(state):
    """The running container's network settings changed: its shim re-reads them (False: no live shim)."""
    return records.signal_process(state.get("shim_pid"), state.get("shim_start"), signal.SIGHUP)


def _await_resolver(layout, deadline):
    """Until the shim has started the resolver and pointed resolv.conf at it, or ``deadline`` (monotonic)."""
    from ..net import points_at_resolver

    delay = 0.005
    while not points_at_resolver(layout.resolv) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def connect(runtime, ref, network, aliases=(), ip=None):
    """Attach container ``ref`` to ``network``; returns {"network", "container", "ip"|null}."""
    from ..net import firewall, links, netns
    from ..net.networks import Networks

    nets = Networks(runtime.paths)
    rec = nets.get(network)
    if rec.get("predefined"):
        raise errors.InvalidArgument("container cannot be disconnected from host network or connected to host "
                                     "network" if rec["name"] == "host" else
                                     "container cannot be connected to network {}".format(rec["name"]))
    if (aliases or ip) and rec.get("default"):
        raise errors.InvalidArgument("network-scoped aliases and --ip are supported only for containers in user "
                                     "defined networks")
    cid = runtime._resolve(ref)
    wait_resolver = False
    with records.container_lock(runtime.paths, cid):
        config = records.read_config(runtime.paths, cid)
        state = records.read_state(runtime.paths, cid)
        mode = config.get("network") or "bridge"
        if mode == "host" or mode.startswith("container:"):
            raise errors.Conflict("container sharing network namespace with another container or host cannot be "
                                  "connected to any other network")
        current = set(config.get("networks") or {}) | ({mode} if mode not in ("none",) else set())
        if rec["name"] in current or (rec.get("default") and mode == "bridge"):
            raise errors.Conflict("endpoint with name {} already exists in network {}".format(
                config.get("name"), rec["name"]))
        sandbox, settings = _sandbox(state)
        address = None
        if sandbox:
            with netns.holder(sandbox) as holder:
                fresh = not links.exists(rec["bridge"])
                links.ensure_bridge(rec["bridge"], rec["gateway"], int(rec["subnet"].rsplit("/", 1)[1]))
                if fresh or not firewall.backend(runtime.paths).rules(firewall.network_tag(rec["id"])):
                    links.set_sysctl("net.ipv4.ip_forward", 1)
                    firewall.network_up(runtime.paths, rec)
                ep = nets.join(rec, cid, config.get("name"), list(aliases or []), ip)
                try:
                    links.attach(holder.pid, sandbox, rec["bridge"], ep["host_if"], ep["ip"], ep["prefix"],
                                 ep["gateway"], ifname=ep["ifname"], default_route=not settings.get("endpoints"))
                except BaseException:
                    nets.leave(rec, cid)
                    raise
            had_resolver = any(e["network"] != "bridge" for e in settings.get("endpoints") or [])
            settings = dict(settings, endpoints=list(settings.get("endpoints") or []) + [ep])
            state["network_settings"] = settings
            records.write_state(runtime.paths, cid, state)
            address = ep["ip"]
            wait_resolver = _tell_shim(state) and not rec.get("default") and not had_resolver
        if mode == "none" and not config.get("networks"):
            config["network"] = rec["name"] if not rec.get("default") else "bridge"
        if not rec.get("default"):
            config.setdefault("networks", {})[rec["name"]] = {"aliases": list(aliases or []), "ip": ip}
        store.write_json_atomic(records.Layout(runtime.paths, cid).config, config)
    if wait_resolver:  # outside the lock: the shim takes it when the container exits meanwhile
        _await_resolver(records.Layout(runtime.paths, cid), time.monotonic() + RESOLVER_WAIT)
    events.record(runtime.paths, "network", "connect", rec["id"], {"container": cid, "name": rec["name"],
                                                              "type": rec.get("driver") or "bridge"})
    return {"network": rec["name"], "container": config.get("name"), "ip": address}


def disconnect(runtime, ref, network):
    """Detach container ``ref`` from ``network``; returns {"network", "container"}."""
    from ..net import links
    from ..net.networks import Networks

    nets = Networks(runtime.paths)
    rec = nets.get(network)
    cid = runtime._resolve(ref)
    with records.container_lock(runtime.paths, cid):
        config = records.read_config(runtime.paths, cid)
        state = records.read_state(runtime.paths, cid)
        mode = config.get("network") or "bridge"
        named = dict(config.get("networks") or {})
        attached = rec["name"] in named or rec["name"] == mode or (rec.get("default") and mode == "bridge")
        if not attached:
            raise errors.Conflict("container {} is not connected to network {}".format(cid, rec["name"]))
        sandbox, settings = _sandbox(state)
        if sandbox:
            kept = []
            for ep in settings.get("endpoints") or []:
                if ep["network_id"] == rec["id"]:
                    links.detach(sandbox, ep["ifname"])
                    nets.leave(rec, cid)
                else:
                    kept.append(ep)
            state["network_settings"] = dict(settings, endpoints=kept)
            records.write_state(runtime.paths, cid, state)
            _tell_shim(state)
        named.pop(rec["name"], None)
        config["networks"] = named
        if rec["name"] == mode or (rec.get("default") and mode == "bridge"):
            config["network"] = next(iter(named), "none")  # no network left: the next start gets none
        store.write_json_atomic(records.Layout(runtime.paths, cid).config, config)
    events.record(runtime.paths, "network", "disconnect", rec["id"], {"container": cid, "name": rec["name"],
                                                                 "type": rec.get("driver") or "bridge"})
    return {"network": rec["name"], "container": config.get("name")}
