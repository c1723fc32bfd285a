"""The request schema: every op's arguments, their types, which are required, their defaults (stdlib only, data).

``protocol.py`` describes each op's request and result in prose; this is the machine-readable half of the
request side, shared by the payload (``ops.dispatch`` checks every request against it once, before the op runs)
and the controller's tests (which check that what fleet's commands send fits it).

``REQUESTS[op]`` is an ordered ``{arg: Arg}``, in the order the op reads its arguments (the first bad one is the
one reported); ``ops/args.py`` decodes a request into a record with these fields.
``Arg(type, required, default, checked_by, minimum)``:

- ``type``: ``"str"``, ``"int"``, ``"bool"``, ``"str_list"``, ``"object"`` (a JSON object), or a union of them
  written with ``|`` (``"str|int"``; ``"number"`` is an int or a float), or ``"labels"`` ({non-empty str: str}),
  ``"console_size"`` ([rows, cols]);
- ``required``: a missing or null value is InvalidArgument "missing argument: <arg>";
- ``default``: what a missing or null value means (the decoded record holds it);
- ``checked_by``: None when the decode step owns the type check ("argument <arg> must be a ..."), else the
  module that checks the value with its own (docker's) wording, because that check also serves stored records,
  the hand CLI or needs the host (daemon.json, the image);
- ``minimum``: the smallest value an ``"int"`` may have ("argument <arg> must be >= N").

Arguments a request carries beyond its op's entry are ignored (as they always were: an older payload accepts a
newer controller's extra flags).
"""

from collections import namedtuple

Arg = namedtuple("Arg", "type required default checked_by minimum")


def _a(type_, default=None, required=False, checked_by=None, minimum=None):
    return Arg(type_, required, default, checked_by, minimum)


#: Types whose check the decode step does itself, with its message.
TYPE_MESSAGES = {
    "str": "argument {} must be a string",
    "int": "argument {} must be an integer",
    "bool": "argument {} must be a boolean",
    "str_list": "argument {} must be a list of strings",
    "object": "argument {} must be an object",
}
#: Types only described here, checked by ``checked_by``.
OTHER_TYPES = ("str|int", "str|number", "str_list|object", "labels", "console_size", "number", "network_list",
               "object_list")

_CONTAINERS = {"containers": _a("str_list", [])}
_CONTAINER = {"container": _a("str", required=True)}

#: ``run``/``create``: every flag of docker's run/create (fleet/commands/runflags.py RunSpec.op_args).
_CREATE = {
    "image": _a("str", required=True),
    "name": _a("str"),
    "env": _a("str_list", []),
    "command": _a("str_list"),  # null: the image's CMD
    "entrypoint": _a("str_list"),  # null: the image's ENTRYPOINT
    "workdir": _a("str"),
    "hostname": _a("str"),
    # isolation (runtime/spec.py ISOLATION_ARGS): ContainerSpec.check_isolation owns these checks
    "user": _a("str", checked_by="runtime.user"),
    "cap_add": _a("str_list", [], checked_by="runtime.caps"),
    "cap_drop": _a("str_list", [], checked_by="runtime.caps"),
    "privileged": _a("bool", False, checked_by="runtime.spec"),
    "read_only": _a("bool", False, checked_by="runtime.spec"),
    "no_new_privileges": _a("bool", False, checked_by="runtime.spec"),
    "seccomp": _a("str", checked_by="linux.seccomp"),
    "network": _a("str", checked_by="runtime.spec"),  # null: the default network (daemon.json "bridge")
    "init": _a("bool", checked_by="runtime.spec"),  # null: daemon.json "init"
    # resources (runtime/spec.py LIMIT_ARGS): strings as typed or numbers, docker's flag messages
    "memory": _a("str|number", checked_by="runtime.spec"),
    "memory_swap": _a("str|number", checked_by="runtime.spec"),
    "cpus": _a("str|number", checked_by="runtime.spec"),
    "cpu_shares": _a("str|number", checked_by="runtime.spec"),
    "pids_limit": _a("str|number", checked_by="runtime.spec"),
    "memory_reservation": _a("str|number", checked_by="runtime.spec"),
    "cpuset_cpus": _a("str", checked_by="runtime.spec"),
    "cpuset_mems": _a("str", checked_by="runtime.spec"),
    "blkio_weight": _a("str|number", checked_by="runtime.spec"),
    "blkio_weight_device": _a("str_list", []),
    "device_read_bps": _a("str_list", []),
    "device_write_bps": _a("str_list", []),
    "device_read_iops": _a("str_list", []),
    "device_write_iops": _a("str_list", []),
    "oom_kill_disable": _a("bool", False),
    # host options (agent_payload/hostopts.py: the controller's parse and the payload's check, docker's words)
    "extra_hosts": _a("str_list", []),
    "dns": _a("str_list", []),
    "dns_search": _a("str_list", []),
    "dns_options": _a("str_list", []),
    "tmpfs": _a("str_list", []),
    "shm_size": _a("str|int", checked_by="hostopts"),
    "ulimits": _a("str_list", []),
    "sysctls": _a("str_list", []),
    "devices": _a("str_list", []),
    "group_add": _a("str_list", []),
    "volumes_from": _a("str_list", []),
    "links": _a("str_list", []),
    "pull": _a("str", checked_by="hostopts"),  # null: missing
    "platform": _a("str", checked_by="hostopts"),  # null: the host's
    # stdio
    "tty": _a("bool", False),
    "open_stdin": _a("bool", False),
    "detach": _a("bool", False),
    "console_size": _a("console_size", checked_by="runtime.tty"),  # read with tty only
    "rm": _a("bool", False),
    "labels": _a("labels", {}, checked_by="runtime.spec"),
    "stop_signal": _a("str"),
    "stop_timeout": _a("int", checked_by="runtime.spec"),  # '"--stop-timeout" flag' message
    # supervision
    "restart": _a("str", "no"),
    "health_cmd": _a("str"),
    "no_healthcheck": _a("bool", False),
    "health_retries": _a("str|int", checked_by="runtime.health"),
    "health_interval": _a("str|int", checked_by="runtime.health"),
    "health_timeout": _a("str|int", checked_by="runtime.health"),
    "health_start_period": _a("str|int", checked_by="runtime.health"),
    "log_driver": _a("str"),  # null: daemon.json "log-driver", else json-file
    "log_opts": _a("str_list|object", checked_by="runtime.logconfig"),
    # network
    "network_aliases": _a("str_list", []),
    "ip": _a("str"),
    "mac_address": _a("str", checked_by="hostopts"),
    "publish": _a("str_list", []),
    "publish_all": _a("bool", False),
    "publish_staged": _a("bool", False),  # sent by the deploy op only (runtime/handover.py), no CLI flag
    # mounts
    "volumes": _a("str_list", []),
    "mounts": _a("str_list", []),
    # compose (fleet deploy): docker's Healthcheck object over the --health-* flags; EXPOSE added to the image's
    "healthcheck": _a("object", checked_by="runtime.health"),
    "expose": _a("str_list", []),  # --expose too
}

#: ``service_swap``/``service_rollback``: how the switch is done and gated (agent_payload/deploy/swap.py)
_DEPLOY_GATE = {
    "order": _a("str", "stop-first"),
    "monitor": _a("number", 5, checked_by="ops.deploy"),
    "probe": _a("str"),
    "timeout": _a("number", 300, checked_by="ops.deploy"),
    "stop_grace_period": _a("number", 10, checked_by="ops.deploy"),
    "keep": _a("int", 2, minimum=0),
    "journal": _a("object", {}),
    # a one-shot service (another depends on it with service_completed_successfully): it must exit 0
    "complete": _a("bool", False),
}
_SERVICE = {"project": _a("str", required=True), "service": _a("str", required=True),
            "deploy_id": _a("str", required=True)}

REQUESTS = {
    "ping": {},
    "facts": {},
    "boot": {},
    "pull": {"image": _a("str", required=True), "all_tags": _a("bool", False), "platform": _a("str")},
    "push": {"image": _a("str", required=True)},
    "login": {"registry": _a("str"), "username": _a("str", required=True), "password": _a("str", required=True)},
    "logout": {"registry": _a("str")},
    "configure": {"daemon": _a("object", required=True, checked_by="ops.registry")},
    "images": {"filters": _a("str_list", []), "all": _a("bool", False), "digests": _a("bool", False)},
    "rmi": {"images": _a("str_list", []), "force": _a("bool", False)},
    "tag": {"source": _a("str", required=True), "target": _a("str", required=True)},
    "history": {"image": _a("str", required=True)},
    "image_prune": {"all": _a("bool", False)},
    "image_inspect": {"images": _a("str_list", [])},
    "system_df": {"verbose": _a("bool", False)},
    "system_prune": {"all": _a("bool", False), "volumes": _a("bool", False)},
    "version": {},
    "info": {},
    "run": dict(_CREATE, detach_keys=_a("str")),
    "create": dict(_CREATE),
    "ps": {"filters": _a("str_list", []), "size": _a("bool", False), "all": _a("bool", False), "last": _a("int")},
    "logs": {"container": _a("str", required=True), "tail": _a("int", minimum=0), "since": _a("str"),
             "until": _a("str"), "follow": _a("bool", False), "timestamps": _a("bool", False),
             "details": _a("bool", False)},
    "stop": dict(_CONTAINERS, time=_a("int", minimum=0)),
    "rm": dict(_CONTAINERS, volumes=_a("bool", False), force=_a("bool", False)),
    "start": dict(_CONTAINERS, attach=_a("bool", False), attach_stdin=_a("bool", False), detach_keys=_a("str")),
    "restart": dict(_CONTAINERS, time=_a("int", minimum=0)),
    "kill": dict(_CONTAINERS, signal=_a("str|int", "KILL", checked_by="ops.lifecycle")),
    "wait": dict(_CONTAINERS),
    "rename": {"container": _a("str", required=True), "name": _a("str", required=True)},
    "inspect": dict(_CONTAINERS, type=_a("str")),  # docker inspect --type container|image (None: both)
    "top": dict(_CONTAINER, ps_args=_a("str_list", [])),  # docker top's [ps OPTIONS] (runtime/pstable.py)
    "diff": dict(_CONTAINER),
    "export": dict(_CONTAINER, output=_a("str", required=True), force=_a("bool", False)),
    "container_prune": {},
    # update: a null flag leaves that setting as it is
    "update": dict(_CONTAINERS, restart=_a("str"), **{k: _CREATE[k] for k in (
        "memory", "memory_swap", "cpus", "cpu_shares", "pids_limit", "memory_reservation", "cpuset_cpus",
        "cpuset_mems", "blkio_weight")},
        # the block-IO device lists: docker's API updates them too (its CLI has no flag); null: unchanged
        **{k: _a("str_list") for k in ("blkio_weight_device", "device_read_bps", "device_write_bps",
                                       "device_read_iops", "device_write_iops")}),
    "stats": dict(_CONTAINERS, all=_a("bool", False)),
    "pause": dict(_CONTAINERS),
    "unpause": dict(_CONTAINERS),
    "exec": dict(_CONTAINER, command=_a("str_list", []), env=_a("str_list", []), workdir=_a("str"),
                 user=_a("str"), detach=_a("bool", False), privileged=_a("bool", False),
                 interactive=_a("bool", False), tty=_a("bool", False),
                 console_size=_a("console_size", checked_by="runtime.exec")),
    "attach": dict(_CONTAINER, stdin=_a("bool", True), detach_keys=_a("str")),
    "commit": dict(_CONTAINER, repository=_a("str"), author=_a("str", ""), message=_a("str", ""),
                   changes=_a("str_list", []), pause=_a("bool", True)),
    # cp_in checks its args itself, inside the step that removes the uploaded staging file whatever fails
    "cp_in": {"staging": _a("str", required=True), "container": _a("str", required=True, checked_by="ops.transfer"),
              "path": _a("str", required=True, checked_by="ops.transfer"),
              "base": _a("str", required=True, checked_by="ops.transfer"),
              "is_dir": _a("bool", False, checked_by="ops.transfer"),
              "contents": _a("bool", False, checked_by="ops.transfer"),
              "archive": _a("bool", False, checked_by="ops.transfer")},
    "cp_out": dict(_CONTAINER, path=_a("str", required=True), follow_link=_a("bool", False)),
    "export_out": dict(_CONTAINER),
    # save/load/import (ops/archive.py): blobs and archives moved by SFTP
    "save": {"images": _a("str_list", [])},
    "load_probe": {"diff_ids": _a("str_list", [])},
    "load": {"images": _a("object_list", [], checked_by="image.loadsave")},
    "import": {"changes": _a("str_list", []), "repository": _a("str", checked_by="image.commit"),
               "message": _a("str", ""), "staging": _a("str"), "url": _a("str")},
    "network_create": {"internal": _a("bool", False), "name": _a("str", required=True),
                       "driver": _a("str", "bridge"), "subnet": _a("str"), "gateway": _a("str"),
                       "labels": _a("labels", {}, checked_by="runtime.spec")},
    "network_ls": {"filters": _a("str_list", [])},
    "network_inspect": {"networks": _a("str_list", [])},
    "network_rm": {"networks": _a("str_list", [])},
    "network_prune": {},
    "network_connect": {"aliases": _a("str_list", []), "container": _a("str", required=True),
                        "network": _a("str", required=True), "ip": _a("str")},
    "network_disconnect": {"container": _a("str", required=True), "network": _a("str", required=True)},
    "port": dict(_CONTAINER, port=_a("str")),
    "volume_create": {"options": _a("object", {}), "name": _a("str"),
                      "labels": _a("labels", {}, checked_by="runtime.spec"), "driver": _a("str", "local")},
    "volume_ls": {"filters": _a("str_list", [])},
    "volume_inspect": {"volumes": _a("str_list", [])},
    "volume_rm": {"volumes": _a("str_list", []), "force": _a("bool", False)},
    "volume_prune": {"all": _a("bool", False)},
    # docker events (agent_payload/events.py): since/until as logs' (runtime/logs.parse_timestamp)
    "events": {"since": _a("str"), "until": _a("str"), "filters": _a("str_list", []), "follow": _a("bool", False)},
    # fleet deploy (agent_payload/deploy/)
    "image_resolve": {"image": _a("str", required=True)},
    "deploy_lock": {"project": _a("str", required=True), "deploy_id": _a("str", required=True),
                    "holder": _a("str", ""), "action": _a("str", "acquire")},
    "service_ls": {"project": _a("str")},
    "service_swap": dict(_SERVICE, create=_a("object", required=True, checked_by="ops.deploy"),
                         extra_networks=_a("network_list", [], checked_by="ops.deploy"), **_DEPLOY_GATE),
    "service_rollback": dict(_SERVICE, **_DEPLOY_GATE),
    "service_down": {"project": _a("str", required=True), "volumes": _a("bool", False)},
    "deploy_journal": {"project": _a("str"), "service": _a("str"), "last": _a("int", minimum=0)},
    # fleet build (agent_payload/build/, ops/build.py): the context tar is already at <root>/build/contexts/
    "build": {"context": _a("str", required=True, checked_by="ops.build"),
              "dockerfile": _a("str", "Dockerfile"), "build_args": _a("object", {}, checked_by="ops.build"),
              "target": _a("str"), "tags": _a("str_list", []), "labels": _a("labels", {}, checked_by="runtime.spec"),
              "no_cache": _a("bool", False), "pull": _a("bool", False), "network": _a("str", checked_by="ops.build"),
              "quiet": _a("bool", False), "platform": _a("str", checked_by="hostopts"),
              "source_date_epoch": _a("int", minimum=0), "rm": _a("bool", True), "force_rm": _a("bool", False)},
    # fleet check (agent_payload/check/): the nested objects are checked by check/request.py
    "check": {"services": _a("object_list", [], checked_by="check.request"),
              "thresholds": _a("object", {}),
              "probes": _a("object_list", [], checked_by="check.request"),
              "counters": _a("bool", True)},
    # fleet build's context upload (ops/buildctx.py checks the digest and the staging path itself)
    "build_context": {"sha256": _a("str", required=True, checked_by="ops.buildctx"),
                      "staging": _a("str", checked_by="ops.buildctx")},
}
