"""The payload by hand on a host: docker-style argv in, docker-style tables out (``python3 <pyz> ps -a``)."""

import argparse
import json
import os
import sys

from agent_payload import errors
from agent_payload.ops import dispatch


def _parser():
    p = argparse.ArgumentParser(prog="fleet-payload", description="fleet's payload: docker-style commands on this host")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ping", help="check that the payload runs")
    sub.add_parser("facts", help="show host facts")
    sub.add_parser("boot", help="start the containers whose restart policy asks for it at boot (the boot hook)")
    s = sub.add_parser("pull", help="pull an image")
    s.add_argument("image")
    s = sub.add_parser("images", help="list images")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    # docker's run uses -h for --hostname, so run's help is --help only
    s = sub.add_parser("run", help="run a container", add_help=False)
    s.add_argument("--help", action="help", help="show this help message and exit")
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--name")
    s.add_argument("--rm", action="store_true")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("--entrypoint")
    s.add_argument("-w", "--workdir")
    s.add_argument("-h", "--hostname")
    s.add_argument("--restart")
    s.add_argument("--network")
    s.add_argument("-p", "--publish", action="append", default=[])
    s.add_argument("-v", "--volume", action="append", default=[])
    s.add_argument("--privileged", action="store_true")
    s.add_argument("--security-opt", action="append", default=[])
    s.add_argument("image")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("ps", help="list containers")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    s = sub.add_parser("logs", help="show a container's logs")
    s.add_argument("--tail", default="all")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-t", "--timestamps", action="store_true")
    s.add_argument("container")
    s = sub.add_parser("stop", help="stop containers")
    s.add_argument("-t", "--time", type=int, default=10)
    s.add_argument("containers", nargs="+")
    s = sub.add_parser("rm", help="remove containers")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("containers", nargs="+")
    return p


def _env_value(entry):
    # docker: "-e KEY" takes KEY's value from the caller's environment (and drops it if unset)
    if "=" in entry:
        return entry
    return "{}={}".format(entry, os.environ[entry]) if entry in os.environ else None


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _hand_args(ns):
    if ns.cmd == "run":
        from agent_payload.linux.seccomp import security_opt_args
        security = security_opt_args(ns.security_opt, _read_text)  # seccomp=FILE is read here, as docker's CLI does
        args = {"image": ns.image, "name": ns.name, "detach": ns.detach, "rm": ns.rm,
                "env": [e for e in map(_env_value, ns.env) if e is not None],
                "command": ns.command or None,
                "entrypoint": None if ns.entrypoint is None else [ns.entrypoint],
                "workdir": ns.workdir, "hostname": ns.hostname, "restart": ns.restart,
                "network": ns.network, "publish": ns.publish, "volumes": ns.volume, "privileged": ns.privileged}
        args.update(security)
        return args
    if ns.cmd == "logs":
        tail = None if ns.tail == "all" else ns.tail
        try:
            tail = None if tail is None else int(tail)
        except ValueError:
            raise errors.InvalidArgument('invalid --tail value "{}": a number or "all"'.format(ns.tail))
        return {"container": ns.container, "tail": tail, "follow": ns.follow, "timestamps": ns.timestamps}
    skip = {"cmd", "quiet"}
    return {k: v for k, v in vars(ns).items() if k not in skip}


def _print_result(ns, data):
    from agent_payload.humanize import human_size
    from agent_payload.render import ago, table
    out = sys.stdout
    if ns.cmd == "ps":
        rows = data["containers"]
        if ns.quiet:
            out.write("".join(r["id"][:12] + "\n" for r in rows))
            return
        out.write(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                        [[r["id"][:12], r["image"], r["command"], ago(r["created"]), r["status"],
                          r.get("ports", ""), r["name"]] for r in rows]) + "\n")
    elif ns.cmd == "images":
        rows = data["images"]
        if ns.quiet:
            out.write("".join(r["id"].split(":")[-1][:12] + "\n" for r in rows))
            return
        out.write(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                        [[r["repository"], r["tag"], r["id"].split(":")[-1][:12], ago(r["created"]),
                          human_size(r["size"])] for r in rows]) + "\n")
    elif ns.cmd == "run":
        if ns.detach:
            out.write(data["id"] + "\n")
    elif ns.cmd in ("stop", "rm"):
        for ref in ns.containers:
            out.write(ref + "\n")
    elif ns.cmd == "pull":
        out.write("Digest: {}\nStatus: Downloaded image for {}\n{}\n".format(data["digest"], data["image"],
                                                                         data["image"]))
    elif ns.cmd == "logs":
        pass
    else:
        out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _hand_emit(ns):
    def emit(name, data):
        if name == "log":
            stream = sys.stdout if data.get("stream") != "stderr" else sys.stderr
            prefix = data["time"] + " " if getattr(ns, "timestamps", False) else ""
            stream.write(prefix + data["line"])
            stream.flush()
        elif name == "progress":
            sys.stderr.write("{}: {}\n".format(data.get("layer"), data.get("status")))
    return emit


def run_by_hand(argv, context):
    """Parse docker-style argv, run the op, print docker-style output; exit 125 on errors as docker does."""
    ns = _parser().parse_args(argv)
    try:
        data = dispatch(context(), ns.cmd, _hand_args(ns), _hand_emit(ns))
    except errors.AgentError as exc:
        sys.stderr.write("Error: {}\n".format(exc.message))
        return 2 if exc.kind == "InvalidArgument" else 1
    except OSError as exc:
        sys.stderr.write("Error: {}\n".format(errors.from_oserror(exc).message))
        return 1
    _print_result(ns, data)
    if ns.cmd == "run" and not ns.detach:
        return data.get("exit_code") or 0
    return 0
