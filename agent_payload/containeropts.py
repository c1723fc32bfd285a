"""docker run/create's container flags, declared once, and their one parse into the create/run op args.

This follows docker/cli's ``cli/command/container/opts.go``: one ``addFlags`` (here the ``FLAGS`` table) and one
``parse`` (here ``parse``) shared by ``run`` and ``create``.  The table is plain data so that both front ends
build their parsers from it:

- the controller turns each row into a typer option (names, type, help) appended to ``fleet run``/``create``/
  ``update``'s signatures (``fleet/cli/base.py``'s ``container_flags``), and ``fleet/commands/runflags.py`` wraps
  ``parse``'s flat op args into its typed ``RunSpec`` (sections: process, stdio, security, network, resources,
  supervision, mounts);
- the payload's hand CLI (``handcli.py``, stdlib only) turns the same rows into argparse arguments.

``parse`` reads what a client reads (``--env-file``, ``--label-file``, ``seccomp=PROFILE.json``: files on the
machine the command is typed on, as docker's CLI does) and checks what can be checked without a host; bad input
raises ``errors.InvalidArgument`` naming the flag or file (the controller turns it into a usage error, exit 2).
Its result is the op args of ``protocol.py``'s ``run``/``create`` (and ``update``), unchanged on the wire.

Standard library only, python3 >= 3.8: the controller may import this module, and it imports nothing of the
payload at module level (``linux.seccomp`` only when ``--security-opt`` is parsed).
"""

import re
import signal as signals
from collections import namedtuple

from agent_payload import errors

# names: the controller's (typer); hand_names: the hand CLI's (argparse; docker's -h for --hostname there, where
# --help has no -h), empty for a flag the hand CLI does not take.
# kind: "bool" (a switch, default False), "str"/"int" (one value, default None), "strs" (repeatable, default
# empty), "tristate" (a switch that is None unless given: --init leaves the choice to the host's daemon.json)
Flag = namedtuple("Flag", "dest names kind help commands hand_names")

RUN, CREATE, UPDATE = "run", "create", "update"
_RC = (RUN, CREATE)
_RCU = (RUN, CREATE, UPDATE)


def _flag(dest, names, kind, help, commands=_RC, hand_names=None):
    return Flag(dest, tuple(names), kind, help, tuple(commands), tuple(names if hand_names is None else hand_names))


# The order is the order of `fleet run --help`.
FLAGS = (
    _flag("detach", ["-d", "--detach"], "bool", "Run in the background and print the ID.", commands=[RUN]),
    _flag("name", ["--name"], "str", "Container name (unique per host)."),
    _flag("rm", ["--rm"], "bool", "Remove the container when it exits."),
    _flag("env", ["-e", "--env"], "strs", "KEY=VALUE, or KEY to pass this shell's."),
    _flag("entrypoint", ["--entrypoint"], "str", "Override the image's ENTRYPOINT."),
    _flag("workdir", ["-w", "--workdir"], "str", "Working directory inside the container."),
    _flag("hostname", ["--hostname"], "str", "Container host name.", hand_names=["-h", "--hostname"]),
    # attaching a terminal is the controller's (commands/interactive.py): no -i/-t by hand
    _flag("interactive", ["-i", "--interactive"], "bool", "Keep STDIN open (attached: this terminal's or pipe's "
          "input goes to the container).", hand_names=()),
    _flag("tty", ["-t", "--tty"], "bool", "Allocate a pseudo-TTY (attached: exactly one host).", hand_names=()),
    _flag("detach_keys", ["--detach-keys"], "str", "Key sequence to detach, leaving the container running "
          "(default ctrl-p,ctrl-q).", commands=[RUN], hand_names=()),
    # the controller's own, while attached (not op args: fleet/cli/containers.py takes them out of the flags)
    _flag("prefix", ["--prefix"], "bool", "Prefix each line of output with its host ('host | '), even for one "
          "host (default: raw bytes for one host when stdout is not a terminal).", commands=[RUN], hand_names=()),
    _flag("no_prefix", ["--no-prefix"], "bool", "Never prefix output lines with their host.", commands=[RUN],
          hand_names=()),
    _flag("sig_proxy", ["--sig-proxy"], "str", "true|false: proxy received signals (INT, TERM, HUP, QUIT, USR1, "
          "USR2) to the container's process (default true; never with a TTY).", commands=[RUN], hand_names=()),
    _flag("user", ["-u", "--user"], "str", "Username or UID, with an optional group: name|uid[:group|gid]."),
    _flag("cap_add", ["--cap-add"], "strs", "Add a Linux capability (repeatable; ALL for every one)."),
    _flag("cap_drop", ["--cap-drop"], "strs", "Drop a Linux capability (repeatable; ALL for every one)."),
    _flag("privileged", ["--privileged"], "bool", "Give extended privileges (all capabilities, no masks)."),
    _flag("read_only", ["--read-only"], "bool", "Mount the container's root filesystem read-only."),
    _flag("security_opt", ["--security-opt"], "strs", "Security option (repeatable): "
          "no-new-privileges[=true|false], seccomp=unconfined|builtin|PROFILE.json."),
    _flag("network", ["--network"], "str", "Connect to a network: bridge (default), host, none, "
          "container:NAME|ID, or a user-defined network's name."),
    _flag("publish", ["-p", "--publish"], "strs", "Publish a port: [ip:][hostPort:]containerPort[/tcp|udp], "
          "ranges allowed (repeatable)."),
    _flag("publish_all", ["-P", "--publish-all"], "bool", "Publish every EXPOSEd port on a random host port."),
    _flag("network_alias", ["--network-alias"], "strs", "A name on the user-defined network (repeatable)."),
    _flag("ip", ["--ip"], "str", "IPv4 address on the user-defined network (e.g. 172.30.100.104)."),
    _flag("mac_address", ["--mac-address"], "str", "Container MAC address (e.g. 92:d0:c6:0a:29:33)."),
    _flag("link", ["--link"], "strs", "Add a link to another container: name[:alias] (an /etc/hosts entry; "
          "legacy: docker deprecates --link, use a user-defined network and its names instead)."),
    _flag("add_host", ["--add-host"], "strs", "Add a line to /etc/hosts: host:ip (ip may be host-gateway; "
          "repeatable)."),
    _flag("dns", ["--dns"], "strs", "DNS server of the container's resolv.conf (repeatable)."),
    _flag("dns_search", ["--dns-search"], "strs", "DNS search domain (repeatable; '.' for none)."),
    _flag("dns_option", ["--dns-option"], "strs", "resolv.conf option, e.g. ndots:2 (repeatable)."),
    _flag("expose", ["--expose"], "strs", "Expose a port or a range (80, 8000-8002/udp) without publishing it "
          "(repeatable; -P publishes it)."),
    _flag("env_file", ["--env-file"], "strs", "Read environment variables from a file on this machine."),
    _flag("label", ["-l", "--label"], "strs", "Set a label: KEY=VALUE (repeatable)."),
    _flag("label_file", ["--label-file"], "strs", "Read labels from a file on this machine (KEY=VALUE lines)."),
    _flag("stop_signal", ["--stop-signal"], "str", "Signal to stop the container (default: the image's, or "
          "SIGTERM)."),
    _flag("stop_timeout", ["--stop-timeout"], "int", "Seconds to wait for stop before killing the container."),
    _flag("pull", ["--pull"], "str", "Pull the image before running: always, missing (default) or never."),
    _flag("platform", ["--platform"], "str", "The image's platform: this host's own os/arch only (e.g. "
          "linux/amd64); another is refused."),
    _flag("cidfile", ["--cidfile"], "str", "Write the container ID to this file on this machine (one host only; "
          "refused if it exists).", hand_names=()),
    _flag("init", ["--init"], "tristate", "Run an init inside the container that forwards signals and reaps "
          "processes."),
    _flag("memory", ["-m", "--memory"], "str", "Memory limit (e.g. 32m, 1g; at least 6MB).", commands=_RCU),
    _flag("memory_swap", ["--memory-swap"], "str", "Memory plus swap limit; -1 for unlimited swap.",
          commands=_RCU),
    _flag("cpus", ["--cpus"], "str", "Number of CPUs (e.g. 0.5).", commands=_RCU),
    _flag("cpu_shares", ["-c", "--cpu-shares"], "str", "CPU shares (relative weight).", commands=_RCU),
    _flag("pids_limit", ["--pids-limit"], "str", "Process limit (-1 for unlimited).", commands=_RCU),
    _flag("memory_reservation", ["--memory-reservation"], "str", "Memory soft limit (e.g. 16m).", commands=_RCU),
    _flag("cpuset_cpus", ["--cpuset-cpus"], "str", "CPUs in which to allow execution (0-3, 0,1).", commands=_RCU),
    _flag("cpuset_mems", ["--cpuset-mems"], "str", "Memory nodes in which to allow execution (0-3, 0,1).",
          commands=_RCU),
    _flag("oom_kill_disable", ["--oom-kill-disable"], "bool", "Disable the OOM killer (cgroup v1 only)."),
    _flag("blkio_weight", ["--blkio-weight"], "str", "Block IO (relative weight), between 10 and 1000, or 0 to "
          "disable.", commands=_RCU),
    _flag("blkio_weight_device", ["--blkio-weight-device"], "strs", "Block IO weight of a device: /dev/x:WEIGHT "
          "(repeatable)."),
    _flag("device_read_bps", ["--device-read-bps"], "strs", "Limit read rate (bytes per second) from a device: "
          "/dev/x:RATE, e.g. /dev/sda:1mb (repeatable)."),
    _flag("device_write_bps", ["--device-write-bps"], "strs", "Limit write rate (bytes per second) to a device: "
          "/dev/x:RATE (repeatable)."),
    _flag("device_read_iops", ["--device-read-iops"], "strs", "Limit read rate (IO per second) from a device: "
          "/dev/x:NUMBER (repeatable)."),
    _flag("device_write_iops", ["--device-write-iops"], "strs", "Limit write rate (IO per second) to a device: "
          "/dev/x:NUMBER (repeatable)."),
    _flag("shm_size", ["--shm-size"], "str", "Size of /dev/shm (default 64m)."),
    _flag("ulimit", ["--ulimit"], "strs", "Ulimit: name=soft[:hard], e.g. nofile=1024:2048 (repeatable)."),
    _flag("sysctl", ["--sysctl"], "strs", "Namespaced kernel parameter: net.*, kernel.msg*/sem/shm*, fs.mqueue.* "
          "(repeatable)."),
    _flag("device", ["--device"], "strs", "Add a host device: /dev/x[:/dev/y][:rwm] (repeatable)."),
    _flag("group_add", ["--group-add"], "strs", "Additional group to join: name or GID (repeatable)."),
    _flag("restart", ["--restart"], "str", "Restart policy: no, always, on-failure[:max-retries], unless-stopped.",
          commands=_RCU),
    _flag("health_cmd", ["--health-cmd"], "str", "Command to run to check health."),
    _flag("health_interval", ["--health-interval"], "str", "Time between running the check (ms|s|m|h)."),
    _flag("health_timeout", ["--health-timeout"], "str", "Maximum time to allow one check to run (ms|s|m|h)."),
    _flag("health_retries", ["--health-retries"], "int", "Consecutive failures needed to report unhealthy."),
    _flag("health_start_period", ["--health-start-period"], "str", "Start period for the container to "
          "initialize before failures count (ms|s|m|h)."),
    _flag("no_healthcheck", ["--no-healthcheck"], "bool", "Disable any container-specified HEALTHCHECK."),
    _flag("log_driver", ["--log-driver"], "str", "Logging driver: json-file (default) or none."),
    _flag("log_opt", ["--log-opt"], "strs", "Log driver option, e.g. max-size=10m, max-file=3 (repeatable)."),
    _flag("volume", ["-v", "--volume"], "strs", "Bind mount or volume (repeatable): /ctr (anonymous), "
          "NAME:/ctr[:ro], /host:/ctr[:ro] (a missing /host is created)."),
    _flag("volumes_from", ["--volumes-from"], "strs", "Mount the volumes of another container on this host: "
          "CONTAINER[:ro|rw] (repeatable)."),
    _flag("tmpfs", ["--tmpfs"], "strs", "Mount a tmpfs: /path[:options] (default noexec,nosuid,nodev; "
          "repeatable)."),
    _flag("mount", ["--mount"], "strs", "Mount (repeatable): type=bind|volume|tmpfs,source=...,target=...[,"
          "readonly][,volume-nocopy][,tmpfs-size=64m][,tmpfs-mode=1777]; a missing bind source is an error."),
)

RESOURCES = ("memory", "memory_swap", "cpus", "cpu_shares", "pids_limit", "memory_reservation", "cpuset_cpus",
             "cpuset_mems", "blkio_weight")
#: the block-IO device lists (hostopts.BLKIO_LISTS): run/create only, checked by hostopts.blkio_from_flags
BLKIO_LISTS = ("blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops")
#: flag dest -> request arg of the host options (agent_payload/hostopts.py checks both ends)
HOST_OPTIONS = {"add_host": "extra_hosts", "dns": "dns", "dns_search": "dns_search", "dns_option": "dns_options",
                "tmpfs": "tmpfs", "shm_size": "shm_size", "ulimit": "ulimits", "sysctl": "sysctls",
                "device": "devices", "group_add": "group_add", "volumes_from": "volumes_from", "link": "links"}
_WHITESPACE = " \t"


def flags_for(command):
    """The rows of ``command`` ("run", "create" or "update"), in help order."""
    return [f for f in FLAGS if command in f.commands]


def defaults(command):
    """dest -> the value of a flag not given."""
    return {f.dest: (False if f.kind == "bool" else [] if f.kind == "strs" else None) for f in flags_for(command)}


def _bad(text):
    return errors.InvalidArgument(text)


def read_kv_file(path, read_bytes, lookup=None):
    """Lines of a docker env/label file (the CLI's parseKeyValueFile).

    Leading whitespace is dropped; empty lines and lines starting with ``#`` are skipped; ``KEY=VALUE`` is kept as
    written (the value verbatim); a bare ``KEY`` is kept as is when ``lookup`` is None (label files), else it
    becomes ``KEY=<lookup(KEY)>`` or is dropped when ``lookup`` finds nothing (env files: the local environment).
    """
    try:
        raw = read_bytes(path)
    except OSError as exc:
        raise _bad("open {}: {}".format(path, (exc.strerror or str(exc)).lower()))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # UTF-8 BOM
    out = []
    for number, bline in enumerate(raw.split(b"\n"), 1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("{} contains invalid utf8 bytes at line {}: {!r}".format(path, number, bline))
        line = line.rstrip("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key:
            raise _bad("{}: no variable name on line '{}'".format(path, line))
        if any(c in key for c in _WHITESPACE):
            raise _bad("{}: poorly formatted environment: variable '{}' contains whitespaces".format(path, key))
        if sep:
            out.append("{}={}".format(key, value))
        elif lookup is None:
            out.append(key)
        else:
            found = lookup(key)
            if found is not None:
                out.append("{}={}".format(key, found))
    return out


def resolve_env(entries, lookup):
    """docker's -e: KEY=VALUE as given; a bare KEY takes its value from ``lookup`` (this machine's environment)
    and is dropped when it finds none."""
    out = []
    for entry in entries:
        key = entry.split("=", 1)[0]
        if not key or any(c.isspace() for c in key):
            raise _bad('invalid environment variable "{}": expected KEY=VALUE or KEY'.format(entry))
        if "=" in entry:
            out.append(entry)
        else:
            found = lookup(key)
            if found is not None:
                out.append("{}={}".format(key, found))
    return out


def label_map(labels, label_files, read_bytes):
    """--label-file lines first, then -l values; ``K=V`` or ``K`` (empty value); an empty name is refused."""
    out = {}
    for entry in [e for path in label_files for e in read_kv_file(path, read_bytes)] + list(labels):
        key, _, value = entry.partition("=")
        if not key.strip():
            raise _bad("invalid label '{}': empty name".format(entry))
        out[key] = value
    return out


def valid_signal(text):
    """docker's signal syntax (the payload checks the exact number): a number, NAME, SIGNAME or RTMIN+n."""
    text = text.strip().upper()
    if text.isdigit():
        return 0 < int(text) < signals.NSIG
    name = text if text.startswith("SIG") else "SIG" + text
    if re.match(r"^SIGRT(MIN|MAX)[+-]\d+$", name):
        return True
    return name in signals.Signals.__members__


def resource_args(values):
    """--memory/--memory-swap/--cpus/--cpu-shares/--pids-limit & co. as op args (values as typed; the payload
    parses them against the host, e.g. its CPU count); an empty value is refused here, naming the flag, and the
    block-IO flags' syntax is checked (hostopts.blkio_from_flags: the payload checks the devices)."""
    out = {key: values.get(key) for key in RESOURCES}
    for key, value in out.items():
        if value is not None and not value.strip():
            raise _bad('invalid argument "" for "--{}" flag: empty'.format(key.replace("_", "-")))
    from agent_payload import hostopts

    out.update({key: list(values.get(key) or []) for key in BLKIO_LISTS if key in values})
    hostopts.blkio_from_flags(**_blkio_args(out))
    return out


def _blkio_args(args):
    """The block-IO op args among ``args`` (hostopts.blkio_from_flags keywords)."""
    return {key: args[key] for key in ("blkio_weight",) + BLKIO_LISTS if key in args}


def _read_text(read_bytes):
    return lambda path: read_bytes(path).decode("utf-8")


def parse(command, values, read_bytes, lookup_env):
    """Flag values (dest -> value, as ``defaults(command)`` for flags not given) -> the op args of ``command``.

    ``read_bytes(path) -> bytes`` reads this machine's files (--env-file, --label-file, seccomp=PROFILE.json);
    ``lookup_env(KEY) -> str|None`` is this machine's environment (``-e KEY``, bare keys of --env-file).
    The op args are protocol.py's: ``run``/``create`` without "image" and "command" (positional, the caller's),
    ``update`` without "containers".
    """
    v = dict(defaults(command), **values)
    if command == UPDATE:  # flags added since the first update leave the request when not given (null: unchanged)
        return dict({k: val for k, val in resource_args(v).items() if val is not None or k in RESOURCES[:5]},
                    restart=v["restart"])
    from agent_payload.linux.seccomp import security_opt_args

    if v["name"] is not None and not v["name"]:
        raise _bad("invalid container name: empty")
    env = [e for path in v["env_file"] for e in read_kv_file(path, read_bytes, lookup_env)] + list(v["env"])
    if v["stop_signal"] is not None and not valid_signal(v["stop_signal"]):
        raise _bad("Invalid signal: {}".format(v["stop_signal"]))
    if v["stop_timeout"] is not None and v["stop_timeout"] < 0:
        raise _bad('invalid argument "{}" for "--stop-timeout" flag: want seconds >= 0'.format(v["stop_timeout"]))
    labels = label_map(v["label"], v["label_file"], read_bytes)
    security = security_opt_args(list(v["security_opt"]), _read_text(read_bytes))
    if v["network"] is not None and not v["network"]:
        raise _bad("invalid --network: empty")
    if v["user"] is not None and not v["user"]:
        raise _bad("invalid --user: empty")
    args = {"name": v["name"], "rm": v["rm"], "env": resolve_env(env, lookup_env),
            "entrypoint": None if v["entrypoint"] is None else [v["entrypoint"]], "workdir": v["workdir"],
            "hostname": v["hostname"],
            # security
            "user": v["user"], "cap_add": list(v["cap_add"]), "cap_drop": list(v["cap_drop"]),
            "privileged": v["privileged"], "read_only": v["read_only"], "no_new_privileges":
            security["no_new_privileges"], "seccomp": security["seccomp"],
            # network
            "network": v["network"], "publish": list(v["publish"]), "publish_all": v["publish_all"],
            "network_aliases": list(v["network_alias"]), "ip": v["ip"],
            # process
            "labels": labels, "stop_signal": v["stop_signal"], "stop_timeout": v["stop_timeout"], "init": v["init"],
            # stdio
            "open_stdin": v["interactive"], "tty": v["tty"],
            # supervision
            "restart": v["restart"], "health_cmd": v["health_cmd"], "health_interval": v["health_interval"],
            "health_timeout": v["health_timeout"], "health_retries": v["health_retries"],
            "health_start_period": v["health_start_period"], "no_healthcheck": v["no_healthcheck"],
            "log_driver": v["log_driver"], "log_opts": list(v["log_opt"]) if v["log_opt"] else None,
            # mounts
            "volumes": list(v["volume"]), "mounts": list(v["mount"])}
    args.update(resource_args(v))
    args["oom_kill_disable"] = v["oom_kill_disable"]
    from agent_payload import hostopts, portspec

    host = {arg: (list(v[dest]) if isinstance(v[dest], (list, tuple)) else v[dest])
            for dest, arg in HOST_OPTIONS.items()}
    parsed = hostopts.from_flags(**host)  # docker's checks, before any host is contacted (the payload re-checks)
    hostopts.check_network(parsed["sysctls"], v["network"], parsed["links"])
    args.update(host)
    args["expose"] = list(v["expose"])
    args["mac_address"] = hostopts.check_mac(v["mac_address"])
    hostopts.check_pull(v["pull"])
    args.update(pull=v["pull"], platform=hostopts.check_platform(v["platform"]))
    if v.get("cidfile") is not None:
        if not v["cidfile"]:
            raise _bad('invalid argument "" for "--cidfile" flag: empty')
        args["cidfile"] = v["cidfile"]  # the controller's (a file on its machine), never sent
    portspec.exposed_ports(args["expose"])
    if command == RUN:
        args["detach"] = v["detach"]
        args["detach_keys"] = v["detach_keys"]
    return args
