"""IP address management for one network: one file per address in use, handed out under the network's flock.

Layout (``directory`` is ``networks/<id>/ipam``)::

    .lock          flock held for every allocate/release/reap
    .last          the last address handed out: allocation continues after it (as Docker's bitmap does), so a
                   just-freed address is not reused at once (stale ARP entries elsewhere would point at it)
    10.88.0.2      content: the owner (a container ID); created by link(2) of a complete temp file, so an
                   address file is never seen half-written, and link fails if the address is taken

Crash safety: a crash between the temp file and the link leaves only a ``.tmp-*`` file (removed on the next
call); a crash after the link leaves an owned address that ``reap`` frees once its owner no longer exists.
No address is ever handed out twice: the link is the allocation and it is atomic.
"""

import ipaddress
import os

from .. import errors
from ..state import locks


class Pool:
    """The addresses of one subnet; the network address, the broadcast address and the gateway are never given."""

    def __init__(self, directory, subnet, gateway):
        self.directory = directory
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = ipaddress.ip_address(gateway) if gateway else None
        if self.subnet.version != 4:
            raise errors.InvalidArgument("only IPv4 subnets are supported: {}".format(subnet))
        if self.subnet.prefixlen > 30:
            raise errors.InvalidArgument("subnet {} is too small: it needs at least a /30".format(subnet))

    def _lock(self):
        return locks.locked(os.path.join(self.directory, ".lock"))

    def _path(self, ip):
        return os.path.join(self.directory, str(ip))

    def _reserved(self, ip):
        return ip in (self.subnet.network_address, self.subnet.broadcast_address, self.gateway)

    def _clean_temps(self):
        for name in os.listdir(self.directory):
            if name.startswith(".tmp-"):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except FileNotFoundError:
                    pass

    def _claim(self, ip, owner):
        """Atomically take ``ip`` for ``owner``; False if someone holds it."""
        tmp = os.path.join(self.directory, ".tmp-{}".format(os.getpid()))
        with open(tmp, "w") as f:
            f.write(owner)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, self._path(ip))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def allocate(self, owner, requested=None):
        """An address for ``owner`` (the requested one, or the next free one after the last handed out)."""
        os.makedirs(self.directory, 0o700, exist_ok=True)
        with self._lock():
            self._clean_temps()
            if requested is not None:
                ip = ipaddress.ip_address(requested)
                if ip not in self.subnet or self._reserved(ip):
                    raise errors.InvalidArgument("address {} is not usable in subnet {}".format(ip, self.subnet))
                if not self._claim(ip, owner):
                    raise errors.Conflict("Address already in use: {} (network {})".format(ip, self.subnet))
                self._remember(ip)
                return str(ip)
            start = self._last()
            hosts = self.subnet.num_addresses
            base = int(self.subnet.network_address)
            offset = (int(start) - base + 1) if start is not None and start in self.subnet else 1
            for step in range(hosts):
                ip = ipaddress.ip_address(base + (offset + step) % hosts)
                if self._reserved(ip):
                    continue
                if self._claim(ip, owner):
                    self._remember(ip)
                    return str(ip)
        raise errors.Unavailable("no available IPv4 addresses on network {}".format(self.subnet))

    def _last(self):
        try:
            with open(os.path.join(self.directory, ".last")) as f:
                return ipaddress.ip_address(f.read().strip())
        except (OSError, ValueError):
            return None

    def _remember(self, ip):
        tmp = os.path.join(self.directory, ".last.tmp")
        with open(tmp, "w") as f:
            f.write(str(ip))
        os.replace(tmp, os.path.join(self.directory, ".last"))

    def owners(self):
        """{address: owner} of every address in use."""
        found = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in names:
            if name.startswith("."):
                continue
            try:
                with open(self._path(name)) as f:
                    found[name] = f.read().strip()
            except FileNotFoundError:
                continue
        return found

    def _free(self, doomed, clean=False):
        """Unlink, under the lock, every address whose ``doomed(address, owner)`` is true; returns them."""
        freed = []
        if not os.path.isdir(self.directory):
            return freed
        with self._lock():
            if clean:
                self._clean_temps()
            for addr, who in self.owners().items():
                if doomed(addr, who):
                    try:
                        os.unlink(self._path(addr))
                        freed.append(addr)
                    except FileNotFoundError:
                        pass
        return freed

    def release(self, owner, ip=None):
        """Free ``owner``'s addresses (only ``ip`` if given); returns what was freed. Idempotent."""
        return self._free(lambda addr, who: who == owner and (ip is None or addr == str(ip)))

    def reap(self, alive):
        """Free addresses whose owner ``alive(owner)`` says is gone (a crashed start, a lost rm); returns them."""
        return self._free(lambda addr, who: not alive(who), clean=True)
