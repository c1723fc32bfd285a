"""The compose file's keys fleet supports, as pydantic models: types checked, unknown keys refused.

Each model forbids extra keys except ``x-*`` extensions, which the Compose spec allows (and fleet ignores) on every
object; ``x-fleet`` on a service is fleet's own. Values keep compose's accepted spellings (a list or a mapping for
``environment``, a string or a list for ``command``); turning them into the ``create`` op's args is convert.py's.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# Service keys of the Compose spec fleet does not support: "not supported by fleet" rather than "unknown".
SPEC_SERVICE_KEYS = frozenset(
    "annotations attach build cgroup cgroup_parent configs container_name cpu_count cpu_percent "
    "cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpuset credential_spec develop "
    "device_cgroup_rules devices dns dns_opt dns_search domainname extends external_links extra_hosts gpus "
    "group_add ipc isolation label_file links mac_address mem_reservation mem_swappiness memswap_limit models "
    "network_mode oom_kill_disable oom_score_adj pid platform post_start pre_stop privileged profiles provider "
    "pull_policy pull_refresh_after runtime scale secrets security_opt shm_size stdin_open storage_opt sysctls "
    "tmpfs tty ulimits use_api_socket userns_mode uts volumes_from".split())
SPEC_TOP_KEYS = frozenset({"include", "models", "secrets", "configs"})


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__) if not isinstance(
        value, (list, dict)) else ("a list" if isinstance(value, list) else "a mapping")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string, got {}".format(_kind(value)))
    return value


def _string_list(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings, got {}".format(_kind(value)))
    return list(value)


def _command(value: Any) -> Optional[list]:
    """compose's command/entrypoint: a list as is; a string split as a shell would (no shell runs it)."""
    if value is None or isinstance(value, list):
        return None if value is None else _string_list(value)
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError("cannot split {!r}: {}".format(value, exc)) from None
    raise ValueError("must be a string or a list of strings, got {}".format(_kind(value)))


def _scalar_text(value: Any) -> Optional[str]:
    """A mapping value of environment/labels/options: strings, numbers and booleans as text, null kept."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError("values must be strings, numbers or booleans, got {}".format(_kind(value)))


def _list_or_dict(value: Any) -> Union[list, dict]:
    if isinstance(value, list):
        return _string_list(value)
    if isinstance(value, dict):
        return {str(key): _scalar_text(item) for key, item in value.items()}
    raise ValueError("must be a list of KEY=VALUE strings or a mapping, got {}".format(_kind(value)))


def _str_or_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a string or a number, got {}".format(_kind(value)))
    return str(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError("must be an integer, got {!r}".format(value))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false, got {!r}".format(value))


def _env_files(value: Any) -> list:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("must be a path or a list of paths, got {}".format(_kind(value)))
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"path": item, "required": True})
        elif isinstance(item, dict):
            out.append(item)
        else:
            raise ValueError("entries must be paths or mappings with path:, got {}".format(_kind(item)))
    return out


Str = Annotated[str, BeforeValidator(_string)]
StrList = Annotated[list, BeforeValidator(_string_list)]
Command = Annotated[Optional[list], BeforeValidator(_command)]
ListOrDict = Annotated[Union[list, dict], BeforeValidator(_list_or_dict)]
StrOrNumber = Annotated[str, BeforeValidator(_str_or_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
def _names(value: Any) -> Union[list, dict]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return _string_list(value)
    raise ValueError("must be a list of names or a mapping, got {}".format(_kind(value)))


def _test(value: Any) -> Union[str, list]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _string_list(value)
    raise ValueError("must be a string or a list of strings, got {}".format(_kind(value)))


def _external(value: Any) -> Union[bool, dict]:
    if isinstance(value, dict):
        unknown = [k for k in value if k != "name" and not str(k).startswith("x-")]
        if unknown:
            raise ValueError("unknown key {!r} (external: takes name:)".format(unknown[0]))
        if "name" in value:
            _string(value["name"])
        return value
    return _boolean(value)


Names = Annotated[Union[list, dict], BeforeValidator(_names)]
Scalar = Annotated[Union[str, int], BeforeValidator(lambda v: v if isinstance(v, str) else _integer(v))]


class Strict(BaseModel):
    """A compose object: unknown keys refused, ``x-*`` extension keys dropped (the spec allows them anywhere)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _extensions(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError("must be a mapping, got {}".format(_kind(data)))
        aliases = {field.alias for field in cls.model_fields.values() if field.alias}
        return {key: value for key, value in data.items()
                if not (isinstance(key, str) and key.startswith("x-") and key not in aliases)}


class PortLong(Strict):
    target: Scalar
    published: Optional[Scalar] = None
    host_ip: Optional[Str] = None
    protocol: Optional[Str] = None
    mode: Optional[Str] = None
    name: Optional[Str] = None
    app_protocol: Optional[Str] = None


class BindOptions(Strict):
    create_host_path: Optional[Bool] = None


class VolumeOptions(Strict):
    nocopy: Optional[Bool] = None


class TmpfsOptions(Strict):
    size: Optional[StrOrNumber] = None
    mode: Optional[Scalar] = None


class VolumeLong(Strict):
    type: Str
    source: Optional[Str] = None
    target: Str
    read_only: Optional[Bool] = None
    bind: Optional[BindOptions] = None
    volume: Optional[VolumeOptions] = None
    tmpfs: Optional[TmpfsOptions] = None


class ServiceNetwork(Strict):
    aliases: Optional[StrList] = None
    ipv4_address: Optional[Str] = None
    priority: Optional[Int] = None


class Healthcheck(Strict):
    test: Optional[Annotated[Union[str, list], BeforeValidator(_test)]] = None
    interval: Optional[Str] = None
    timeout: Optional[Str] = None
    retries: Optional[Int] = None
    start_period: Optional[Str] = None
    disable: Optional[Bool] = None


class Logging(Strict):
    driver: Optional[Str] = None
    options: Optional[Annotated[dict, BeforeValidator(_list_or_dict)]] = None


class BlkioWeight(Strict):
    path: Str
    weight: Int


class BlkioRate(Strict):
    path: Str
    rate: StrOrNumber


class BlkioConfig(Strict):
    """blkio_config: the block-IO flags (--blkio-weight, --blkio-weight-device, --device-{read,write}-{bps,iops})."""

    weight: Optional[Int] = None
    weight_device: Optional[list[BlkioWeight]] = None
    device_read_bps: Optional[list[BlkioRate]] = None
    device_write_bps: Optional[list[BlkioRate]] = None
    device_read_iops: Optional[list[BlkioRate]] = None
    device_write_iops: Optional[list[BlkioRate]] = None


class Dependency(Strict):
    condition: Str
    required: Optional[Bool] = None


class RolloutConfig(Strict):
    parallelism: Optional[Int] = None
    delay: Optional[Str] = None
    failure_action: Optional[Str] = None
    monitor: Optional[Str] = None
    max_failure_ratio: Optional[Annotated[float, BeforeValidator(lambda v: _ratio(v))]] = None
    order: Optional[Str] = None


def _ratio(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number, got a boolean")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number, got {!r}".format(value)) from None


class Limits(Strict):
    cpus: Optional[StrOrNumber] = None
    memory: Optional[StrOrNumber] = None
    pids: Optional[Int] = None


class Resources(Strict):
    limits: Optional[Limits] = None


class Deploy(Strict):
    update_config: Optional[RolloutConfig] = None
    rollback_config: Optional[RolloutConfig] = None
    resources: Optional[Resources] = None


class XFleet(Strict):
    hosts: Optional[Str] = None
    probe: Optional[Str] = None


class EnvFile(Strict):
    path: Str
    required: Optional[Bool] = None


class Service(Strict):
    image: Str
    command: Command = None
    entrypoint: Command = None
    environment: Optional[ListOrDict] = None
    env_file: Optional[Annotated[list, BeforeValidator(_env_files)]] = None
    ports: Optional[Annotated[list, BeforeValidator(lambda v: _items(v, (str, int, dict)))]] = None
    expose: Optional[Annotated[list, BeforeValidator(lambda v: _items(v, (str, int)))]] = None
    volumes: Optional[Annotated[list, BeforeValidator(lambda v: _items(v, (str, dict)))]] = None
    networks: Optional[Names] = None
    restart: Optional[Str] = None
    healthcheck: Optional[Healthcheck] = None
    labels: Optional[ListOrDict] = None
    user: Optional[Str] = None
    working_dir: Optional[Str] = None
    hostname: Optional[Str] = None
    cap_add: Optional[StrList] = None
    cap_drop: Optional[StrList] = None
    read_only: Optional[Bool] = None
    init: Optional[Bool] = None
    stop_signal: Optional[Str] = None
    stop_grace_period: Optional[Str] = None
    mem_limit: Optional[StrOrNumber] = None
    cpus: Optional[StrOrNumber] = None
    pids_limit: Optional[Int] = None
    blkio_config: Optional[BlkioConfig] = None
    logging: Optional[Logging] = None
    depends_on: Optional[Names] = None
    deploy: Optional[Deploy] = None
    x_fleet: Optional[XFleet] = Field(default=None, alias="x-fleet")


def _items(value: Any, kinds: tuple) -> list:
    if not isinstance(value, list):
        raise ValueError("must be a list, got {}".format(_kind(value)))
    for item in value:
        if isinstance(item, bool) or not isinstance(item, kinds):
            raise ValueError("entries must be {}, got {}".format(
                " or ".join({str: "strings", int: "numbers", dict: "mappings"}[k] for k in kinds), _kind(item)))
    return list(value)


class TopNetwork(Strict):
    name: Optional[Str] = None
    driver: Optional[Str] = None
    internal: Optional[Bool] = None
    labels: Optional[ListOrDict] = None
    external: Optional[Annotated[Union[bool, dict], BeforeValidator(_external)]] = None


class TopVolume(Strict):
    name: Optional[Str] = None
    driver: Optional[Str] = None
    labels: Optional[ListOrDict] = None
    external: Optional[Annotated[Union[bool, dict], BeforeValidator(_external)]] = None


class ComposeFile(Strict):
    """The top level (``services`` validated one by one, per host, by Service)."""

    version: Optional[Any] = None  # obsolete in compose: accepted and ignored
    name: Optional[Str] = None
    services: dict
    networks: Optional[dict] = None
    volumes: Optional[dict] = None
