"""Container networking: what the shim calls around a container's life (``setup`` before the init, ``teardown`` after).

Modes (``config["network"]``): ``host`` (the host's namespace), ``none`` (a namespace with only loopback),
``container:<id>`` (another running container's namespace), ``bridge`` (the default network) or the name of a
user-defined network; ``config["networks"]`` may attach more networks ({name: {"aliases": [...]}}).

``setup`` returns a Sandbox: ``settings`` (JSON for state.json: mode, sandbox path, endpoints, ports) and the
opened host sockets of published ports, which the shim hands to the userland proxy once the container runs.
Anything that fails half-way is undone before the error propagates; ``teardown`` is idempotent and is also what
``rm -f``, the reconcile of a dead shim and the boot entry call.

``config["publish_staged"]``: the published ports are staged, not published: recorded in
``settings["staged_ports"]`` (with the container's address), but no host socket is bound and no rule routes to
the container, so they may be host ports a live container holds. ``runtime/handover.py`` publishes them later
(its shim's port control socket, net/portctl.py, adopts the sockets; firewall.switch moves the rules).
"""

import os

from .. import errors


class Sandbox:
    """The outcome of ``setup``: JSON ``settings`` and the open port sockets (for the proxy)."""

    def __init__(self, settings, opened=()):
        self.settings = settings
        self.opened = list(opened)
        self._services = []
        self.upstreams = None  # --dns: the embedded resolver's upstream servers (None: the host's)

    @property
    def netns(self):
        """The namespace file the init must join, or None (host mode; none mode: the init unshares one)."""
        return self.settings.get("sandbox")

    def close_sockets(self):
        for _, sock in self.opened:
            sock.close()
        self.opened = []

    def user_network_ids(self):
        """IDs of the user-defined networks the container is on (they get the embedded resolver)."""
        return [ep["network_id"] for ep in self.settings.get("endpoints") or [] if ep["network"] != "bridge"]

    def write_files(self, layout, config, gateway=None, links=""):
        """/etc/hosts with the container's address and --add-host's lines (host-gateway: ``gateway``), and
        resolv.conf (127.0.0.11 on user-defined networks, else the host's servers) with --dns* applied."""
        from ..state import store
        from . import etcfiles

        endpoints = self.settings.get("endpoints") or []
        base = resolver_resolv_conf().decode() if self.user_network_ids() else None
        if base is not None:  # the embedded resolver stays the nameserver: --dns are its upstreams (start_resolver)
            config = dict(config, dns=[])
        hosts, resolv = etcfiles.container_files(config, endpoints[0]["ip"] if endpoints else None, gateway,
                                                 resolv_base=base, links=links)
        # bind-mounted: readable inside; rewritten by every start, so no fsync (store.write_bytes_atomic)
        store.write_bytes_atomic(layout.hosts, hosts.encode(), mode=0o644, durable=False)
        store.write_bytes_atomic(layout.resolv, resolv.encode(), mode=0o644, durable=False)

    def start_resolver(self, paths, cid):
        """Before the init is released: the embedded resolver of user-defined networks, bound in the container's
        namespace and serving, so that the command's very first lookup is answered (Docker starts its resolver
        while it builds the sandbox, before the container's process runs).  Failing here fails the start.

        Returns True if it started one now (False: no user-defined network, or one runs already).
        """
        if not self.user_network_ids():
            return False  # default bridge, none, host, container:<id>: no embedded DNS, no cost
        from . import dns

        if any(isinstance(s, dns.Resolver) for s in self._services):
            return False
        try:
            resolver = dns.Resolver(self.netns, dns.names_for(paths, cid), upstreams=self.upstreams).start()
        except Exception as exc:
            raise errors.Internal("cannot start the embedded DNS server ({}:53): {}".format(dns.ADDRESS, exc))
        self._services.append(resolver)
        return True

    def start_services(self, paths, cid):
        """Once the init runs: the userland proxy for published ports (the resolver started before the init),
        and the port control socket through which a port handover moves host sockets between shims."""
        if self.opened or self.settings.get("staged_ports"):
            from .portctl import PortControl  # only with published ports: imports cost every start
            from .proxy import Proxy

            proxy = Proxy(self.opened, self.settings["endpoints"][0]["ip"]).start()
            self.opened = []  # the proxy owns (and closes) the sockets now
            self._services.append(proxy)
            control = PortControl(paths.container_dir(cid), self, proxy).start()
            self._services.insert(0, control)  # closed first: no handover reaches a proxy that is closing

    def stop_services(self):
        for service in self._services:
            service.close()
        self._services = []
        self.close_sockets()


def host_gateway(paths):
    """--add-host's host-gateway: the default bridge's gateway (docker: the daemon's docker0 address)."""
    from .networks import Networks
    try:
        return Networks(paths).default()["gateway"]
    except errors.AgentError:
        return None


def resolver_resolv_conf():
    """resolv.conf of a container on a user-defined network: the embedded resolver, the host's search domains."""
    from . import etcfiles
    from .dns import ADDRESS

    host = etcfiles.resolv_conf(etcfiles.host_resolv_conf())
    extra = [line for line in host.splitlines(True) if line.split()[:1] in (["search"], ["domain"])]
    return ("nameserver {}\n".format(ADDRESS) + "".join(extra) + "options ndots:0\n").encode()


def points_at_resolver(path):
    """Is the resolv.conf at ``path`` the one ``resolver_resolv_conf`` writes (first line: the embedded resolver)?"""
    from .dns import ADDRESS

    try:
        with open(path, "rb") as f:
            return f.readline().split() == [b"nameserver", ADDRESS.encode()]
    except OSError:
        return False


def netns_path(paths, cid):
    return os.path.join(paths.run, "netns", cid)


def sandbox_alive(paths):
    """alive(cid) for Networks.reap: an endpoint is live while its container's namespace file exists."""
    return lambda cid: os.path.exists(netns_path(paths, cid))


def setup(paths, cid, config, lookup=None):
    """Build the container's network: namespace, endpoints on its networks, published ports and their rules.

    ``lookup(ref)`` resolves ``container:<ref>`` to that container's record (the runtime passes its own).
    """
    mode = config.get("network") or "bridge"
    if mode == "host":
        return Sandbox({"mode": "host"})
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        other = lookup(ref) if lookup else None
        if not other or other.get("status") != "running":
            raise errors.Conflict("cannot join network of a non running container: {}".format(ref))
        # its namespace file, or (--network none, host) its init's namespace
        sandbox = (other.get("network_settings") or {}).get("sandbox") or "/proc/{}/ns/net".format(other["pid"])
        return Sandbox({"mode": "container:" + other["id"], "sandbox": sandbox, "shared": True})
    if mode == "none":
        return Sandbox({"mode": "none", "unshare": True})  # the init unshares an empty namespace with lo up
    from . import links, netns  # only bridge networks need them (imports cost every start; firewall: rarer still)
    from . import ports as portsmod
    from .networks import Networks

    path = netns_path(paths, cid)
    netns.destroy(path)  # a leftover of a crashed shim
    nets = Networks(paths, alive=sandbox_alive(paths))
    wanted = [(mode, (config.get("networks") or {}).get(mode) or {})]
    wanted += [(name, opts or {}) for name, opts in (config.get("networks") or {}).items() if name != mode]
    records = [(nets.get(name), opts) for name, opts in wanted]  # NotFound before anything is made
    settings = {"mode": mode, "sandbox": path, "endpoints": [], "ports": []}
    opened = []
    try:
        bindings = config.get("ports") or []
        staged = bool(config.get("publish_staged"))
        if not staged:
            opened = portsmod.bind(bindings)  # "port is already allocated" before anything else is made
        with netns.create(path) as holder:
            for index, (rec, opts) in enumerate(records):
                nets.reap(rec, nets.alive)  # what a reboot or a killed shim left behind
                if not links.exists(rec["bridge"]):  # its rules come and go with it (a boot, network rm)
                    links.ensure_bridge(rec["bridge"], rec["gateway"], int(rec["subnet"].rsplit("/", 1)[1]))
                    links.set_sysctl("net.ipv4.ip_forward", 1)
                    from . import firewall
                    firewall.network_up(paths, rec)
                aliases = list(opts.get("aliases") or [])
                ep = nets.join(rec, cid, config.get("name") or cid[:12], aliases, opts.get("ip"), opts.get("mac"))
                settings["endpoints"].append(ep)
                links.attach(holder.pid, path, rec["bridge"], ep["host_if"], ep["ip"], ep["prefix"], ep["gateway"],
                             mac=ep["mac"],
                             ifname=ep["ifname"], default_route=(index == 0 and not rec.get("internal")))
        if opened:
            primary = settings["endpoints"][0]["ip"]
            bound = [dict(b, container_ip=primary) for b, _ in opened]
            from . import firewall
            firewall.publish(paths, cid, bound)
            settings["ports"] = [b for b, _ in opened]
        elif staged and bindings:
            settings["staged_ports"] = [dict(b, container_ip=settings["endpoints"][0]["ip"]) for b in bindings]
    except BaseException:
        for _, sock in opened:
            sock.close()
        teardown(paths, cid, settings)
        raise
    sandbox = Sandbox(settings, opened)
    sandbox.upstreams = list(config.get("dns") or []) or None  # docker: --dns feeds the embedded resolver
    return sandbox


def teardown(paths, cid, settings):
    """Undo ``setup``: port rules, veths, addresses, the namespace (never a shared one). Idempotent."""
    settings = settings or {}
    if settings.get("mode") in (None, "host", "none") or settings.get("shared"):
        return
    from . import links, netns
    from .networks import Networks

    problems = []
    if settings.get("ports"):
        from . import firewall
        try:
            firewall.unpublish(paths, cid)
        except errors.AgentError as exc:
            problems.append(exc.message)
    nets = Networks(paths)
    for ep in settings.get("endpoints") or []:
        try:
            links.remove_link(ep["host_if"])
        except errors.AgentError as exc:
            problems.append(exc.message)
        try:
            nets.leave(nets.get(ep["network_id"]), cid)
        except errors.NotFound:
            pass
    netns.destroy(settings.get("sandbox") or netns_path(paths, cid))
    if problems:
        raise errors.Internal("network teardown of {} incomplete: {}".format(cid, "; ".join(problems)))
