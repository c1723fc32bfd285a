"""Docker-compatible presentation of container rows: the status text, human durations and the command column."""

import json
import time

from agent_payload.humanize import human_duration

from .records import parse_ns


def _since(stamp, now_ns):
    return max(0, now_ns - parse_ns(stamp)) / 1e9


def status_text(state, now_ns=None):
    """Docker's STATUS column: "Up 5 seconds", "Exited (0) 3 minutes ago", "Created"."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    status = state.get("status")
    if status == "running" and state.get("started_at"):
        return "Up " + human_duration(_since(state["started_at"], now_ns))
    if status == "exited" and state.get("finished_at"):
        return "Exited ({}) {} ago".format(state.get("exit_code"), human_duration(_since(state["finished_at"], now_ns)))
    return "Created"


def command_text(argv):
    """Docker's COMMAND column (untruncated): args containing a space are single-quoted, then Go-quoted."""
    path, args = argv[0], ["'{}'".format(a) if " " in a else a for a in argv[1:]]
    command = " ".join([path] + args) if args else path
    return json.dumps(command, ensure_ascii=False)


def ps_row(record, now_ns=None):
    """A ``ps`` row from a container record."""
    return {"id": record["id"], "name": record["name"], "image": record["image"],
            "command": command_text(record["argv"]), "created": record["created"],
            "state": record["status"], "status": status_text(record, now_ns),
            "exit_code": record.get("exit_code"), "ports": ""}
