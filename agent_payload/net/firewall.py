"""NAT, isolation and port publishing rules: nftables where the host has it, else iptables, else none (proxy only).

nftables: one table ``ip fleet`` of our own (nothing else in the ruleset is touched)::

    chain published    DNAT rules, one per published port:  [ip daddr HOST_IP] tcp dport 8080 dnat to C_IP:80
    chain prerouting   nat/dstnat:  fib daddr type local jump published           (traffic from other hosts)
    chain output       nat/-100:    ip daddr != 127.0.0.0/8 fib daddr type local jump published
                                    (the host's own traffic; loopback is left to the userland proxy, as Docker)
    chain postrouting  nat/srcnat:  per network: ip saddr SUBNET oifname != BR masquerade   (outbound NAT)
                                                 oifname BR ip saddr SUBNET ct status dnat masquerade (hairpin)
    chain forward      filter:      per network: isolation from the other fleet bridges; internal: no way out

iptables (legacy or nft backend, whichever the host's rules use): the same in chains FLEET-* jumped to from the
built-in ones, every rule marked ``-m comment --comment <tag>``.

Every rule carries a tag: ``fleet:<container id>`` for a container's ports, ``fleet-net:<network id>`` for a
network's rules, so removal is exact and idempotent (list, match the tag, delete by handle or spec).
"""

import json
import os
import shutil
import subprocess

from .. import errors
from ..state import locks

TABLE = "fleet"


def container_tag(cid):
    return "fleet:" + cid


def network_tag(nid):
    return "fleet-net:" + nid


def _run(argv, data=None):
    proc = subprocess.run(argv, input=data.encode() if data is not None else None, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _network_rules(rec):
    """(chain, rule text) pairs of a network, in nft syntax."""
    br, subnet = rec["bridge"], rec["subnet"]
    rules = []
    if rec.get("internal"):
        rules += [("forward", 'iifname "{}" oifname != "{}" drop'.format(br, br)),
                  ("forward", 'oifname "{}" iifname != "{}" drop'.format(br, br))]
    else:
        rules.append(("postrouting", 'ip saddr {} oifname != "{}" masquerade'.format(subnet, br)))
    rules.append(("postrouting", 'oifname "{}" ip saddr {} ct status dnat masquerade'.format(br, subnet)))
    # isolation (Docker's DOCKER-ISOLATION stages): no traffic from this bridge into another fleet bridge
    for other in ("fleet0", "fl-*"):
        rules.append(("forward", 'iifname "{}" oifname "{}" oifname != "{}" drop'.format(br, other, br)))
    return rules


def _publish_rules(bindings):
    rules = []
    for b in bindings:
        match = "ip daddr {} ".format(b["host_ip"]) if b.get("host_ip") not in (None, "", "0.0.0.0") else ""
        rules.append(("published", "{}{} dport {} dnat to {}:{}".format(
            match, b["proto"], b["host_port"], b["container_ip"], b["container_port"])))
    return rules


class Nft:
    """The nftables backend."""

    name = "nftables"

    def __init__(self, lock_path):
        self.lock_path = lock_path

    def _apply(self, script):
        code, _out, err = _run(["nft", "-f", "-"], script)
        if code != 0:
            raise errors.FailedPrecondition("nft failed: {} (rules: {})".format(err.strip(), script.strip()))

    def _ensure_table(self):
        code, _, _ = _run(["nft", "list", "table", "ip", TABLE])
        if code == 0:
            return
        self._apply("\n".join([
            "table ip {} {{".format(TABLE),
            "  chain published {", "  }",
            "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
            "    fib daddr type local jump published", "  }",
            "  chain output {", "    type nat hook output priority -100; policy accept;",
            "    ip daddr != 127.0.0.0/8 fib daddr type local jump published", "  }",
            "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;", "  }",
            "  chain forward {", "    type filter hook forward priority filter; policy accept;", "  }",
            "}", ""]))

    def add(self, tag, rules):
        """Add ``rules`` [(chain, text)] tagged ``tag`` in one transaction (after removing any with that tag)."""
        with locks.locked(self.lock_path):
            self._ensure_table()
            script = self._deletions(tag)
            for chain, text in rules:
                script += 'add rule ip {} {} {} comment "{}"\n'.format(TABLE, chain, text, tag)
            if script:
                self._apply(script)

    def _deletions(self, tag):
        code, out, _ = _run(["nft", "-a", "-j", "list", "table", "ip", TABLE])
        if code != 0:
            return ""
        script = ""
        for item in json.loads(out).get("nftables", []):
            rule = item.get("rule")
            if rule and rule.get("comment") == tag:
                script += "delete rule ip {} {} handle {}\n".format(TABLE, rule["chain"], rule["handle"])
        return script

    def remove(self, tag):
        """Delete every rule tagged ``tag``; idempotent."""
        with locks.locked(self.lock_path):
            script = self._deletions(tag)
            if script:
                self._apply(script)

    def rules(self, tag=None):
        """[(chain, comment)] of our rules (for tests and ``facts``)."""
        code, out, _ = _run(["nft", "-a", "-j", "list", "table", "ip", TABLE])
        if code != 0:
            return []
        return [(i["rule"]["chain"], i["rule"].get("comment")) for i in json.loads(out).get("nftables", [])
                if "rule" in i and (tag is None or i["rule"].get("comment") == tag)]


class NoFirewall:
    """No nftables or iptables: no NAT rules; published ports are served by the userland proxy alone."""

    name = "none"

    def add(self, tag, rules):
        pass

    def remove(self, tag):
        pass

    def rules(self, tag=None):
        return []


_backend = None


def backend(paths):
    """The host's backend (detected once per process): nftables if usable, else none.

    FLEET_FIREWALL=none forces the proxy-only mode (hosts whose firewall fleet must not touch).
    """
    global _backend
    if _backend is None:
        forced = os.environ.get("FLEET_FIREWALL")
        lock = paths.lock_file("firewall")
        if forced == "none":
            _backend = NoFirewall()
        elif shutil.which("nft") and _run(["nft", "list", "tables"])[0] == 0:
            _backend = Nft(lock)
        else:
            _backend = NoFirewall()
    return _backend


def network_up(paths, rec):
    """Install a network's NAT and isolation rules (idempotent)."""
    backend(paths).add(network_tag(rec["id"]), _network_rules(rec))


def network_down(paths, rec):
    backend(paths).remove(network_tag(rec["id"]))


def publish(paths, cid, bindings):
    """DNAT rules for a container's published ports (``bindings``: proto, host_ip, host_port, container_ip/port)."""
    if bindings:
        backend(paths).add(container_tag(cid), _publish_rules(bindings))


def unpublish(paths, cid):
    backend(paths).remove(container_tag(cid))
