"""daemon.json: per-registry hosts (mirrors, capabilities, origin), validation errors, endpoint order, update."""

import json
import os
import stat

import pytest

from agent_payload import config, errors
from agent_payload.image import registry
from agent_payload.state.paths import Paths

SRC = "/etc/fleet/daemon.json"


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """is_insecure resolves names as dockerd does; unit tests must not query DNS for made-up hosts."""
    real = config._addresses
    monkeypatch.setattr(config, "_addresses", lambda h: real(h) if h[:1].isdigit() or h == "localhost" else [])


def parse(registries, **extra):
    return config.from_dict(dict(extra, registries=registries), source=SRC)


def test_registries_parsed_with_defaults_and_aliases():
    cfg = parse({"reg.lan:5000": {"mirrors": [{"url": "http://cache.lan:5000/", "capabilities": ["pull"]},
                                              {"url": "https://full.lan", "skip_verify": True}]},
                 "index.docker.io": {"mirrors": [{"url": "https://hubcache.lan", "capabilities": ["resolve", "pull"]}],
                                     "origin": False},
                 "default": {}})
    assert set(cfg.registries) == {"reg.lan:5000", "docker.io", "default"}
    m = cfg.registries["reg.lan:5000"].mirrors
    assert m[0] == config.MirrorHost("http://cache.lan:5000", ("pull",), False)
    assert m[1] == config.MirrorHost("https://full.lan", ("pull", "resolve"), True)  # containerd's default caps
    assert cfg.registries["reg.lan:5000"].origin is True
    assert cfg.registries["docker.io"].origin is False
    assert cfg.registries["docker.io"].mirrors[0].capabilities == ("pull", "resolve")
    assert config.from_dict({}, SRC).registries == {}


@pytest.mark.parametrize("registries,where,what", [
    ([], "registries", "must be an object"),
    ({"bad host!": {}}, "registries['bad host!']", "host[:port]"),
    ({"reg.lan/path": {}}, "registries['reg.lan/path']", "host[:port]"),
    ({"reg.lan": []}, "registries['reg.lan']", "must be an object"),
    ({"reg.lan": {"mirror": []}}, "registries['reg.lan']", "unknown key 'mirror'"),
    ({"reg.lan": {"mirrors": {}}}, "registries['reg.lan'].mirrors", "must be a list"),
    ({"reg.lan": {"mirrors": ["http://x"]}}, "registries['reg.lan'].mirrors[0]", "must be an object"),
    ({"reg.lan": {"mirrors": [{}]}}, "registries['reg.lan'].mirrors[0]", "url is required"),
    ({"reg.lan": {"mirrors": [{"url": "ftp://x"}]}}, "registries['reg.lan'].mirrors[0].url", "scheme"),
    ({"reg.lan": {"mirrors": [{"url": "http://x?a=1"}]}}, "registries['reg.lan'].mirrors[0].url", "query"),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "capabilities": "pull"}]}},
     "registries['reg.lan'].mirrors[0].capabilities", "list of strings"),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "capabilities": ["pull", "push"]}]}},
     "registries['reg.lan'].mirrors[0].capabilities", "unsupported capability 'push'"),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "capabilities": ["resolve"]}]}},
     "registries['reg.lan'].mirrors[0].capabilities", '["pull"] or'),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "capabilities": ["pull", "pull"]}]}},
     "registries['reg.lan'].mirrors[0].capabilities", '["pull"] or'),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "skip_verify": "yes"}]}},
     "registries['reg.lan'].mirrors[0].skip_verify", "true or false"),
    ({"reg.lan": {"mirrors": [{"url": "http://x", "tls": {}}]}}, "registries['reg.lan'].mirrors[0]",
     "unknown key 'tls'"),
    ({"reg.lan": {"origin": "no"}}, "registries['reg.lan'].origin", "true or false"),
    ({"reg.lan": {"origin": False}}, "registries['reg.lan']", "nothing to pull from"),
    ({"docker.io": {}, "registry-1.docker.io": {}}, "registries['registry-1.docker.io']", "configured twice"),
])
def test_every_validation_error_names_file_and_key(registries, where, what):
    with pytest.raises(errors.InvalidArgument) as exc:
        parse(registries)
    msg = exc.value.message
    assert msg.startswith(SRC + ": " + where) and what in msg, msg


def test_other_keys_validation_and_no_credentials_echoed():
    cases = [({"registry-mirrors": "http://x"}, "registry-mirrors must be a list"),
             ({"insecure-registries": "x"}, "insecure-registries must be a list"),
             ({"registry-mirrors": ["http://ok", "ftp://x"]}, "registry-mirrors[1]: invalid mirror"),
             ({"insecure-registries": ["ok.lan", "10.0.0.0/99"]}, "insecure-registries[1]: insecure registry"),
             ({"insecure-registries": [""]}, "insecure-registries[0]")]
    for data, what in cases:
        with pytest.raises(errors.InvalidArgument, match=None) as exc:
            config.from_dict(data, SRC)
        assert exc.value.message.startswith(SRC) and what in exc.value.message, exc.value.message
    with pytest.raises(errors.InvalidArgument) as exc:
        parse({"reg.lan": {"mirrors": [{"url": "https://user:hunter2@cache.lan"}]}})
    assert "hunter2" not in exc.value.message and "username/password" in exc.value.message


def urls(eps):
    return [e.url for e in eps]


def test_endpoint_order_per_need():
    cfg = parse({"reg.lan:5000": {"mirrors": [
        {"url": "http://pullonly1.lan", "capabilities": ["pull"]},
        {"url": "https://both.lan", "capabilities": ["pull", "resolve"], "skip_verify": True},
        {"url": "http://pullonly2.lan", "capabilities": ["pull"]}]}}, **{"insecure-registries": ["reg.lan:5000"]})
    pull = registry.endpoints_for("reg.lan:5000", cfg, "pull")
    assert urls(pull) == ["http://pullonly1.lan", "https://both.lan", "http://pullonly2.lan",
                          "https://reg.lan:5000", "http://reg.lan:5000"]  # origin last, http only when insecure
    assert [e.mirror for e in pull] == [True, True, True, False, False]
    resolve = registry.endpoints_for("reg.lan:5000", cfg, "resolve")
    assert urls(resolve) == ["https://both.lan", "https://reg.lan:5000", "http://reg.lan:5000"]
    assert urls(resolve[0].content_mirrors) == ["http://pullonly1.lan"]
    assert urls(resolve[1].content_mirrors) == ["http://pullonly1.lan", "http://pullonly2.lan"]
    assert resolve[0].insecure is True and resolve[0].auth_key == "both.lan"  # a mirror's own credentials
    assert resolve[1].auth_key == "reg.lan:5000"
    assert registry.endpoints_for("reg.lan:5000", cfg) == resolve  # resolve is the default need


def test_default_entry_hub_mirrors_and_origin_off():
    cfg = parse({"default": {"mirrors": [{"url": "http://cache.lan", "capabilities": ["pull"]}]},
                 "docker.io": {"mirrors": [{"url": "https://hubcache.lan", "capabilities": ["pull"]}]},
                 "solo.lan": {"mirrors": [{"url": "https://only.lan"}], "origin": False},
                 "blind.lan": {"mirrors": [{"url": "https://blind.lan", "capabilities": ["pull"]}], "origin": False}},
                **{"registry-mirrors": ["https://dockerd-mirror.lan/"]})
    other = registry.endpoints_for("other.lan", cfg, "resolve")
    assert urls(other) == ["https://other.lan"] and urls(other[0].content_mirrors) == ["http://cache.lan"]
    hub = registry.endpoints_for("docker.io", cfg, "pull")
    assert urls(hub) == ["https://hubcache.lan", "https://dockerd-mirror.lan", registry.HUB_ORIGIN]
    hub_resolve = registry.endpoints_for("docker.io", cfg, "resolve")
    # registry-mirrors are trusted to resolve (as dockerd does); the pull-only entry only serves content.
    assert urls(hub_resolve) == ["https://dockerd-mirror.lan", registry.HUB_ORIGIN]
    assert hub_resolve[-1].auth_key == "docker.io" and urls(hub_resolve[-1].content_mirrors) == [
        "https://hubcache.lan"]
    assert urls(registry.endpoints_for("solo.lan", cfg, "resolve")) == ["https://only.lan"]
    assert urls(registry.endpoints_for("blind.lan", cfg, "pull")) == ["https://blind.lan"]
    with pytest.raises(errors.FailedPrecondition, match="no host may resolve references for blind.lan"):
        registry.endpoints_for("blind.lan", cfg, "resolve")
    with pytest.raises(ValueError):
        registry.endpoints_for("x.lan", cfg, "push")


def test_update_merges_validates_and_writes(tmp_path):
    paths = Paths(root=str(tmp_path / "root"), config_dir=str(tmp_path / "cfg"))
    assert config.update(paths, {}) == (False, {})
    assert not os.path.exists(paths.daemon_json)
    changed, merged = config.update(paths, {"insecure-registries": ["reg.lan:5000"], "log-level": "debug"})
    assert changed and merged == {"insecure-registries": ["reg.lan:5000"], "log-level": "debug"}
    assert json.loads(open(paths.daemon_json).read()) == merged
    assert stat.S_IMODE(os.stat(paths.daemon_json).st_mode) == 0o644
    assert config.update(paths, {"log-level": "debug"}) == (False, merged)
    before = open(paths.daemon_json, "rb").read()
    with pytest.raises(errors.InvalidArgument, match="registries\\['r.lan'\\].origin"):
        config.update(paths, {"registries": {"r.lan": {"origin": 1}}, "log-level": "info"})
    assert open(paths.daemon_json, "rb").read() == before  # refused: nothing written
    changed, merged = config.update(paths, {"log-level": None, "registries": {"r.lan": {}}})
    assert changed and merged == {"insecure-registries": ["reg.lan:5000"], "registries": {"r.lan": {}}}
    assert config.load(paths).registries["r.lan"].origin is True
    with pytest.raises(errors.InvalidArgument):
        config.update(paths, ["not", "a", "dict"])
    with open(paths.daemon_json, "w") as f:
        f.write("{broken")
    with pytest.raises(errors.InvalidArgument, match="invalid JSON"):
        config.update(paths, {"log-level": "info"})
    assert open(paths.daemon_json).read() == "{broken"
