"""What load_project returns: the project, its networks and volumes, and each host's services as ServiceSpecs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from fleet.compose.errors import ComposeError

# Swarm's defaults (docker service create --update-*; the Compose deploy spec documents failure_action and order,
# leaves parallelism to the platform and says monitor 0s, which as a gate would check nothing: swarmkit's 5s is
# what a compose file deployed with docker stack deploy gets).
UPDATE_DEFAULTS = {"parallelism": 1, "delay": 0.0, "failure_action": "pause", "monitor": 5.0,
                   "max_failure_ratio": 0.0, "order": "stop-first"}
FAILURE_ACTIONS = ("pause", "continue", "rollback")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")
ORDERS = ("stop-first", "start-first")
DEFAULT_STOP_GRACE = 10.0  # docker stop's default


@dataclass(frozen=True)
class UpdateConfig:
    """deploy.update_config / rollback_config; parallelism 0 means every host at once (compose's meaning)."""

    parallelism: int = 1
    delay: float = 0.0
    failure_action: str = "pause"
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: str = "stop-first"


@dataclass(frozen=True)
class NetworkDef:
    """A network of the project as created on each host (``external``: must exist, never created or removed)."""

    name_on_host: str
    driver: str = "bridge"
    internal: bool = False
    labels: dict = field(default_factory=dict)
    external: bool = False


@dataclass(frozen=True)
class VolumeDef:
    """A named volume of the project as created on each host."""

    name_on_host: str
    driver: str = "local"
    labels: dict = field(default_factory=dict)
    external: bool = False


@dataclass(frozen=True)
class ServiceSpec:
    """One service on one host: the ``create`` request, its hash and how to roll it out."""

    service: str
    image: str
    create_args: dict
    extra_networks: list
    config_hash: str
    spec_json: str
    has_healthcheck: bool
    probe: Optional[str]
    update: UpdateConfig
    rollback: UpdateConfig
    depends_on: dict
    stop_grace_period: float
    secret_env_names: list
    bindings: list = field(default_factory=list)  # the published ports' bindings (values.parse_publish's shape)
    named_volumes: list = field(default_factory=list)  # names on the host of the project volumes it mounts
                                                       # (in -v or --mount values)


@dataclass
class ProjectPlan:
    """A loaded compose project: ``services`` in dependency order, networks and volumes by their compose name."""

    name: str
    file: Path
    services: list
    networks: dict
    volumes: dict
    hosts: dict = field(default_factory=dict)  # host name -> {service: ServiceSpec}, in ``services`` order

    def select_services(self, names: list) -> list:
        """The services named (e.g. ``fleet deploy ... web worker``), in dependency order; all when none is named.
        ComposeError for a name the file does not define."""
        unknown = [name for name in names if name not in self.services]
        if unknown:
            raise ComposeError(self.file, "no such service: {} (services: {})".format(
                ", ".join(unknown), ", ".join(self.services)))
        return [name for name in self.services if not names or name in names]

    def for_host(self, host_name: str) -> dict:
        """The services this host runs ({service: ServiceSpec}, dependency order); ComposeError for a host that was
        not given to load_project."""
        if host_name not in self.hosts:
            raise ComposeError(self.file, "host {} was not among the hosts the project was loaded for".format(
                host_name))
        return dict(self.hosts[host_name])
