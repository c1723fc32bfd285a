"""The payload by hand on a host: docker-style argv in, docker-style tables out (``python3 <pyz> ps -a``)."""

import argparse
import json
import os
import sys

from agent_payload import containeropts, errors
from agent_payload.ops import dispatch


def _add_container_flags(parser, command):
    """containeropts.FLAGS (the table fleet's run/create options come from too) as argparse arguments."""
    for flag in containeropts.flags_for(command):
        if not flag.hand_names:
            continue
        if flag.kind == "bool":
            parser.add_argument(*flag.hand_names, dest=flag.dest, action="store_true", help=flag.help)
        elif flag.kind == "tristate":
            parser.add_argument(*flag.hand_names, dest=flag.dest, action="store_const", const=True, default=None,
                                help=flag.help)
        elif flag.kind == "strs":
            parser.add_argument(*flag.hand_names, dest=flag.dest, action="append", default=None, help=flag.help)
        else:
            parser.add_argument(*flag.hand_names, dest=flag.dest, type=int if flag.kind == "int" else str,
                                help=flag.help)


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
    _add_container_flags(s, containeropts.RUN)
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


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _hand_args(ns):
    if ns.cmd == "run":
        values = {f.dest: getattr(ns, f.dest) for f in containeropts.flags_for(containeropts.RUN)
                  if f.hand_names and getattr(ns, f.dest) is not None}
        # files (--env-file, --label-file, seccomp=FILE) are read here, on the host, as docker's CLI reads them
        args = containeropts.parse(containeropts.RUN, values, _read_bytes, os.environ.get)
        args.update(image=ns.image, command=ns.command or None)
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
