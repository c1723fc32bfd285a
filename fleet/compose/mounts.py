"""A service's ``volumes`` (short and long syntax) -> run/create's ``-v`` and ``--mount`` values.

As compose: a short-syntax source starting with ``/``, ``.`` or ``~`` is a bind mount (a relative one resolved
against the compose file's directory, ``~`` against this user's home; a missing host path is created, as docker's
``-v`` does); any other source names a volume of the top-level ``volumes:``, created on each host as
``{project}_{name}`` (or its ``name:``); a bare container path is an anonymous volume. The long syntax's bind
mounts need their source to exist unless ``bind.create_host_path: true``.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from fleet.compose import model

_MODES = ("ro", "rw", "nocopy")


def _bind_source(conv: Any, source: str) -> str:
    path = os.path.expanduser(source)
    return os.path.normpath(os.path.join(str(conv.base_dir.resolve()), path))


def _is_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def _named(conv: Any, name: str, path: tuple) -> str:
    if name not in conv.volumes:
        raise conv.where.error(path, "service {} refers to undefined volume {}: declare it under the top-level "
                               "volumes:".format(conv.where.service, name))
    conv.used_volumes.add(name)
    if conv.volumes[name].name_on_host not in conv.named_volumes:
        conv.named_volumes.append(conv.volumes[name].name_on_host)
    return conv.volumes[name].name_on_host


def _target(conv: Any, target: str, path: tuple) -> str:
    if not target or not posixpath.isabs(target):
        raise conv.where.error(path, "the container path {!r} must be absolute".format(target))
    return target


def _short(conv: Any, spec: str, path: tuple) -> tuple:
    parts = spec.split(":")
    if len(parts) == 1:
        return "volumes", _target(conv, parts[0], path)
    if len(parts) > 3 or not parts[0]:
        raise conv.where.error(path, "invalid volume {!r}: want [SOURCE:]TARGET[:MODE]".format(spec))
    source, target = parts[0], _target(conv, parts[1], path)
    modes = parts[2].split(",") if len(parts) == 3 else []
    bad = [m for m in modes if m not in _MODES]
    if bad or ("ro" in modes and "rw" in modes):
        raise conv.where.error(path, "invalid volume mode {!r} in {!r}: fleet takes ro, rw and nocopy".format(
            ",".join(bad or modes), spec))
    read_only = "ro" in modes
    if _is_path(source):
        if "nocopy" in modes:
            raise conv.where.error(path, "nocopy applies to volumes, not to the bind mount {!r}".format(spec))
        return "volumes", "{}:{}{}".format(_bind_source(conv, source), target, ":ro" if read_only else "")
    name = _named(conv, source, path)
    if "nocopy" in modes:
        return "mounts", "type=volume,source={},target={}{},volume-nocopy".format(
            name, target, ",readonly" if read_only else "")
    return "volumes", "{}:{}{}".format(name, target, ":ro" if read_only else "")


def _long(conv: Any, item: dict, path: tuple) -> tuple:
    mount = conv_validate(conv, item, path)
    target = _target(conv, mount.target, path + ("target",))
    readonly = ",readonly" if mount.read_only else ""
    for kind in ("bind", "volume", "tmpfs"):
        if getattr(mount, kind) is not None and mount.type != kind:
            raise conv.where.error(path + (kind,), "{} options given for a mount of type {}".format(kind, mount.type))
    if mount.type == "bind":
        if not mount.source:
            raise conv.where.error(path, "a bind mount needs source:")
        source = _bind_source(conv, mount.source)
        if mount.bind is not None and mount.bind.create_host_path:
            return "volumes", "{}:{}{}".format(source, target, ":ro" if mount.read_only else "")
        return "mounts", "type=bind,source={},target={}{}".format(source, target, readonly)
    if mount.type == "volume":
        nocopy = ",volume-nocopy" if mount.volume is not None and mount.volume.nocopy else ""
        if not mount.source:
            return "mounts", "type=volume,target={}{}{}".format(target, readonly, nocopy)
        name = _named(conv, mount.source, path + ("source",))
        return "mounts", "type=volume,source={},target={}{}{}".format(name, target, readonly, nocopy)
    if mount.type == "tmpfs":
        if mount.source:
            raise conv.where.error(path + ("source",), "a tmpfs mount has no source")
        out = "type=tmpfs,target={}{}".format(target, readonly)
        if mount.tmpfs is not None and mount.tmpfs.size is not None:
            out += ",tmpfs-size={}".format(mount.tmpfs.size)
        if mount.tmpfs is not None and mount.tmpfs.mode is not None:
            mode = str(mount.tmpfs.mode)
            if not mode or any(c not in "01234567" for c in mode):
                raise conv.where.error(path + ("tmpfs", "mode"), "invalid mode {!r}: want octal digits such as "
                                       "1777".format(mode))
            out += ",tmpfs-mode={}".format(mode)
        return "mounts", out
    raise conv.where.error(path + ("type",), "mount type {!r} is not supported by fleet (bind, volume, tmpfs)"
                           .format(mount.type))


def conv_validate(conv: Any, item: dict, path: tuple) -> Any:
    from fleet.compose.convert import validate

    return validate(model.VolumeLong, item, conv.where, path)


def convert(conv: Any) -> tuple:
    """(``-v`` values, ``--mount`` values) of the service being converted."""
    out: dict = {"volumes": [], "mounts": []}
    for index, item in enumerate(conv.svc.volumes or []):
        path = ("volumes", index)
        kind, value = _long(conv, item, path) if isinstance(item, dict) else _short(conv, item, path)
        out[kind].append(value)
    return out["volumes"], out["mounts"]
