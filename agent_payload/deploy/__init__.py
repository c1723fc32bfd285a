"""Deploys on one host (``fleet deploy``'s payload side): the project lock, the journal, the retired versions, the
health gate and the swap of a service's container, done by a detached worker that finishes or reverts by itself.

Every container a deploy makes carries Compose's labels (``com.docker.compose.project``, ``.service``,
``.config-hash``) plus ``fleet.deploy.image-digest`` and ``fleet.deploy.spec`` (the controller computes them).
The live container of a service is named ``{project}-{service}-1``; the previous ones stay stopped as
``{project}-{service}-1.{first 12 of their id}`` and are listed as retired in ``deploys/<project>.json`` (labels
cannot change after create, so "retired since" lives there rather than in a label).

Files under ``<state root>/deploys`` (0700; files 0600): ``journal.jsonl`` (one line per swap/rollback),
``<project>.lock`` (who deploys the project now), ``<project>.json`` (its retired containers) and
``work/`` (the workers' progress files).
"""

import os

from agent_payload.state import perms

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
CONFIG_HASH = "com.docker.compose.config-hash"
DIGEST = "fleet.deploy.image-digest"
SPEC = "fleet.deploy.spec"


def deploys_dir(paths):
    """``<root>/deploys``, made private (0700) on first use."""
    path = os.path.join(paths.root, "deploys")
    if not os.path.isdir(path):
        perms.makedirs(path, perms.DIR_MODE)
    return path


def live_name(project, service):
    """The live container's name, as compose names the first replica."""
    return "{}-{}-1".format(project, service)


def retired_name(project, service, container_id):
    return "{}.{}".format(live_name(project, service), container_id[:12])


def next_name(project, service):
    """The name a new container has between its create and the switch (never a live or retired name)."""
    return "{}.next".format(live_name(project, service))


def check_project(name, what="project"):
    """Compose's project (and service) name rules: lowercase letters, digits, ``_`` and ``-``, a letter or digit
    first; InvalidArgument naming the value otherwise."""
    import re

    from agent_payload import errors

    pattern = r"^[a-z0-9][a-z0-9_-]*$" if what == "project" else r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
    if not isinstance(name, str) or not re.match(pattern, name):
        raise errors.InvalidArgument("invalid {} name {!r}: must match {}".format(what, name, pattern))
    return name
