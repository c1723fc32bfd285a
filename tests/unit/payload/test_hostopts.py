"""agent_payload/hostopts.py: docker's parsing of the run/create host flags, and the resolv.conf/hosts text."""

import pytest

from agent_payload import errors, hostopts


def test_from_flags_gives_docker_s_hostconfig_shapes():
    out = hostopts.from_flags(extra_hosts=["db=10.0.0.1", "v6:[::1]", "gw:host-gateway"], dns=["1.1.1.1"],
                              tmpfs=["/t", "/u:size=1m,exec"], shm_size="1g", ulimits=["nofile=1:2", "nofile=3"],
                              sysctls=["fs.mqueue.msg_max=20", "kernel.sem=1 2 3 4"], devices=["/dev/fuse",
                              "/dev/sda:r", "/dev/sdb:/dev/xvdb", "/dev/sdc:/dev/xvdc:rw"], links=["db", "/web:w"])
    assert out["extra_hosts"] == ["db:10.0.0.1", "v6:::1", "gw:host-gateway"]
    assert out["tmpfs"] == {"/t": "", "/u": "size=1m,exec"} and out["shm_size"] == 1 << 30
    assert out["ulimits"] == [{"Name": "nofile", "Hard": 3, "Soft": 3}]  # the last one wins
    assert out["sysctls"] == {"fs.mqueue.msg_max": "20", "kernel.sem": "1 2 3 4"}
    assert [(d["PathInContainer"], d["CgroupPermissions"]) for d in out["devices"]] == [
        ("/dev/fuse", "rwm"), ("/dev/sda", "r"), ("/dev/xvdb", "rwm"), ("/dev/xvdc", "rw")]
    assert out["links"] == ["db:db", "web:w"]
    assert hostopts.from_flags()["shm_size"] is None


def test_tmpfs_mount_options():
    assert hostopts.tmpfs_mount("") == (["noexec", "nosuid", "nodev"], "")
    flags, data = hostopts.tmpfs_mount("size=1m,exec,mode=700,ro")
    assert flags == ["nosuid", "nodev", "ro"] and data == "size=1048576,mode=700"


def test_resolv_text_replaces_what_the_flags_give():
    base = "nameserver 10.0.0.2\nsearch corp\noptions rotate\n"
    assert hostopts.resolv_text(base) == base
    assert hostopts.resolv_text(base, ["1.1.1.1"], ["a.example", "b.example"], ["ndots:2"]) == (
        "nameserver 1.1.1.1\nsearch a.example b.example\noptions ndots:2\n")
    assert hostopts.resolv_text(base, search=["."]) == "nameserver 10.0.0.2\noptions rotate\n"


def test_hosts_lines_and_host_gateway():
    assert hostopts.hosts_lines(["db:10.0.0.1", "gw:host-gateway"], "172.17.0.1") == (
        "10.0.0.1\tdb\n172.17.0.1\tgw\n")
    assert hostopts.hosts_lines(["gw:host-gateway"], None) == ""  # no bridge known: left out


@pytest.mark.parametrize("kw,message", [
    ({"ulimits": ["nofile=a"]}, "invalid ulimit argument: nofile=a"),
    ({"sysctls": ["net"]}, "sysctl 'net' is not allowed"),
    ({"devices": ["/dev/a:/dev/b:/dev/c:r"]}, "bad format for path"),
    ({"shm_size": "-1"}, "invalid size"),
    ({"group_add": ["a:b"]}, "invalid group name"),
])
def test_bad_values(kw, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        hostopts.from_flags(**kw)


def test_mac_pull_platform_checks():
    assert hostopts.check_mac("92-D0-C6-0A-29-33") == "92:d0:c6:0a:29:33"
    assert hostopts.check_pull(None) == "missing"
    with pytest.raises(errors.InvalidArgument, match="--platform"):
        hostopts.check_platform("amd64")
