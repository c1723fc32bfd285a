"""Host ops: ping (the cheapest possible round trip) and facts."""

import os
import sys


def op_ping(ctx, args, emit):
    """Cheapest round trip: proves SSH, the interpreter and the payload."""
    return {"hostname": os.uname().nodename, "payload": ctx.payload_sha,
            "python": "{}.{}.{}".format(*sys.version_info[:3])}


def op_facts(ctx, args, emit):
    """Host facts for `fleet facts`."""
    from agent_payload import facts
    return facts.gather(ctx.paths)
