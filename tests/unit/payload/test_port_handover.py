"""Port handover pieces: the one-transaction rule scripts, the binding plan, the proxy sharing a listening socket
between holders, and the shim's port control socket (SCM_RIGHTS) — on loopback, no root needed."""

import os
import socket
import threading
import time

import pytest

from agent_payload import errors
from agent_payload.net import firewall, portctl, ports
from agent_payload.net.proxy import Proxy, binding_key
from agent_payload.ops.args import decode
from agent_payload.runtime import handover
from agent_payload.runtime.spec import ContainerSpec


def _b(hp, cp=80, ip="", proto="tcp", end=None, cip=None):
    b = {"proto": proto, "host_ip": ip, "host_port": hp, "host_port_end": hp if end is None else end,
         "container_port": cp}
    if cip:
        b["container_ip"] = cip
    return b


# ---------------------------------------------------------------- rule scripts

def test_nft_switch_is_one_script_deleting_by_handle_then_adding():
    listed = [{"chain": "published", "handle": 5, "comment": "fleet:old"},
              {"chain": "published", "handle": 6, "comment": "fleet:other"},
              {"chain": "published", "handle": 9, "comment": "fleet:old"},
              {"chain": "postrouting", "handle": 7, "comment": "fleet-net:n1"}]
    changes = [("fleet:new", firewall._publish_rules([_b(8080, cip="172.17.0.3")])),
               ("fleet:old", firewall._publish_rules([_b(9090, 90, ip="10.0.0.1", cip="172.17.0.2")]))]
    assert firewall.nft_replace_script(changes, listed) == (
        "delete rule ip fleet published handle 5\n"
        "delete rule ip fleet published handle 9\n"
        'add rule ip fleet published tcp dport 8080 dnat to 172.17.0.3:80 comment "fleet:new"\n'
        'add rule ip fleet published ip daddr 10.0.0.1 tcp dport 9090 dnat to 172.17.0.2:90 comment "fleet:old"\n')
    assert firewall.nft_replace_script([("fleet:gone", [])], listed) == ""  # nothing of that tag: no-op


def test_iptables_switch_is_one_restore_batch_per_table():
    tagged = [("published", "nat", ["FLEET-PUBLISHED", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-m",
                                    "comment", "--comment", "fleet:old", "-j", "DNAT", "--to-destination",
                                    "172.17.0.2:80"], "fleet:old"),
              ("published", "nat", ["FLEET-PUBLISHED", "-p", "tcp", "--dport", "7070", "-m", "comment",
                                    "--comment", "fleet:other", "-j", "DNAT", "--to-destination", "172.17.0.9:70"],
               "fleet:other")]
    changes = [("fleet:new", firewall._publish_rules([_b(8080, cip="172.17.0.3")])), ("fleet:old", [])]
    assert firewall.iptables_restore_script(changes, tagged) == (
        "*nat\n"
        "-D FLEET-PUBLISHED -p tcp -m tcp --dport 8080 -m comment --comment fleet:old -j DNAT --to-destination "
        "172.17.0.2:80\n"
        "-A FLEET-PUBLISHED -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.3:80 -m comment --comment "
        "fleet:new\n"
        "COMMIT\n")
    assert firewall.iptables_restore_script([("fleet:x", [])], tagged) == ""


def test_restore_words_are_quoted_only_when_needed():
    assert firewall._restore_word("fleet:abc") == "fleet:abc"
    assert firewall._restore_word("a b") == '"a b"'
    assert firewall._restore_word('say "hi"') == '"say \\"hi\\""'
    assert firewall._restore_word("") == '""'


class _Recorder:
    name = "recorder"

    def __init__(self):
        self.calls = []

    def replace(self, changes):
        self.calls.append(changes)


def test_switch_replaces_every_containers_rules_in_one_backend_call(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(firewall, "_backend", rec)
    firewall.switch(None, {"new": [_b(8080, cip="172.17.0.3")], "old": []})
    assert len(rec.calls) == 1
    (tag1, rules1), (tag2, rules2) = rec.calls[0]
    assert (tag1, tag2) == ("fleet:new", "fleet:old") and len(rules1) == 1 and rules2 == []
    firewall.switch(None, {})
    assert len(rec.calls) == 1


# ---------------------------------------------------------------- plan

def test_plan_takes_the_old_ones_ports_keeps_its_own_and_binds_the_rest():
    wanted = [_b(8080), _b(0, 443), _b(9000, 90, end=9010), _b(53, 53, proto="udp"), _b(7070, 70)]
    to_served = [_b(7070, 70)]  # a repeated call: already ours
    from_served = [_b(8080), _b(32768, 443), _b(9003, 90), _b(5000, 50)]
    bindings, moved = handover.plan(wanted, to_served, from_served)
    assert [(b["host_port"], b["host_port_end"]) for b in bindings] == [(8080, 8080), (32768, 32768), (9003, 9003),
                                                                        (53, 53), (7070, 7070)]
    assert moved == [("tcp", "", 8080), ("tcp", "", 32768), ("tcp", "", 9003)]


def test_plan_matches_address_protocol_and_container_port():
    wanted = [_b(8080, ip="127.0.0.1"), _b(0, 81)]
    bindings, moved = handover.plan(wanted, [], [_b(8080), _b(40000, 80)])
    assert bindings == wanted and moved == []  # another address; another container port: bound afresh


# ---------------------------------------------------------------- records and request

def test_publish_staged_is_a_checked_spec_field_and_a_create_arg():
    spec = ContainerSpec(image="x", image_id="sha256:" + "a" * 64, lowerdirs=["/l"], argv=["sh"],
                         publish_staged="yes")
    with pytest.raises(errors.InvalidArgument, match="publish_staged must be a boolean"):
        spec.validate()
    assert ContainerSpec.from_dict({"publish_staged": True}).publish_staged is True
    assert decode("create", {"image": "x"}).publish_staged is False
    assert decode("run", {"image": "x", "publish_staged": True}).publish_staged is True
    with pytest.raises(errors.InvalidArgument, match="publish_staged"):
        decode("create", {"image": "x", "publish_staged": "1"})


# ---------------------------------------------------------------- proxy: one socket, two holders

class _Backend:
    """A TCP server on ``ip``:0 answering every connection with ``name``; UDP echo with the name too."""

    def __init__(self, ip, name):
        self.tcp = socket.socket()
        self.tcp.bind((ip, 0))
        self.tcp.listen(64)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((ip, self.port))
        self.name = name.encode()
        threading.Thread(target=self._tcp, daemon=True).start()
        threading.Thread(target=self._udp, daemon=True).start()

    def _tcp(self):
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            conn.sendall(self.name)
            conn.close()

    def _udp(self):
        while True:
            try:
                data, peer = self.udp.recvfrom(100)
            except OSError:
                return
            self.udp.sendto(self.name + b":" + data, peer)

    def close(self):
        self.tcp.close()
        self.udp.close()


def _fetch(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                return data.decode()
            data += chunk
    finally:
        s.close()


def _free_loopback(address):
    try:
        socket.socket().bind((address, 0))
    except OSError:
        pytest.skip("no {} on this machine".format(address))


def _same_port_backends():
    """Two backends on one port number (the container port), on two addresses (the containers)."""
    for _ in range(20):
        old = _Backend("127.0.0.2", "old")
        try:
            new = socket.socket()
            new.bind(("127.0.0.3", old.port))
            new.close()
        except OSError:
            old.close()
            continue
        return old, _BackendAt("127.0.0.3", old.port, "new")
    pytest.skip("no common free port on 127.0.0.2/3")


class _BackendAt(_Backend):
    def __init__(self, ip, port, name):
        self.tcp = socket.socket()
        self.tcp.bind((ip, port))
        self.tcp.listen(64)
        self.port = port
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((ip, port))
        self.name = name.encode()
        threading.Thread(target=self._tcp, daemon=True).start()
        threading.Thread(target=self._udp, daemon=True).start()


@pytest.mark.parametrize("let_go", ["release", "close"])
def test_a_shared_listening_socket_changes_hands_without_a_refused_connection(let_go):
    """``release`` is the handover's last step; ``close`` is the old container stopping when a handover died
    before it: neither may stop the socket the new holder serves (no shutdown of a shared socket)."""
    for address in ("127.0.0.2", "127.0.0.3"):
        _free_loopback(address)
    old_backend, new_backend = _same_port_backends()
    (binding, sock), = ports.bind([_b(0, old_backend.port, ip="127.0.0.1")])
    old = Proxy([(binding, sock)], "127.0.0.2").start()
    new = Proxy([], "127.0.0.3")
    port = binding["host_port"]
    results, stop = [], threading.Event()

    timed = []  # (when the request began, its result): one append, so threads never interleave a pair

    def client():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                got = _fetch(port)
            except OSError as exc:
                got = "ERR {}".format(exc)
            timed.append((t0, got))
            results.append(got)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        (key, fd), = old.export([binding_key(binding)])
        new.add(dict(binding), socket.socket(fileno=fd))  # both serve the one socket now
        deadline = time.monotonic() + 10
        shared = len(results)
        while len(results) < shared + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        if let_go == "release":
            old.release([key])
        else:
            old.close()
        released, released_at = len(results), time.monotonic()
        while results.count("new") < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        old.close()  # the old holder going away closes only its own descriptor
        after_close = len(results)
        while len(results) < after_close + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert [r for r in results if r not in ("old", "new")] == []
    # a request begun after the old holder let go can only have been accepted by the new one (one begun before
    # may still have been accepted by the old: on a loaded machine more than one per client thread)
    after = [r for t, r in timed if t > released_at]
    assert "old" in results[:released] and after and set(after) == {"new"}
    new.close()
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))  # the last holder gone: nothing listens there any more
    probe.close()
    old_backend.close()
    new_backend.close()


def test_udp_is_relayed_and_released():
    for address in ("127.0.0.2",):
        _free_loopback(address)
    backend = _Backend("127.0.0.2", "old")
    (binding, sock), = ports.bind([_b(0, backend.port, ip="127.0.0.1", proto="udp")])
    proxy = Proxy([(binding, sock)], "127.0.0.2").start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(3)
    try:
        client.sendto(b"ping", ("127.0.0.1", binding["host_port"]))
        assert client.recv(100) == b"old:ping"
        assert proxy.release([binding_key(binding)]) == [binding_key(binding)]
        assert proxy.bindings() == []
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", binding["host_port"]))  # freed
    finally:
        client.close()
        proxy.close()
        backend.close()


# ---------------------------------------------------------------- port control socket

class _Sandbox:
    def __init__(self, settings):
        self.settings = settings


def _control(tmp_path, name, opened, ip, settings):
    directory = tmp_path / name
    directory.mkdir()
    proxy = Proxy(opened, ip).start()
    sandbox = _Sandbox(settings)
    return str(directory), sandbox, proxy, portctl.PortControl(str(directory), sandbox, proxy).start()


def test_port_control_exports_adopts_and_releases_sockets(tmp_path):
    (binding, sock), = ports.bind([_b(0, 80, ip="127.0.0.1")])
    key = list(binding_key(binding))
    old_dir, old_box, old_proxy, old_ctl = _control(tmp_path, "old", [(binding, sock)], "127.0.0.2",
                                                    {"ports": [binding]})
    staged = [dict(binding, container_ip="127.0.0.3")]
    new_dir, new_box, new_proxy, new_ctl = _control(tmp_path, "new", [], "127.0.0.3", {"staged_ports": staged})
    try:
        assert oct(os.stat(os.path.join(old_dir, portctl.SOCKET)).st_mode & 0o777) == "0o600"
        assert portctl.call(new_dir, {"op": "list"})[0] == {"ok": True, "ports": [], "staged": staged}
        answer, fds = portctl.call(old_dir, {"op": "export", "keys": [key, ["tcp", "", 1]]})
        assert answer["keys"] == [key] and len(fds) == 1
        extra = ports.bind([_b(0, 81, ip="127.0.0.1")])[0]  # a second binding the new one binds itself
        extra[1].close()
        try:
            got, _ = portctl.call(new_dir, {"op": "adopt", "bindings": staged + [dict(extra[0], host_port=0)],
                                            "keys": answer["keys"]}, fds)
        finally:
            for fd in fds:
                os.close(fd)
        assert [b["host_port"] for b in got["ports"]][0] == binding["host_port"] and len(got["ports"]) == 2
        assert "staged_ports" not in new_box.settings and new_box.settings["ports"] == got["ports"]
        # a repeat adopts nothing new
        again, _ = portctl.call(new_dir, {"op": "adopt", "bindings": got["ports"], "keys": []})
        assert again["ports"] == got["ports"]
        assert portctl.call(old_dir, {"op": "release", "keys": [key]})[0]["released"] == [key]
        assert old_box.settings["ports"] == [] and old_proxy.bindings() == []
        # a port someone else holds: Conflict, and nothing of that request stays
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = _b(holder.getsockname()[1], 82, ip="127.0.0.1")
        with pytest.raises(errors.Conflict, match="port is already allocated"):
            portctl.call(new_dir, {"op": "adopt", "bindings": [_b(0, 83, ip="127.0.0.1"), taken], "keys": []})
        holder.close()
        assert len(new_proxy.bindings()) == 2
        with pytest.raises(errors.InvalidArgument, match="unknown port control request"):
            portctl.call(new_dir, {"op": "nope"})
    finally:
        for ctl, proxy in ((old_ctl, old_proxy), (new_ctl, new_proxy)):
            ctl.close()
            proxy.close()
    assert not os.path.exists(os.path.join(new_dir, portctl.SOCKET))
    with pytest.raises(errors.Unavailable):
        portctl.call(new_dir, {"op": "list"})


def test_a_network_reload_keeps_the_ports_the_shim_serves(tmp_path):
    """SIGHUP after network connect: endpoints from state.json, published ports as the shim knows them (a handover
    may have adopted some a moment before state.json says so); else the end of the run leaves their rules."""
    from agent_payload import net
    from agent_payload.runtime import records, shim
    from agent_payload.state.paths import Paths

    paths = Paths(root=str(tmp_path / "root"))
    cid = "c" * 64
    os.makedirs(paths.container_dir(cid))
    ep = {"network": "bridge", "network_id": "n" * 64, "ip": "172.17.0.3"}
    records.write_state(paths, cid, {"status": "running", "pid": 42, "network_settings": {
        "mode": "bridge", "endpoints": [ep, dict(ep, ip="172.18.0.3")], "staged_ports": [_b(8080)]}})
    sandbox = net.Sandbox({"mode": "bridge", "endpoints": [ep], "ports": [_b(8080)]})
    shim._reload_network(paths, records.Layout(paths, cid), {"sandbox": sandbox, "pid": 42})
    assert sandbox.settings == {"mode": "bridge", "endpoints": [ep, dict(ep, ip="172.18.0.3")], "ports": [_b(8080)]}
