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

``switch`` (the port handover of a start-first deploy, runtime/handover.py) replaces the rules of several tags in
ONE transaction: a single ``nft -f`` script (deletes by handle, then adds), or a single ``iptables-restore
--noflush`` batch per table (applied atomically, as a whole or not at all). No packet ever sees a moment where
a published port has no rule, or two; connections already tracked keep their DNAT (conntrack).
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
    """A network's rules as (chain, rule) with rule a dict of: action, and the matches it needs."""
    br, subnet = rec["bridge"], rec["subnet"]
    rules = []
    if rec.get("internal"):
        rules += [("forward", {"action": "drop", "in": br, "out_not": br}),
                  ("forward", {"action": "drop", "out": br, "in_not": br})]
    else:
        rules.append(("postrouting", {"action": "masquerade", "saddr": subnet, "out_not": br}))
    rules.append(("postrouting", {"action": "masquerade", "saddr": subnet, "out": br, "dnat": True}))  # hairpin
    # isolation (Docker's DOCKER-ISOLATION stages): no traffic from this bridge into another fleet bridge
    rules.append(("forward", {"action": "return", "in": br, "out": br}))
    for other in ("fleet0", "fl-*"):
        rules.append(("forward", {"action": "drop", "in": br, "out": other}))
    return rules


def _publish_rules(bindings):
    rules = []
    for b in bindings:
        daddr = b.get("host_ip") if b.get("host_ip") not in (None, "", "0.0.0.0") else None
        rules.append(("published", {"action": "dnat", "daddr": daddr, "proto": b["proto"], "dport": b["host_port"],
                                    "to": "{}:{}".format(b["container_ip"], b["container_port"])}))
    return rules


def nft_text(rule):
    """One rule in nft syntax."""
    words = []
    if rule.get("in"):
        words.append('iifname "{}"'.format(rule["in"]))
    if rule.get("in_not"):
        words.append('iifname != "{}"'.format(rule["in_not"]))
    if rule.get("out"):
        words.append('oifname "{}"'.format(rule["out"]))
    if rule.get("out_not"):
        words.append('oifname != "{}"'.format(rule["out_not"]))
    if rule.get("saddr"):
        words.append("ip saddr {}".format(rule["saddr"]))
    if rule.get("daddr"):
        words.append("ip daddr {}".format(rule["daddr"]))
    if rule.get("dnat"):
        words.append("ct status dnat")
    if rule.get("proto"):
        words.append("{} dport {}".format(rule["proto"], rule["dport"]))
    words.append({"drop": "drop", "return": "return", "masquerade": "masquerade"}.get(rule["action"]) or
                 "dnat to {}".format(rule["to"]))
    return " ".join(words)


def iptables_args(rule):
    """One rule as iptables match/target arguments (interface globs: "fl-*" becomes "fl-+")."""
    glob = lambda name: name.replace("*", "+")  # noqa: E731
    args = []
    if rule.get("in"):
        args += ["-i", glob(rule["in"])]
    if rule.get("in_not"):
        args += ["!", "-i", glob(rule["in_not"])]
    if rule.get("out"):
        args += ["-o", glob(rule["out"])]
    if rule.get("out_not"):
        args += ["!", "-o", glob(rule["out_not"])]
    if rule.get("saddr"):
        args += ["-s", rule["saddr"]]
    if rule.get("daddr"):
        args += ["-d", rule["daddr"]]
    if rule.get("dnat"):
        args += ["-m", "conntrack", "--ctstate", "DNAT"]
    if rule.get("proto"):
        args += ["-p", rule["proto"], "--dport", str(rule["dport"])]
    target = {"drop": ["-j", "DROP"], "return": ["-j", "RETURN"], "masquerade": ["-j", "MASQUERADE"]}
    return args + (target.get(rule["action"]) or ["-j", "DNAT", "--to-destination", rule["to"]])


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
        """Add ``rules`` [(chain, rule)] tagged ``tag`` in one transaction (after removing any with that tag)."""
        self.replace([(tag, rules)])

    def replace(self, changes):
        """For each ``(tag, rules)`` of ``changes``: the rules tagged ``tag`` become ``rules``; one transaction."""
        with locks.locked(self.lock_path):
            self._ensure_table()
            script = nft_replace_script(changes, self._listed())
            if script:
                self._apply(script)

    def _listed(self):
        """Our rules as the JSON listing gives them: [{"chain", "handle", "comment", ...}]."""
        code, out, _ = _run(["nft", "-a", "-j", "list", "table", "ip", TABLE])
        if code != 0:
            return []
        return [item["rule"] for item in json.loads(out).get("nftables", []) if "rule" in item]

    def remove(self, tag):
        """Delete every rule tagged ``tag``; idempotent."""
        with locks.locked(self.lock_path):
            script = nft_replace_script([(tag, [])], self._listed())
            if script:
                self._apply(script)

    def rules(self, tag=None):
        """[(chain, comment)] of our rules (for tests and ``facts``)."""
        return [(r["chain"], r.get("comment")) for r in self._listed() if tag is None or r.get("comment") == tag]


def nft_replace_script(changes, listed):
    """The ``nft -f`` script that makes the rules tagged ``tag`` exactly ``rules`` for each ``(tag, rules)``:
    every listed rule of those tags deleted by handle, then the new ones added (``listed``: Nft._listed)."""
    tags = [tag for tag, _ in changes]
    script = ""
    for rule in listed:
        if rule.get("comment") in tags:
            script += "delete rule ip {} {} handle {}\n".format(TABLE, rule["chain"], rule["handle"])
    for tag, rules in changes:
        for chain, rule in rules:
            script += 'add rule ip {} {} {} comment "{}"\n'.format(TABLE, chain, nft_text(rule), tag)
    return script


class Iptables:
    """The iptables backend (``binary`` is iptables, iptables-legacy or iptables-nft, as detected)."""

    name = "iptables"
    #: our chain per logical chain: (table, chain, where it is jumped from, the jump's matches)
    CHAINS = {"published": ("nat", "FLEET-PUBLISHED", (
                  ("PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL"]),
                  ("OUTPUT", ["!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL"]))),
              "postrouting": ("nat", "FLEET-POSTROUTING", (("POSTROUTING", []),)),
              "forward": ("filter", "FLEET-FORWARD", (("FORWARD", []),))}

    def __init__(self, binary, lock_path):
        self.binary = binary
        self.name = "iptables ({})".format(binary)
        self.lock_path = lock_path

    def _ipt(self, table, *args, check=True):
        code, out, err = _run([self.binary, "-w", "-t", table] + list(args))
        if check and code != 0:
            raise errors.FailedPrecondition("{} failed: {} ({})".format(self.binary, err.strip(), " ".join(args)))
        return code, out

    def _ensure_chains(self):
        for table, chain, jumps in self.CHAINS.values():
            if self._ipt(table, "-S", chain, check=False)[0] != 0:
                self._ipt(table, "-N", chain)
            for parent, matches in jumps:
                spec = matches + ["-j", chain]
                if self._ipt(table, "-C", parent, *spec, check=False)[0] != 0:
                    self._ipt(table, "-I", parent, "1", *spec)

    def add(self, tag, rules):
        with locks.locked(self.lock_path):
            self._ensure_chains()
            self._delete(tag)
            for chain, rule in rules:
                table, name, _ = self.CHAINS[chain]
                self._ipt(table, "-A", name, *(iptables_args(rule) + ["-m", "comment", "--comment", tag]))

    def replace(self, changes):
        """For each ``(tag, rules)``: the rules tagged ``tag`` become ``rules``, in one ``iptables-restore
        --noflush`` batch (each table's part is committed atomically; a port switch touches only ``nat``)."""
        with locks.locked(self.lock_path):
            self._ensure_chains()
            script = iptables_restore_script(changes, self._tagged())
            if not script:
                return
            code, _out, err = _run([self.binary + "-restore", "-w", "--noflush"], script)
            if code != 0:
                raise errors.FailedPrecondition("{}-restore failed: {} (batch: {})".format(
                    self.binary, err.strip(), script.strip()))

    def _tagged(self, tag=None):
        import shlex
        found = []
        for key, (table, name, _) in self.CHAINS.items():
            code, out = self._ipt(table, "-S", name, check=False)
            if code != 0:
                continue
            for line in out.splitlines():
                words = shlex.split(line)
                if words[:1] != ["-A"] or "--comment" not in words:
                    continue
                comment = words[words.index("--comment") + 1]
                if tag is None or comment == tag:
                    found.append((key, table, words[1:], comment))
        return found

    def _delete(self, tag):
        for _key, table, spec, _comment in self._tagged(tag):
            self._ipt(table, "-D", *spec, check=False)

    def remove(self, tag):
        with locks.locked(self.lock_path):
            self._delete(tag)

    def rules(self, tag=None):
        return [(key, comment) for key, _t, _s, comment in self._tagged(tag)]


def _restore_word(word):
    """One argument of an iptables-restore line (double-quoted when it holds blanks or quotes)."""
    if word and not any(c in word for c in ' \t"\''):
        return word
    return '"{}"'.format(word.replace("\\", "\\\\").replace('"', '\\"'))


def iptables_restore_script(changes, tagged):
    """The ``iptables-restore --noflush`` input that makes the rules tagged ``tag`` exactly ``rules`` for each
    ``(tag, rules)``: per table, ``-D`` of every listed rule of those tags, then ``-A`` of the new ones, COMMIT
    (``tagged``: Iptables._tagged, [(chain key, table, spec words after -A, comment)])."""
    tags = [tag for tag, _ in changes]
    lines = {}
    for _key, table, spec, comment in tagged:
        if comment in tags:
            lines.setdefault(table, []).append("-D " + " ".join(_restore_word(w) for w in spec))
    for tag, rules in changes:
        for chain, rule in rules:
            table, name, _ = Iptables.CHAINS[chain]
            words = [name] + iptables_args(rule) + ["-m", "comment", "--comment", tag]
            lines.setdefault(table, []).append("-A " + " ".join(_restore_word(w) for w in words))
    return "".join("*{}\n{}\nCOMMIT\n".format(table, "\n".join(body)) for table, body in sorted(lines.items()))


def _iptables_binary():
    """iptables-legacy or iptables-nft: the one whose tables hold rules (kube-proxy's rule), else ``iptables``."""
    best, most = None, -1
    for binary in ("iptables-nft", "iptables-legacy"):
        if not shutil.which(binary + "-save"):
            continue
        code, out, _ = _run([binary + "-save"])
        count = sum(1 for line in out.splitlines() if line.startswith("-A")) if code == 0 else -1
        if count > most:
            best, most = binary, count
    if most > 0:
        return best
    return "iptables" if shutil.which("iptables") else best


class NoFirewall:
    """No nftables or iptables: no NAT rules; published ports are served by the userland proxy alone."""

    name = "none"

    def add(self, tag, rules):
        pass

    def remove(self, tag):
        pass

    def replace(self, changes):
        pass

    def rules(self, tag=None):
        return []


_backend = None


def backend(paths):
    """The host's backend (detected once per process): nftables if usable, else iptables, else none.

    FLEET_FIREWALL=nftables|iptables|none forces one (none: the proxy alone, for hosts whose firewall fleet must
    not touch); daemon.json has no say, as dockerd's "iptables": false is about the same thing.
    """
    global _backend
    if _backend is None:
        forced = os.environ.get("FLEET_FIREWALL")
        lock = paths.lock_file("firewall")
        has_nft = shutil.which("nft") and _run(["nft", "list", "tables"])[0] == 0
        if forced == "none":
            _backend = NoFirewall()
        elif has_nft and forced in (None, "", "nftables"):
            _backend = Nft(lock)
        elif forced in (None, "", "iptables") and _iptables_binary():
            _backend = Iptables(_iptables_binary(), lock)
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


def switch(paths, published):
    """Make each container's DNAT rules exactly those of its bindings, in ONE transaction.

    ``published``: {container id: bindings (proto, host_ip, host_port, container_ip, container_port)}; an empty
    list removes that container's rules. The port handover moves host ports from one container to another with
    it: the old one's rules for them go and the new one's come in the same commit.
    """
    if published:
        backend(paths).replace([(container_tag(cid), _publish_rules(bindings))
                                for cid, bindings in sorted(published.items())])
