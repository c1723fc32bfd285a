"""docker's -p grammar, -P, host sockets (port in use) and the PORTS/inspect renderings."""

import errno
import socket

import pytest

from agent_payload import errors
from agent_payload.net import ports


def _b(proto, ip, hp, cp, end=None):
    return {"proto": proto, "host_ip": ip, "host_port": hp, "host_port_end": hp if end is None else end,
            "container_port": cp}


@pytest.mark.parametrize("spec,want", [
    ("80", [_b("tcp", "", 0, 80)]),
    ("8080:80", [_b("tcp", "", 8080, 80)]),
    ("127.0.0.1:8080:80", [_b("tcp", "127.0.0.1", 8080, 80)]),
    ("0.0.0.0:8080:80", [_b("tcp", "", 8080, 80)]),
    ("127.0.0.1::80", [_b("tcp", "127.0.0.1", 0, 80)]),
    ("53:53/udp", [_b("udp", "", 53, 53)]),
    ("8000-8001:80-81", [_b("tcp", "", 8000, 80), _b("tcp", "", 8001, 81)]),
    ("8000-8010:80", [_b("tcp", "", 8000, 80, 8010)]),
    ("80-81", [_b("tcp", "", 0, 80), _b("tcp", "", 0, 81)]),
    ("9000:90/TCP", [_b("tcp", "", 9000, 90)]),
])
def test_parse(spec, want):
    assert ports.parse(spec) == want


@pytest.mark.parametrize("spec,match", [
    ("", "empty"), ("abc", "containerPort"), ("0", "containerPort"), ("70000", "containerPort"),
    ("8080:", "no port specified"), ("x:80", "hostPort"), ("1.2.3:80:80", "ip address"), ("80/icmp", "proto"),
    ("8000-8002:80-81", "ranges"), ("1:2:3:4", "want"), ("[::1]:80:80", "IPv6"), ("90-80:80", "hostPort"),
])
def test_parse_refuses_with_a_message_naming_the_value(spec, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        ports.parse(spec)


def test_publish_all_adds_exposed_ports_not_yet_bound():
    got = ports.parse_all(["8080:80"], publish_all=True, exposed=["80/tcp", "443/tcp", "53/udp", "bad/tcp"])
    assert got == [_b("tcp", "", 8080, 80), _b("tcp", "", 0, 443), _b("udp", "", 0, 53)]


def test_bind_random_and_in_use():
    opened = ports.bind([_b("tcp", "127.0.0.1", 0, 80), _b("udp", "127.0.0.1", 0, 53)])
    try:
        (tcp, tsock), (udp, usock) = opened
        assert tcp["host_port"] == tsock.getsockname()[1] > 0 and udp["host_port"] > 0
        with pytest.raises(errors.Conflict, match="already allocated"):
            ports.bind([_b("tcp", "127.0.0.1", 0, 81), _b("tcp", "127.0.0.1", tcp["host_port"], 80)])
        # a host range skips the taken port
        (ranged, rsock), = ports.bind([_b("tcp", "127.0.0.1", tcp["host_port"], 80, tcp["host_port"] + 50)])
        rsock.close()
        assert tcp["host_port"] < ranged["host_port"] <= tcp["host_port"] + 50
    finally:
        for _, sock in opened:
            sock.close()
    # everything was closed: the port can be bound again
    s = socket.socket()
    s.bind(("127.0.0.1", tcp["host_port"]))
    s.close()


def test_renderings():
    bs = [_b("tcp", "", 8080, 80), _b("udp", "127.0.0.1", 5353, 53)]
    assert ports.ps_text(bs) == "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"
    assert ports.docker_ports(bs) == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                      "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}


def test_bind_an_address_the_host_lacks_says_so_not_already_allocated():
    """192.0.2.1 (TEST-NET-1) is on no interface: docker says "cannot assign requested address"."""
    if open("/proc/sys/net/ipv4/ip_nonlocal_bind").read().strip() != "0":
        pytest.skip("net.ipv4.ip_nonlocal_bind is set: any address binds")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        for b in (_b("tcp", "192.0.2.1", 8080, 80), _b("udp", "192.0.2.1", 0, 53),
                  _b("tcp", "192.0.2.1", 8000, 80, 8010)):
            with pytest.raises(errors.FailedPrecondition) as exc:
                ports.bind([_b("tcp", "127.0.0.1", 0, 81), b])
            assert "already allocated" not in exc.value.message
            assert exc.value.message.endswith("listen {}4 192.0.2.1:{}: bind: cannot assign requested address".format(
                b["proto"], b["host_port"])), exc.value.message
            assert exc.value.errno == errno.EADDRNOTAVAIL
        with pytest.raises(errors.Conflict, match="127.0.0.1:{}/tcp failed: port is already allocated".format(port)):
            ports.bind([_b("tcp", "127.0.0.1", port, 80)])
    finally:
        taken.close()
