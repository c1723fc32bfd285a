"""Port handover: a start-first deploy's switch of published host ports from the old container to the new one.

The new container is created with ``publish_staged``: when it starts, its bindings are recorded
(``network_settings.staged_ports``) but no host socket is bound and no rule routes to it (net/__init__.py), so it
may stage the very host ports the old one serves. ``handover_ports(old, new)`` then, holding the host's handover
lock::

    1. asks both shims what they serve (their port control sockets, net/portctl.py) and matches each of the new
       container's configured bindings: already served by it (a repeated call), served by the old one (moved), or
       neither (bound afresh)
    2. old shim "export": dups of the listening sockets to move (SCM_RIGHTS); the old one keeps accepting
    3. new shim "adopt": serves those very sockets (the kernel's accept queue is shared: the port never stops
       listening, so nothing is refused) and binds the others ("port is already allocated" stops it here,
       before anything changed)
    4. firewall.switch: ONE transaction (one ``nft -f`` script, one ``iptables-restore --noflush`` batch) in which
       the old container's DNAT rules for the moved ports go and the new container's come; conntrack keeps the
       connections already made to the old one on their way
    5. old shim "release": it stops accepting on the moved sockets and closes its copies (connections it is
       relaying go on until they end: the drain); a later stop of the old container finds neither rules nor
       sockets of those ports to take down (rules are tagged per container, its proxy holds no copy)
    6. records: the new container is no longer staged (config.json, so any later start publishes them as usual;
       state.json, so ps, port and inspect show them), the old one's state lists only the ports it kept

Every step converges, so a call that was interrupted is completed by the next one, and a repeated call changes
nothing. ``from`` None, exited or without ports: the new container's ports are just published.
"""

import os

from .. import errors
from ..state import locks, store
from . import records

RUNNING = ("running",)


def _key(b):
    from ..net.proxy import binding_key
    return binding_key(b)


def _matches(wanted, served):
    """Does the served (concrete) binding satisfy the configured one (a fixed port, a range, or any port)?"""
    if wanted["proto"] != served["proto"] or (wanted.get("host_ip") or "") != (served.get("host_ip") or ""):
        return False
    if wanted["container_port"] != served["container_port"]:
        return False
    if not wanted.get("host_port"):
        return True
    end = wanted.get("host_port_end") or wanted["host_port"]
    return wanted["host_port"] <= served["host_port"] <= end


def plan(wanted, to_served, from_served):
    """Resolve the new container's configured bindings: (bindings to adopt, keys that move from the old one).

    Each wanted binding takes the concrete host port of a binding the new container already serves, else of one
    the old container serves (that socket moves), else stays as configured (bound afresh: a fixed port, the first
    free one of a range, or a random one). A served binding is used once.
    """
    used, out, moved = set(), [], []
    for w in wanted:
        pick = None
        for source, served in (("to", to_served), ("from", from_served)):
            for s in served:
                if _key(s) not in used and _matches(w, s):
                    pick = (source, s)
                    break
            if pick:
                break
        if pick is None:
            out.append(dict(w))
            continue
        source, s = pick
        used.add(_key(s))
        out.append(dict(w, host_port=s["host_port"], host_port_end=s["host_port"]))
        if source == "from":
            moved.append(_key(s))
    return out, moved


def _control(paths, cid, msg, fds=()):
    from ..net import portctl
    return portctl.call(paths.container_dir(cid), msg, fds)


def _served(paths, rec):
    """What a running container's shim serves now ([] when it has no port control: no published ports)."""
    if rec is None or rec["status"] not in RUNNING:
        return []
    try:
        return _control(paths, rec["id"], {"op": "list"})[0]["ports"]
    except errors.Unavailable:
        settings = rec.get("network_settings") or {}
        if settings.get("ports"):  # it publishes ports, yet nobody answers: a shim of an older payload
            raise errors.FailedPrecondition(
                "container {} serves its published ports without a port control socket (started by an older "
                "fleet payload?): restart it once before handing its ports over".format(rec["id"]))
        return []


def _ip(rec):
    endpoints = (rec.get("network_settings") or {}).get("endpoints") or []
    return endpoints[0]["ip"] if endpoints else None


def handover_ports(runtime, from_ref, to_ref):
    """Move the published host ports from container ``from_ref`` (or None) to the running ``to_ref``.

    Returns {"from": id|None, "to": id, "ports": the new container's published bindings, "moved": [bindings
    taken over from the old one]}. Errors before step 4 change nothing.
    """
    from ..net import firewall

    paths = runtime.paths
    to_id = runtime._resolve(to_ref)
    from_id = runtime._resolve(from_ref) if from_ref else None
    if from_id == to_id:
        raise errors.InvalidArgument("cannot hand ports over from container {} to itself".format(to_id))
    with locks.locked(paths.lock_file("port-handover")):
        to = runtime.lookup(to_id)
        if to["status"] not in RUNNING:
            raise errors.Conflict("cannot hand ports over to container {}: it is not running".format(to_id))
        frm = runtime.lookup(from_id) if from_id else None
        wanted = list(to.get("ports") or [])
        if not wanted or not _ip(to):
            _persist(paths, to, frm, [], None)
            return {"from": from_id, "to": to_id, "ports": [], "moved": []}
        to_served = _served(paths, to)
        from_served = _served(paths, frm)
        bindings, moved = plan(wanted, to_served, from_served)
        fds = []
        if moved:
            answer, fds = _control(paths, from_id, {"op": "export", "keys": [list(k) for k in moved]})
            keys = answer["keys"]
        else:
            keys = []
        try:
            ports = _control(paths, to_id, {"op": "adopt", "bindings": bindings, "keys": keys}, fds)[0]["ports"]
        finally:
            for fd in fds:
                os.close(fd)
        moved_set = {tuple(k) for k in keys}
        kept = [b for b in from_served if _key(b) not in moved_set]
        switch = {to_id: [dict(b, container_ip=_ip(to)) for b in ports]}
        if frm is not None and frm["status"] in RUNNING and _ip(frm):
            switch[from_id] = [dict(b, container_ip=_ip(frm)) for b in kept]
        try:
            firewall.switch(paths, switch)
        except BaseException:
            fresh = [list(_key(b)) for b in ports if _key(b) not in {_key(s) for s in to_served}]
            try:
                _control(paths, to_id, {"op": "release", "keys": fresh})
            except errors.AgentError:
                pass
            raise
        if moved:
            try:
                _control(paths, from_id, {"op": "release", "keys": [list(k) for k in moved]})
            except errors.Unavailable:
                pass  # it exited meanwhile: its copies are closed already
        _persist(paths, to, frm, ports, kept if switch.get(from_id) is not None else None)
    return {"from": from_id, "to": to_id, "ports": ports,
            "moved": [b for b in ports if _key(b) in moved_set]}


def _persist(paths, to, frm, ports, kept):
    """The new container is no longer staged (config.json and, for this run, state.json); the old one's run
    lists only the ports it kept (``kept`` None: leave it)."""
    with records.container_lock(paths, to["id"]):
        layout = records.Layout(paths, to["id"])
        config = records.read_config(paths, to["id"])
        if config.get("publish_staged"):
            config["publish_staged"] = False
            store.write_json_atomic(layout.config, config)
        state = records.read_state(paths, to["id"])
        if state.get("pid") == to.get("pid") and state.get("network_settings"):
            settings = dict(state["network_settings"], ports=ports)
            settings.pop("staged_ports", None)
            state["network_settings"] = settings
            records.write_state(paths, to["id"], state)
    if frm is None or kept is None:
        return
    with records.container_lock(paths, frm["id"]):
        state = records.read_state(paths, frm["id"])
        if state.get("pid") == frm.get("pid") and state.get("network_settings"):
            state["network_settings"] = dict(state["network_settings"],
                                             ports=[{k: v for k, v in b.items() if k != "container_ip"}
                                                    for b in kept])
            records.write_state(paths, frm["id"], state)


def stage_ports(runtime, ref, staged=True):
    """Make a container that is not running start with its ports staged (a start-first rollback brings the
    previous container back this way, then hands the ports back to it); ``staged=False`` undoes it (a rollback
    target that failed its gate goes back to starting with its ports published)."""
    cid = runtime._resolve(ref)
    with records.container_lock(runtime.paths, cid):
        config = records.read_config(runtime.paths, cid)
        state = records.read_state(runtime.paths, cid)
        if state.get("status") in ("running", "restarting"):
            raise errors.Conflict("cannot {} the ports of container {}: it is running".format(
                "stage" if staged else "unstage", cid))
        if bool(config.get("publish_staged")) != staged:
            config["publish_staged"] = staged
            store.write_json_atomic(records.Layout(runtime.paths, cid).config, config)
    return cid
