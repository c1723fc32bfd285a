"""`fleet lab status`: the lab's hosts, addresses and processes as a table."""

from __future__ import annotations

import json

from fleet.commands.common import output
from fleet.render import tables

SERVICES = ("registry", "mirror", "auth")


def status(cfg, as_json: bool) -> int:
    """Print the lab status; exit 0 only when the lab is up and every part of it runs."""
    from fleet import lab

    st = lab.status(cfg)
    if not st.get("exists"):
        if as_json:
            output(json.dumps(st, indent=2, default=str))
        else:
            output("lab {} is not up (run `fleet lab up`)".format(cfg.name))
        return 1
    if as_json:
        output(json.dumps(st, indent=2, default=str))
    else:
        rows = []
        for service in SERVICES:
            svc = st.get(service) or {}
            if svc:
                rows.append([service, svc.get("address", ""), svc.get("netns", ""), svc.get("pid", ""),
                             "running" if svc.get("running") else "down"])
        for h in st.get("hosts", []):
            rows.append([h["name"], h["address"], h["netns"], h.get("sshd_pid", ""),
                         "running" if h.get("running") else "down"])
        for v in st.get("vms", []):
            rows.append([v["name"], "127.0.0.1:{}".format(v["port"]), "qemu/{}".format(v.get("accel") or "-"),
                         v.get("pid") or "", "running" if v.get("running") else "down"])
        output(tables.render(["HOST", "ADDRESS", "NETNS", "PID", "STATE"], rows))
    healthy = all(h.get("running") for h in st.get("hosts", []) + st.get("vms", [])) and all(
        (st.get(service) or {}).get("running", True) for service in SERVICES)
    return 0 if healthy else 1
