"""Network records: the default ``bridge`` network, user-defined bridge networks, their endpoints and addresses.

On disk (``<root>/networks/<id>/``)::

    network.json     {"id", "name", "driver", "subnet", "gateway", "bridge", "internal", "labels", "options",
                      "created", "default"}
    ipam/            addresses in use (ipam.Pool)
    endpoints/<cid>  {"container", "name", "aliases", "ip", "mac", "ifname", "host_if"}: one per attached container

``host`` and ``none`` are predefined (no record, as in Docker they cannot be created or removed). The default
``bridge`` network is recorded on first use, with its subnet from daemon.json ``bip`` or the first free pool of
``default-address-pools``; its Linux bridge is ``fleet0`` (Docker's docker0), a user network's is ``fl-<id12>``.
Subnets never overlap another network's or a route of the host (the classic VPN/LAN clash).
"""

import ipaddress
import os
import re
import secrets
import shutil

from .. import errors
from ..state import locks, store
from ..timestamps import format_ns
from .ipam import Pool

DEFAULT_NAME = "bridge"
DEFAULT_BRIDGE = "fleet0"
PREDEFINED = {"host": "host", "none": "null"}  # name -> driver
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
#: Docker's default-address-pools: 172.17-31.0.0/16 as /16s, then 192.168.0.0/16 as /20s.
DEFAULT_POOLS = tuple(("172.{}.0.0/16".format(n), 16) for n in range(17, 32)) + (("192.168.0.0/16", 20),)


#: IPv4 ranges a bridge may not take: its gateway address would be the host's loopback, a link-local or
#: multicast address, "this network" or the reserved/broadcast block (RFC 6890).
UNUSABLE = tuple((ipaddress.IPv4Network(net), what) for net, what in (
    ("0.0.0.0/8", "\"this network\""), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved")))


def check_usable(net, what):
    """InvalidArgument naming ``what`` when IPv4 network ``net`` overlaps a range no bridge may use."""
    for bad, kind in UNUSABLE:
        if net.overlaps(bad):
            raise errors.InvalidArgument("invalid {} {}: it overlaps the {} range {}".format(what, net, kind, bad))
    return net


def _now():
    return format_ns()


def host_routes(path="/proc/net/route"):
    """IPv4 networks the host routes somewhere (default routes excluded): candidates must not overlap them."""
    nets = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return nets
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        if int(mask) == 0:
            continue
        nets.append(ipaddress.IPv4Network("{}/{}".format(dest, mask), strict=False))
    return nets


class Networks:
    """The networks of one host (``paths.root``/networks); ``daemon`` is the parsed daemon.json dict."""

    def __init__(self, paths, daemon=None, routes=None, alive=None):
        self.paths = paths
        self.alive = alive  # alive(cid): does the container's network namespace exist (see net.sandbox_alive)
        self.root = os.path.join(paths.root, "networks")
        self.daemon = daemon if daemon is not None else (store.read_json(paths.daemon_json) or {})
        self._routes = routes

    # ------------------------------------------------------------------ records

    def _dir(self, nid):
        return os.path.join(self.root, nid)

    def _lock(self):
        return locks.locked(self.paths.lock_file("networks"))

    def _records(self):
        out = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return out
        for nid in names:
            if nid.startswith("."):
                continue  # a create's temp dir or a removal's trash
            rec = store.read_json(os.path.join(self._dir(nid), "network.json"))
            if rec:
                out.append(rec)
        return out

    def list(self):
        """Every network: the default bridge (recorded now if new), user networks, then host and none."""
        self.reap_leftovers()
        self.default()
        return self._records() + [self._predefined(name) for name in PREDEFINED]

    def reap_leftovers(self):
        """Delete what killed payloads left (never waits: a busy lock means a writer is at work, the next listing
        reaps): ``.tmp-*`` of a killed create, ``.trash-*`` of a killed rm, a network dir without network.json."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        for name in names:  # an endpoint write killed midway (its temp file names its dead writer)
            locks.reap_temp_files(os.path.join(self._dir(name), "endpoints"))
        if not any(n.startswith(".") or not os.path.exists(os.path.join(self._dir(n), "network.json"))
                   for n in names):
            return
        fd = locks.acquire(self.paths.lock_file("networks"), blocking=False)
        if fd is None:
            return
        try:
            self._reap_locked()
        finally:
            os.close(fd)

    def _reap_locked(self):
        """Under the networks lock every ``.tmp-*`` is a dead writer's (create writes under it)."""
        locks.reap_dirs(self.root, (".tmp-", locks.TRASH))
        for name in _listdir(self.root):
            if not name.startswith(".") and not os.path.exists(os.path.join(self._dir(name), "network.json")):
                locks.remove_tree(self._dir(name))  # older payloads: mkdir first, or a killed rmtree

    def _predefined(self, name):
        return {"id": name, "name": name, "driver": PREDEFINED[name], "subnet": None, "gateway": None,
                "bridge": None, "internal": False, "labels": {}, "options": {}, "created": None, "default": False,
                "predefined": True}

    def get(self, ref):
        """A network by name, full ID or unique ID prefix (Docker's order); NotFound otherwise."""
        if not isinstance(ref, str) or not ref:
            raise errors.InvalidArgument("network name must not be empty")
        if ref in PREDEFINED:
            return self._predefined(ref)
        if ref == DEFAULT_NAME:
            return self.default()
        recs = self._records()
        for rec in recs:
            if rec["id"] == ref or rec["name"] == ref:
                return rec
        matches = [rec for rec in recs if rec["id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errors.InvalidArgument("network {} is ambiguous ({} matches found based on ID prefix)".format(
                ref, len(matches)))
        raise errors.NotFound("network {} not found".format(ref))

    def pool(self, rec):
        """The IPAM pool of a network record."""
        return Pool(os.path.join(self._dir(rec["id"]), "ipam"), rec["subnet"], rec["gateway"])

    # ------------------------------------------------------------------ subnets

    def _taken(self, records):
        taken = [ipaddress.ip_network(r["subnet"]) for r in records if r.get("subnet")]
        routes = self._routes if self._routes is not None else host_routes()
        return taken + routes  # our own bridges' connected routes equal subnets already taken

    def _pools(self):
        raw = self.daemon.get("default-address-pools")
        if raw is None:
            return DEFAULT_POOLS
        where = "{} key default-address-pools".format(self.paths.daemon_json)
        if not isinstance(raw, list) or not raw:
            raise errors.InvalidArgument("{}: want a list of {{\"base\": CIDR, \"size\": N}}".format(where))
        pools = []
        for entry in raw:
            try:
                base, size = ipaddress.ip_network(entry["base"]), int(entry["size"])
            except (KeyError, TypeError, ValueError) as exc:
                raise errors.InvalidArgument("{}: bad entry {!r} ({})".format(where, entry, exc))
            if base.version != 4 or not base.prefixlen <= size <= 30:
                raise errors.InvalidArgument("{}: bad entry {!r}: IPv4 base with base prefix <= size <= 30".format(
                    where, entry))
            check_usable(base, "base in " + where)
            pools.append((str(base), size))
        return tuple(pools)

    def _free_subnet(self, records):
        taken = self._taken(records)
        for base, size in self._pools():
            for candidate in ipaddress.ip_network(base).subnets(new_prefix=size):
                if not any(candidate.overlaps(t) for t in taken):
                    return candidate
        raise errors.Unavailable("could not find an available, non-overlapping IPv4 address pool among the "
                                 "defaults to assign to the network")

    @staticmethod
    def _gateway_of(subnet, gateway=None):
        if gateway is None:
            return str(next(subnet.hosts()))
        return str(gateway)

    # ------------------------------------------------------------------ default bridge

    def default(self):
        """The default ``bridge`` network's record, made on first use (from daemon.json ``bip`` if set)."""
        for rec in self._records():
            if rec.get("default"):
                return rec
        with self._lock():
            recs = self._records()
            for rec in recs:
                if rec.get("default"):
                    return rec
            bip = self.daemon.get("bip")
            if bip:
                try:
                    iface = ipaddress.ip_interface(bip)
                except ValueError:
                    raise errors.InvalidArgument("{} key bip: {!r} is not an address/prefix such as "
                                                 "172.17.0.1/16".format(self.paths.daemon_json, bip))
                subnet, gateway = check_usable(iface.network, "{} key bip".format(self.paths.daemon_json)), \
                    str(iface.ip)
            else:
                subnet = self._free_subnet(recs)
                gateway = self._gateway_of(subnet)
            return self._write(DEFAULT_NAME, subnet, gateway, DEFAULT_BRIDGE, default=True)

    def _write(self, name, subnet, gateway, bridge=None, internal=False, labels=None, options=None, default=False):
        nid = secrets.token_hex(32)
        rec = {"id": nid, "name": name, "driver": "bridge", "subnet": str(subnet), "gateway": gateway,
               "bridge": bridge or "fl-" + nid[:12], "internal": bool(internal), "labels": dict(labels or {}),
               "options": dict(options or {}), "created": _now(), "default": default}
        # made whole in a temp dir, then renamed: a kill never leaves a network dir without its record
        self._reap_locked()
        os.makedirs(self.root, exist_ok=True)
        tmp = os.path.join(self.root, ".tmp-" + os.urandom(8).hex())
        try:
            os.mkdir(tmp, 0o700)
            store.write_json_atomic(os.path.join(tmp, "network.json"), rec)
            os.rename(tmp, self._dir(nid))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return rec

    # ------------------------------------------------------------------ user networks

    def create(self, name, driver="bridge", subnet=None, gateway=None, internal=False, labels=None, options=None):
        """``network create``: validate everything, then record the network (its bridge comes with a container)."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise errors.InvalidArgument("invalid network name {!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                         "allowed".format(name))
        if driver != "bridge":
            raise errors.InvalidArgument('plugin "{}" not found: fleet networks use the bridge driver'.format(driver))
        if name in PREDEFINED or name == DEFAULT_NAME:
            raise errors.Conflict("network with name {} already exists".format(name))
        net = gw = None
        if subnet is not None:
            try:
                net = ipaddress.ip_network(subnet)
            except ValueError:
                raise errors.InvalidArgument("invalid subnet {}: want an IPv4 CIDR such as 10.10.0.0/24".format(
                    subnet))
            if net.version != 4 or net.prefixlen > 30:
                raise errors.InvalidArgument("invalid subnet {}: want an IPv4 network of /30 or larger".format(
                    subnet))
            check_usable(net, "subnet")
        if gateway is not None:
            if net is None:
                raise errors.InvalidArgument("a gateway needs a --subnet")
            try:
                gw = ipaddress.ip_address(gateway)
            except ValueError:
                raise errors.InvalidArgument("invalid gateway {}".format(gateway))
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise errors.InvalidArgument("no matching subnet for gateway {}".format(gateway))
        self.default()
        with self._lock():
            recs = self._records()
            if any(r["name"] == name for r in recs):
                raise errors.Conflict("network with name {} already exists".format(name))
            if net is None:
                net = self._free_subnet(recs)
            elif any(net.overlaps(t) for t in self._taken(recs)):
                raise errors.Conflict("invalid pool request: Pool overlaps with other one on this address space "
                                      "({})".format(net))
            return self._write(name, net, self._gateway_of(net, gw), internal=internal, labels=labels,
                               options=options)

    def endpoints(self, rec):
        """{container id: endpoint} of a network."""
        d = os.path.join(self._dir(rec["id"]), "endpoints")
        out = {}
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return out
        for cid in names:
            if cid.startswith("."):
                continue  # another writer's temp file (store.write_json_atomic), not an endpoint
            ep = store.read_json(os.path.join(d, cid))
            if ep:
                out[cid] = ep
        return out

    def remove(self, ref, remove_bridge=None):
        """``network rm``: refused for predefined networks and networks with endpoints; returns the record."""
        rec = self.get(ref)
        if rec.get("predefined") or rec.get("default"):
            raise errors.Conflict("{} is a pre-defined network and cannot be removed".format(rec["name"]))
        with self._lock():
            if self.alive is not None:
                self.reap(rec, self.alive)
            if self.endpoints(rec):
                raise errors.Conflict("error while removing network: network {} id {} has active endpoints".format(
                    rec["name"], rec["id"]))
            if remove_bridge is not None:
                remove_bridge(rec)
            locks.remove_tree(self._dir(rec["id"]))  # renamed away first: never seen half-deleted
        return rec

    def prune(self, remove_bridge=None):
        """``network prune``: remove every user network without endpoints; returns their names."""
        removed = []
        for rec in self._records():
            if rec.get("default"):
                continue
            try:
                self.remove(rec["id"], remove_bridge)
            except (errors.Conflict, errors.NotFound):
                continue
            removed.append(rec["name"])
        return removed

    # ------------------------------------------------------------------ endpoints

    def join(self, rec, cid, name, aliases=(), ip=None, mac=None):
        """Allocate an address for container ``cid`` on ``rec`` and record its endpoint; returns the endpoint
        (``mac``: --mac-address, else one derived from the address)."""
        address = self.pool(rec).allocate(cid, ip)
        subnet = ipaddress.ip_network(rec["subnet"])
        index = self._index(rec, cid)
        from .links import mac_for
        ep = {"container": cid, "name": name, "aliases": list(aliases or []), "ip": address,
              "prefix": subnet.prefixlen, "gateway": rec["gateway"], "mac": mac or mac_for(address),
              "network_id": rec["id"], "network": rec["name"], "bridge": rec["bridge"],
              "host_if": "fv{}{}".format(cid[:10], index), "ifname": "eth{}".format(index)}
        d = os.path.join(self._dir(rec["id"]), "endpoints")
        os.makedirs(d, 0o700, exist_ok=True)
        store.write_json_atomic(os.path.join(d, cid), ep)
        return ep

    def _index(self, rec, cid):
        """The lowest interface index (eth<N>, host fv<id10><N>) ``cid`` does not use on any network yet."""
        used = set()
        for other in self._records():
            ep = store.read_json(os.path.join(self._dir(other["id"]), "endpoints", cid))
            if ep and other["id"] != rec["id"]:
                used.add(int(ep["ifname"][3:]))
        index = 0
        while index in used:
            index += 1
        return index

    def leave(self, rec, cid):
        """Forget ``cid``'s endpoint on ``rec`` and free its address (idempotent)."""
        try:
            os.unlink(os.path.join(self._dir(rec["id"]), "endpoints", cid))
        except FileNotFoundError:
            pass
        self.pool(rec).release(cid)

    def reap(self, rec, alive):
        """Forget endpoints and addresses whose container ``alive(cid)`` says has no network namespace any more
        (a reboot emptied /run, a shim was killed): nothing is leaked, and names stop resolving."""
        for cid in list(self.endpoints(rec)):
            if not alive(cid):
                self.leave(rec, cid)
        self.pool(rec).reap(alive)

    def endpoints_of(self, cid):
        """[(network record, endpoint)] for every network ``cid`` is attached to."""
        out = []
        for rec in self._records():
            ep = store.read_json(os.path.join(self._dir(rec["id"]), "endpoints", cid))
            if ep:
                out.append((rec, ep))
        return out


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
