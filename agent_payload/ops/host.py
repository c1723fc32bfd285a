"""Host ops: ping (the cheapest possible round trip), facts and boot (restart policies at boot)."""

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
