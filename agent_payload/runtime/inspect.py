"""Docker's views of one container: the ``inspect`` object and ``top``'s ps -ef rows read from /proc."""

import os

from ..hostopts import DEFAULT_SHM_SIZE
from . import records

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what docker shows for "never"
TOP_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
_STATUS = {"created", "running", "paused", "restarting", "removing", "exited", "dead"}


def inspect_object(paths, record):
    """Docker's container inspect object for a record (config + state), with what the payload knows."""
    lay = records.Layout(paths, record["id"])
    argv = list(record.get("argv") or [])
    status = record.get("status") if record.get("status") in _STATUS else "dead"
    running = status in ("running", "restarting")  # docker: paused/restarting containers are still Running
    if running and record.get("paused"):
        status = "paused"
    resources = _limits(record)
    lowers = list(reversed(record.get("lowerdirs") or []))  # docker lists the top layer first
    cap_add, cap_drop = record.get("cap_add"), record.get("cap_drop")
    security_opt = []
    if record.get("no_new_privileges"):
        security_opt.append("no-new-privileges")
    if record.get("seccomp") is not None:  # docker keeps the option as given; a profile file as its content
        security_opt.append("seccomp=" + record["seccomp"])
    labels = record.get("labels") or {}
    from .volumes import docker_mounts
    mount_points, binds, host_mounts = docker_mounts(record.get("mounts"))
    return {
        "Id": record["id"],
        "Created": record.get("created"),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(record.get("oom_killed")),
            "Dead": status == "dead",
            "Pid": record.get("pid") or 0 if status in ("running", "paused") else 0,
            "ExitCode": record.get("exit_code") if isinstance(record.get("exit_code"), int) else 0,
            "Error": record.get("error") or "",
            "StartedAt": record.get("started_at") or ZERO_TIME,
            "FinishedAt": record.get("finished_at") or ZERO_TIME,
            **({"Health": record["health"]} if record.get("health") else {}),
        },
        "Image": record.get("image_id"),
        "ResolvConfPath": lay.resolv,
        "HostnamePath": lay.hostname,
        "HostsPath": lay.hosts,
        "LogPath": "" if (record.get("log_config") or {}).get("Type") == "none" else lay.log,
        "Name": "/" + record.get("name", ""),
        "RestartCount": record.get("restart_count") or 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": bool(record.get("auto_remove")),
            "NetworkMode": "default" if (record.get("network") or "bridge") == "bridge" else record["network"],
            "PortBindings": _port_bindings(record.get("ports") or []),
            "PublishAllPorts": bool(record.get("publish_all")),
            "Privileged": bool(record.get("privileged")),
            "ReadonlyRootfs": bool(record.get("read_only")),
            "CapAdd": list(cap_add) if cap_add else None,
            "CapDrop": list(cap_drop) if cap_drop else None,
            "SecurityOpt": security_opt or None,
            "RestartPolicy": dict(record.get("restart_policy") or {"Name": "no", "MaximumRetryCount": 0}),
            "LogConfig": dict(record.get("log_config") or {"Type": "json-file", "Config": {}}),
            "Memory": resources["Memory"],
            "MemorySwap": resources["MemorySwap"],
            "NanoCpus": resources["NanoCpus"],
            "CpuShares": resources["CpuShares"],
            "PidsLimit": resources["PidsLimit"],
            "MemoryReservation": resources["MemoryReservation"],
            "CpusetCpus": resources["CpusetCpus"],
            "CpusetMems": resources["CpusetMems"],
            "OomKillDisable": resources["OomKillDisable"],
            **{key: resources[key] for key in ("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
                                               "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")},
            "ExtraHosts": list(record.get("extra_hosts") or []) or None,
            "Dns": list(record.get("dns") or []),
            "DnsSearch": list(record.get("dns_search") or []),
            "DnsOptions": list(record.get("dns_options") or []),
            **({"Tmpfs": dict(record["tmpfs"])} if record.get("tmpfs") else {}),  # docker: omitted when empty
            "ShmSize": record.get("shm_size") or DEFAULT_SHM_SIZE,
            "Ulimits": [dict(u) for u in record.get("ulimits") or []] or None,
            **({"Sysctls": dict(record["sysctls"])} if record.get("sysctls") else {}),  # omitempty too
            "Devices": [dict(d) for d in record.get("devices") or []],
            "GroupAdd": list(record.get("group_add") or []) or None,
            "VolumesFrom": list(record.get("volumes_from") or []) or None,
            "Links": ["/{}:/{}/{}".format(link.partition(":")[0], record.get("name", ""), link.partition(":")[2])
                      for link in record.get("links") or []] or None,
            **({"Init": True} if record.get("init") else {}),  # docker: *bool, omitted unless --init
            "Binds": binds,  # -v name:/ctr and -v /host:/ctr as typed (normalised)
            **({"Mounts": host_mounts} if host_mounts else {}),  # --mount, docker omits it when empty
        },
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"LowerDir": ":".join(lowers), "UpperDir": lay.diff, "WorkDir": lay.work,
                     "MergedDir": lay.rootfs},
        },
        "Mounts": mount_points,
        "Config": {
            "Hostname": record.get("hostname") or "",
            "User": record.get("user") or "",
            "Env": list(record.get("env") or []),
            "Cmd": record.get("cmd", argv),
            "Image": record.get("image") or "",
            "WorkingDir": record.get("workdir") or "",
            **({"MacAddress": _mac_address(record)} if _mac_address(record) else {}),  # --mac-address
            "Entrypoint": record.get("entrypoint"),
            **({"ExposedPorts": {p: {} for p in record["exposed_ports"]}} if record.get("exposed_ports") else {}),
            "Labels": dict(labels),
            "StopSignal": record.get("stop_signal") or "SIGTERM",
            **({"StopTimeout": record["stop_timeout"]} if record.get("stop_timeout") is not None else {}),
            "Tty": bool(record.get("tty")),
            "OpenStdin": bool(record.get("open_stdin")),
            "StdinOnce": bool(record.get("stdin_once")),
            "AttachStdin": bool(record.get("attach_stdin")),
            **({"Healthcheck": record["healthcheck"]} if record.get("healthcheck") else {}),
        },
        "NetworkSettings": network_settings(record),
    }


def _mac_address(record):
    """The --mac-address a container was created with (on its first network), or None."""
    mode = record.get("network") or "bridge"
    return ((record.get("networks") or {}).get(mode) or {}).get("mac")


def _port_bindings(bindings):
    out = {}
    for b in bindings:
        out.setdefault("{}/{}".format(b["container_port"], b["proto"]), []).append(
            {"HostIp": b.get("host_ip") or "", "HostPort": str(b["host_port"]) if b.get("host_port") else ""})
    return out


def network_settings(record):
    """docker's NetworkSettings: the sandbox, published ports and one entry per network (while running)."""
    running = record.get("status") in ("running", "restarting")
    settings = (record.get("network_settings") or {}) if running else {}
    endpoints = settings.get("endpoints") or []
    nets = {}
    requested = record.get("networks") or {}
    for ep in endpoints:
        aliases = list(ep.get("aliases") or [])
        nets[ep["network"]] = {
            "IPAMConfig": {"IPv4Address": ep["ip"]} if requested.get(ep["network"], {}).get("ip") else None,
            "Links": None, "Aliases": aliases or None, "MacAddress": ep["mac"], "NetworkID": ep["network_id"],
            "EndpointID": record["id"][:12] + ep["network_id"][:12], "Gateway": ep["gateway"],
            "IPAddress": ep["ip"], "IPPrefixLen": ep["prefix"], "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": [record.get("name"), record["id"][:12]] + aliases if ep["network"] != "bridge" else None}
    mode = record.get("network") or "bridge"
    if mode in ("host", "none"):
        nets[mode] = {"NetworkID": mode, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                      "MacAddress": ""}
    primary = endpoints[0] if endpoints and endpoints[0]["network"] == "bridge" else {}
    from agent_payload.net.ports import docker_ports
    ports = docker_ports((settings.get("ports") or []) + (settings.get("staged_ports") or []))  # staged: recorded
    for b in record.get("ports") or []:  # exposed but not (or no longer) bound: docker shows null
        ports.setdefault("{}/{}".format(b["container_port"], b["proto"]), None if not running else [])
    return {"Bridge": "", "SandboxID": record["id"] if settings.get("sandbox") else "",
            "SandboxKey": settings.get("sandbox") or "", "HairpinMode": False, "Ports": ports,
            "Gateway": primary.get("gateway", ""), "IPAddress": primary.get("ip", ""),
            "IPPrefixLen": primary.get("prefix", 0), "MacAddress": primary.get("mac", ""), "Networks": nets}


def _limits(record):
    """HostConfig's resource fields from the stored limits (0/None where unset, as docker)."""
    from .cgroups.limits import Limits

    limits = Limits.from_dict(record.get("limits") or {})
    return dict(limits.host_config(), **limits.host_config_more(), **limits.host_config_blkio())


# ---------------------------------------------------------------- top

def _pid_ns(pid):
    try:
        return os.readlink("/proc/{}/ns/pid".format(pid))
    except OSError:
        return None


def namespace_members(init_pid):
    """PIDs (host view) of every process in the PID namespace of ``init_pid``, ascending."""
    target = _pid_ns(init_pid)
    if target is None:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_ns(int(entry)) == target:
            pids.append(int(entry))
    return sorted(pids)


def top(init_pid, ps_args=None):
    """docker top: ``{"titles", "processes"}`` for the container whose init is ``init_pid``, in the format of
    the ps options ``ps_args`` (default ``-ef``; runtime/pstable.py renders ps's columns from /proc)."""
    from . import pstable
    return pstable.table(namespace_members(init_pid), ps_args)
