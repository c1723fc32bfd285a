"""Credentials store in Docker's config.json format, and WWW-Authenticate challenge parsing."""

import base64
import json
import os
import stat

import pytest

from agent_payload import errors
from agent_payload.image import auth, registry


@pytest.fixture
def docker_dir(tmp_path, monkeypatch):
    d = tmp_path / "dockercfg"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_registry_keys_follow_docker():
    assert auth.registry_key(None) == "https://index.docker.io/v1/"
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"):
        assert auth.registry_key(hub) == auth.HUB_KEY
    assert auth.registry_key("reg.lan:5000") == "reg.lan:5000"
    assert auth.registry_key("https://Reg.LAN:5000/v2/") == "reg.lan:5000"
    with pytest.raises(errors.InvalidArgument):
        auth.registry_key("https:///")


def test_round_trip_mode_and_format(docker_dir):
    assert auth.get("reg.lan:5000") is None  # no file yet
    auth.set("reg.lan:5000", "alice", "s3:cr:et")
    auth.set(None, "bob", "hubpw")
    path = docker_dir / "config.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(docker_dir).st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data == {"auths": {"reg.lan:5000": {"auth": b64("alice:s3:cr:et")},
                              "https://index.docker.io/v1/": {"auth": b64("bob:hubpw")}}}
    assert auth.get("reg.lan:5000") == ("alice", "s3:cr:et")  # a ':' in the password survives
    assert auth.get("docker.io") == ("bob", "hubpw")
    auth.set("reg.lan:5000", "alice", "new")
    assert auth.get("reg.lan:5000") == ("alice", "new")
    assert auth.remove("reg.lan:5000") is True
    assert auth.remove("reg.lan:5000") is False
    assert auth.get("reg.lan:5000") is None and auth.get("docker.io") == ("bob", "hubpw")


def test_docker_written_file_is_read_and_unknown_keys_kept(docker_dir):
    docker_dir.mkdir()
    written = {"auths": {"https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
                         "http://old.lan:5000": {"auth": b64("old:pw")},
                         "legacy.lan": {"username": "u", "password": "p"}},
               "HttpHeaders": {"User-Agent": "Docker-Client/24"}, "psFormat": "table {{.ID}}",
               "currentContext": "default"}
    (docker_dir / "config.json").write_text(json.dumps(written, indent="\t"))
    assert auth.get(None) == ("hubuser", "hubpass")
    assert auth.get("old.lan:5000") == ("old", "pw")  # a scheme-prefixed key matches by host
    assert auth.get("legacy.lan") == ("u", "p")
    auth.set("old.lan:5000", "old", "pw2")
    data = json.loads((docker_dir / "config.json").read_text())
    for key in ("HttpHeaders", "psFormat", "currentContext"):
        assert data[key] == written[key]
    assert "http://old.lan:5000" not in data["auths"]  # one entry per registry, under Docker's key
    assert data["auths"]["old.lan:5000"] == {"auth": b64("old:pw2")}
    assert data["auths"]["legacy.lan"] == {"username": "u", "password": "p"}
    assert auth.remove(None) is True
    assert "https://index.docker.io/v1/" not in json.loads((docker_dir / "config.json").read_text())["auths"]


def test_home_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth.config_path() == str(tmp_path / ".docker" / "config.json")


def test_credential_helpers_are_refused_not_ignored(docker_dir):
    docker_dir.mkdir()
    path = docker_dir / "config.json"
    path.write_text(json.dumps({"auths": {}, "credHelpers": {"gcr.lan": "gcloud"}}))
    for call in (lambda: auth.get("gcr.lan"), lambda: auth.set("gcr.lan", "u", "p"),
                 lambda: auth.remove("gcr.lan")):
        with pytest.raises(errors.FailedPrecondition, match="credential helper 'gcloud'.*not support"):
            call()
    assert auth.get("other.lan") is None  # other registries are unaffected
    path.write_text(json.dumps({"auths": {"reg.lan": {}}, "credsStore": "desktop"}))
    with pytest.raises(errors.FailedPrecondition, match="credential store 'desktop'"):
        auth.get("reg.lan")  # Docker's empty marker: the password lives in the store
    assert auth.get("never.lan") is None  # never logged in: anonymous, as with Docker
    with pytest.raises(errors.FailedPrecondition, match="credsStore"):
        auth.set("never.lan", "u", "p")  # we would write a plain-text password beside the store
    assert json.loads(path.read_text()) == {"auths": {"reg.lan": {}}, "credsStore": "desktop"}


def test_bad_files_and_values(docker_dir):
    docker_dir.mkdir()
    path = docker_dir / "config.json"
    path.write_text("{not json")
    with pytest.raises(errors.FailedPrecondition, match="invalid JSON"):
        auth.get("reg.lan")
    path.write_text(json.dumps({"auths": []}))
    with pytest.raises(errors.FailedPrecondition, match="auths"):
        auth.get("reg.lan")
    path.write_text(json.dumps({"auths": {"reg.lan": {"auth": "!!notbase64-topsecret"}}}))
    assert auth.get("reg.lan") is None
    path.write_text(json.dumps({"auths": {"reg.lan": {"identitytoken": "tok-secret"}}}))
    with pytest.raises(errors.FailedPrecondition, match="identity token") as exc:
        auth.get("reg.lan")
    assert "tok-secret" not in str(exc.value)
    for user, pw in (("", "p"), ("a:b", "p"), ("u", "")):
        with pytest.raises(errors.InvalidArgument):
            auth.set("reg.lan", user, pw)


@pytest.mark.parametrize("header,expected", [
    ('Bearer realm="https://auth.lan/token",service="registry.lan",scope="repository:a/b:pull"',
     ("bearer", {"realm": "https://auth.lan/token", "service": "registry.lan", "scope": "repository:a/b:pull"})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ('bearer realm=https://auth.lan/token, service=reg', ("bearer", {"realm": "https://auth.lan/token",
                                                                     "service": "reg"})),
    ('Bearer realm="x",error="insufficient_scope",scope="repository:a:pull,push"',
     ("bearer", {"realm": "x", "error": "insufficient_scope", "scope": "repository:a:pull,push"})),
    ('Bearer realm="a \\"quoted\\" realm"', ("bearer", {"realm": 'a "quoted" realm'})),
    ("", ("", {})),
    (None, ("", {})),
])
def test_parse_challenge(header, expected):
    assert registry.parse_challenge(header) == expected


def test_next_link():
    cur = "http://reg.lan/v2/a/tags/list?n=2"
    assert registry._next_link('</v2/a/tags/list?last=b&n=2>; rel="next"', cur) == \
        "http://reg.lan/v2/a/tags/list?last=b&n=2"
    assert registry._next_link('<http://reg.lan/x>; rel="prev"', cur) is None
    assert registry._next_link(None, cur) is None
