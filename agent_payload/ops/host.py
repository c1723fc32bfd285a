"""Host ops: ping (the cheapest possible round trip), facts, boot (restart policies at boot), and docker's
system verbs: system prune, version, info."""

import os
import sys


def op_ping(ctx, req, emit):
    """Cheapest round trip: proves SSH, the interpreter and the payload."""
    return {"hostname": os.uname().nodename, "payload": ctx.payload_sha,
            "python": "{}.{}.{}".format(*sys.version_info[:3])}


def op_facts(ctx, req, emit):
    """Host facts for `fleet facts`."""
    from agent_payload import facts
    from agent_payload.runtime import boot
    from agent_payload.net import firewall
    # "none": no nftables or iptables here; published ports then work through the userland proxy alone
    return dict(facts.gather(ctx.paths), boot_hook=boot.kind(ctx.paths), firewall=firewall.backend(ctx.paths).name)


def op_boot(ctx, req, emit):
    """Start the containers docker's daemon would restart at its start (run by the boot hook)."""
    from agent_payload.runtime import boot
    return boot.boot(ctx.runtime(), ctx.launcher)


def op_system_prune(ctx, req, emit):
    """``docker system prune``: the prune ops in docker's order (stopped containers, unused networks, unused
    anonymous volumes with ``volumes``, dangling images or with ``all`` every unused one); no build cache here."""
    from agent_payload.ops import dispatch
    out = {"containers": dispatch(ctx, "container_prune", {}, emit),
           "networks": dispatch(ctx, "network_prune", {}, emit),
           "volumes": dispatch(ctx, "volume_prune", {"all": False}, emit) if req.volumes else None,
           "images": dispatch(ctx, "image_prune", {"all": req.all}, emit),
           "build_cache": {"deleted": [], "reclaimed": 0}}
    out["reclaimed"] = sum((part or {}).get("reclaimed") or 0 for part in out.values())
    return out


def _version(ctx):
    import platform
    from agent_payload import __version__
    from agent_payload.protocol import GO_ARCH, PROTOCOL_VERSION
    return {"Version": __version__, "Payload": ctx.payload_sha, "ProtocolVersion": PROTOCOL_VERSION,
            "PythonVersion": "{}.{}.{}".format(*sys.version_info[:3]), "KernelVersion": platform.release(),
            "Os": "linux" if sys.platform.startswith("linux") else sys.platform,
            "Arch": GO_ARCH.get(platform.machine(), platform.machine())}


def op_version(ctx, req, emit):
    """``docker version``'s Server part: the payload's version and hash, protocol, python, kernel, OS/arch."""
    return dict(_version(ctx), Hostname=os.uname().nodename)


def op_info(ctx, req, emit):
    """``docker info``: the engine's view of this host, under docker's key names (plus Payload, Python and
    FirewallBackend's driver)."""
    import platform
    from agent_payload import config, facts
    from agent_payload.net import firewall
    from agent_payload.runtime.cgroups import base as cgroups
    running = paused = total = 0
    for rec in ctx.runtime().all_records():
        total += 1
        if rec.get("status") == "paused" or (rec.get("status") == "running" and rec.get("paused")):
            paused += 1
        elif rec.get("status") in ("running", "restarting"):
            running += 1
    daemon = config.load(ctx.paths)
    mode = cgroups.detect().mode
    version = _version(ctx)
    return {
        "Name": os.uname().nodename, "ServerVersion": version["Version"],
        "Containers": total, "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": total - running - paused, "Images": ctx.images().image_count(),
        "Driver": "overlay2" if facts.overlay_supported() else "none", "DockerRootDir": ctx.paths.root,
        "CgroupDriver": "cgroupfs", "CgroupVersion": {"v2": "2", "v1": "1", "hybrid": "1"}.get(mode, ""),
        "FirewallBackend": {"Driver": firewall.backend(ctx.paths).name},
        "KernelVersion": version["KernelVersion"], "OperatingSystem": facts.distro(), "OSType": version["Os"],
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 0, "MemTotal": _mem_total(),
        "RegistryConfig": {"Mirrors": list(daemon.registry_mirrors),
                           "InsecureRegistries": list(daemon.insecure_registries)
                           + [str(net) for net in daemon.insecure_cidrs]},
        "Payload": version["Payload"], "ProtocolVersion": version["ProtocolVersion"],
        "PythonVersion": version["PythonVersion"],
    }


def _mem_total():
    """MemTotal in bytes, as docker info reports it."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
