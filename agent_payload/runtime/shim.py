"""The per-container shim: a detached supervisor that forks the container init, writes its log and records its exit.

Start handshake (caller = ``Runtime.start``, which holds the container's flock throughout)::

    Runtime.start                         launcher (a fork of the caller)      shim (grandchild)
      shim.launch: pipe() -> (r, w),
      fork() ----------------------------> setsid(), fork() ----------------------> stdio := /dev/null, shim.log
      waitpid(launcher)                    exit 0                                 close fds >= 3 except w,
                                                                                  signals reset, comm "fleet-shim",
                                                                                  shim.pid written,
                                                                                  systemd hosts: own scope
                                                                                  fleet-<id>.scope (cgroups/scope),
                                                                                  cgroups.create(id, limits),
                                                                                  device policy (cgroups/devices),
                                                                                  net.setup (netns, veths, ports),
                                                                                  fork init in a new PID ns,
                                                                                  resolver serving (user networks),
                                                                                  cgroup.add(init) (v1: the init's
                                                                                  add_self); "go" to init,
                                                                                  wait init's "ready" (process.py)
      <------------------- {"type": "started", "pid", "pid_start", "shim_pid", "shim_start"} ---
      or <---------------- {"type": "error", "kind", "message", ...} -------------------------
      (EOF without a line: the launcher or shim crashed; see shim.log)
      write state.json "running"; unlock                                          pump stdout/stderr into
                                                                                  <id>-json.log, reap init,
                                                                                  oom_killed(); destroy cgroup,
                                                                                  lock; state.json "exited" or
                                                                                  "restarting" (restart.py:
                                                                                  back-off, fork a new init,
                                                                                  state.json "running" again)

If the caller vanished before reading the answer (EPIPE on w), the shim kills the init instead of
leaving a container that no state file knows about.

The shim is forked, not a new interpreter (that cost ~60 ms per start): it carries the caller's modules but
none of its threads, and drops the caller's stdio, fds and signal handlers first thing.

The init is placed in its cgroup while it is still blocked on the "go" pipe, before its first setup step:
it unshares its cgroup namespace at setup (rooted where it is then), and nothing of the container may run
unconfined. On cgroup v1 the init moves itself instead, as the very first thing after "go" (``add_self``:
its own thread into each hierarchy's ``tasks``), which skips the RCU grace period (~10 ms) a write of its PID
to ``cgroup.procs`` waits for; before "go" it only computes (``process.init_prepare``).
Every container gets a cgroup, limits or not (``stats`` and ``pause`` need one).

The embedded resolver (net/dns.py) of a container on a user-defined network is bound in its namespace and
serving before "go" too, on every start and restart: the command's first lookup is answered (Docker's resolver
is up before the container's process runs).  It is started after the fork, as the init must not be forked from
a process with threads; a resolver that cannot start fails the start.  Later, SIGHUP (``network connect`` and
``disconnect``) makes the shim re-read the run's network settings and start a resolver the container now needs.
"""

import os
import selectors
import signal
import sys
import time
import traceback

from .. import errors, hostopts, net
from . import attach, cgroups, health, logs, process, records, resolver, restart, volumes
from .cgroups import devices, scope
from .cgroups.limits import Limits

READY_TIMEOUT = 60.0
DRAIN_GRACE = 2.0
PROC_NAME = b"fleet-shim"  # what ps/top show as the shim's command name (comm)


def launch(paths, container_id):
    """Fork the shim straight from this process (no new interpreter: ~60 ms saved per start).

    Returns ``(launcher_pid, read_fd)``: the caller reads the one handshake answer from ``read_fd`` and then
    reaps ``launcher_pid``, the short-lived middle process.  The shim itself (its child, after ``setsid``) is
    reparented to the host's init (or nearest subreaper) and supervises the container; it never returns here.
    """
    r, w = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    if pid:
        os.close(w)
        return pid, r
    code = 1
    try:  # the launcher: detach, then the shim
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        code = _supervise(paths, container_id, w)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    os._exit(code)


def _detach_stdio(layout, keep_fd):
    """stdin/stdout := /dev/null, stderr := shim.log, every other inherited fd closed (SSH channel must close)."""
    null = os.open("/dev/null", os.O_RDWR)
    err = os.open(layout.shim_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    process.close_fds_except(keep_fd)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _supervise(paths, container_id, sync_fd):
    layout = records.Layout(paths, container_id)
    _detach_stdio(layout, sync_fd)
    _reset_inherited_signals()
    signal.signal(signal.SIGHUP, _on_sighup)  # "network settings changed" (network connect/disconnect)
    _name_process(container_id)
    write_pidfile(layout)
    try:
        config = records.read_config(paths, container_id)
        scope.place_shim(container_id)  # systemd hosts: out of the caller's cgroup, into fleet-<id>.scope
        restart.become_subreaper()  # each run's init is forked by a middle process (restart.fork_in_new_pidns)
    except Exception as exc:
        traceback.print_exc()
        _answer(sync_fd, process.error_message(exc))
        return 1
    run, msg = _launch(paths, layout, config, sync_fd)
    if msg is not None:
        _answer(sync_fd, msg)
        return 1
    pid = run["pid"]
    started = {"type": "started", "pid": pid, "pid_start": run["pid_start"],
               "shim_pid": os.getpid(), "shim_start": records.proc_starttime(os.getpid()),
               "network_settings": run["sandbox"].settings}
    if not _answer(sync_fd, started):
        sys.stderr.write("caller went away before the start was recorded; killing the container\n")
        _kill_and_reap(pid)
        _destroy(run["cgroup"])
        _end_run(paths, run)
        return 1
    backoff = restart.Backoff()
    while True:
        monitor = health.start_monitor(paths, container_id, pid, run["pid_start"])  # HEALTHCHECK probes, if any
        status = _pump(pid, run["writers"], on_reload=lambda run=run: _reload_network(paths, layout, run))
        health.stop_monitor(monitor)
        run["log"].close()
        oom = _oom_killed(run["cgroup"])  # read before destroy: the counters go with the cgroup
        _destroy(run["cgroup"])
        _end_run(paths, run)  # before the exit is recorded: whoever waits for it finds nothing of this run left
        ran_for = time.monotonic() - run["since"]
        delay = restart.after_exit(paths, container_id, exit_code(status), oom, ran_for, backoff)
        if delay is None or not restart.backoff_wait(paths, container_id, delay):
            return 0
        try:
            config = records.read_config(paths, container_id)
        except Exception:
            restart.give_up(paths, container_id)
            return 0
        run, msg = _launch(paths, layout, config)
        if msg is not None:
            sys.stderr.write("restart failed: {}\n".format(msg.get("message")))
            restart.give_up(paths, container_id, error=msg.get("message"))
            return 1
        pid = run["pid"]
        if not restart.record_restarted(paths, container_id, pid, run["pid_start"], run["sandbox"].settings):
            _kill_and_reap(pid)  # stopped or removed while the new init was being set up
            _destroy(run["cgroup"])
            _end_run(paths, run)
            restart.give_up(paths, container_id)
            return 0


def _launch(paths, layout, config, sync_fd=None):
    """Create the cgroup and the network, fork the init in a fresh PID namespace and wait for its "ready".

    Returns (run, None) with run = {"pid", "pid_start", "cgroup", "out", "err", "log", "since"}, or
    (None, error message) after cleaning up.  ``sync_fd`` (first start only) is closed in the init.
    """
    cgroup, fds, logf, io, sandbox = None, [], None, None, None
    try:
        volumes.prepare_bind_sources(config.get("mounts") or [])  # -v /host:/ctr: (re)create a missing host dir
        io = attach.ShimIO.prepare(config, layout)  # -i/-t: attach socket, stdin pipe or TTY channel (per run)
        cgroup = cgroups.create(layout.id, Limits.from_dict(config.get("limits")))
        # before the init runs: docker's default device allowlist and --device's nodes
        cgroup.apply_devices(devices.rules_for(bool(config.get("privileged")), config.get("devices")))
        sandbox = net.setup(paths, layout.id, config, lookup=_lookup(paths))  # netns, veths, ports (per run)
        gateway = net.host_gateway(paths) if any(h.endswith(":host-gateway") for h in config.get("extra_hosts")
                                                 or []) else None
        links = hostopts.link_lines(config.get("links"), _lookup(paths), config.get("network") or "bridge",
                                    config.get("name"))  # --link: each linked container running, on our network
        sandbox.write_files(layout, config, gateway, links)  # /etc/hosts, resolv.conf (--add-host, --dns*, --link)
        config = dict(config, netns=sandbox.netns, netns_new=bool(sandbox.settings.get("unshare")))  # for the init
        for _ in range(4):
            fds += os.pipe()
        out_r, out_w, err_r, err_w, init_r, init_w, go_r, go_w = fds
        logf = logs.open_writer(layout.log, config.get("log_config"))  # json-file (rotating) or none
        pid = restart.fork_in_new_pidns()  # the child is PID 1 of its own namespace
    except Exception as exc:
        traceback.print_exc()
        for fd in fds:  # a half-made init blocked on "go" sees EOF and exits
            os.close(fd)
        if logf is not None:
            logf.close()
        if io is not None:
            io.close()
        _destroy(cgroup)
        _net_down(paths, layout.id, sandbox)
        return None, process.error_message(exc)
    if pid == 0:
        for fd in (out_r, err_r, init_r, go_w) + ((sync_fd,) if sync_fd is not None else ()):
            os.close(fd)
        prepared = process.init_prepare(config)  # computation only, overlapping the shim's work until "go"
        # wait until the shim has moved us into the cgroup (or lets us move ourselves); EOF (the shim died or
        # gave up) ends us here
        go = os.read(go_r, 1)
        os.close(go_r)
        if go != b"g":
            os._exit(1)
        if cgroup.places_self:
            _place_self(cgroup, init_w)  # first thing after "go": nothing runs before it
        process.init_main(layout, config, out_w, err_w, init_w, stdio=io.child_stdio() if io else None,
                          prepared=prepared)
    for fd in (out_w, err_w, init_w, go_r):
        os.close(fd)
    if io:
        io.after_fork()
    msg = _start_resolver(paths, layout.id, sandbox)  # before "go": the command's first lookup must be answered
    if msg is None:
        msg = _place_in_cgroup(cgroup, pid, go_w)
    else:
        os.close(go_w)  # the init reads EOF and exits without running anything
    if msg is None:
        msg = _await_ready(init_r, pid)
    os.close(init_r)
    writers = {out_r: logs.LineWriter(logf, "stdout"), err_r: logs.LineWriter(logf, "stderr")}
    if io and msg.get("type") == "ready":
        try:
            writers = io.serve(writers)  # takes the TTY master, copies output to attach clients
        except Exception as exc:
            msg = process.error_message(exc)
    if msg.get("type") == "ready":
        try:
            sandbox.start_services(paths, layout.id)  # userland proxy
        except Exception as exc:
            msg = process.error_message(exc)
    if msg.get("type") != "ready":
        _kill_and_reap(pid)
        _destroy(cgroup)
        for fd in (out_r, err_r):
            os.close(fd)
        logf.close()
        if io:
            io.close()
        _net_down(paths, layout.id, sandbox)
        return None, msg
    return {"pid": pid, "pid_start": records.proc_starttime(pid), "cgroup": cgroup, "writers": writers, "io": io,
            "log": logf, "since": time.monotonic(), "sandbox": sandbox, "cid": layout.id}, None


def _end_run(paths, run):
    """End this run's attach channel (socket, TTY master, stdin pipe) and its network (rules, veths, netns)."""
    if run.get("io"):
        run["io"].close()
        run["io"] = None
    if run.get("sandbox") is not None:
        _net_down(paths, run["cid"], run["sandbox"])
        run["sandbox"] = None


def _net_down(paths, cid, sandbox):
    """Stop the proxy and resolver, then undo the network; failures go to shim.log, never stop the shim."""
    if sandbox is None:
        return
    try:
        sandbox.stop_services()
        net.teardown(paths, cid, sandbox.settings)
    except Exception:
        traceback.print_exc()


def _lookup(paths):
    """``container:<ref>``: the other container's record (status, network_settings)."""
    def lookup(ref):
        try:
            return resolver.lookup(paths, ref)
        except errors.NotFound:
            return None
    return lookup




def _name_process(container_id):
    """Show as ``fleet-shim <id>`` in ps (comm "fleet-shim"), not as the payload command it was forked from."""
    from .init import set_title
    try:
        with open("/proc/self/comm", "wb") as f:
            f.write(PROC_NAME)
        env = dict(os.environ)  # set_title overwrites the environment's memory; the shim's children need PATH
        set_title([PROC_NAME.decode(), container_id])
        os.environ.update(env)
    except (OSError, ValueError, IndexError):
        pass  # cosmetic only


def _reset_inherited_signals():
    """We are a fork of a payload command: drop its handlers (SIGINT's KeyboardInterrupt, SIGTERM, ...)."""
    for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGCHLD"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def write_pidfile(layout):
    """``shim.pid``: "<pid> <starttime>", written before anything else so even an unrecorded shim can be found."""
    me = os.getpid()
    with open(layout.shim_pid, "w") as f:
        f.write("{} {}\n".format(me, records.proc_starttime(me)))


def read_pidfile(layout):
    """(pid, starttime) from ``shim.pid``, or (None, None)."""
    try:
        with open(layout.shim_pid) as f:
            pid, start = f.read().split()
        return int(pid), int(start)
    except (OSError, ValueError):
        return None, None


_RELOAD = []  # set by SIGHUP, taken by _pump


def _on_sighup(_signum, _frame):
    _RELOAD.append(True)


def _reload_network(paths, layout, run):
    """SIGHUP from ``network connect``/``disconnect`` of the running container: adopt its endpoints from
    state.json (the end of this run then undoes what was connected since; its published ports stay as this
    shim knows them: a port handover may have changed them a moment ago, net/portctl.py), and if it is now on a
    user-defined network and had no resolver, start one and point its resolv.conf there (Docker does both at
    connect).

    resolv.conf is rewritten in place (the container has the file bind-mounted) and only once the resolver
    serves, which is what ``network connect`` waits for.  Failures go to shim.log and leave the container as it
    was, with its host nameservers (Docker, too, only logs a resolver that did not start).
    """
    sandbox = run.get("sandbox")
    if sandbox is None:
        return
    try:
        state = records.read_state(paths, layout.id)
        if state.get("pid") != run["pid"] or not state.get("network_settings"):
            return  # not this run's record
        own = ("ports", "staged_ports")  # this shim's own (setup, port control); endpoints come from connect
        settings = {k: v for k, v in state["network_settings"].items() if k not in own}
        settings.update((k, sandbox.settings[k]) for k in own if k in sandbox.settings)
        sandbox.settings = settings
        if sandbox.start_resolver(paths, layout.id):
            with open(layout.resolv, "r+b") as f:
                f.write(net.resolver_resolv_conf())
                f.truncate()
    except Exception:
        traceback.print_exc()


def _start_resolver(paths, cid, sandbox):
    """The embedded resolver of user-defined networks, serving before the init is released; an error message or None.

    Started after the fork (the init must not be forked from a process with threads) and before "go", so it is
    up before the init's first setup step, let alone its exec.  No user-defined network: nothing to do, no cost.
    """
    try:
        sandbox.start_resolver(paths, cid)
    except Exception as exc:
        traceback.print_exc()
        return process.error_message(exc)
    return None


def _place_in_cgroup(cgroup, pid, go_w):
    """Move the (blocked) init into the container's cgroup, then release it; an error message or None.

    Where the init can move itself more cheaply (cgroup v1: ``add_self``), it does so right after "go" instead.
    """
    try:
        if not cgroup.places_self:
            cgroup.add(pid)
        os.write(go_w, b"g")
    except Exception as exc:
        traceback.print_exc()
        return process.error_message(exc)
    finally:
        os.close(go_w)
    return None


def _place_self(cgroup, init_w):
    """In the init, right after "go": move into the container's cgroup; on failure report it as the start's error
    (the shim reads it as the init's answer) and exit."""
    try:
        cgroup.add_self()
    except BaseException as exc:
        try:
            process.send(init_w, process.error_message(exc))
        except BaseException:
            traceback.print_exc()
        os._exit(1)


def _oom_killed(cgroup):
    try:
        return bool(cgroup.oom_killed())
    except Exception:
        traceback.print_exc()  # the exit is still recorded; only the OOM flag is unknown
        return False


def _destroy(cgroup):
    """Remove the container's cgroup (killing stragglers); failures go to shim.log, never stop the shim."""
    if cgroup is None:
        return
    try:
        cgroup.destroy()
    except Exception:
        traceback.print_exc()


def _await_ready(init_r, pid):
    """The init's first sync message, or an error if it does not arrive in time."""
    sel = selectors.DefaultSelector()
    try:  # closed here: left to the collector, its epoll fd number went stale in the forked health monitor
        sel.register(init_r, selectors.EVENT_READ)
        ready = sel.select(READY_TIMEOUT)
    finally:
        sel.close()
    if not ready:
        return {"type": "error", "kind": "Unavailable",
                "message": "container init did not get ready within {:.0f}s".format(READY_TIMEOUT)}
    msg = process.recv(init_r)
    if msg is None:
        return {"type": "error", "kind": "Internal", "message": "container init (pid {}) died during setup".format(pid)}
    return msg


def _answer(sync_fd, msg):
    """Send the one handshake answer to the caller; False if the caller is gone."""
    try:
        process.send(sync_fd, msg)
        return True
    except BrokenPipeError:
        return False
    finally:
        os.close(sync_fd)


def _kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _pump(pid, writers, on_reload=None):
    """Copy the container's output into the log until it exits; returns the raw wait status.

    ``on_reload()`` runs (in this, the main thread) after a SIGHUP, within one poll interval.
    """
    sel = selectors.DefaultSelector()
    for fd in writers:
        sel.register(fd, selectors.EVENT_READ)
    status, deadline = None, None
    while sel.get_map():
        for key, _ in sel.select(0.2 if status is None else 0.05):
            data = os.read(key.fd, 65536)
            if data:
                writers[key.fd].feed(data)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                writers[key.fd].close()
        if _RELOAD and on_reload is not None and status is None:
            del _RELOAD[:]
            on_reload()
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, deadline = st, time.monotonic() + DRAIN_GRACE
        elif time.monotonic() > deadline:
            break  # PID 1 died, so the kernel killed its namespace; a stray writer must not keep us here
    for fd in list(sel.get_map()):
        writers[fd].close()
        os.close(fd)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return status


def exit_code(status):
    """Docker's exit code for a wait status: the exit status, or 128 + signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
