"""The userland proxy: relays connections to a published host port into the container (Docker's docker-proxy).

The container's shim runs it in daemon threads on the sockets ``ports.bind`` opened before the container started
(holding them is also what makes a second container's ``-p`` of the same port fail). It serves what DNAT cannot:
connections to 127.0.0.1 (the OUTPUT rule leaves loopback alone), and everything on hosts without a firewall
backend. TCP: one pair of relay threads per connection, half-closes forwarded. UDP: one upstream socket per
client address, dropped after ``UDP_IDLE`` seconds of silence.

Port handover (runtime/handover.py): a listening socket can be shared with another shim, which received a dup of
it (SCM_RIGHTS, net/portctl.py). Both then accept from the one kernel queue: the socket never stops listening, so
no connection is refused while the new container's shim takes over and the old one lets go (``release``).
Each listener therefore waits in poll() on its socket plus a wake pipe (never a blocking accept, and never
``shutdown``, which would stop the listening socket for every holder), takes connections non-blocking (another
holder may have taken one first), and closes only its own descriptor when told to stop; ``close``/``release``
return once the serving threads are gone, so that a port nobody else holds is free again at once.
"""

import os
import select
import socket
import threading
import time

CHUNK = 65536
UDP_IDLE = 90.0
STOP_WAIT = 5.0


def binding_key(binding):
    """What identifies a published host port: (proto, host_ip, host_port); "" host_ip = every address."""
    return (binding["proto"], binding.get("host_ip") or "", int(binding["host_port"]))


def _pipe(src, dst):
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_tcp_conn(client, target):
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):  # relay at once: Nagle plus delayed ACKs would stall each small reply ~40 ms
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _ready(sock, wake_r):
    """Wait until ``sock`` is readable (True) or the wake pipe is (False: stop)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        try:
            events = dict(poller.poll())
        except InterruptedError:
            continue
        if wake_r in events:
            return False
        if events:
            return True


class Listener:
    """One published host port: its socket, the target in the container and the thread serving it."""

    def __init__(self, binding, sock, target):
        self.binding = dict(binding)
        self.key = binding_key(binding)
        self.sock = sock
        self.target = target
        self.wake_r, self.wake_w = os.pipe()
        self.thread = None
        self.peers = {}  # UDP: client address -> [upstream socket, last activity]
        self.peers_lock = threading.Lock()

    def start(self):
        self.sock.setblocking(False)  # the file description may be shared: every holder polls, then tries
        serve = self._serve_tcp if self.binding["proto"] == "tcp" else self._serve_udp
        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True,
                                       name="proxy-{}-{}".format(self.binding["proto"], self.binding["host_port"]))
        self.thread.start()
        return self

    def _run(self, serve):
        try:
            serve()
        finally:
            self.sock.close()  # only our descriptor: another holder keeps listening
            with self.peers_lock:
                for upstream, _ in self.peers.values():
                    upstream.close()
                self.peers.clear()
            os.close(self.wake_r)

    def stop(self):
        """Stop serving and close our descriptor (after the thread has let go of it)."""
        if self.wake_w is None:
            return
        os.write(self.wake_w, b"x")
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(STOP_WAIT)
        os.close(self.wake_w)
        self.wake_w = None

    def _serve_tcp(self):
        while _ready(self.sock, self.wake_r):
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another holder of the socket took that connection
            except OSError:
                time.sleep(0.05)  # e.g. EMFILE: try again rather than spin
                continue
            client.setblocking(True)
            threading.Thread(target=_serve_tcp_conn, args=(client, self.target), daemon=True).start()

    def _serve_udp(self):
        sock, peers, lock = self.sock, self.peers, self.peers_lock

        def backward(client, upstream):
            while True:
                try:
                    data = upstream.recv(CHUNK)
                except socket.timeout:
                    with lock:
                        if client not in peers:
                            return
                        if time.monotonic() - peers[client][1] > UDP_IDLE:
                            del peers[client]
                            upstream.close()
                            return
                    continue
                except OSError:
                    return
                with lock:
                    if client in peers:
                        peers[client][1] = time.monotonic()
                try:
                    sock.sendto(data, client)
                except OSError:
                    pass

        while _ready(sock, self.wake_r):
            try:
                data, client = sock.recvfrom(CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                time.sleep(0.05)
                continue
            with lock:
                entry = peers.get(client)
                if entry is None:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    upstream.settimeout(5.0)
                    upstream.connect(self.target)
                    entry = peers[client] = [upstream, time.monotonic()]
                    threading.Thread(target=backward, args=(client, upstream), daemon=True).start()
                entry[1] = time.monotonic()
            try:
                entry[0].send(data)
            except OSError:
                pass


class Proxy:
    """Relays for a container's bound host sockets: ``[(binding, socket)]`` and its address; ``close`` stops them.

    ``add``/``export``/``release`` serve the port handover (net/portctl.py runs them in the shim).
    """

    def __init__(self, opened, container_ip):
        self.container_ip = container_ip
        self.listeners = {}  # binding key -> Listener
        self.lock = threading.Lock()
        self._pending = list(opened)

    def start(self):
        pending, self._pending = self._pending, []
        for binding, sock in pending:
            self.add(binding, sock)
        return self

    def add(self, binding, sock):
        """Serve ``sock`` (a bound host socket of ``binding``) towards the container; it is the proxy's now."""
        listener = Listener(binding, sock, (self.container_ip, binding["container_port"]))
        with self.lock:
            old = self.listeners.pop(listener.key, None)
            self.listeners[listener.key] = listener.start()
        if old is not None:
            old.stop()
        return listener

    def serves(self, key):
        with self.lock:
            return key in self.listeners

    def bindings(self):
        with self.lock:
            return [dict(listener.binding) for listener in self.listeners.values()]

    def export(self, keys):
        """Duplicates of the listening sockets of ``keys`` we serve: [(key, fd)] (the caller closes the fds);
        they stay served here until ``release``."""
        out = []
        with self.lock:
            for key in keys:
                listener = self.listeners.get(tuple(key))
                if listener is not None:
                    out.append((listener.key, os.dup(listener.sock.fileno())))
        return out

    def release(self, keys):
        """Stop serving ``keys`` and close our descriptors of their sockets (connections being relayed go on)."""
        with self.lock:
            gone = [self.listeners.pop(tuple(key)) for key in keys if tuple(key) in self.listeners]
        for listener in gone:
            listener.stop()
        return [listener.key for listener in gone]

    def close(self):
        with self.lock:
            gone, self.listeners = list(self.listeners.values()), {}
        for listener in gone:
            listener.stop()
        for _, sock in self._pending:
            sock.close()
        self._pending = []
