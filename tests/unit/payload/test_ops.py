"""ENTRYPOINT/CMD combination and environment merging follow Docker exactly."""

import pytest

from agent_payload import errors
from agent_payload.ops.containers import container_argv, merge_env

IMG = {"config": {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"]}}
CMD_ONLY = {"config": {"Cmd": ["sh"]}}


@pytest.mark.parametrize("config,entrypoint,command,expected", [
    (IMG, None, None, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
    (IMG, None, ["nginx", "-t"], ["/docker-entrypoint.sh", "nginx", "-t"]),
    (IMG, ["/bin/sh"], None, ["/bin/sh"]),                      # --entrypoint drops the image CMD
    (IMG, ["/bin/sh"], ["-c", "id"], ["/bin/sh", "-c", "id"]),
    (IMG, [""], ["echo", "hi"], ["echo", "hi"]),                # --entrypoint "" resets it
    (CMD_ONLY, None, None, ["sh"]),
    (CMD_ONLY, None, ["echo", "x"], ["echo", "x"]),
])
def test_container_argv(config, entrypoint, command, expected):
    assert container_argv(config, entrypoint, command) == expected


def test_no_command_at_all_is_invalid():
    with pytest.raises(errors.InvalidArgument):
        container_argv({"config": {}}, None, None)


def test_merge_env_overrides_in_place():
    assert merge_env(["PATH=/bin", "A=1"], ["A=2", "B=x=y"]) == ["PATH=/bin", "A=2", "B=x=y"]


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_merge_env_rejects_malformed(bad):
    with pytest.raises(errors.InvalidArgument):
        merge_env([], [bad])


def test_inspect_each_keeps_the_found_and_reports_each_missing():
    """docker volume/network/image inspect a nosuch b: a's and b's objects, one error for nosuch; none found:
    the first name's error is the host's."""
    from agent_payload.ops.pername import inspect_each

    def one(name):
        if name.startswith("no"):
            raise errors.NotFound("No such volume: " + name)
        return {"Name": name}
    out = inspect_each(["a", "nosuch", "b"], one, "volumes")
    assert out == {"volumes": [{"Name": "a"}, {"Name": "b"}],
                   "errors": [{"name": "nosuch", "kind": "NotFound", "message": "No such volume: nosuch"}]}
    assert inspect_each(["a"], one, "volumes") == {"volumes": [{"Name": "a"}]}
    with pytest.raises(errors.NotFound, match="nosuch1"):
        inspect_each(["nosuch1", "nosuch2"], one, "volumes")
