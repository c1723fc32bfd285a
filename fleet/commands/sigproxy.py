"""docker's --sig-proxy (default true) for attached ``run``, ``start -a`` and ``attach`` without a TTY.

While fleet is attached, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to fleet are forwarded to the
container's main process on every host (a ``kill`` op per host, from a thread of its own so the streams keep
flowing); fleet keeps streaming and returns the container's exit code once it exits (130/143 if it dies of the
signal, whatever it chooses if it traps it), as docker's ForwardAllSignals.  A container that ignores the
signal (a PID 1 without a handler) keeps fleet attached, as docker.  Before any host's container is known (the
image is still being pulled) a signal has its usual meaning: ^C ends fleet with 130.

--sig-proxy=false, and -t (the terminal delivers ^C as a byte; docker disables the proxy with a TTY), keep the
old behaviour: fleet ends (130 on ^C) and the containers keep running.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
FORWARD_WAIT = 30.0  #: seconds fleet waits at the end for a forward still under way


_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def parse_bool(flag: str, value, default: bool) -> bool:
    """A docker bool flag's value (Go's strconv.ParseBool spellings); None: ``default``; else UsageError."""
    from fleet.errors import UsageError

    if value is None:
        return default
    if value not in _BOOLS:
        raise UsageError('invalid argument "{}" for "{}" flag: strconv.ParseBool: parsing "{}": invalid syntax'
                         .format(value, flag, value))
    return _BOOLS[value]


class SignalProxy:
    """Context manager: forwards the signals in SIGNALS to each host's container while it is entered.

    ``targets``: {host name: container reference} known up front (start -a, attach); ``on_event`` learns the
    rest from ``container`` events ({"id"}: attached ``run`` emits one once its container started).
    """

    def __init__(self, session, hosts, targets=None, enabled: bool = True):
        self.session, self.hosts, self.enabled = session, {h.name: h for h in hosts}, enabled
        self.targets = dict(targets or {})
        self.saved, self.threads, self.forwarded = {}, [], []

    def on_event(self, host, name, data):
        if name == "container" and data.get("id"):
            self.targets[host.name] = data["id"]

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        self._restore()
        for t in self.threads:
            t.join(FORWARD_WAIT)
        return False

    def _restore(self):
        for sig, old in self.saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self.saved = {}

    def _handler(self, signum, frame):
        if not self.targets:  # nothing to forward to yet: the signal's own meaning
            self._restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.forwarded.append(signum)
        t = threading.Thread(target=self._forward, args=(signum, dict(self.targets)), name="sig-proxy", daemon=True)
        self.threads.append(t)
        t.start()

    def _forward(self, signum, targets):
        """``kill -s SIG`` of each known container (errors ignored: it may have exited meanwhile, as docker)."""
        import asyncio

        from fleet.transport import fanout

        hosts = [self.hosts[name] for name in targets if name in self.hosts]
        name = signal.Signals(signum).name[3:]
        try:
            asyncio.run(fanout.run_async(hosts, "kill", {}, self.session.run_options(),
                                         args_for=lambda h: {"containers": [targets[h.name]], "signal": name}))
        except Exception:  # noqa: BLE001  (a forward that failed changes nothing for the stream)
            pass
