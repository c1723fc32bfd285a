"""The one versioned wire protocol between the fleet controller and the payload.

This module is pure data and constants (stdlib only) and is the single source of truth for both sides:
``fleet`` may import it, and nothing else from ``agent_payload`` except the pure reference parser.

One invocation is one SSH exec of ``python3 <payload>.pyz --rpc``::

    controller                                   payload (on the host)
        |  stdin: ONE request object (JSON)          |
        |------------------------------------------->|
        |                                            |  dispatch by "op"
        |  stdout: zero or more event lines (JSONL)  |
        |<-------------------------------------------|  {"type": "event", "event": "progress", "data": {...}}
        |<-------------------------------------------|  {"type": "event", "event": "log", "data": {...}}
        |  stdout: exactly ONE final result line     |
        |<-------------------------------------------|  {"type": "result", "ok": true, "data": {...}}
        |                                            |  {"type": "result", "ok": false, "error": {...}}

Request::

    {"protocol": PROTOCOL_VERSION, "payload": "<sha256 of the .pyz>", "op": "<name>", "args": {...}}

The exit status is 0 whenever a result line was written.  Anything else (no result line, non-zero exit)
means the payload crashed and the controller reports the tail of stderr.

A request whose ``protocol`` or ``payload`` does not match the running payload is answered with a
``FailedPrecondition`` error; because the payload file is named by its own sha256, the controller never
runs an old payload by accident (the hash *is* the version).

Every op's ``args`` (names, types, required, defaults) are also data in ``agent_payload/requests.py``, the
request schema: the payload decodes each request against it once before the op runs, into a typed record with
the schema's defaults (a missing required arg is InvalidArgument "missing argument: X", a wrong type "argument X
must be a ..."; args it does not name are ignored), and the controller's tests check what fleet's commands send
against it.

Ops (``args`` -> ``data``); docker-compatible semantics:

``ping``    {} -> {"hostname", "payload", "python"}
``facts``   {} -> {"hostname", "kernel", "arch", "distro", "python", "cgroup", "overlay", "overlay_state",
                    "namespaces", "disk_free", "root", "boot_hook", "firewall"} (overlay_state: "loaded" |
            "loadable" (the running kernel's module is installed; the first mount loads it) | "absent"; overlay:
            true unless absent; boot_hook: "systemd" | "cron" | "none", the
            restart policies' boot hook this host gets, see ``boot``; firewall: "nftables" | "iptables (BINARY)" |
            "none": published ports then work through the userland proxy alone)
``boot``    {} -> {"started": [id], "failed": [{"id", "error"}], "hook": kind}: start every container docker's
            daemon would restart at its start (the boot hook runs it: systemd fleet-boot.service or
            /etc/cron.d/fleet-boot, under $FLEET_HOOK_ROOT if set); refreshes the hook to this payload
``pull``    {"image": ref, "all_tags": bool, "platform": "os/arch[/variant]"|null}
            -> {"image", "id", "digest", "endpoint", "layers", "downloaded"}
               (all_tags: {"pulled": [the same object per tag]})
            events: progress {"layer", "status", "current", "total"}
``push``    {"image": ref} -> {"image", "digest", "size", "endpoint", "layers": [{"digest", "status"}]}
            (status: "Pushed" | "Layer already exists" | "Mounted from <repo>"); events: progress
``login``   {"registry": host|null (docker.io), "username", "password"} -> {"registry", "status"}
            (credentials are checked against the registry, then stored in Docker's config.json "auths"
            with mode 0600; the password never appears in any result, event or error)
``logout``  {"registry": host|null} -> {"registry", "removed": bool}
``configure`` {"daemon": {daemon.json keys to set; null removes a key}} -> {"changed": bool, "daemon": {...}}
            (validated first, then /etc/fleet/daemon.json is written atomically; unknown keys are kept)
``images``  {"all": bool, "digests": bool, "filters": ["dangling=true", "reference=nginx*", ...]}
            -> {"images": [{"repository", "tag", "id", "digest", "created", "size", "containers"}]}
``rmi``     {"images": [ref or id], "force": bool} -> {"untagged": [ref], "deleted": [id]}; several names: also
            "results": [{"name", "id", "ok", "error", "untagged", "deleted"}] and "errors" (each name its own
            operation, as docker; one name alone: its error is the op's error)
``tag``     {"source": ref or id, "target": ref} -> {"id", "target"}
``history`` {"image": ref or id} -> {"history": [{"id", "created", "created_by", "size", "comment"}]}
``image_prune``   {"all": bool} -> {"deleted": [id], "untagged": [ref], "reclaimed": bytes}
``image_inspect`` {"images": [ref or id]} -> {"images": [docker's inspect object per image]}, "errors":
            [{"name", "kind", "message"}] per name not found (none found: the first error)
``system_df``     {} -> {"images", "containers", "volumes", "build_cache"}: each
                  {"total", "active", "size", "reclaimable", "reclaimable_percent"} (docker's rows); with
                  {"verbose": true} also "verbose": {"images": [images' rows + "shared_size", "unique_size"],
                  "containers": [{"id", "image", "command", "local_volumes", "size", "created", "status",
                  "names"}], "volumes": [{"name", "links", "size"}], "build_cache": []}
``system_prune`` {"all": bool, "volumes": bool} -> {"containers": container_prune's, "networks": network_prune's,
                  "volumes": volume_prune's (anonymous only) | null, "images": image_prune's (all: every unused
                  one), "build_cache": {"deleted": [], "reclaimed": 0}, "reclaimed": bytes} (docker's order)
``version`` {} -> docker version's Server part: {"Version" (the payload's, fleet's own), "Payload": its sha256,
            "ProtocolVersion", "PythonVersion", "KernelVersion", "Os", "Arch" (Go's names), "Hostname"}
``info``    {} -> docker info's keys: {"Name", "ServerVersion", "Containers", "ContainersRunning",
            "ContainersPaused", "ContainersStopped", "Images", "Driver", "DockerRootDir", "CgroupDriver",
            "CgroupVersion", "FirewallBackend": {"Driver"}, "KernelVersion", "OperatingSystem", "OSType",
            "Architecture", "NCPU", "MemTotal", "RegistryConfig": {"Mirrors", "InsecureRegistries" (hosts, then
            CIDRs)}, "Payload", "ProtocolVersion", "PythonVersion"}
``run``     {"image", "name"|null, "detach", "rm", "env": [str], "command": [str]|null,
             "entrypoint": [str]|null, "workdir"|null, "hostname"|null}
            -> {"id", "name", "image", "exit_code"|null}
            without detach: a "container" event {"id", "name"} once it started (the controller forwards signals
            to it: --sig-proxy), log events while the container runs, then the result with its exit code.
            A "created" event {"id"} comes once the container exists, before its start (the controller's
            --cidfile).  "pull": "always"|"missing"|"never"|null (missing; never of a missing image: NotFound
            "No such image: REF"), "platform": "os/arch[/variant]"|null (the host's own only: another is
            InvalidArgument, nothing pulled).
            A start that fails (here or in ``start``) is never InvalidArgument (the host was changed: exit 1, not
            2); with "rm" the container and its anonymous volumes are removed first, as docker's daemon does.
``ps``      {"all": bool, "filters": ["status=exited", "name=RE", "label=K[=V]", "ancestor=REF|ID", "exited=N",
             "id=PREFIX", "before=C", "since=C"], "last": int|null (-n; -l is 1), "size": bool}
            -> {"containers": [{"id", "name", "image", "image_id", "labels", "command", "created", "state",
                                "status", "exit_code", "ports", "mounts": [{"name", "driver"}] (a volume's
                                name and "local", a bind's source and ""), "networks": [names, sorted]}
                               + with size: "size_rw", "size_root_fs", "size"]}
            (one key's values ORed, keys ANDed; status/before/since and last imply all; unknown key InvalidArgument)
``logs``    {"container", "tail": int|null, "follow": bool, "timestamps": bool, "since": str|null,
             "until": str|null, "details": bool} -> {} after log events {"stream", "line", "time", "raw"?}
            (since/until: RFC 3339, unix seconds[.ns] or a Go duration before the host's now, as docker;
            details adds nothing: json-file logs without log-opts carry no extra attributes)
``create``  the ``run`` args minus detach -> {"id", "name", "image"} (state "created"; pulls a missing image)
Per-name results: start, stop, restart, kill, rm, pause, unpause, network_rm and volume_rm act on each name
            as its own operation (docker's way): a missing or refusing one fails alone. The result then has
            "results": [{"name", "id", "ok", "error": {"kind", "message"}|null}] (the names' order) next to its
            list of IDs that succeeded; with one name: no "results", its error is the op's error.
``start``   {"containers": [str], "attach": bool} -> {"started": [id]}; attach (one container): log events of
            this start's output until it exits, then {"started": [id], "exit_code": int}
``restart`` {"containers": [str], "time": int|null} -> {"restarted": [id]} (null: the container's stop_timeout, else 10)
``kill``    {"containers": [str], "signal": name|number (default "KILL")} -> {"killed": [id]}
            (a container not running: Conflict "cannot kill container: X: container ID is not running")
``wait``    {"containers": [str]} -> {"exited": [{"id", "exit_code"}]} (blocks without limit)
``rename``  {"container", "name"} -> {"id", "old_name", "name"} (clash: AlreadyExists, docker's message)
``inspect`` {"containers": [str], "type": "container"|"image"|null} -> {"containers": [docker's inspect object:
             Id, Created, Path, Args, State, Image, Name, RestartCount, Driver, Platform, HostConfig, GraphDriver,
             Mounts, Config, ...], "errors": [{"name", "kind", "message"}] when some were not found}
             (each name a container, else an image, as docker inspect; type keeps to one; none found: NotFound
             "No such object: x" / "No such container: x" / "No such image: x")
``top``     {"container", "ps_args": [ps option]} -> {"titles", "processes": [[str]]} (running only, else Conflict):
            the columns ps prints for those options (default -ef), rendered from /proc without a ps binary
            (-ef, -f, -e, aux, ax, -o/o/--format KEYWORD[,KEYWORD][=HEADER]); other options InvalidArgument with
            ps's wording, a format without pid "Couldn't find PID field in ps output" (docker's)
``diff``    {"container"} -> {"changes": [{"kind": "A"|"C"|"D", "path"}]} (docker's order)
``export``  {"container", "output": absolute path on the host, "force": bool} -> {"output", "size", "sha256"}
            (a tar of the merged filesystem; an existing output is AlreadyExists unless force)
``container_prune`` {} -> {"deleted": [id], "reclaimed": bytes}
``stop``    {"containers": [str], "time": int|null} -> {"stopped": [id]} (null: the container's stop_timeout, else 10)
``rm``      {"containers": [str], "force": bool, "volumes": bool} -> {"removed": [id]}
            (also removes the container's cgroup; a paused container is thawed before stop/kill signal it;
            "volumes" (rm -v): its anonymous volumes too, named ones stay)
resource args of ``run``/``create``/``update``: "memory", "memory_swap", "cpus", "cpu_shares", "pids_limit",
            "memory_reservation", "cpuset_cpus", "cpuset_mems", "blkio_weight", each null or a docker flag value
            as typed ("32m", "-1", "0.5", 512, "0-1"); ``run``/``create`` also "oom_kill_disable": bool (cgroup
            v1's memory.oom_control) and the block-IO lists "blkio_weight_device" (["/dev/x:WEIGHT"]),
            "device_read_bps", "device_write_bps" (["/dev/x:RATE"], RATE a size: 1mb), "device_read_iops",
            "device_write_iops" (["/dev/x:N"]): whole-disk block devices of the host (v1 blkio.throttle.*/
            blkio.weight, v2 io.max/io.weight or io.bfq.weight); bad: InvalidArgument naming the flag, before
            anything is pulled or changed. inspect's HostConfig shows Memory, MemorySwap, NanoCpus, CpuShares,
            PidsLimit, MemoryReservation, CpusetCpus, CpusetMems, OomKillDisable, BlkioWeight, BlkioWeightDevice
            [{Path, Weight}], BlkioDeviceReadBps/WriteBps/ReadIOps/WriteIOps [{Path, Rate}]; State.OOMKilled is
            true when the memory cgroup OOM-killed it.
host args of ``run``/``create`` (agent_payload/hostopts.py, values as typed, docker's checks and words):
            "extra_hosts" (--add-host host:ip|host=ip, ip may be host-gateway: the default bridge's gateway),
            "dns", "dns_search", "dns_options" (resolv.conf; on a user-defined network 127.0.0.11 stays the
            nameserver and "dns" are its upstreams), "tmpfs" (/path[:opts], noexec,nosuid,nodev unless opts say
            otherwise), "shm_size" (/dev/shm, default 64m), "ulimits" (name=soft[:hard]), "sysctls" (name=value,
            namespaced ones only; net.* refused with network host), "devices" (/dev/x[:/dev/y][:rwm]: the node
            made in the container's /dev and allowed in its device cgroup), "group_add" (names or GIDs). inspect:
            HostConfig ExtraHosts, Dns, DnsSearch, DnsOptions, Tmpfs, ShmSize, Ulimits, Sysctls, Devices,
            GroupAdd; "volumes_from" (CONTAINER[:ro|rw]: its volumes and binds; HostConfig.VolumesFrom), "links"
            (NAME[:ALIAS], legacy --link: "IP\tALIAS ID12 NAME" in /etc/hosts at start, the linked container
            running on the same network; HostConfig.Links), "mac_address" (the first endpoint's MAC; inspect
            Config.MacAddress); "expose" (below) is --expose too.
process args of ``run``/``create``: "labels": {name: value} (-l/--label-file, parsed by the controller; merged
            over the image's labels), "stop_signal": name|number|null (beats the image's STOPSIGNAL),
            "stop_timeout": seconds >= 0|null (inspect Config.StopTimeout), "init": bool|null (null: daemon.json
            "init", default false; true: a reaper is PID 1, inspect HostConfig.Init). --env-file is read by the
            controller and arrives as "env" entries. Every container gets Docker's device cgroup policy
            (--privileged: all devices).
isolation args of ``run``/``create``: "user", "cap_add": [str], "cap_drop": [str], "privileged", "read_only",
            "no_new_privileges": bool, and "seccomp": null|"builtin"|"unconfined"|profile JSON text (--security-opt
            seccomp=...; the controller reads a PROFILE.json as the docker CLI does and sends its content). null
            and "builtin" mean Docker's default profile (moby's default.json, compiled for the container's
            capabilities: unshare, mount, setns, bpf, keyctl, ... answer EPERM); "unconfined" and --privileged mean
            no filter; a profile is Docker's JSON format (bad: InvalidArgument naming it, before anything is pulled;
            SCMP_ACT_NOTIFY/listenerPath are refused). The filter holds for the container's processes and every
            ``exec``; only the native ABI passes it (i386/x32 and arm32 syscalls are killed). inspect
            HostConfig.SecurityOpt: ["no-new-privileges", "seccomp=unconfined"|"seccomp={...profile...}"].
``update``  {"containers": [str], + resource args (at least one)} -> {"updated": [id], "warnings": [str]}
            (persisted; applied live to running containers)
supervision args of ``run``/``create``: "restart": "no"|"always"|"on-failure[:N]"|"unless-stopped"|null (docker's
            checks; with "rm": InvalidArgument "Conflicting options: cannot specify both --restart and --rm").
            The shim restarts per policy with docker's back-off (100 ms doubling to 1 min, reset after a 10 s
            run); state "restarting" (ps "Restarting (CODE) N seconds ago"), inspect RestartCount and
            HostConfig.RestartPolicy {Name, MaximumRetryCount}. stop and kill (SIGKILL or the stop signal)
            cancel restarts until the next start; wait returns when a run ends, restarted or not. A policy other
            than "no" installs the boot hook (see ``boot``). ``update`` takes "restart" too.
            "health_cmd", "health_interval", "health_timeout", "health_start_period" (Go durations),
            "health_retries", "no_healthcheck": docker's flags over the image's HEALTHCHECK; the shim probes
            via exec; state.json/inspect State.Health {Status starting|healthy|unhealthy, FailingStreak, Log};
            ps "Up 5 seconds (healthy)" and the ``health=`` filter. "log_driver": "json-file"|"none",
            "log_opts": ["max-size=10m", "max-file=3", ...] (json-file options, docker's checks; daemon.json
            "log-driver"/"log-opts" are the defaults): the shim rotates <id>-json.log -> .1 -> .2; ``logs`` reads
            across rotated files (and -f follows a rotation); none: ``logs`` is FailedPrecondition.
``stats``   {"containers": [str] (empty: running ones), "all": bool} -> {"stats": [{"id", "name",
             "cpu_percent", "memory_usage", "memory_limit", "memory_percent", "net_rx", "net_tx",
             "block_read", "block_write", "pids"}]} (one sample; CPU % over 0.2 s; stopped: zeros; net_*: the
             container's network namespace's counters without lo, 0 on the host's network)
``pause``   {"containers": [str]} -> {"paused": [id]} (cgroup freezer; not running: Conflict
            "container ID is not running"; ps shows "Up ... (Paused)", inspect State.Status "paused")
``unpause`` {"containers": [str]} -> {"unpaused": [id]}
``exec``    {"container", "command": [str], "env": ["K=V"], "workdir", "user", "detach": bool,
            "privileged": bool} -> {"exit_code": int} after ``log`` events {"stream": "stdout"|"stderr", "line"}
            (one per line of output), or with ``detach`` {"pid": host pid} at once (reaped by the host's init).
            Joins the init's namespaces and cgroup; container env + ``env``; its WorkingDir/user/caps unless
            given; stdin /dev/null and no TTY unless -i/-t. Not running: Conflict "container ID is not running";
            paused: Conflict "container ID is paused, unpause the container before exec"; command missing: exit_code 127
            (126 not executable) with docker's message on stderr (with ``detach``: NotFound/FailedPrecondition).
            With "interactive": true (-i) and/or "tty": true (-t) see *Interactive ops* below; a TTY's initial
            size comes from "console_size": [rows, cols] (optional), the process gets TERM=xterm unless set.
``commit``  {"container", "repository": "REPO[:TAG]"|null, "author", "message", "changes": [Dockerfile line],
             "pause": bool (default true)} -> {"id", "repository"|null, "layer": digest|null, "diff_id", "size"}
            (a gzip layer of the container's upper dir: whiteouts -> .wh.<name>, opaque dirs -> .wh..wh..opq;
            config = the container's with changes applied (CMD ENTRYPOINT ENV EXPOSE HEALTHCHECK LABEL ONBUILD
            STOPSIGNAL USER VOLUME WORKDIR; others: InvalidArgument "<x> is not a valid change command");
            manifest kind as the parent's; untagged without repository; no changes: no layer, empty_layer history)
``build``   {"context": sha256 of <root>/build/contexts/<sha>.tar (uploaded first), "dockerfile": its path in
            that tar, "build_args": {K: V}, "target", "tags": [ref], "labels": {K: V}, "no_cache", "pull",
            "network": "default"|"none"|"host"|null, "quiet", "platform", "source_date_epoch": int|null, "rm" (true),
            "force_rm"} -> {"id", "tags", "steps", "cached"}; events: build {"stream": docker's classic builder
            text ("Step 2/5 : RUN ..", " ---> Using cache", " ---> <id>", RUN's output, "Successfully built ..")}.
            One image per step, found in the host's cache by parent image + run config (+ COPY/ADD sources'
            content); a Dockerfile error is InvalidArgument; a failing RUN is Conflict "The command '..'
            returned a non-zero code: N"; SOURCE_DATE_EPOCH fixes every created time and clamps layer mtimes.
``cp_in``   {"container", "path": dest in the container, "staging": <root>/tmp/cp-* tar uploaded by SFTP,
             "base": top entry name, "is_dir", "contents" (SRC ended in /.), "archive" (-a: keep uid/gid, else
             root:root)} -> {"entries", "path"}; the staging file is always deleted. Docker's cp rules; a missing
            container path is NotFound "Could not find the file P in container C".
``cp_out``  {"container", "path", "follow_link"} -> {"staging", "base", "type": "dir"|"file", "size", "bytes"}:
            a tar (top entry "base") in a new <root>/tmp/cp-*.tar staging file the caller fetches and deletes.
``export_out`` {"container"} -> {"staging", "size", "sha256"}: ``export``'s tar in a new <root>/tmp/cp-*.tar
            staging file the caller fetches (``fleet export`` to stdout) and deletes.
``save``    {"images": [ref]} -> {"images": [{"id", "config": JSON text, "manifest": JSON text, "media_type",
            "tags": [[full, familiar]], "layers": [{"diff_id", "digest", "size", "mediaType", "path": the blob
            under <root>}]}]}: what ``docker save`` needs; the controller fetches the (compressed) blobs by SFTP
            and writes the docker-archive (layer.tar decompressed, checked against its diff_id) or OCI layout
            itself. docker's name rules: REPO takes every tag of REPO, REPO:TAG that tag, an ID or digest
            reference no tag.
``load_probe`` {"diff_ids": [str]} -> {"present": [diff_id]}: the layers whose blob this host holds (from its
            images), which ``load`` then needs no copy of.
``load``    {"images": [{"config": the config JSON text, "tags": [REPO:TAG], "layers": [{"diff_id",
            "staging": <root>/tmp/cp-* uploaded by SFTP, or null for a layer ``load_probe`` reported}]}]} ->
            {"loaded": [{"id", "tags", "renamed": [{"tag", "old"}]}], "layers_loaded": n}: every staged layer is
            decompressed and hashed first (a mismatch with its diff_id: InvalidArgument, nothing stored), then
            unpacked by the safe applier and stored as a gzip blob (an unsafe entry: InvalidArgument "refusing
            layer entry ...", and the snapshots and blobs this image made are removed); tags are moved as docker
            load moves them. Every staging file named is deleted.
``import``  {"staging": <root>/tmp/cp-* | null, "url": http(s) URL fetched by the host | null, "repository":
            REPO[:TAG] | null, "message", "changes": [Dockerfile line]} -> {"id", "tags", "renamed"}: the tar
            (plain, gzip, bzip2 or xz) as a one-layer image; config = docker's empty Config with the changes
            (commit's list), history [{created, comment}]. The staging file is deleted.
``build_context`` {"sha256": hex digest of a build context tar, "staging": <root>/tmp/cp-*.tar or absent}
            -> {"present": bool, "size", "kept"}: without "staging", whether <root>/build/contexts/<sha256>.tar is
            there (then its mtime is refreshed: contexts in use stay); with it, the uploaded staging tar is checked
            against the digest (a mismatch is InvalidArgument, nothing kept) and renamed into place (0600, dir
            0700); the staging file is always deleted; only the newest CONTEXTS_KEPT contexts are kept.

volume args of ``run``/``create``: "volumes": [-v value] ("/ctr" anonymous, "NAME:/ctr[:ro|rw][,nocopy]",
            "/host:/ctr[:ro]", a missing /host created at start), "mounts": [--mount value]
            ("type=bind|volume|tmpfs,source=,target=[,readonly][,volume-nocopy][,tmpfs-size=][,tmpfs-mode=]",
            a missing bind source is InvalidArgument); the image's VOLUMEs not covered become anonymous volumes.
            Parse errors are InvalidArgument before anything is pulled or created (runc's rules: no target
            "/", "/proc" or inside /proc but lxcfs's files; "-v :/x" is "empty section between colons"; a
            mount resolved into /proc fails the start). An empty volume mounted over
            image content is first filled with it (copy-up, unless nocopy). Targets resolve inside the root
            (symlinks never lead out). inspect: Mounts [{Type, Name, Source, Destination, Driver, Mode, RW,
            Propagation}], HostConfig.Binds/Mounts; ps filter "volume=NAME|/ctr"; ``--rm`` removes anonymous ones.
``volume_create``  {"name"|null, "driver": "local", "labels": {k: v}, "options": {}} -> docker's volume object
            {CreatedAt, Driver, Labels, Mountpoint, Name, Options, Scope} (an existing name is returned as is)
``volume_ls``      {"filters": ["name=", "driver=", "label=K[=V]", "dangling=true|false"]}
            -> {"volumes": [{"name", "driver", "labels", "mountpoint", "in_use"}]}
``volume_inspect`` {"volumes": [name]} -> {"volumes": [docker's volume object]}, "errors" per name not found
``volume_rm``      {"volumes": [name], "force": bool} -> {"removed": [name]} (used by any container, running or
            not: Conflict "remove NAME: volume is in use - [ID, ...]"; missing: NotFound unless force)
``volume_prune``   {"all": bool} -> {"removed": [name], "reclaimed": bytes} (unused anonymous volumes; all: named too)
``events``   {"since"|null, "until"|null (docker's time values, as logs'), "filters": ["type=", "event=",
            "container=", "image=", "label=K[=V]", "network=", "volume="], "follow": bool} -> {} with one "event"
            emit per event, docker's message {"Type", "Action", "Actor": {"ID", "Attributes"}, "scope", "time",
            "timeNano"} (+ "status", "id", "from"), oldest first, from the host's journal <root>/events/events.jsonl
            (agent_payload/events.py: bounded, rotated, 0600; container create/start/die/kill/oom/health_status:
            X/destroy, image pull/delete, network connect/disconnect, volume create/destroy).  follow: the events
            since "since" (null: none), then each new one until "until" passes or the session ends (a long op).
            An unknown filter key: InvalidArgument "Invalid filter 'KEY'".
run/create network args: "network" (null: the default "bridge", or none when daemon.json "bridge": "none";
            "host", "none", "container:<ref>", or a user-defined network's name: unknown is InvalidArgument),
            "publish": [docker's -p values], "publish_all": bool (-P: EXPOSE), "network_aliases": [str], "ip": str
            (the last two on user-defined networks only). Checked before anything is pulled; a host port in use
            is Conflict "... port is already allocated" at start, before the container runs (an address the
            host lacks: FailedPrecondition "... bind: cannot assign requested address"). ``run``'s result adds
            "ports" (docker's PORTS text); ps rows carry it; inspect has NetworkSettings and PortBindings.
``network_create``  {"name", "driver": "bridge", "subnet"|null, "gateway"|null, "internal", "labels"} -> {"id",
            "name"} (subnet default: the first free pool of daemon.json default-address-pools; overlapping another
            network or a host route: Conflict "... Pool overlaps ..."; loopback, link-local, multicast, 0.0.0.0/8
            or reserved: InvalidArgument; name taken: Conflict)
``network_ls``      {"filters": ["name=", "id=", "driver=", "label=", "type=custom|builtin"]} -> {"networks":
            [{"id", "name", "driver", "scope", "subnet", "internal", "labels"}]} (bridge, user networks, host, none)
``network_inspect`` {"networks": [ref]} -> {"networks": [docker's network object with Containers]}, "errors" per
            name not found (each name its own lookup, as docker's inspect; none found: the first error)
``network_rm``      {"networks": [ref]} -> {"removed": [name]} (predefined or with endpoints: Conflict)
``network_prune``   {} -> {"removed": [name]}
``network_connect`` {"network", "container", "aliases", "ip"} -> {"network", "container", "ip"|null} (live for a
            running container; recorded for its next start)
``network_disconnect`` {"network", "container"} -> {"network", "container"}
``port``    {"container", "port": "80[/tcp]"|null} -> {"id", "name", "backend", "ports": [{"container_port",
            "proto", "host_ip", "host_port"}], "warnings": [str]} (a port not published: NotFound docker's "No
            public port '80/tcp' published for NAME"; warnings when ufw/firewalld would be bypassed)

compose args of ``run``/``create`` (``fleet deploy``): "healthcheck": docker's Healthcheck object {"Test": ["CMD",
            ...]|["CMD-SHELL", cmd]|["NONE"], "Interval", "Timeout", "StartPeriod" (ns), "Retries"} used in place of
            the --health-* flags (docker's checks; merged with the image's HEALTHCHECK as docker does); "expose":
            ["80", "53/udp", "8000-8002/tcp"] added to the image's ExposedPorts (-P publishes them too);
            "publish_staged": bool (deploy's start-first swap): the published bindings are recorded (inspect)
            but no host socket is bound and nothing routes to them until ``Runtime.handover_ports`` moves the
            host ports over from the live container in one firewall transaction.
Deploy ops (agent_payload/deploy/; containers carry compose's labels com.docker.compose.project/.service/
            .config-hash plus fleet.deploy.image-digest and fleet.deploy.spec; the live one is named
            {project}-{service}-1, retired ones {project}-{service}-1.{id12}, their "retired since" kept in
            <root>/deploys/<project>.json):
``image_resolve`` {"image"} -> {"reference", "digest", "local": bool}: the manifest digest the tag points at in the
            registry now (mirrors and credentials as pull; nothing stored); registry unreachable and the image
            present with a repo digest: that one, "local": true
``deploy_lock`` {"project", "deploy_id", "holder": "user@host", "action": "acquire"|"release"} -> {"acquired":
            true, "took_over": {"holder", "since", "deploy_id"}|null} | {"released": bool}. Held until released or
            until the process carrying the acquiring SSH connection (nearest sshd ancestor; pid + start time) is
            gone (then taken over). Another live holder: Conflict "project P on this host is being deployed by
            HOLDER since TIME (ID)"; the same deploy_id again: ok
``service_ls`` {"project"|null} -> {"services": [{"id", "name", "project", "service", "config_hash", "image",
            "image_digest", "spec" (parsed fleet.deploy.spec)|null, "status" (ps text), "state", "health"|null,
            "restart_count", "started_at", "created", "retired" (RFC 3339)|null}]}: every container with compose labels
``service_swap`` {"project", "service", "deploy_id", "create": create args, "extra_networks": [[name, [alias]]],
            "order": "stop-first"|"start-first", "monitor": s (5), "probe": "http://[HOST]:PORT/PATH"|"tcp://[HOST]:PORT"
            |null, "timeout": s (300), "stop_grace_period": s (10), "keep": N (2), "journal": {"controller"}}
            -> {"result": "updated"|"rolled_back", "id", "name" (the live container now), "from": {"id",
            "config_hash", "image_digest"}|null, "to": {...}, "reason"|null, "logs": [last 20 lines of the failed
            container], "warnings": [str], "pruned": [names], "action": "swap"}; events "phase" {"phase": "creating"
            |"starting"|"waiting"|"switching"|"draining"|"done"|"rolling-back"|"rolled-back", "id", "reason"} (and
            pull's "progress" when the image is missing). The caller must hold deploy_lock (else FailedPrecondition).
            Run by a detached worker (fork, setsid, stdio /dev/null) reporting in <root>/deploys/work/*.jsonl: the SSH
            session dying changes nothing, it finishes or reverts by itself; the same request again follows it.
            Gate: with a healthcheck, healthy (unhealthy, exit or restart fail at once), else running with no
            restart for "monitor" s; plus the probe to the NEW container's own address (a published host port
            resolved to its container port); all within "timeout"; with "complete" (a one-shot service others
            depend on with service_completed_successfully) instead: it exits 0 within "timeout". Failure:
            the new container removed, the old one serving again. stop-first: stop old, start new;
            start-first: new started with staged ports, gated, Runtime.handover_ports, then the old one stopped
            ("draining", stop_grace_period). Keeps "keep" retired versions (older ones removed with their
            anonymous volumes); a journal line per swap
``service_rollback`` service_swap's args without "create"/"extra_networks" -> the same result ("action":
            "rollback"): the most recently retired container back as the live one through the same gate (on
            failure it stays retired, its ports unstaged); none: NotFound "no previous version of service S".
            start-first with published ports: the target starts with its ports staged (Runtime.stage_ports) and
            takes them over from the live one after its gate
``service_down`` {"project", "volumes": bool} -> {"removed": [names], "networks": [names]}: every container of the
            project (live and retired; with volumes their anonymous volumes) and its networks (label
            com.docker.compose.project)
``deploy_journal`` {"project"|null, "service"|null, "last": N|null} -> {"entries": [{"time", "controller",
            "deploy_id", "project", "service", "from": {"config_hash", "image_digest"}|null, "to", "result",
            "action", "reason"}]} oldest first, from <root>/deploys/journal.jsonl (0600, O_APPEND + fsync per line)
``check`` {"services": [{"project", "service", "config_hash"|null, "image_digest"|null}], "thresholds":
            {"disk_warn_pct" (20), "disk_crit_pct" (10), "log_warn_bytes" (100 MiB), "log_crit_bytes" (1 GiB)},
            "probes": [{"name", "type": "http", "url", "status": code|[codes] (200), "body": regex|null, "timeout": s
            (10)} | {"name", "type": "tcp", "host" ("127.0.0.1"), "port", "timeout"} | {"name", "type": "exec",
            "command": [argv], "container": name|null (the host), "timeout"}], "counters": bool (true)}
            -> {"checks": [{"check", "status": "OK"|"WARNING"|"CRITICAL"|"UNKNOWN", "detail", "perfdata": [{"label",
            "value" (null: "U"), "uom", "warn", "crit" (a number, or the range a plugin gave when it is more: "10:",
            "@5:10")|null, "min", "max"}]}], "metrics": {"containers": [{"name", "project", "service", "restarts",
            "oom_kills", "health", "state"}], "disk": [{"path", "free_bytes", "size_bytes"}]}} (agent_payload/check/).
            Checks: "payload"; "disk:/" and "disk:<root>" (free % of f_bavail under warn/crit; perfdata used_pct with
            upper thresholds, as check_disk); "service:P/S" per desired service (its containers
            {P}-{S}-N: none CRITICAL "missing", exited/created CRITICAL, restarting/paused WARNING, drifted WARNING
            naming config_hash/image_digest, unhealthy CRITICAL, restarted or OOM-killed since the last check
            WARNING); "container:NAME" for other containers unhealthy (CRITICAL) or restarted/OOM-killed since the
            last check (WARNING); "log:NAME" when the json log with its rotated files is over a threshold;
            "probe:NAME": http (no redirects followed, no proxy; refused, timeout, other status or body not
            matching: CRITICAL), tcp (refused, timeout: CRITICAL), exec in the container (as ``exec``) or on the
            host: the Nagios plugin convention (exit 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN, other codes UNKNOWN,
            first stdout line = detail, perfdata after "|"), a timeout CRITICAL (Nagios' default), not runnable
            UNKNOWN. "Since the last check": last-seen restart counts and OOM kills (cgroup memory.events /
            memory.oom_control oom_kill, and the shim's OOMKilled) per container id in <root>/checks/counters.json
            (0600, atomic, under a flock), written only with "counters" true. Bad input (a threshold, a probe):
            InvalidArgument naming it; keys a nested object does not know are ignored

Output bytes (additive, same PROTOCOL_VERSION; the payload hash keeps both sides on the same code): a ``log``
event (``logs``, ``exec``, attached ``run``, ``start`` with "attach") carries one line of the container's output;
"line" is its text and, when those bytes are not valid UTF-8, "raw" holds them exactly (base64), so the
controller writes what the container wrote (``log_line`` builds the data, ``log_bytes`` reads it back).  The
json-file store keeps docker's format ("log" as text, invalid UTF-8 as U+FFFD, as dockerd writes it) plus a
"raw" key (base64 of the exact bytes) on just those lines; docker's own readers ignore keys they do not know,
and a log written before this has no "raw" and reads as before.

Interactive ops (additive, same PROTOCOL_VERSION).  When an op's args ask for it (``exec`` with
"interactive"/"tty"; ``attach``; attached ``run`` with "tty"/"open_stdin"; ``start`` with "attach_stdin";
the other ops never read past the request), the payload keeps reading its stdin
after the request line (the request must then be ONE line), one frame per line::

    {"type": "stdin", "data": "<base64>"}       bytes for the process's stdin (or the TTY's input)
    {"type": "stdin", "eof": true}              close the process's stdin (no effect on a TTY)
    {"type": "resize", "rows": int, "cols": int}   TIOCSWINSZ on the TTY (ignored without one)

and the output of such an op comes as raw bytes, not split into lines (instead of ``log`` events)::

    {"type": "event", "event": "output", "data": {"stream": "stdout"|"stderr", "data": "<base64>"}}

(with a TTY everything is "stdout").  EOF on the payload's stdin without an eof frame counts as one; the
controller leaving (its SSH session gone) ends the op as for ``logs -f``.  Bad frames are ignored.

``attach``  {"container", "stdin": bool (default true), "detach_keys": str|null (default "ctrl-p,ctrl-q")}
            -> {"id", "exit_code"|null, "detached": bool}: output events of the running container until it
            exits (exit_code) or the detach keys arrive on stdin (detached, the container keeps running).
            Only containers created with "tty" or "open_stdin" have an attach socket for stdin; any other
            running container streams its output only.
run/create args "tty": bool (-t), "open_stdin": bool (-i), "console_size": [rows, cols]|null (the TTY's
            first size); a TTY container gets TERM=xterm unless its env sets TERM.  ``run`` with tty or
            open_stdin and without detach is attached as ``attach`` is ("detach_keys"; stdin frames only with
            open_stdin, and then StdinOnce: the eof frame closes the container's stdin) and its result adds
            "detached"; ``start`` with "attach" and "attach_stdin": true (+ "detach_keys") likewise, its
            result being {"started": [id], "exit_code", "detached"}.
"""

PROTOCOL_VERSION = 1

# Exit status the remote launcher uses when the payload file for the requested hash is absent: the
# controller uploads the payload and runs the request again.  Chosen outside the ranges shells use.
EXIT_PAYLOAD_MISSING = 97

#: ``version``'s Arch on both sides: Go's name of a machine (docker's OS/Arch), else the machine as uname has it.
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386"}

#: The fixed set of error kinds (after containerd's errdefs).  Anything unexpected is "Internal".
ERROR_KINDS = (
    "InvalidArgument",  # bad input: reference, flag value, unknown option
    "NotFound",  # no such container / image / file
    "AlreadyExists",  # name clash
    "FailedPrecondition",  # wrong state, protocol mismatch, missing kernel feature, permission
    "Conflict",  # in use / busy
    "Unavailable",  # registry or network down, timeout
    "Internal",  # a bug: details carry the traceback
)

def request(op, args, payload_sha):
    """Build a request object for ``op`` with ``args``."""
    return {"protocol": PROTOCOL_VERSION, "payload": payload_sha, "op": op, "args": dict(args or {})}


def event(name, data):
    """Build an event line object."""
    return {"type": "event", "event": name, "data": data}


def result_ok(data):
    """Build a successful final result object."""
    return {"type": "result", "ok": True, "data": data}


def result_error(kind, message, errno=None, details=None):
    """Build a failed final result object; ``kind`` must be one of ``ERROR_KINDS``."""
    if kind not in ERROR_KINDS:
        kind = "Internal"
    return {"type": "result", "ok": False,
            "error": {"kind": kind, "message": message, "errno": errno, "details": details}}


# ---- interactive frames (controller -> payload after the request line) and raw output events

def stdin_frame(data):
    """A frame carrying ``data`` (bytes) for the process's stdin."""
    import base64
    return {"type": "stdin", "data": base64.b64encode(data).decode("ascii")}


def stdin_eof():
    """The frame that closes the process's stdin."""
    return {"type": "stdin", "eof": True}


def resize_frame(rows, cols):
    """The frame that sets the TTY's window size."""
    return {"type": "resize", "rows": int(rows), "cols": int(cols)}


def output_event(stream, data):
    """An ``output`` event with raw bytes ``data`` of ``stream`` ("stdout" or "stderr")."""
    import base64
    return event("output", {"stream": stream, "data": base64.b64encode(data).decode("ascii")})


def decode_frame(line):
    """Parse one frame line into ("stdin", bytes) | ("eof", None) | ("resize", (rows, cols)); None if invalid."""
    import base64
    import binascii
    import json
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("type") == "stdin":
        if obj.get("eof") is True:
            return ("eof", None)
        data = obj.get("data")
        if not isinstance(data, str):
            return None
        try:
            return ("stdin", base64.b64decode(data.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
    if obj.get("type") == "resize":
        rows, cols = obj.get("rows"), obj.get("cols")
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF for v in (rows, cols)):
            return ("resize", (rows, cols))
    return None


def log_line(stream, raw, time=None):
    """The data of a ``log`` event for one line's bytes ``raw``: "line" is its text (U+FFFD for bytes that are
    not UTF-8, as docker's json-file) and, only when it is not UTF-8, "raw" carries the exact bytes in base64."""
    try:
        data = {"stream": stream, "line": raw.decode("utf-8")}
    except UnicodeDecodeError:
        import base64
        data = {"stream": stream, "line": raw.decode("utf-8", "replace"),
                "raw": base64.b64encode(raw).decode("ascii")}
    if time is not None:
        data["time"] = time
    return data


def log_bytes(data):
    """The exact bytes of a ``log`` event's data: its "raw" (base64) when there, else its "line" as UTF-8."""
    raw = data.get("raw")
    if isinstance(raw, str):
        import base64
        import binascii
        try:
            return base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            pass
    line = data.get("line")
    return line.encode("utf-8", "replace") if isinstance(line, str) else b""


def decode_output(data):
    """(stream, bytes) of an ``output`` event's data; raises ValueError when it is malformed."""
    import base64
    stream = data.get("stream")
    if stream not in ("stdout", "stderr") or not isinstance(data.get("data"), str):
        raise ValueError("malformed output event")
    return stream, base64.b64decode(data["data"].encode("ascii"))
