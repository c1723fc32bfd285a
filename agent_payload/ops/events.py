"""The ``events`` op: docker's ``events`` from the host's event journal (agent_payload/events.py)."""


def op_events(ctx, req, emit):
    """Emit the journal's events (docker's messages) as ``event`` emits: those between ``since`` and ``until``
    matching ``filters``; with ``follow``, then every new one until ``until`` passes or the session ends."""
    from agent_payload import events
    from agent_payload.runtime.logs import parse_timestamp

    since = parse_timestamp(req.since) if req.since else None
    until = parse_timestamp(req.until) if req.until else None
    filters = events.Filters(req.filters)
    if req.follow:
        stream = events.follow(ctx.paths, since=since, until=until, filters=filters)
    else:
        stream = events.read(ctx.paths, since=since, until=until, filters=filters)
    for ev in stream:
        emit("event", ev)
    return {}
