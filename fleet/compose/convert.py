"""One rendered, validated service -> its ``create`` op args, canonical spec JSON and config hash (a ServiceSpec).

Where a compose key is a docker flag's value (environment/env_file, labels, user, caps, limits, restart, logging,
published ports ...) it goes through ``containeropts.parse``, the one parse of run/create's flags, so a compose
file and ``fleet run`` mean the same thing and are checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from agent_payload import containeropts, errors
from fleet.compose import model, values
from fleet.compose.errors import ComposeError
from fleet.compose.plan import (DEFAULT_STOP_GRACE, FAILURE_ACTIONS, ORDERS, ROLLBACK_FAILURE_ACTIONS,
                                UPDATE_DEFAULTS, ServiceSpec, UpdateConfig)
from fleet.compose.source import LineDict, key_text, locate

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
RESERVED_LABEL_PREFIXES = ("com.docker.compose.", "fleet.deploy.")
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY", re.I)
_MIN_HEALTH_NS = 10 ** 6  # docker: intervals and timeouts, when set, are at least 1ms


class Where:
    """The place being converted (file, service, host, the rendered service tree) for error messages."""

    def __init__(self, file: str, service: str | None, host: str | None, tree: Any) -> None:
        self.file, self.service, self.host, self.tree = file, service, host, tree

    def error(self, path: tuple, message: str) -> ComposeError:
        return ComposeError(self.file, message, service=self.service, key=key_text(path) or None,
                            line=locate(self.tree, path), host=self.host)


def validate(cls: type, data: Any, where: Where, path: tuple = (), skip: Any = None) -> Any:
    """``cls.model_validate(data)``; the first error as a ComposeError naming the key and its line.

    ``skip(value)``, when given, drops errors whose offending value it accepts (the raw pass skips values that are
    still templates) -- an unknown key is never skipped.
    """
    from pydantic import ValidationError

    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        for error in sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden"):  # unknown keys first
            steps, node = [], data
            for step in error["loc"]:  # keep the steps that index the data (not pydantic's union/validator tags)
                if isinstance(node, dict) and step in node or (isinstance(node, list) and isinstance(step, int)
                                                               and 0 <= step < len(node)):
                    steps.append(step)
                    node = node[step]
            kind = error["type"]
            if kind != "extra_forbidden" and skip is not None and skip(node):
                continue
            full = path + tuple(steps)
            if kind == "extra_forbidden":
                key = steps[-1] if steps else "?"
                known = (model.SPEC_SERVICE_KEYS if cls is model.Service and len(steps) == 1 else
                         model.SPEC_TOP_KEYS if cls is model.ComposeFile and len(steps) == 1 else ())
                message = ("key {!r} is not supported by fleet".format(key) if key in known
                           else "unknown key {!r}".format(key))
                raise where.error(full, message) from None
            if kind == "missing":
                missing = error["loc"][-1]
                raise where.error(full, "missing required key {!r}".format(missing)) from None
            message = error["msg"].replace("Value error, ", "")
            if kind not in ("value_error", "assertion_error"):
                message = "{} (got {!r})".format(message, node)
            raise where.error(full, message) from None
        return None


def _flag_args(where: Where, path: tuple, flags: dict, read_bytes: Any) -> dict:
    """containeropts.parse of just these run/create flags; its error names the compose key."""
    try:
        return containeropts.parse("create", flags, read_bytes, os.environ.get)
    except errors.InvalidArgument as exc:
        raise where.error(path, exc.message) from None


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _pairs(value: Any) -> list:
    """A list_or_dict (environment, labels) as docker's KEY=VALUE / KEY strings; a null mapping value is bare KEY."""
    if isinstance(value, dict):
        return [key if item is None else "{}={}".format(key, item) for key, item in value.items()]
    return list(value or [])


def _try(where: Where, path: tuple, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except ValueError as exc:
        raise where.error(path, str(exc)) from None


def rollout(where: Where, config: Any, path: tuple, rollback: bool) -> UpdateConfig:
    """deploy.update_config / rollback_config with swarm's defaults for what is not given."""
    out = dict(UPDATE_DEFAULTS)
    if config is None:
        return UpdateConfig(**out)
    if config.parallelism is not None:
        if config.parallelism < 0:
            raise where.error(path + ("parallelism",), "must be >= 0 (0: all at once)")
        out["parallelism"] = config.parallelism
    for key in ("delay", "monitor"):
        if getattr(config, key) is not None:
            out[key] = _try(where, path + (key,), values.seconds, getattr(config, key))
    actions = ROLLBACK_FAILURE_ACTIONS if rollback else FAILURE_ACTIONS
    if config.failure_action is not None:
        if config.failure_action not in actions:
            raise where.error(path + ("failure_action",), "invalid failure_action {!r}: want {}".format(
                config.failure_action, " or ".join(actions)))
        out["failure_action"] = config.failure_action
    if config.max_failure_ratio is not None:
        if not 0 <= config.max_failure_ratio <= 1:
            raise where.error(path + ("max_failure_ratio",), "must be between 0 and 1")
        out["max_failure_ratio"] = config.max_failure_ratio
    if config.order is not None:
        if config.order not in ORDERS:
            raise where.error(path + ("order",), "invalid order {!r}: want stop-first or start-first".format(
                config.order))
        out["order"] = config.order
    return UpdateConfig(**out)


def healthcheck(where: Where, hc: Any) -> tuple:
    """compose's healthcheck -> (docker's Healthcheck object, or None; whether it checks anything)."""
    if hc is None:
        return None, False
    path = ("healthcheck",)
    if hc.disable:
        if hc.test is not None and hc.test != ["NONE"]:
            raise where.error(path + ("disable",), "disable: true conflicts with test")
        return {"Test": ["NONE"]}, False
    test: list = []
    if isinstance(hc.test, str):
        test = ["CMD-SHELL", hc.test]
    elif hc.test is not None:
        test = list(hc.test)
        if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL"):
            raise where.error(path + ("test",), "a test list starts with NONE, CMD or CMD-SHELL, got {!r}".format(
                test[0] if test else "[]"))
        if test[0] != "NONE" and len(test) < 2:
            raise where.error(path + ("test",), "{} needs a command".format(test[0]))
    if test[:1] == ["NONE"]:
        return {"Test": ["NONE"]}, False
    if not test and all(getattr(hc, key) is None for key in ("interval", "timeout", "start_period", "retries")):
        return None, False  # "healthcheck:" with nothing in it
    out = {"Test": test, "Interval": 0, "Timeout": 0, "StartPeriod": 0, "Retries": 0}
    for key, name in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        raw = getattr(hc, key)
        if raw is not None:
            ns = _try(where, path + (key,), values.duration_ns, raw)
            if 0 < ns < _MIN_HEALTH_NS:
                raise where.error(path + (key,), "must be at least 1ms")
            out[name] = ns
    if hc.retries is not None:
        if hc.retries < 0:
            raise where.error(path + ("retries",), "cannot be negative")
        out["Retries"] = hc.retries
    return out, bool(test)  # no test: the image's, which only the host knows (docker merges it there)


def spec_and_hash(image: str, create: dict, baseline: dict, extra_networks: list) -> tuple:
    """The canonical spec JSON (image; the create args but the image, with the user's labels only: ``create`` is
    called before fleet adds its own; extra networks; keys at their default omitted) and its sha256."""
    body = {key: value for key, value in create.items()
            if key != "image" and value != baseline.get(key) and value not in (None, [], {})}
    spec: dict = {"image": image, "create": body}
    if extra_networks:
        spec["networks"] = [[name, aliases] for name, aliases in extra_networks]
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


def env_dedup(entries: list) -> list:
    """docker env entries with the last value of each name winning (compose's environment is a mapping: it
    overrides env_file), sorted by name so that reordering the file changes nothing."""
    out: dict = {}
    for entry in entries:
        out[entry.split("=", 1)[0]] = entry
    return [out[key] for key in sorted(out)]


class Converter:
    """Converts one rendered, validated service for one host."""

    def __init__(self, where: Where, svc: model.Service, project: str, base_dir: Path, networks: dict,
                 volumes: dict, baseline: dict) -> None:
        self.where, self.svc, self.project, self.base_dir = where, svc, project, base_dir
        self.networks, self.volumes, self.baseline = networks, volumes, baseline
        self.flags: dict = {}
        self.used_networks: list = []
        self.used_volumes: set = set()
        self.named_volumes: list = []

    def arg(self, path: tuple, flags: dict) -> dict:
        """Parse ``flags`` (the ones this compose key gives) and keep what they set."""
        return _flag_args(self.where, path, flags, self._read)

    def _read(self, path: str) -> bytes:
        return _read_bytes(str(self.base_dir / path))

    def run(self) -> ServiceSpec:
        from fleet.compose import mounts, netplan

        svc, where, name = self.svc, self.where, self.where.service
        args = dict(self.baseline)
        image = svc.image
        self._image(image)
        args.update(self._env())
        if svc.labels is not None:
            labels = self.arg(("labels",), {"label": _pairs(svc.labels)})["labels"]
            for key in labels:
                if key.startswith(RESERVED_LABEL_PREFIXES):
                    raise where.error(("labels",), "label {!r}: the com.docker.compose.* and fleet.deploy.* labels "
                                      "are set by fleet".format(key))
            args["labels"] = labels
        simple = {"user": ("user", svc.user), "working_dir": ("workdir", svc.working_dir),
                  "hostname": ("hostname", svc.hostname), "cap_add": ("cap_add", svc.cap_add),
                  "cap_drop": ("cap_drop", svc.cap_drop), "stop_signal": ("stop_signal", svc.stop_signal),
                  "init": ("init", svc.init), "read_only": ("read_only", svc.read_only)}
        for key, (flag, value) in simple.items():
            if value is not None:
                parsed = self.arg((key,), {flag: value})
                args[flag] = parsed[flag]
        if svc.restart is not None:
            restart = _try(where, ("restart",), values.check_restart, svc.restart)
            args["restart"] = None if restart == "no" else restart
        grace = DEFAULT_STOP_GRACE
        if svc.stop_grace_period is not None:
            grace = _try(where, ("stop_grace_period",), values.seconds, svc.stop_grace_period)
            args["stop_timeout"] = int(grace)
        args.update(self._limits())
        args.update(self._blkio())
        if svc.logging is not None:
            opts = ["{}={}".format(k, v) for k, v in (svc.logging.options or {}).items() if v is not None]
            parsed = self.arg(("logging",), {"log_driver": svc.logging.driver, "log_opt": opts})
            args["log_driver"], args["log_opts"] = parsed["log_driver"], parsed["log_opts"]
        if svc.command is not None:
            args["command"] = svc.command
        if svc.entrypoint is not None:
            args["entrypoint"] = svc.entrypoint
        hc, has_hc = healthcheck(where, svc.healthcheck)
        if hc is not None:
            args["healthcheck"] = hc
        publish, bindings = self._ports()
        args["publish"] = publish
        if svc.expose:
            args["expose"] = sorted({e for i, item in enumerate(svc.expose)
                                     for e in _try(where, ("expose", i), values.expose_entries, item)},
                                    key=lambda e: (int(e.split("/")[0]), e))
        args["volumes"], args["mounts"] = mounts.convert(self)
        first, extra = netplan.service_networks(self)
        args["network"], args["network_aliases"], args["ip"] = first
        probe = None
        if svc.x_fleet is not None and svc.x_fleet.probe is not None:
            probe = svc.x_fleet.probe
            _scheme, port = _try(where, ("x-fleet", "probe"), values.check_probe, probe)
            if not any(b["host_port"] == port == b["host_port_end"] and b["proto"] == "tcp" for b in bindings):
                raise where.error(("x-fleet", "probe"), "probe port {} is not a host port the service publishes "
                                  "(ports: HOST:CONTAINER)".format(port))
        args["name"] = "{}-{}-1".format(self.project, name)
        spec_text, config_hash = spec_and_hash(image, args, self.baseline, extra)
        args["image"] = image
        args["labels"] = dict(args.get("labels") or {}, **{
            "com.docker.compose.project": self.project, "com.docker.compose.service": name,
            "com.docker.compose.config-hash": config_hash, "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False", "fleet.deploy.spec": spec_text})
        deploy = svc.deploy
        return ServiceSpec(
            service=name, image=image, create_args=args, extra_networks=extra, config_hash=config_hash,
            spec_json=spec_text, has_healthcheck=has_hc, probe=probe,
            update=rollout(where, deploy and deploy.update_config, ("deploy", "update_config"), False),
            rollback=rollout(where, deploy and deploy.rollback_config, ("deploy", "rollback_config"), True),
            depends_on=dependencies(where, svc.depends_on), stop_grace_period=grace,
            secret_env_names=sorted({e.split("=", 1)[0] for e in args["env"]
                                     if _SECRET_NAME.search(e.split("=", 1)[0])}),
            bindings=bindings, named_volumes=list(self.named_volumes))

    def _image(self, image: str) -> None:
        """The reference parser fleet's image commands use (fleet/commands/images.py validate_reference)."""
        from agent_payload.image import reference

        try:
            reference.parse(image)
        except errors.InvalidArgument as exc:
            raise self.where.error(("image",), exc.message) from None

    def _env(self) -> dict:
        svc, files = self.svc, []
        for index, entry in enumerate(svc.env_file or []):
            item = validate(model.EnvFile, entry, self.where, ("env_file", index))
            path = self.base_dir / os.path.expanduser(item.path)
            if not path.is_file() and item.required is False:
                continue
            files.append(str(path))
        env = self.arg(("env_file",) if files else ("environment",),
                       {"env_file": files, "env": _pairs(svc.environment)})["env"]
        return {"env": env_dedup(env)}

    def _limits(self) -> dict:
        svc, where, out = self.svc, self.where, {}
        limits = svc.deploy.resources.limits if svc.deploy and svc.deploy.resources else None
        pairs = (("memory", "mem_limit", svc.mem_limit, limits and limits.memory, values.check_memory),
                 ("cpus", "cpus", svc.cpus, limits and limits.cpus, values.check_cpus),
                 ("pids_limit", "pids_limit", svc.pids_limit, limits and limits.pids, None))
        for flag, key, direct, deployed, check in pairs:
            deploy_key = {"memory": "memory", "cpus": "cpus", "pids_limit": "pids"}[flag]
            path = (key,) if direct is not None else ("deploy", "resources", "limits", deploy_key)
            if direct is not None and deployed is not None and str(direct) != str(deployed):
                raise where.error(path, "{} and deploy.resources.limits.{} are set to different values ({} and {})"
                                  .format(key, deploy_key, direct, deployed))
            value = direct if direct is not None else deployed
            if value is None:
                continue
            value = str(value)
            if check:
                value = _try(where, path, check, value)
            out[flag] = self.arg(path, {flag: value})[flag]
        return out

    def _blkio(self) -> dict:
        """blkio_config as run's block-IO flags (PATH:VALUE strings), checked by the same parse."""
        cfg = self.svc.blkio_config
        if cfg is None:
            return {}
        flags: dict = {} if cfg.weight is None else {"blkio_weight": str(cfg.weight)}
        if cfg.weight_device:
            flags["blkio_weight_device"] = ["{}:{}".format(d.path, d.weight) for d in cfg.weight_device]
        for key in ("device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops"):
            if getattr(cfg, key):
                flags[key] = ["{}:{}".format(d.path, d.rate) for d in getattr(cfg, key)]
        parsed = self.arg(("blkio_config",), flags)
        return {key: parsed[key] for key in flags}

    def _ports(self) -> tuple:
        specs, bindings = [], []
        for index, item in enumerate(self.svc.ports or []):
            path = ("ports", index)
            if isinstance(item, dict):
                port = validate(model.PortLong, item, self.where, path)
                spec = _try(self.where, path, values.long_port_spec, port)
            else:
                spec = str(item)
            bindings.extend(_try(self.where, path, values.parse_publish, spec))
            specs.append(spec)
        return self.arg(("ports",), {"publish": specs})["publish"], bindings


def dependencies(where: Where, depends_on: Any) -> dict:
    """depends_on (a list of services, or a mapping with condition:) -> {service: condition}."""
    if depends_on is None:
        return {}
    if isinstance(depends_on, list):
        return {name: "service_started" for name in depends_on}
    out = {}
    for name, body in depends_on.items():
        dep = validate(model.Dependency, body, where, ("depends_on", name))
        if dep.condition not in CONDITIONS:
            raise where.error(("depends_on", name, "condition"), "invalid condition {!r}: want {}".format(
                dep.condition, ", ".join(CONDITIONS)))
        out[str(name)] = dep.condition
    return out


def baseline_args() -> dict:
    """The create args of no flag at all (what "default" means when a key is left out of the hash)."""
    return containeropts.parse("create", {}, _read_bytes, os.environ.get)


__all__ = ["Converter", "LineDict", "Where", "baseline_args", "validate"]
