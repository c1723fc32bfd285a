"""The userland proxy: relays connections to a published host port into the container (Docker's docker-proxy).

The container's shim runs it in daemon threads on the sockets ``ports.bind`` opened before the container started
(holding them is also what makes a second container's ``-p`` of the same port fail). It serves what DNAT cannot:
connections to 127.0.0.1 (the OUTPUT rule leaves loopback alone), and everything on hosts without a firewall
backend. TCP: one pair of relay threads per connection, half-closes forwarded. UDP: one upstream socket per
client address, dropped after ``UDP_IDLE`` seconds of silence.
"""

import socket
import threading
import time

CHUNK = 65536
UDP_IDLE = 90.0


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


def _serve_tcp(listener, target, stop):
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            if stop.is_set():
                return
            time.sleep(0.05)
            continue
        threading.Thread(target=_serve_tcp_conn, args=(client, target), daemon=True).start()


def _serve_udp(sock, target, stop):
    peers = {}  # client address -> [upstream socket, last activity]
    lock = threading.Lock()

    def backward(client, upstream):
        while not stop.is_set():
            try:
                data = upstream.recv(CHUNK)
            except socket.timeout:
                with lock:
                    if time.monotonic() - peers[client][1] > UDP_IDLE:
                        del peers[client]
                        upstream.close()
                        return
                continue
            except OSError:
                return
            with lock:
                peers[client][1] = time.monotonic()
            try:
                sock.sendto(data, client)
            except OSError:
                pass

    while not stop.is_set():
        try:
            data, client = sock.recvfrom(CHUNK)
        except OSError:
            if stop.is_set():
                return
            time.sleep(0.05)
            continue
        with lock:
            entry = peers.get(client)
            if entry is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                upstream.settimeout(5.0)
                upstream.connect(target)
                entry = peers[client] = [upstream, time.monotonic()]
                threading.Thread(target=backward, args=(client, upstream), daemon=True).start()
            entry[1] = time.monotonic()
        try:
            entry[0].send(data)
        except OSError:
            pass


class Proxy:
    """Relays for a container's bound host sockets: ``[(binding, socket)]`` and its address; ``close`` stops them."""

    def __init__(self, opened, container_ip):
        self.opened = list(opened)
        self.container_ip = container_ip
        self.stop = threading.Event()

    def start(self):
        for binding, sock in self.opened:
            target = (self.container_ip, binding["container_port"])
            serve = _serve_tcp if binding["proto"] == "tcp" else _serve_udp
            threading.Thread(target=serve, args=(sock, target, self.stop), daemon=True,
                             name="proxy-{}-{}".format(binding["proto"], binding["host_port"])).start()
        return self

    def close(self):
        self.stop.set()
        for _, sock in self.opened:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
