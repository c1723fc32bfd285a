"""Container lifecycle: the Runtime API (create, start, wait, list, logs, stop, kill, ...) over on-disk records."""

import os
import select
import shutil
import signal
import time

from .. import errors, events
from ..state import store
from . import inspect as inspectmod
from . import logs as logmod
from . import health, names, process, reaper, records, resolver, resources, restart, rootfs, shim, states, status
from . import volumes as volumes_mod
from .spec import ContainerSpec, check_name, signal_number

START_TIMEOUT = 90.0
POLL = 0.05
KILL_GRACE = 10.0
# mountpoints rootfs.setup creates when the image lacks them; docker's init layer hides these from diff
INIT_PATHS = frozenset(("/proc", "/sys", "/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"))


class Runtime:
    """Daemonless container runtime of one host; state lives under ``paths``; shims are forked (shim.launch)."""

    def __init__(self, paths):
        self.paths = paths

    # ------------------------------------------------------------ create / start

    def create(self, spec, extra=None):
        """Validate ``spec``, allocate ID and name, prepare the container dir; returns the record ("created").

        ``extra`` adds informational keys to config.json that the spec does not model (e.g. the image's
        ``cmd``/``entrypoint`` as the user saw them, for ``inspect``); spec fields always win.
        """
        if not isinstance(spec, ContainerSpec):
            spec = ContainerSpec.from_dict(spec)
        spec.validate()
        for d in spec.lowerdirs:
            if not os.path.isdir(d):
                raise errors.NotFound("layer directory not found: {}".format(d))
        os.makedirs(self.paths.containers, exist_ok=True)
        with records.names_lock(self.paths):
            taken = {}
            for cid in records.list_ids(self.paths):
                cfg = store.read_json(records.Layout(self.paths, cid).config) or {}
                taken[cfg.get("name")] = cid
            name = spec.name
            if name is not None and name in taken:
                raise errors.AlreadyExists(
                    'Conflict. The container name "/{}" is already in use by container "{}". You have to remove '
                    '(or rename) that container to be able to reuse that name.'.format(name, taken[name]))
            retry = 0
            while name is None or name in taken:
                name = names.random_name(retry)
                retry += 1
            vols = volumes_mod.Volumes(self.paths)
            cid = records.new_id()
            while os.path.exists(self.paths.container_dir(cid)):
                cid = records.new_id()
            layout = records.Layout(self.paths, cid)
            made = []
            try:
                os.mkdir(layout.dir, 0o710)
                # names anonymous volumes, creates missing named ones; the dir lists them first, so that if we
                # are killed before config.json, whoever reaps the dir removes them too (reaper.reap)
                spec.mounts, made = vols.resolve(spec.mounts, pending=layout.pending_volumes)
                config = dict(extra or {})
                config.update(spec.to_dict())
                # docker: --network host takes the host's name (Config.Hostname too) unless --hostname is given
                default_name = os.uname().nodename if spec.network == "host" else cid[:12]
                config.update(id=cid, name=name, hostname=spec.hostname or default_name, created=records.format_ns())
                rootfs.prepare(layout, spec.lowerdirs, config["hostname"], config)
                records.write_state(self.paths, cid, records.initial_state())
                store.write_json_atomic(layout.config, config)  # last: the container now exists
                if made:
                    os.unlink(layout.pending_volumes)
            except BaseException:
                shutil.rmtree(layout.dir, ignore_errors=True)
                vols.discard(made)
                raise
        events.container(self.paths, "create", config)
        records.gc_tombstones(self.paths)
        reaper.reap(self.paths)
        return records.make_record(self.paths, config, records.initial_state())

    def start(self, ref):
        """Start the container's shim and init; returns the record ("running") or raises the init's error.

        A ``--rm`` container whose start fails is removed with its anonymous volumes (docker's daemon does).
        """
        cid = self._resolve(ref)
        try:
            return self._start(cid)
        except errors.AgentError:
            config = store.read_json(records.Layout(self.paths, cid).config) or {}
            state = store.read_json(records.Layout(self.paths, cid).state) or {}
            if config.get("auto_remove") and state.get("status") not in ("running", "restarting"):
                try:
                    self.remove([cid], force=True, volumes=True)
                except errors.AgentError:
                    pass  # the start's error is the one to report; ps -a shows what is left
            raise

    def _start(self, cid):
        with records.container_lock(self.paths, cid):
            config = records.read_config(self.paths, cid)
            state = reaper.reconcile(self.paths, cid, records.read_state(self.paths, cid))
            if state["status"] in ("running", "restarting"):
                return records.make_record(self.paths, config, state)  # docker: already started, nothing to do
            reaper.destroy_cgroup(cid)  # a dead shim's leftover: the new shim makes a fresh one
            try:
                volumes_mod.prepare_bind_sources(config.get("mounts") or [])  # -v /host:/ctr: docker makes /host
            except OSError as exc:
                raise errors.from_oserror(exc)
            msg = self._launch_shim(cid)
            if msg.get("type") != "started":
                state.update(exit_code=128, error=msg.get("message"))
                records.write_state(self.paths, cid, state)
                # the request was valid: what failed is this container on this host (an address the host
                # lacks, a user missing from its /etc/passwd), never InvalidArgument ("bad input", exit 2)
                raise errors.from_wire(msg, "failed to start container {}".format(cid), checked=True)
            state = records.move(
                self.paths, cid, state, states.RUNNING, pid=msg["pid"], pid_start=msg["pid_start"],
                shim_pid=msg["shim_pid"], shim_start=msg["shim_start"], started_at=records.format_ns(),
                exit_code=None, error=None, oom_killed=False, paused=False, health=health.initial(config),
                network_settings=msg.get("network_settings"), **restart.fresh_start_fields())
            # under the container lock: the shim records the run's "die" under it too, so "start" comes first
            events.container(self.paths, "start", config)
        return records.make_record(self.paths, config, state)

    def _launch_shim(self, cid):
        """Fork the shim (shim.launch) and read its one handshake answer (see shim.py for the diagram)."""
        layout = records.Layout(self.paths, cid)
        try:
            launcher, r = shim.launch(self.paths, cid)
        except OSError as exc:
            raise errors.FailedPrecondition("cannot fork the container's shim: {}".format(exc))
        try:
            ready, _, _ = select.select([r], [], [], START_TIMEOUT)
            msg = process.recv(r) if ready else {"type": "error", "kind": "Unavailable",
                                                 "message": "no answer from the shim in {:.0f}s".format(START_TIMEOUT)}
        finally:
            os.close(r)
            _, status = os.waitpid(launcher, 0)
        if msg is None:
            msg = {"type": "error", "kind": "Internal",
                   "message": "shim exited without an answer (launcher status {}): {}".format(
                       status, _tail(layout.shim_log))}
        return msg

    # ------------------------------------------------------------ queries

    def _resolve(self, ref):
        """Full ID for a full ID, a name, or a unique ID prefix (Docker's order)."""
        return resolver.resolve(self.paths, ref)

    def lookup(self, ref):
        """The record of one container (state reconciled if its shim died)."""
        return resolver.lookup(self.paths, ref)

    def _load(self, cid, ref):
        return resolver.load(self.paths, cid, ref)

    def all_records(self):
        """Every container's record, newest first (what killed payloads left behind is reaped first)."""
        reaper.reap(self.paths)
        recs = []
        for cid in records.list_ids(self.paths):
            try:
                config, state = reaper.load(self.paths, cid)
            except errors.NotFound:
                continue  # removed while we were listing
            recs.append(records.make_record(self.paths, config, state))
        recs.sort(key=lambda rec: rec["created"], reverse=True)
        return recs

    def list(self, all=False, filters=None, last=None, size=False):
        """``ps`` rows, newest first; only running containers unless ``all``.

        ``filters``: ``-f`` strings or a ``status.PsFilters``; ``last`` (``-n``, > 0) keeps the N newest
        matching containers in any state; ``size`` adds ``size_rw`` (bytes in the container's upper dir).
        """
        if not isinstance(filters, status.PsFilters):
            filters = status.PsFilters(filters or [], resolve=self.lookup)
        if last is not None and (not isinstance(last, int) or isinstance(last, bool)):
            raise errors.InvalidArgument("last must be an integer")
        limit = last if last is not None and last > 0 else None
        show_stopped = all or limit is not None or filters.shows_stopped()
        rows = []
        now = time.time_ns()
        for rec in self.all_records():
            if limit is not None and len(rows) >= limit:
                break
            rec = resources.present(rec)
            alive = rec["status"] in ("running", "paused", "restarting")
            if (not alive and not show_stopped) or not filters.match(rec):
                continue
            row = status.ps_row(dict(rec, status="running") if rec["status"] == "paused" else rec, now)
            if rec["status"] == "paused":
                row.update(state="paused", status=row["status"] + " (Paused)")
            if size:
                row["size_rw"] = _changes().tree_size(records.Layout(self.paths, rec["id"]).diff)
            rows.append(row)
        return rows

    def _final_state(self, cid):
        """(state, exists): the current state, or a tombstone's for an auto-removed container."""
        try:
            return reaper.load(self.paths, cid)[1], True
        except errors.NotFound:
            tomb = records.tombstone(self.paths, cid)
            if tomb is None:
                raise
            return tomb[0], False

    def wait(self, ref, timeout=None):
        """Block until the container's current run has ended; returns its exit code (-1 if unknown).

        As docker's wait ("not-running"): a run that ends in a restart (restart policy) also ends the wait.
        """
        cid = self._resolve_or_tombstone(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002  # backs off to POLL: a container that just exited is noticed within milliseconds
        first = self._final_state(cid)[0].get("finished_at")
        while True:
            state, _ = self._final_state(cid)
            if state["status"] == "exited":
                return state["exit_code"]
            if state["status"] in ("running", "restarting") and state.get("finished_at") not in (None, first):
                code = state.get("exit_code")  # restarting; once running again the last run's is kept apart
                return code if code is not None else state.get("last_exit_code")
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.Unavailable("timed out waiting for container {}".format(cid))
            time.sleep(delay)
            delay = min(delay * 2, POLL)

    def resolve(self, ref):
        """Full ID of a container, or of one auto-removed moments ago (for ``wait``/``logs`` of ``run --rm``)."""
        return self._resolve_or_tombstone(ref)

    def _resolve_or_tombstone(self, ref):
        try:
            return self._resolve(ref)
        except errors.NotFound:
            if records.ID_RE.match(ref) and records.tombstone(self.paths, ref) is not None:
                return ref
            raise

    def log_offset(self, ref):
        """Current size of the container's log: where ``logs(offset=...)`` picks up output written after now."""
        try:
            return os.stat(records.Layout(self.paths, self._resolve(ref)).log).st_size
        except FileNotFoundError:
            return 0

    def logs(self, ref, tail=None, follow=False, timestamps=False, since=None, until=None, offset=None):
        """Generator of ``{"stream", "line", "time"}``; with ``follow`` it ends when the container exits.

        ``since``/``until`` are epoch nanoseconds; ``offset`` a byte offset from ``log_offset``.
        The reference is resolved at call time (NotFound raises here, not at the first ``next``).
        """
        cid = self._resolve_or_tombstone(ref)
        try:
            config, _ = reaper.load(self.paths, cid)
            path = records.Layout(self.paths, cid).log
        except errors.NotFound:
            config, path = {}, records.tombstone(self.paths, cid)[1]
        if (config.get("log_config") or {}).get("Type") == "none":
            raise errors.FailedPrecondition("configured logging driver does not support reading")
        if tail is not None and (not isinstance(tail, int) or tail < 0):
            raise errors.InvalidArgument("tail must be a non-negative integer")

        def running():
            try:
                return self._final_state(cid)[0]["status"] == "running"
            except errors.NotFound:
                return False

        try:
            files = logmod.open_all(path)  # opened now: an auto-removal that follows only moves the file
        except FileNotFoundError:
            return iter(())
        return logmod.read(files, tail=tail, follow=follow, timestamps=timestamps, running=running, since=since,
                           until=until, offset=offset, follow_path=path)

    # ------------------------------------------------------------ stop / remove

    def _stop_one(self, cid, timeout, signum):
        """Signal the init, wait ``timeout`` s, then SIGKILL and wait for the shim to record the exit."""
        state = restart.mark_stopped(self.paths, cid)  # before the signal: the shim must not restart it
        if state["status"] not in ("running", "restarting"):
            return
        resources.thaw_if_paused(self.paths, cid)
        if state["status"] == "running":
            events.container_of(self.paths, cid, "kill", signal=signum)
            records.signal_process(state["pid"], state.get("pid_start"), signum)
        for grace, sig in ((timeout, signal.SIGKILL), (KILL_GRACE, None)):
            deadline = time.monotonic() + max(0, grace)
            while time.monotonic() < deadline:
                state = self._final_state(cid)[0]
                if state["status"] not in ("running", "restarting"):
                    return
                time.sleep(POLL)
            if sig is not None:
                events.container_of(self.paths, cid, "kill", signal=int(sig))
                records.signal_process(state["pid"], state.get("pid_start"), sig)
        raise errors.Unavailable("container {} did not exit after SIGKILL".format(cid))

    def stop(self, refs, time=None):
        """Stop containers (stop_signal, then SIGKILL after ``time`` s); already stopped is fine. Returns IDs.

        ``time`` None: each container's --stop-timeout, else 10 s (docker).
        """
        if isinstance(refs, str):
            refs = [refs]
        cids = [self._resolve(ref) for ref in refs]
        for cid in cids:
            config = records.read_config(self.paths, cid)
            try:
                grace = time if time is not None else config.get("stop_timeout")
                self._stop_one(cid, 10 if grace is None else grace, signal_number(config.get("stop_signal", "SIGTERM")))
            except errors.NotFound:
                pass  # auto-removed once it exited: stopped
        return cids

    def remove(self, refs, force=False, volumes=False):
        """Remove containers; a running one needs ``force`` (SIGKILL first); ``volumes`` (rm -v) also removes
        their anonymous volumes. Returns IDs."""
        if isinstance(refs, str):
            refs = [refs]
        cids = [self._resolve(ref) for ref in refs]
        for cid in cids:
            _, state = reaper.load(self.paths, cid)
            if state["status"] in ("running", "restarting"):
                if not force:
                    raise errors.Conflict(
                        "You cannot remove a running container {}. Stop the container before attempting removal "
                        "or force remove".format(cid))
                try:
                    self._stop_one(cid, 0, signal.SIGKILL)
                except errors.NotFound:
                    pass
                deadline = time.monotonic() + KILL_GRACE  # the shim has recorded the exit; let it finish
                while records.is_alive(state.get("shim_pid"), state.get("shim_start")) and \
                        time.monotonic() < deadline:
                    time.sleep(0.01)
            with records.container_lock(self.paths, cid):
                config = store.read_json(records.Layout(self.paths, cid).config) or {}
                mounts = config.get("mounts")
                if volumes:  # first: a kill after them leaves the container, which the next rm removes
                    volumes_mod.remove_anonymous_of(self.paths, mounts, cid)
                records.remove_dir(self.paths, cid)
            events.container(self.paths, "destroy", dict(config, id=cid))
            reaper.destroy_cgroup(cid)
            shutil.rmtree(os.path.join(self.paths.containers, records.TOMBSTONES, cid), ignore_errors=True)
        return cids

    def kill(self, refs, sig="KILL"):
        """Send ``sig`` to each container's init; every one must be running (checked first). Returns IDs.

        SIGKILL waits until the shim has recorded the exit, so that ``ps`` right after shows it exited.
        """
        if isinstance(refs, str):
            refs = [refs]
        signum = signal_number(sig)
        cids = [self._resolve(ref) for ref in refs]
        states = []
        for ref, cid in zip(refs, cids):
            config, state = self._load(cid, ref)
            if state["status"] not in ("running", "restarting"):
                raise errors.Conflict("Cannot kill container: {}: Container {} is not running".format(ref, cid))
            states.append(config)
        for cid, config in zip(cids, states):
            # docker: SIGKILL or the stop signal cancels the restart policy; any kill counts as a manual stop
            fatal = signum in (signal.SIGKILL, signal_number(config.get("stop_signal") or "SIGTERM"))
            state = restart.mark_stopped(self.paths, cid, cancel=fatal)
            if state["status"] != "running":
                continue  # restarting: cancelling the restart is all there is to do (docker sends nothing)
            resources.thaw_if_paused(self.paths, cid)
            events.container(self.paths, "kill", config, signal=signum)
            records.signal_process(state["pid"], state.get("pid_start"), signum)
            if signum == signal.SIGKILL:
                deadline = time.monotonic() + KILL_GRACE
                while time.monotonic() < deadline:
                    try:
                        if self._final_state(cid)[0]["status"] not in ("running", "restarting"):
                            break
                    except errors.NotFound:
                        break
                    time.sleep(POLL)
        return cids

    def restart(self, refs, time=None):
        """Stop (stop signal, SIGKILL after ``time`` s, default: the container's --stop-timeout or 10) then start
        each container; returns IDs."""
        if isinstance(refs, str):
            refs = [refs]
        cids = [self._resolve(ref) for ref in refs]
        for cid in cids:
            self.stop([cid], time=time)
            self.start(cid)
        return cids

    def rename(self, ref, new_name):
        """Give a container a new name (unique on this host); returns {"id", "old_name", "name"}."""
        new = check_name(new_name)
        if not new:
            raise errors.InvalidArgument("Neither old nor new names may be empty")
        cid = self._resolve(ref)
        with records.names_lock(self.paths):
            taken = {}
            for other in records.list_ids(self.paths):
                cfg = store.read_json(records.Layout(self.paths, other).config) or {}
                taken[cfg.get("name")] = other
            if taken.get(new) == cid:
                raise errors.InvalidArgument("Renaming a container with the same name as its current name")
            if new in taken:
                raise errors.AlreadyExists(
                    'Conflict. The container name "/{}" is already in use by container "{}". You have to remove '
                    '(or rename) that container to be able to reuse that name.'.format(new, taken[new]))
            with records.container_lock(self.paths, cid):
                config = records.read_config(self.paths, cid)
                old = config["name"]
                config["name"] = new
                store.write_json_atomic(records.Layout(self.paths, cid).config, config)
        return {"id": cid, "old_name": old, "name": new}

    def inspect(self, refs):
        """Docker's inspect objects; every reference is resolved before any object is built."""
        cids = [(ref, self._resolve(ref)) for ref in refs]
        return [inspectmod.inspect_object(self.paths, self.lookup(cid)) for _ref, cid in cids]

    def top(self, ref, ps_args=None):
        """``docker top``: {"titles", "processes"} of the container's PID namespace in the format of the ps
        options ``ps_args`` (default -ef); it must be running."""
        from . import pstable
        pstable.parse(ps_args)  # bad options are the input's fault: before the container is looked at
        rec = self.lookup(ref)
        if rec["status"] != "running":
            raise errors.Conflict("Container {} is not running".format(rec["id"]))
        return inspectmod.top(rec["pid"], ps_args)

    def _layers(self, rec):
        """The container's layers, top first: its upper dir, then the image's lower dirs."""
        return [records.Layout(self.paths, rec["id"]).diff] + list(reversed(rec.get("lowerdirs") or []))

    def changes(self, ref):
        """``docker diff``: [{"kind": "A"|"C"|"D", "path"}] from the container's upper dir."""
        rec = self.lookup(ref)
        layers = self._layers(rec)
        targets = {m["target"] for m in rec.get("mounts") or [] if isinstance(m.get("target"), str)}
        return _changes().diff(layers[0], layers[1:], ignore=INIT_PATHS | targets)  # docker: init layer, mounts

    def export(self, ref, output, force=False):
        """Write the container's merged filesystem as a tar to ``output`` on this host; {"output", "size", "sha256"}."""
        _changes().check_output(output, force)
        rec = self.lookup(ref)
        return _changes().export(self._layers(rec), output, force=force)

    def prune(self):
        """Remove every container that is not running; returns {"deleted": [id], "reclaimed": bytes}."""
        deleted, reclaimed = [], 0
        for rec in self.all_records():
            if rec["status"] == "running":
                continue
            size = _changes().tree_size(records.Layout(self.paths, rec["id"]).diff)
            try:
                self.remove([rec["id"]])
            except (errors.Conflict, errors.NotFound):
                continue  # started or removed meanwhile
            deleted.append(rec["id"])
            reclaimed += size
        return {"deleted": deleted, "reclaimed": reclaimed}

    # ------------------------------------------------------------ networks

    def connect(self, ref, network, aliases=(), ip=None):
        """``network connect``: record the network, and attach a running container at once."""
        from . import netconnect
        return netconnect.connect(self, ref, network, aliases=aliases, ip=ip)

    def disconnect(self, ref, network):
        """``network disconnect``: forget the network, and detach a running container at once."""
        from . import netconnect
        return netconnect.disconnect(self, ref, network)

    def handover_ports(self, from_ref, to_ref):
        """Move the published host ports from ``from_ref`` (or None) to the running ``to_ref`` in one firewall
        transaction, the userland proxy's sockets with them (runtime/handover.py); ``to_ref`` is no longer staged."""
        from . import handover
        return handover.handover_ports(self, from_ref, to_ref)

    def stage_ports(self, ref, staged=True):
        """The next start of ``ref`` (not running) stages its published ports instead of publishing them
        (``staged=False``: publishes them again)."""
        from . import handover
        return handover.stage_ports(self, ref, staged)

    # ------------------------------------------------------------ resources (cgroups)

    def update(self, refs, change):
        """``docker update``: merge ``change`` (cgroups Limits) into each container, live when running."""
        return resources.update(self, refs, change)

    def stats(self, refs=None, all=False):
        """One docker-stats sample per container (given refs, else running ones, or all with ``all``)."""
        return resources.stats(self, refs, all=all)

    def pause(self, refs):
        """Freeze running containers; returns their IDs."""
        return resources.pause(self, refs)

    def unpause(self, refs):
        """Thaw paused containers; returns their IDs."""
        return resources.unpause(self, refs)

    # ------------------------------------------------------------ image usage

    def image_usage(self):
        """{image_id: [container ids]} over every container in any state (read-only; for rmi/prune/df)."""
        usage = {}
        for cid in sorted(records.list_ids(self.paths)):
            cfg = store.read_json(records.Layout(self.paths, cid).config) or {}
            if cfg.get("image_id"):
                usage.setdefault(cfg["image_id"], []).append(cid)
        return usage


def _changes():
    """runtime/changes.py (tar, hashing): imported for diff/export/sizes only, not on every start."""
    from . import changes
    return changes


def _tail(path, limit=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
