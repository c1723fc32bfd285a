"""IPAM and network records: allocation order, no double hand-out under concurrency, crash leftovers, overlaps."""

import ipaddress
import multiprocessing
import os

import pytest

from agent_payload import errors
from agent_payload.net.ipam import Pool
from agent_payload.net.networks import Networks, host_routes
from agent_payload.state.paths import Paths


def test_allocation_skips_network_gateway_and_broadcast_and_rolls_on(tmp_path):
    pool = Pool(str(tmp_path / "ipam"), "10.9.0.0/29", "10.9.0.1")
    got = [pool.allocate("c{}".format(i)) for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(errors.Unavailable):
        pool.allocate("c5")
    assert pool.release("c1") == ["10.9.0.3"]
    assert pool.allocate("c6") == "10.9.0.3"  # the only free one
    pool.release("c2")
    pool.release("c3")
    # after the last handed out (.3) the next free one is .4, not the lowest-numbered one
    assert pool.allocate("c7") == "10.9.0.4"


def test_requested_address_and_conflicts(tmp_path):
    pool = Pool(str(tmp_path / "ipam"), "10.9.0.0/24", "10.9.0.1")
    assert pool.allocate("a", "10.9.0.50") == "10.9.0.50"
    with pytest.raises(errors.Conflict):
        pool.allocate("b", "10.9.0.50")
    for bad in ("10.9.0.1", "10.9.0.0", "10.9.0.255", "10.9.1.2"):
        with pytest.raises(errors.InvalidArgument):
            pool.allocate("b", bad)
    assert pool.owners() == {"10.9.0.50": "a"}


def _grab(args):
    directory, owner = args
    return Pool(directory, "10.9.0.0/24", "10.9.0.1").allocate(owner)


def test_concurrent_allocations_never_hand_out_an_address_twice(tmp_path):
    directory = str(tmp_path / "ipam")
    with multiprocessing.get_context("fork").Pool(8) as procs:
        got = procs.map(_grab, [(directory, "c{}".format(i)) for i in range(120)])
    assert len(set(got)) == 120
    owners = Pool(directory, "10.9.0.0/24", "10.9.0.1").owners()
    assert sorted(owners.values()) == sorted("c{}".format(i) for i in range(120))


def test_reap_frees_addresses_of_gone_owners_and_crash_leftovers(tmp_path):
    directory = str(tmp_path / "ipam")
    pool = Pool(directory, "10.9.0.0/24", "10.9.0.1")
    pool.allocate("alive")
    pool.allocate("dead")
    with open(os.path.join(directory, ".tmp-999999"), "w") as f:
        f.write("crashed mid-claim")
    assert pool.reap(lambda owner: owner == "alive") == ["10.9.0.3"]
    assert sorted(os.listdir(directory)) == [".last", ".lock", "10.9.0.2"]


def test_host_routes_parse(tmp_path):
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "tun0\t0000110A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    assert host_routes(str(route)) == [ipaddress.ip_network("192.168.0.0/24"), ipaddress.ip_network("10.17.0.0/16")]


def _nets(tmp_path, daemon=None, routes=()):
    return Networks(Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc")), daemon or {},
                    routes=[ipaddress.ip_network(r) for r in routes])


def test_default_bridge_avoids_host_routes_and_honours_bip(tmp_path):
    nets = _nets(tmp_path, routes=["172.17.5.0/24"])  # a VPN route inside Docker's first pool
    assert nets.default()["subnet"] == "172.18.0.0/16" and nets.default()["gateway"] == "172.18.0.1"
    assert nets.default()["bridge"] == "fleet0"
    other = _nets(tmp_path / "b", {"bip": "10.50.0.1/24"})
    assert (other.default()["subnet"], other.default()["gateway"]) == ("10.50.0.0/24", "10.50.0.1")
    with pytest.raises(errors.InvalidArgument, match="bip"):
        _nets(tmp_path / "c", {"bip": "nonsense"}).default()


def test_create_validates_and_refuses_overlaps_and_duplicates(tmp_path):
    nets = _nets(tmp_path, {"default-address-pools": [{"base": "10.60.0.0/16", "size": 24}]})
    a = nets.create("front")
    assert a["subnet"] == "10.60.1.0/24"  # .0/24 went to the default bridge
    assert a["bridge"] == "fl-" + a["id"][:12] and len(a["bridge"]) <= 15
    b = nets.create("back", subnet="10.70.0.0/24", gateway="10.70.0.254", internal=True, labels={"k": "v"})
    assert (b["gateway"], b["internal"], b["labels"]) == ("10.70.0.254", True, {"k": "v"})
    before = sorted(os.listdir(nets.root))
    for kwargs, kind in (({"name": "front"}, errors.Conflict), ({"name": "bridge"}, errors.Conflict),
                         ({"name": "x", "subnet": "10.70.0.128/25"}, errors.Conflict),
                         ({"name": "-bad"}, errors.InvalidArgument),
                         ({"name": "x", "subnet": "10.80.0.0/33"}, errors.InvalidArgument),
                         ({"name": "x", "subnet": "10.80.0.0/24", "gateway": "10.81.0.1"}, errors.InvalidArgument),
                         ({"name": "x", "driver": "overlay"}, errors.InvalidArgument)):
        with pytest.raises(kind):
            nets.create(**kwargs)
    assert sorted(os.listdir(nets.root)) == before  # nothing changed
    names = [n["name"] for n in nets.list()]
    assert sorted(names[:3]) == ["back", "bridge", "front"] and names[3:] == ["host", "none"]


def test_endpoints_and_remove_in_use(tmp_path):
    nets = _nets(tmp_path)
    rec = nets.create("app", subnet="10.90.0.0/24")
    cid = "c" * 64
    ep = nets.join(rec, cid, "web", aliases=["www"])
    assert (ep["ip"], ep["ifname"], ep["host_if"], ep["mac"]) == ("10.90.0.2", "eth0", "fvcccccccccc0",
                                                                  "02:42:0a:5a:00:02")
    ep2 = nets.join(nets.default(), cid, "web")
    assert ep2["ifname"] == "eth1"
    with pytest.raises(errors.Conflict, match="active endpoints"):
        nets.remove("app")
    with pytest.raises(errors.Conflict, match="pre-defined"):
        nets.remove("bridge")
    assert [r["name"] for r, _ in nets.endpoints_of(cid)]
    nets.leave(rec, cid)
    nets.leave(rec, cid)  # idempotent
    assert nets.pool(rec).owners() == {}
    assert nets.prune() == ["app"]
    with pytest.raises(errors.NotFound):
        nets.get("app")


def test_reap_forgets_endpoints_whose_namespace_is_gone(tmp_path):
    live = {"a" * 64}
    nets = Networks(Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc")), {}, routes=[],
                    alive=lambda cid: cid in live)
    rec = nets.create("app", subnet="10.91.0.0/24")
    nets.join(rec, "a" * 64, "alive")
    nets.join(rec, "b" * 64, "gone-after-a-reboot")
    nets.reap(rec, nets.alive)
    assert list(nets.endpoints(rec)) == ["a" * 64] and list(nets.pool(rec).owners().values()) == ["a" * 64]
    live.clear()
    assert nets.remove("app")["name"] == "app"  # rm reaps first: a reboot does not leave it "in use" forever


def test_endpoint_listing_ignores_a_concurrent_writers_temp_file(tmp_path):
    nets = Networks(Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "etc")), {}, routes=[],
                    alive=lambda cid: False)
    rec = nets.create("app", subnet="10.92.0.0/24")
    temp = os.path.join(nets.root, rec["id"], "endpoints", ".tmp-1234-abcd")
    os.makedirs(os.path.dirname(temp))
    with open(temp, "w") as f:
        f.write('{"container": "x"}')  # mid-write of another start: renamed into place a moment later
    nets.reap(rec, nets.alive)
    assert os.path.exists(temp) and nets.endpoints(rec) == {}


@pytest.mark.parametrize("subnet,kind", [
    ("127.0.0.0/8", "loopback"), ("127.5.0.0/24", "loopback"), ("96.0.0.0/3", "loopback"),
    ("169.254.0.0/16", "link-local"), ("169.254.10.0/24", "link-local"), ("224.0.0.0/4", "multicast"),
    ("239.1.0.0/16", "multicast"), ("0.0.0.0/8", '"this network"'), ("0.0.0.0/0", '"this network"'),
    ("240.0.0.0/4", "reserved"), ("255.255.255.0/24", "reserved"),
])
def test_create_refuses_subnets_no_bridge_may_use(tmp_path, subnet, kind):
    nets = _nets(tmp_path)
    nets.default()
    before = sorted(os.listdir(nets.root))
    with pytest.raises(errors.InvalidArgument, match="invalid subnet {}: it overlaps the {} range".format(
            subnet.replace(".", r"\."), kind)):
        nets.create("lo", subnet=subnet)
    assert sorted(os.listdir(nets.root)) == before
    with pytest.raises(errors.InvalidArgument, match="IPv4"):
        nets.create("v6", subnet="fd00::/64")  # IPv6 subnets are refused as a whole


def test_daemon_json_bip_and_pools_in_unusable_ranges_are_refused(tmp_path):
    with pytest.raises(errors.InvalidArgument, match="bip 127.0.0.0/8: it overlaps the loopback"):
        _nets(tmp_path / "a", {"bip": "127.0.0.1/8"}).default()
    with pytest.raises(errors.InvalidArgument, match="default-address-pools 169.254.0.0/16: it overlaps the link"):
        _nets(tmp_path / "b", {"default-address-pools": [{"base": "169.254.0.0/16", "size": 24}]}).default()
    assert _nets(tmp_path / "c").create("ok", subnet="10.1.0.0/16")["gateway"] == "10.1.0.1"


def test_killed_network_create_or_rm_leaves_nothing_the_listing_does_not_reap(tmp_path, monkeypatch):
    """A payload killed inside ``network create`` (older payloads: a dir without network.json; now a
    ``.tmp-*``) or ``network rm`` (a half-deleted dir; now a ``.trash-*``): ``network ls`` reaps it."""
    nets = _nets(tmp_path)
    rec = nets.create("keep")
    root = nets.root
    os.makedirs(os.path.join(root, "a" * 64))  # old create killed before its record
    os.makedirs(os.path.join(root, "b" * 64, "ipam"))  # old rm killed after network.json went
    os.makedirs(os.path.join(root, ".tmp-0011"))
    os.makedirs(os.path.join(root, ".trash-0022", "endpoints"))
    assert sorted(r["name"] for r in nets.list()) == ["bridge", "host", "keep", "none"]
    assert sorted(os.listdir(root)) == sorted([rec["id"], nets.default()["id"]])

    def dies(path, obj, mode=0o644):
        raise KeyboardInterrupt  # a kill right before the record is written

    monkeypatch.setattr("agent_payload.net.networks.store.write_json_atomic", dies)
    with pytest.raises(KeyboardInterrupt):
        nets.create("half")
    monkeypatch.undo()
    assert sorted(os.listdir(root)) == sorted([rec["id"], nets.default()["id"]])
    nets.remove("keep")
    assert os.listdir(root) == [nets.default()["id"]]
