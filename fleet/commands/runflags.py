"""run/create/update's container flags on the controller, and ``RunSpec``, the typed request they parse into.

The flags are declared once, as plain data, in ``agent_payload/containeropts.py`` (stdlib: the payload's hand
CLI builds its argparse parser from the same table).  Here:

- fleet/cli/base.py's ``container_flags(command)`` decorator appends one typer option per row of the table to a
  command's signature, so ``fleet run``, ``fleet create`` and ``fleet update`` list them with their help texts
  without a line of typer per flag; the command receives them as ``**flags`` and passes them here;
- ``parse(command, image, cmd, flags)`` is the one parse: ``containeropts.parse`` (files read here, on the
  controller, as the docker CLI reads them on the client; everything checkable without a host is checked) into a
  ``RunSpec`` whose sections name what each flag is about.  Bad input raises UsageError (exit 2) naming the file
  or flag, before any host is contacted.

``RunSpec.op_args()`` is the ``run``/``create`` request of protocol.py, unchanged on the wire.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import List, Optional

from agent_payload import containeropts, errors
from fleet.errors import UsageError


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def parse_flags(command: str, flags: dict) -> dict:
    """containeropts.parse with this machine's files and environment; InvalidArgument becomes UsageError."""
    given = {k: v for k, v in flags.items() if v is not None}  # typer's None for an empty repeatable flag
    try:
        return containeropts.parse(command, given, _read_bytes, os.environ.get)
    except errors.InvalidArgument as exc:
        raise UsageError(exc.message) from None


# ---- the typed request: docker's Config / HostConfig / NetworkingConfig split, as the wire's flat keys


@dataclass(frozen=True)
class Process:
    """What runs, as whom, named how (docker's Config)."""

    name: Optional[str]
    rm: bool
    env: List[str]
    entrypoint: Optional[List[str]]
    workdir: Optional[str]
    hostname: Optional[str]
    user: Optional[str]
    labels: dict
    stop_signal: Optional[str]
    stop_timeout: Optional[int]
    init: Optional[bool]


@dataclass(frozen=True)
class Stdio:
    """-i/-t (run's --detach-keys is RunSpec.detach_keys, next to detach)."""

    open_stdin: bool
    tty: bool


@dataclass(frozen=True)
class Security:
    """--cap-add/--cap-drop/--privileged/--read-only/--security-opt/--sysctl/--group-add."""

    cap_add: List[str]
    cap_drop: List[str]
    privileged: bool
    read_only: bool
    no_new_privileges: bool
    seccomp: Optional[str]
    sysctls: List[str]
    group_add: List[str]


@dataclass(frozen=True)
class Network:
    """--network, -p/-P, --network-alias, --ip, --expose, --add-host, --dns, --dns-search, --dns-option."""

    network: Optional[str]
    publish: List[str]
    publish_all: bool
    network_aliases: List[str]
    ip: Optional[str]
    mac_address: Optional[str]
    links: List[str]
    expose: List[str]
    extra_hosts: List[str]
    dns: List[str]
    dns_search: List[str]
    dns_options: List[str]


@dataclass(frozen=True)
class Resources:
    """cgroup limits (values as typed: the payload parses them against the host), block IO, --ulimit, --device."""

    memory: Optional[str]
    memory_swap: Optional[str]
    cpus: Optional[str]
    cpu_shares: Optional[str]
    pids_limit: Optional[str]
    memory_reservation: Optional[str]
    cpuset_cpus: Optional[str]
    cpuset_mems: Optional[str]
    oom_kill_disable: bool
    blkio_weight: Optional[str]
    blkio_weight_device: List[str]
    device_read_bps: List[str]
    device_write_bps: List[str]
    device_read_iops: List[str]
    device_write_iops: List[str]
    ulimits: List[str]
    devices: List[str]


@dataclass(frozen=True)
class Supervision:
    """What the shim does: --restart, --health-*, --log-driver/--log-opt."""

    restart: Optional[str]
    health_cmd: Optional[str]
    health_interval: Optional[str]
    health_timeout: Optional[str]
    health_retries: Optional[int]
    health_start_period: Optional[str]
    no_healthcheck: bool
    log_driver: Optional[str]
    log_opts: Optional[List[str]]


@dataclass(frozen=True)
class Mounts:
    """-v, --mount, --tmpfs, --shm-size and --volumes-from."""

    volumes: List[str]
    mounts: List[str]
    tmpfs: List[str]
    shm_size: Optional[str]
    volumes_from: List[str]


_SECTIONS = {"process": Process, "stdio": Stdio, "security": Security, "network": Network,
             "resources": Resources, "supervision": Supervision, "mounts": Mounts}


@dataclass(frozen=True)
class RunSpec:
    """One container request of ``run`` (``detach`` set) or ``create`` (``detach`` None), parsed once."""

    image: str
    command: List[str]
    process: Process
    stdio: Stdio
    security: Security
    network: Network
    resources: Resources
    supervision: Supervision
    mounts: Mounts
    detach: Optional[bool] = None
    detach_keys: Optional[str] = None
    pull: Optional[str] = None  # --pull always|missing|never
    platform: Optional[str] = None  # --platform os/arch
    cidfile: Optional[str] = None  # --cidfile: this machine's file, not sent (CidFile)

    @classmethod
    def from_args(cls, image: str, command: List[str], args: dict) -> "RunSpec":
        """Split containeropts.parse's flat op args into the sections (a key no section claims is a bug)."""
        left = dict(args)
        sections = {}
        for attr, section in _SECTIONS.items():
            sections[attr] = section(**{f.name: left.pop(f.name) for f in fields(section)})
        detach, detach_keys = left.pop("detach", None), left.pop("detach_keys", None)
        pull, platform, cidfile = left.pop("pull", None), left.pop("platform", None), left.pop("cidfile", None)
        if left:
            raise TypeError("op args no RunSpec section holds: {}".format(sorted(left)))
        return cls(image=image, command=list(command), detach=detach, detach_keys=detach_keys, pull=pull,
                   platform=platform, cidfile=cidfile, **sections)

    @property
    def op(self) -> str:
        return "create" if self.detach is None else "run"

    def op_args(self) -> dict:
        """The ``run``/``create`` request of protocol.py."""
        out = {"image": self.image, "command": list(self.command) or None, "pull": self.pull,
               "platform": self.platform}
        for attr in _SECTIONS:
            out.update(asdict(getattr(self, attr)))
        if self.detach is not None:
            out.update(detach=self.detach, detach_keys=self.detach_keys)
        return out


def parse(command: str, image: str, cmd: List[str], flags: dict) -> RunSpec:
    """``run``/``create``'s IMAGE, COMMAND and flags -> the RunSpec (UsageError on bad input, nothing sent)."""
    from fleet.commands.images import validate_reference

    validate_reference(image)
    return RunSpec.from_args(image, list(cmd or []), parse_flags(command, flags))


class CidFile:
    """docker's --cidfile on the controller: the file is made (empty, O_EXCL) before the container is asked for,
    gets the ID once it exists and goes away if it never does.  The docker CLI writes it on its client; fleet's
    client is this machine, so with several hosts (several IDs) the flag is refused rather than guessed at."""

    def __init__(self, path: Optional[str]):
        self.path, self.written = path, False

    @classmethod
    def claim(cls, path: Optional[str], hosts) -> "CidFile":
        """UsageError (nothing done) with several hosts or an existing file; else the file exists, empty."""
        if path is None:
            return cls(None)
        if len(hosts) != 1:
            raise UsageError("--cidfile needs exactly one host (the file is written on this machine); {} are "
                             "selected".format(len(hosts)))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise UsageError("container ID file found, make sure the other container isn't running or delete "
                             "{}".format(path)) from None
        except OSError as exc:
            raise UsageError("failed to create the container ID file: {}".format(exc)) from None
        os.close(fd)
        return cls(path)

    def write(self, cid: str) -> None:
        if self.path is not None and not self.written:
            with open(self.path, "w") as f:
                f.write(cid)
            self.written = True

    def on_event(self, host, event, data) -> None:
        """A run's "created" event (its ID, before the start): written at once, as docker does."""
        if event == "created" and data.get("id"):
            self.write(data["id"])

    def finish(self, results) -> None:
        """After the op: the ID of a created container, or (nothing created) the empty file removed."""
        if self.path is None:
            return
        if not self.written and results and results[0].ok and (results[0].data or {}).get("id"):
            self.write(results[0].data["id"])
        if not self.written:
            try:
                os.unlink(self.path)
            except OSError:
                pass
