"""Capability arithmetic as moby's TweakCapabilities, --user resolution as moby/sys/user, and their validation."""

import os

import pytest

from agent_payload import errors
from agent_payload.runtime import caps, user
from agent_payload.runtime.spec import ContainerSpec, isolation_flags

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
          "alice:x:1001:1001:second entry loses:/nope:/bin/sh\n"
          "svc:x:500:500::/srv:/bin/false\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\n"
         "wheel:x:10:root,alice\n"
         "audio:x:29:alice,svc\n"
         "staff:x:50:\n"
         "nogroup:x:65534:\n")


def test_docker_default_mask():
    assert caps.mask(caps.DOCKER_DEFAULT) == 0xA80425FB
    assert len(caps.DOCKER_DEFAULT) == 14
    assert caps.tweak() == list(caps.DEFAULT) == list(caps.DOCKER_DEFAULT)
    assert caps.mask(caps.DEFAULT) == 0xA80425FB
    assert "CAP_MKNOD" not in caps.tweak(cap_drop=["MKNOD"])
    assert caps.mask_names(0xA80425FB) == sorted(caps.DOCKER_DEFAULT, key=caps.CAP_NUMBERS.get)


def test_cap_numbers_match_the_kernel_header():
    for name, num in (("CAP_CHOWN", 0), ("CAP_NET_ADMIN", 12), ("CAP_SYS_ADMIN", 21), ("CAP_MKNOD", 27),
                      ("CAP_SETFCAP", 31), ("CAP_BPF", 39), ("CAP_CHECKPOINT_RESTORE", 40)):
        assert caps.CAP_NUMBERS[name] == num


def test_normalize_accepts_docker_spellings():
    assert caps.normalize(["NET_ADMIN", "cap_sys_time", "CAP_KILL", "all"], "cap_add") == [
        "CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_KILL", "ALL"]
    with pytest.raises(errors.InvalidArgument, match='unknown capability: "CAP_FOO"'):
        caps.normalize(["FOO"], "cap_add")
    with pytest.raises(errors.InvalidArgument, match="cap_drop must be a list"):
        caps.normalize("NET_ADMIN", "cap_drop")


def test_tweak_like_moby():
    add = caps.tweak(cap_add=["NET_ADMIN"])
    assert add == list(caps.DEFAULT) + ["CAP_NET_ADMIN"]
    drop = caps.tweak(cap_drop=["chown", "KILL"])
    assert "CAP_CHOWN" not in drop and "CAP_KILL" not in drop and len(drop) == len(caps.DEFAULT) - 2
    assert caps.tweak(cap_drop=["ALL"]) == []
    assert caps.tweak(cap_drop=["ALL"], cap_add=["NET_RAW"]) == ["CAP_NET_RAW"]
    every = caps.tweak(cap_add=["ALL"], cap_drop=["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in every and len(every) == len(caps.all_capabilities()) - 1
    assert caps.tweak(privileged=True, cap_drop=["ALL"]) == caps.all_capabilities()


def test_container_mask_limits_to_held_and_refuses_named_missing(monkeypatch):
    from agent_payload.linux import libc
    held = caps.mask(caps.DOCKER_DEFAULT) | (1 << 12)
    monkeypatch.setattr(libc, "capget", lambda: (held, held, 0))
    assert caps.container_mask(ContainerSpec(cap_add=["NET_ADMIN"])) == caps.mask(caps.DEFAULT) | (1 << 12)
    assert caps.container_mask(ContainerSpec(privileged=True)) == held
    assert caps.container_mask(ContainerSpec(cap_add=["ALL"])) == held
    with pytest.raises(errors.FailedPrecondition, match="CAP_SYS_ADMIN"):
        caps.container_mask(ContainerSpec(cap_add=["SYS_ADMIN"]))


def test_resolve_by_name_uid_and_group():
    r = user.resolve("alice", PASSWD, GROUP)
    assert r == user.ExecUser(1000, 1000, [10, 29], "/home/alice")  # first passwd entry wins
    assert user.resolve("1000", PASSWD, GROUP) == r
    assert user.resolve("alice:staff", PASSWD, GROUP) == user.ExecUser(1000, 50, [], "/home/alice")
    assert user.resolve("alice:65534", PASSWD, GROUP) == user.ExecUser(1000, 65534, [], "/home/alice")
    assert user.resolve("svc:777", PASSWD, GROUP) == user.ExecUser(500, 777, [], "/srv")  # numeric gid, no entry
    assert user.resolve(None, PASSWD, GROUP) == user.ExecUser(0, 0, [10], "/root")  # root's memberships
    assert user.resolve("4242", PASSWD, GROUP) == user.ExecUser(4242, 0, [], "/")
    assert user.resolve("4242:4343", None, None) == user.ExecUser(4242, 4343, [], "/")
    assert user.resolve(None, None, None) == user.ExecUser(0, 0, [], "/")


def test_resolve_errors_in_dockers_words():
    with pytest.raises(errors.InvalidArgument, match="^unable to find user bob: no matching entries in passwd file$"):
        user.resolve("bob", PASSWD, GROUP)
    with pytest.raises(errors.InvalidArgument, match="unable to find user bob: no matching entries in passwd"):
        user.resolve("bob", None, None)
    with pytest.raises(errors.InvalidArgument, match="unable to find group ops: no matching entries in group file"):
        user.resolve("alice:ops", PASSWD, GROUP)


def test_check_spec():
    for ok in ("alice", "1000", "1000:1000", "alice:staff", "www-data"):
        assert user.check_spec(ok) == ok
    assert user.check_spec("") is None and user.check_spec(None) is None
    for bad in ("a:b:c", "a b", ":x", "x:", 5, "99999999999"):
        with pytest.raises(errors.InvalidArgument):
            user.check_spec(bad)


def test_read_file_refuses_fifo_and_reads_regular(tmp_path):
    regular = tmp_path / "passwd"
    regular.write_text(PASSWD)
    assert user.read_file(str(regular)) == PASSWD
    assert user.read_file(str(tmp_path / "missing")) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    with pytest.raises(errors.InvalidArgument, match="not a regular file"):
        user.read_file(str(fifo))  # would block forever if opened without O_NONBLOCK and read


def test_isolation_flags_defaults_and_errors():
    assert isolation_flags() == {"user": None, "cap_add": [], "cap_drop": [], "privileged": False,
                                  "read_only": False, "no_new_privileges": False, "seccomp": None,
                                  "network": "bridge", "init": False}
    got = isolation_flags(**{"user": "1000:50", "cap_add": ["net_admin"], "cap_drop": ["ALL"], "privileged": None,
                          "read_only": True, "no_new_privileges": True, "network": "none"})
    assert got["cap_add"] == ["CAP_NET_ADMIN"] and got["cap_drop"] == ["ALL"] and got["network"] == "none"
    for args, msg in (({"cap_add": ["CAP_FOO"]}, 'unknown capability: "CAP_FOO"'),
                      ({"cap_drop": "ALL"}, "cap_drop must be a list"),
                      ({"privileged": "yes"}, "privileged must be a boolean"),
                      ({"read_only": 1}, "read_only must be a boolean"),
                      ({"init": "yes"}, "init must be a boolean"),
                      ({"network": "-bad"}, "invalid network mode '-bad'"),
                      ({"network": "container:"}, "container: needs"),
                      ({"user": "a:b:c"}, "invalid user")):
        with pytest.raises(errors.InvalidArgument, match=msg):
            isolation_flags(**args)


def test_spec_validate_normalises_and_round_trips():
    spec = ContainerSpec(image="busybox", image_id="sha256:" + "a" * 64, lowerdirs=["/l"], argv=["true"],
                         cap_add=["net_admin"], user="alice", read_only=True).validate()
    assert spec.cap_add == ["CAP_NET_ADMIN"]
    again = ContainerSpec.from_dict(spec.to_dict())
    assert again == spec and again.read_only and again.network == "bridge"
    spec.no_new_privileges = "true"
    with pytest.raises(errors.InvalidArgument, match="no_new_privileges must be a boolean"):
        spec.validate()
