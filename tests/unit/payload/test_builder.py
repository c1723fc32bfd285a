"""The builder's pure parts: build args, history texts as docker writes them, cache keys, COPY source matching."""

import io
import tarfile

import pytest

from agent_payload import errors
from agent_payload.build import history as H
from agent_payload.build import sources


def test_build_args_scope_as_docker():
    top = H.BuildArgs({"V": "cli", "HTTP_PROXY": "http://p", "UNUSED": "x"})
    top.add_arg("V", "meta")
    top.add_meta("V", "meta")
    st = top.clone_for_stage()
    assert st.all_allowed() == {"HTTP_PROXY": "http://p"}  # meta ARGs are not in scope until re-declared
    st.add_arg("V", None)
    st.add_arg("D", "default")
    assert st.all_allowed() == {"V": "cli", "D": "default", "HTTP_PROXY": "http://p"}
    # ENV wins over an ARG of the same name; the proxy arg is in the env but not in history
    env = ["PATH=/bin", "D=from-env"]
    arg_env = st.filter_allowed(env)
    assert arg_env == ["HTTP_PROXY=http://p", "V=cli"]
    assert H.prepend_env_on_cmd(st, arg_env, ["/bin/sh", "-c", "x"]) == ["|1", "V=cli", "/bin/sh", "-c", "x"]
    assert H.expansion_env({"Env": env}, st) == {"PATH": "/bin", "D": "from-env", "HTTP_PROXY": "http://p",
                                                 "V": "cli"}
    assert top.unused() == ["UNUSED"]
    # a declared ARG without a default and no value anywhere is not in scope
    other = H.BuildArgs({}).clone_for_stage()
    other.add_arg("NOPE", None)
    assert other.all_allowed() == {}


def test_history_texts():
    cfg = {"Shell": None}
    assert H.created_by(H.nop_cmd(cfg, 'CMD ["sh"]')) == '/bin/sh -c #(nop)  CMD ["sh"]'
    assert H.created_by(H.nop_cmd_string(cfg, "COPY file:ab in /x ")) == "/bin/sh -c #(nop) COPY file:ab in /x "
    assert H.created_by(H.nop_cmd({"Shell": ["/bin/bash", "-ec"]}, "USER x")) == "/bin/bash -ec #(nop)  USER x"
    assert H.go_quote_list(["a", 'b "c"', "d\\e\n"]) == '["a" "b \\"c\\"" "d\\\\e\\n"]'
    assert [H.go_duration(n) for n in (0, 1500, 2000000, 5000000000, 90 * 10 ** 9, 3600 * 10 ** 9 + 1)] == \
        ["0s", "1.5µs", "2ms", "5s", "1m30s", "1h0m0.000000001s"]
    assert H.healthcheck_comment({"Test": ["CMD", "true"], "Interval": 30 * 10 ** 9, "Retries": 3}) == \
        'HEALTHCHECK &{["CMD" "true"] "30s" "0s" "0s" "0s" \'\\x03\'}'
    assert H.go_char(0) == "'\\x00'" and H.go_char(65) == "'A'"
    assert H.format_created(1700000000) == "2023-11-14T22:13:20Z"


def test_base_config_adds_path_and_clears_stdin():
    cfg = H.base_config({"config": {"Env": ["A=1"], "OpenStdin": True, "Cmd": ["sh"]}})
    assert cfg["Env"] == ["A=1", "PATH=" + H.DEFAULT_PATH] and cfg["OpenStdin"] is False
    scratch = H.base_config(None)
    assert scratch["Env"] == ["PATH=" + H.DEFAULT_PATH] and scratch["Cmd"] is None and scratch["Labels"] is None


def test_cache_key_depends_on_parent_config_and_sources():
    cfg = {"Cmd": ["/bin/sh", "-c", "x"], "Env": ["A=1"]}
    k = H.cache_key("sha256:p", cfg)
    assert k == H.cache_key("sha256:p", dict(cfg))
    assert k != H.cache_key("sha256:q", cfg)
    assert k != H.cache_key("sha256:p", dict(cfg, Env=["A=2"]))
    assert k != H.cache_key("sha256:p", cfg, "chown=1")
    assert H.cache_key("sha256:p", cfg, "", None) == k  # no SOURCE_DATE_EPOCH: the key as before
    assert len({k, H.cache_key("sha256:p", cfg, "", 0), H.cache_key("sha256:p", cfg, "", 1700000000)}) == 3


@pytest.mark.parametrize("pattern,name,ok", [
    ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("d/*", "d/a", True), ("?.c", "ab.c", False),
    ("[ab].c", "b.c", True), ("[^ab].c", "c.c", True), ("[!ab].c", "a.c", False), ("a\\*b", "a*b", True),
    ("d/*/f", "d/x/f", True), ("d/*/f", "d/x/y/f", False),
])
def test_go_match(pattern, name, ok):
    assert bool(sources.go_match_regex(pattern).match(name)) is ok


def test_go_match_bad_pattern_and_outside_paths():
    with pytest.raises(errors.InvalidArgument):
        sources.go_match_regex("[abc")
    with pytest.raises(errors.InvalidArgument, match="outside the build context"):
        sources.clean("../x")
    assert sources.clean("/a/../b") == "b" and sources.clean("./") == "." and sources.clean("a/./b/") == "a/b"


def _tree(tmp_path, files):
    path = str(tmp_path / "ctx.tar")
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return sources.SourceTree(path)


def test_source_tree_match_resolve_and_hash(tmp_path):
    t = _tree(tmp_path, {"a.txt": b"a", "b.txt": b"b", "d/x": b"x", "d/y/z": b"z", "ln": ("sym", "d/x"),
                         "dl": ("sym", "/d"), ".fleet-dockerfile/Dockerfile": b"FROM x"})
    try:
        assert t.match("*.txt") == [("a.txt", "a.txt"), ("b.txt", "b.txt")]
        assert t.match("d") == [("d", "d")] and t.entries["d"].isdir()  # implied parent directories
        # symlinks followed inside the tree; the name as given stays (the copy's name, as docker's)
        assert t.match("ln") == [("ln", "d/x")] and t.match("dl/y/z") == [("dl/y/z", "d/y/z")]
        assert t.match("l?") == [("ln", "d/x")]
        assert t.match("missing") == [] and t.match(".fleet-dockerfile/Dockerfile") == []
        assert t.walk("d") == ["d", "d/x", "d/y", "d/y/z"]
        h = t.content_hash(["d"])
        assert h == t.content_hash(["d"]) and h != t.content_hash(["a.txt"])
    finally:
        t.close()
    t2 = _tree(tmp_path, {"d/x": b"changed", "d/y/z": b"z"})
    try:
        assert t2.content_hash(["d"]) != h
    finally:
        t2.close()
    assert sources.source_hash_text([("file", "ab")]) == "file:ab"
    assert sources.source_hash_text([("file", "ab"), ("dir", "cd")]).startswith("multi:")
    assert sources.parse_chmod("0755") == 0o755
    with pytest.raises(errors.InvalidArgument):
        sources.parse_chmod("u+x")


def test_staging_names_of_the_context_root_keep_whole_names(tmp_path):
    """``COPY . /dst``: the source is the tree's root "."; its entries are staged under their whole names."""
    t = _tree(tmp_path, {"keep.log": b"k", "src/a": b"a"})
    out = io.BytesIO()
    try:
        with tarfile.open(fileobj=out, mode="w") as staging:
            assert sources.write_source(staging, t, 0, ".", 0, 0) == 4
    finally:
        t.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as staging:
        assert staging.getnames() == ["0", "0/keep.log", "0/src", "0/src/a"]


def test_chown_identity_as_docker(tmp_path):
    from agent_payload.build.copystep import _identity
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (layer / "etc" / "group").write_text("root:x:0:\napp:x:1002:\nstaff:x:50:\n")
    lowers = [str(layer)]
    assert _identity(lowers, None) == (0, 0)
    assert _identity(lowers, "app:staff") == (1000, 50)
    assert _identity(lowers, "app") == (1000, 1002)  # the group named like the user, not the primary gid
    assert _identity(lowers, "42") == (42, 42) and _identity(lowers, "42:app") == (42, 1002)
    with pytest.raises(errors.InvalidArgument, match="can't find uid for user bob: no such user: bob"):
        _identity(lowers, "bob")
    with pytest.raises(errors.InvalidArgument, match="can't find gid for group nogroup"):
        _identity(lowers, "app:nogroup")
    with pytest.raises(errors.InvalidArgument, match="invalid chown string format"):
        _identity(lowers, "a:b:c")
