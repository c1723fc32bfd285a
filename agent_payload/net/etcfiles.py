"""A container's /etc/hosts and /etc/resolv.conf text (written at create by rootfs.prepare, rewritten by the
network setup): a leaf module, cheap to import on every create."""

import os
import socket

HOSTS_TEMPLATE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                  "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{}\n")
DOCKER_DEFAULT_DNS = ("nameserver 8.8.8.8\n", "nameserver 8.8.4.4\n")


def _is_loopback(address):
    """127.0.0.0/8 or ::1 (ipaddress would cost an import on every create)."""
    try:
        return socket.inet_pton(socket.AF_INET, address)[0] == 127
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, address) == b"\0" * 15 + b"\1"
    except OSError:
        return False


def resolv_conf(text):
    """The host's resolv.conf minus loopback nameservers (unreachable once containers get their own netns)."""
    out, servers = [], 0
    for line in text.splitlines(True):
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            if _is_loopback(fields[1].split("%")[0]):
                continue
            servers += 1
        out.append(line if line.endswith("\n") else line + "\n")
    if not servers:
        out.extend(DOCKER_DEFAULT_DNS)  # as Docker does when nothing usable is left
    return "".join(out)


def host_resolv_conf():
    """The resolv.conf to start from: systemd-resolved's upstream list if the stub (127.0.0.53) is in use."""
    for path in ("/etc/resolv.conf",):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if "127.0.0.53" in text and os.path.exists("/run/systemd/resolve/resolv.conf"):
            with open("/run/systemd/resolve/resolv.conf") as f:
                return f.read()
        return text
    return ""


def hosts_text(hostname, ip=None, extra=""):
    """A container's /etc/hosts: the defaults, --add-host's lines (``extra``), then its own name on ``ip``
    (127.0.1.1 without an address of its own), in docker's order."""
    own = "{}\t{}\n".format(ip or "127.0.1.1", hostname)
    return HOSTS_TEMPLATE.format(hostname).replace("127.0.1.1\t{}\n".format(hostname), "") + extra + own


def container_files(config, ip=None, gateway=None, resolv_base=None, links=""):
    """(hosts, resolv.conf) text of a container ``config`` (--add-host, --dns, --dns-search, --dns-option applied);
    ``resolv_base``: the resolv.conf to start from (default: the host's, loopback servers dropped)."""
    from agent_payload import hostopts

    extra = hostopts.hosts_lines(config.get("extra_hosts"), gateway) + links  # --add-host, then --link
    base = resolv_base if resolv_base is not None else resolv_conf(host_resolv_conf())
    resolv = hostopts.resolv_text(base, config.get("dns") or (), config.get("dns_search") or (),
                                  config.get("dns_options") or ())
    return hosts_text(config.get("hostname") or "", ip, extra), resolv
