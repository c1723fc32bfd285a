"""ContainerSpec: the desired state of one container, checked before any side effect."""

import re
import signal

from .. import errors, hostopts
from ..record import Factory, Record
from . import caps, policy, user

#: Docker's container-name grammar (``daemon/names``); a leading "/" is accepted and dropped.
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ENV_KEY_RE = re.compile(r"^[^=\x00]+$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,62})$")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_LAYERS = 500  # overlayfs OVL_MAX_STACK
#: Network modes besides a network's name: "bridge" is the default network, "container:<name|id>" another's.
NETWORK_MODES = ("bridge", "host", "none")
NETWORK_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
#: The ``run``/``create`` flags that map 1:1 onto ContainerSpec isolation fields (``isolation_flags`` keywords),
#: with their defaults.
ISOLATION_ARGS = {"user": None, "cap_add": [], "cap_drop": [], "privileged": False, "read_only": False,
                  "no_new_privileges": False, "seccomp": None, "network": "bridge", "init": False}


class ContainerSpec(Record):
    """What to run: image layers, command, environment and the runtime options (config.json holds it as a dict)."""

    FIELDS = (
        ("name", None), ("image", ""), ("image_id", ""), ("lowerdirs", list), ("argv", list), ("env", list),
        ("workdir", "/"), ("hostname", None), ("auto_remove", False), ("labels", dict), ("stop_signal", "SIGTERM"),
        ("stop_timeout", None),  # --stop-timeout: stop/restart's default -t (None: 10 s)
        ("user", None), ("cap_add", list), ("cap_drop", list), ("privileged", False), ("read_only", False),
        ("no_new_privileges", False),
        ("seccomp", None),  # None/"builtin": Docker's default profile, "unconfined", or a profile (linux/seccomp.py)
        ("network", "bridge"),  # a mode of NETWORK_MODES, "container:<ref>", or a user-defined network's name
        ("networks", dict),  # {network name: {"aliases": [...], "ip": str|None}} (--network-alias, --ip, connect)
        ("ports", list),  # published ports: net/ports.py bindings (-p, -P)
        ("publish_staged", False),  # ports recorded, not routed until runtime/handover.py moves them here
        ("init", False),  # --init: runtime/init.py is PID 1 and reaps
        ("limits", dict),  # cgroups.limits.Limits.to_dict()
        ("tty", False),  # -t: the init's stdio is a PTY (runtime/attach.py)
        ("open_stdin", False),  # -i: the init's stdin is a pipe that attach clients write to
        ("stdin_once", False),  # close that stdin when the first attached client's stdin ends (run -i)
        ("restart_policy", Factory(lambda: {"Name": "no", "MaximumRetryCount": 0})),
        ("healthcheck", None),  # docker's Config.Healthcheck (runtime/health.py), image's merged in
        ("log_config", Factory(lambda: {"Type": "json-file", "Config": {}})),
        ("mounts", list),  # -v/--mount/VOLUME: runtime/volumes.py mount dicts (resolved at create)
    ) + hostopts.FIELDS  # --add-host, --dns*, --tmpfs, --shm-size, --ulimit, --sysctl, --device, --group-add

    def validate(self):
        """Raise ``errors.InvalidArgument`` on the first invalid field; normalise ``name`` (drop a leading "/")."""
        self.name = check_name(self.name)
        if not isinstance(self.image, str) or not self.image:
            raise errors.InvalidArgument("image reference must not be empty")
        if not isinstance(self.image_id, str) or not IMAGE_ID_RE.match(self.image_id):
            raise errors.InvalidArgument("invalid image ID {!r}: want sha256:<64 hex>".format(self.image_id))
        _check_str_list("lowerdirs", self.lowerdirs)
        if not self.lowerdirs:
            raise errors.InvalidArgument("an image needs at least one layer directory")
        if len(self.lowerdirs) > MAX_LAYERS:
            raise errors.InvalidArgument("too many layers: {} > {}".format(len(self.lowerdirs), MAX_LAYERS))
        for d in self.lowerdirs:
            if not d.startswith("/"):
                raise errors.InvalidArgument("layer directory must be absolute: {!r}".format(d))
        _check_str_list("argv", self.argv)
        if not self.argv or not self.argv[0]:
            raise errors.InvalidArgument("No command specified")
        check_user_fields(env=self.env, workdir=self.workdir, hostname=self.hostname)
        if not isinstance(self.labels, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in self.labels.items()):
            raise errors.InvalidArgument("labels must map non-empty strings to strings")
        if not isinstance(self.auto_remove, bool):
            raise errors.InvalidArgument("auto_remove must be a boolean")
        if not isinstance(self.publish_staged, bool):
            raise errors.InvalidArgument("publish_staged must be a boolean")
        signal_number(self.stop_signal)
        check_stop_timeout(self.stop_timeout)
        self.limits = check_limits(self.limits)
        self.restart_policy = policy.check_restart(self.restart_policy)
        policy.check_auto_remove(self.restart_policy, self.auto_remove)
        self.healthcheck = policy.check_healthcheck(self.healthcheck)
        from . import logconfig
        self.log_config = logconfig.check(self.log_config)
        from . import volumes
        self.mounts = volumes.check_mounts(self.mounts)
        hostopts.check_spec(self)
        return self.check_isolation()

    def check_isolation(self):
        """Validate and normalise the isolation fields (user, capabilities, flags, network); returns self."""
        self.user = user.check_spec(self.user)
        self.cap_add = caps.normalize(self.cap_add, "cap_add")
        self.cap_drop = caps.normalize(self.cap_drop, "cap_drop")
        for field in ("privileged", "read_only", "no_new_privileges", "init", "tty", "open_stdin", "stdin_once"):
            if not isinstance(getattr(self, field), bool):
                raise errors.InvalidArgument("{} must be a boolean".format(field))
        from ..linux import seccomp
        self.seccomp = seccomp.check_option(self.seccomp)
        check_network(self.network)
        return self

    def to_dict(self):
        """A JSON-ready copy (for config.json)."""
        return self.as_dict()

    @classmethod
    def from_dict(cls, data):
        """Build a spec from a dict, ignoring unknown keys (forward compatibility of config.json)."""
        names = set(cls.field_names())
        return cls(**{k: v for k, v in data.items() if k in names})


def check_network(mode):
    """A network mode's syntax (whether a named network exists is checked where networks are known)."""
    if not isinstance(mode, str) or not mode:
        raise errors.InvalidArgument("network mode must be a non-empty string")
    if mode in NETWORK_MODES:
        return mode
    if mode.startswith("container:"):
        if not mode[len("container:"):]:
            raise errors.InvalidArgument("invalid network mode {!r}: container: needs a container name or ID".format(
                mode))
        return mode
    if not NETWORK_NAME_RE.match(mode):
        raise errors.InvalidArgument("invalid network mode {!r}: want bridge, host, none, container:<name|id> or "
                                     "a network's name".format(mode))
    return mode


def check_name(name):
    """Docker's container-name grammar; returns the name without a leading "/" (None stays None)."""
    if name is None:
        return None
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise errors.InvalidArgument(
            'Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'.format(name))
    return name.lstrip("/")


def check_user_fields(env=(), workdir=None, hostname=None):
    """Check what a user sets on ``run`` (env, workdir, hostname); ``run`` calls this before pulling anything."""
    _check_str_list("env", env)
    for entry in env:
        key, sep, _ = entry.partition("=")
        if not sep or not ENV_KEY_RE.match(key):
            raise errors.InvalidArgument("invalid environment entry {!r}: want KEY=VALUE".format(entry))
    if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/") or "\x00" in workdir):
        raise errors.InvalidArgument(
            "the working directory '{}' is invalid, it needs to be an absolute path".format(workdir))
    if hostname is not None and (not isinstance(hostname, str) or not HOSTNAME_RE.match(hostname)):
        raise errors.InvalidArgument("invalid hostname {!r}".format(hostname))


def _check_str_list(field, value):
    if not isinstance(value, list) or not all(isinstance(v, str) and "\x00" not in v for v in value):
        raise errors.InvalidArgument("{} must be a list of strings without NUL bytes".format(field))


def signal_number(name):
    """Parse a Docker stop signal ("SIGTERM", "TERM", "15", "SIGRTMIN+3") into a signal number."""
    text = str(name).strip().upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
    else:
        if not text.startswith("SIG"):
            text = "SIG" + text
        for base in ("SIGRTMIN", "SIGRTMAX"):
            if text.startswith(base + "+") or text.startswith(base + "-"):
                try:
                    num = getattr(signal, base) + int(text[len(base):])
                except ValueError:
                    break
                if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                    return num
                break
        sig = getattr(signal, text, None)
        if isinstance(sig, signal.Signals) and text.startswith("SIG") and not text.startswith("SIG_"):
            return int(sig)
    raise errors.InvalidArgument("Invalid signal: {}".format(name))


def check_stop_timeout(value, flag="--stop-timeout"):
    """None or a whole number of seconds >= 0; InvalidArgument naming the flag otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise errors.InvalidArgument('invalid argument "{}" for "{}" flag: want seconds >= 0'.format(value, flag))
    return value


def check_labels(labels, field="labels"):
    """A {name: value} dict of strings with non-empty names (docker's -l/--label-file after parsing)."""
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and "\x00" not in k + v for k, v in labels.items()):
        raise errors.InvalidArgument("{} must map non-empty strings to strings".format(field))
    return dict(labels)


def isolation_flags(**flags):
    """The isolation flags (keywords: ISOLATION_ARGS) of ``run``/``create``, validated, as ContainerSpec keywords.

    Missing or None flags take Docker's defaults; a wrong value is InvalidArgument naming the input,
    raised before anything is pulled or created.
    """
    unknown = set(flags) - set(ISOLATION_ARGS)
    if unknown:
        raise TypeError("unknown isolation flags: {}".format(", ".join(sorted(unknown))))
    out = {}
    for key, default in ISOLATION_ARGS.items():
        value = flags.get(key)
        out[key] = list(default) if value is None and isinstance(default, list) else (
            default if value is None else value)
    probe = ContainerSpec(**out).check_isolation()
    if probe.seccomp not in (None, "builtin", "unconfined") and not probe.privileged:
        from ..linux import seccomp
        # a profile that cannot become a program (too long for the kernel) is bad input now, not a failed start
        seccomp.compile_profile(seccomp.parse(probe.seccomp), caps.tweak(probe.cap_add, probe.cap_drop))
    return {key: getattr(probe, key) for key in ISOLATION_ARGS}


#: docker's resource flags as ``run``/``create``/``update`` op args (cgroups.limits.parse keywords).
LIMIT_ARGS = ("memory", "memory_swap", "cpus", "cpu_shares", "pids_limit", "memory_reservation", "cpuset_cpus",
              "cpuset_mems", "blkio_weight", "blkio_weight_device", "device_read_bps", "device_write_bps",
              "device_read_iops", "device_write_iops")


def check_limits(data):
    """A stored limits dict, validated (InvalidArgument on unknown keys or non-integers); returns a copy."""
    from .cgroups.limits import Limits

    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.InvalidArgument("limits must be an object")
    return Limits.from_dict(data).to_dict()


def limit_flags(update=False, oom_kill_disable=None, **flags):
    """docker's resource flags (keywords: LIMIT_ARGS) as a validated ``cgroups.limits.Limits``.

    Values are strings as typed (``"32m"``, ``"0.5"``), numbers or None; a bad one is InvalidArgument naming the
    flag, raised before anything is pulled, created or changed. ``run``/``create`` get Docker's create-time
    defaults (swap = 2 x memory); ``update`` leaves them to ``Limits.updated``. The block devices named by
    --device-read-bps & co. must exist on this host (whole disks).
    """
    from .cgroups import limits

    unknown = set(flags) - set(LIMIT_ARGS)
    if unknown:
        raise TypeError("unknown limit flags: {}".format(", ".join(sorted(unknown))))
    for key, value in flags.items():
        if key in limits.BLKIO_LISTS:
            continue  # lists of strings: hostopts.blkio_from_flags checks them
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            raise errors.InvalidArgument('invalid argument {!r} for "--{}" flag'.format(
                value, key.replace("_", "-")))
    parsed = limits.parse(update=update, oom_kill_disable=oom_kill_disable,
                          **{key: flags.get(key) for key in LIMIT_ARGS})
    limits.check_block_devices(parsed)
    return parsed if update else parsed.with_defaults()


def container_env(spec, hostname, home="/root"):
    """The environment the container process gets: the spec's entries plus Docker's PATH/HOSTNAME/HOME defaults.

    ``home`` is the resolved user's passwd home (runc sets HOME from it only when the env has none).
    """
    env = {}
    for entry in spec.env:
        key, _, value = entry.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    env.setdefault("HOME", home)
    return env
