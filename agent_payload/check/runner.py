"""One ``check`` run: the rows in their order (payload, disks, services, containers, logs, probes) and metrics."""

import sys
import time

from . import OK, WARNING, host, perf, probes, request, row, services


def run(ctx, req):
    """The ``check`` op's result of its decoded request (the nested parts checked by ``request.checked`` first)."""
    services_req, thresholds, probe_list = request.checked(req)
    started = time.monotonic()
    checks, metrics = [], {}
    payload = row("payload", OK, "payload {} (python {}.{}.{}), state root {}".format(
        ctx.payload_sha, sys.version_info[0], sys.version_info[1], sys.version_info[2], ctx.paths.root))
    checks.append(payload)
    disk_rows, metrics["disk"] = host.disks(ctx.paths, thresholds)
    checks += disk_rows
    runtime = ctx.runtime()
    records = runtime.all_records()
    svc_rows, metrics["containers"], problem = services.evaluate(ctx, records, services_req, keep=req.counters)
    if problem:
        payload.update(status=WARNING, detail=payload["detail"] + "; " + problem)
    checks += svc_rows
    checks += host.logs(records, thresholds)
    checks += probes.run_all(runtime, probe_list)
    payload["perfdata"].append(perf("duration", round(time.monotonic() - started, 3), "s", min=0))
    return {"checks": checks, "metrics": metrics}
