"""The ``check`` op (``fleet check``'s host side, agent_payload/check/)."""


def op_check(ctx, req, emit):
    """{"services", "thresholds", "probes", "counters"} -> {"checks": [row], "metrics": {"containers", "disk"}}."""
    from agent_payload.check import runner
    return runner.run(ctx, req)
