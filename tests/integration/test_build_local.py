"""``build`` at the payload level on this machine (root): real builds through the op, RUN in real containers.

Each test writes a context tar where the controller's upload puts it (<root>/build/contexts/<sha>.tar) and
calls the op with a busybox base image made without a registry (tests/helpers/images.py).
"""

import gzip
import hashlib
import io
import json
import os
import re
import tarfile

import pytest

from agent_payload import errors
from agent_payload.ops import dispatch
from tests.helpers import builds
from tests.helpers import images as fx
from tests.helpers.images import _layer_with_links
from tests.helpers.runtime import integration

pytestmark = integration
env = fx.env

PASSWD, GROUP = builds.PASSWD, builds.GROUP
_base, build, run, config = builds.base, builds.build, builds.run, builds.config


def test_metadata_instructions_history_and_output(env):
    _base(env)
    df = """FROM busybox
LABEL a=1 "b c"="d e"
MAINTAINER Ann <a@b>
ENV K1=v1 K2="two words"
ENV K3 $K1-x
EXPOSE 80 53/udp
VOLUME /data
USER app:staff
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD hello
"""
    result, out = build(env, df, tags=["meta:1"])
    assert re.search(r"^Step 1/14 : FROM busybox\n ---> [0-9a-f]{12}\n", out), out
    assert "Step 14/14 : CMD hello\n" in out
    assert out.endswith("Successfully built {}\nSuccessfully tagged meta:1\n".format(result["id"][7:19])), out
    assert result["tags"] == ["meta:1"] and result["steps"] == 13 and result["cached"] == 0
    cfg = config(env, "meta:1")
    c = cfg["config"]
    assert c["Labels"] == {"a": "1", "b c": "d e"}
    assert c["Env"][-3:] == ["K1=v1", "K2=two words", "K3=v1-x"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert c["User"] == "app:staff" and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5000000000,
                                "Retries": 3}
    assert c["Shell"] == ["/bin/sh", "-ec"] and c["OnBuild"] == ["RUN echo triggered"]
    assert c["Entrypoint"] == ["/bin/echo"] and c["Cmd"] == ["/bin/sh", "-ec", "hello"]
    assert cfg["author"] == "Ann <a@b>"
    rows = [h["created_by"] for h in cfg["history"][-13:]]
    assert rows[0] == '/bin/sh -c #(nop)  LABEL a=1 b c=d e'
    assert rows[2] == '/bin/sh -c #(nop)  ENV K1=v1 K2=two words'
    assert rows[4] == '/bin/sh -c #(nop)  EXPOSE 53/udp 80'  # sorted as written (BuildKit's parseExpose)
    assert rows[5] == '/bin/sh -c #(nop)  VOLUME [/data]'
    assert rows[8] == ('/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "wget -q localhost || exit 1"] "5s" "0s" '
                       '"0s" "0s" \'\\x03\'}')
    assert rows[9] == '/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]'  # the new shell, %v
    assert rows[10] == '/bin/sh -ec #(nop)  ONBUILD RUN echo triggered'
    assert rows[12] == '/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "hello"]'
    assert all(h.get("empty_layer") for h in cfg["history"][-13:])
    assert len(cfg["rootfs"]["diff_ids"]) == 2  # the base's two layers only


def test_run_copy_workdir_layers_and_cache(env):
    _base(env)
    df = """FROM busybox
ARG V=1
WORKDIR /app/sub
COPY a.txt ./
COPY dir /opt/dir/
COPY --chown=app:staff --chmod=600 a.txt b* /owned/
RUN echo "v=$V" > /app/run.txt && rm /tmp/.keep
RUN ["/bin/sh", "-c", "echo exec form"]
"""
    files = {"a.txt": b"A\n", "b1": b"B1\n", "b2": b"B2\n", "dir/x": b"X\n", "dir/sub/y": (b"Y\n", 0o755),
             "dir/ln": ("link", "x"), ".fleet-dockerfile/Dockerfile": b"FROM scratch\n"}
    result, out = build(env, df, files, tags=["app:1"], build_args={"V": "7"})
    assert "exec form\n" in out and " ---> Running in " in out and "Removing intermediate container" in out
    text = run(env, "app:1", "cat /app/sub/a.txt /opt/dir/x /opt/dir/sub/y /app/run.txt; "
                             "readlink /opt/dir/ln; stat -c '%n %u:%g %a' /owned/a.txt /owned/b1 /owned /app/sub "
                             "/opt/dir/sub/y; test ! -e /tmp/.keep && echo gone; ls -a /opt")
    assert text == ("A\nX\nY\nv=7\nx\n/owned/a.txt 1000:50 600\n/owned/b1 1000:50 600\n"
                    "/owned 1000:50 755\n/app/sub 0:0 755\n/opt/dir/sub/y 0:0 755\ngone\n.\n..\ndir\n"), text
    cfg = config(env, "app:1")
    assert cfg["config"]["WorkingDir"] == "/app/sub"
    hist = [h["created_by"] for h in cfg["history"][-7:]]
    assert hist[1] == "/bin/sh -c #(nop) WORKDIR /app/sub"
    assert re.match(r"^/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \./ $", hist[2]), hist[2]  # as written
    assert re.match(r"^/bin/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in /opt/dir/ $", hist[3]), hist[3]
    assert re.match(r"^/bin/sh -c #\(nop\) COPY --chown=app:staffmulti:[0-9a-f]{64} in /owned/ $", hist[4]), hist[4]
    assert hist[5] == '|1 V=7 /bin/sh -c echo "v=$V" > /app/run.txt && rm /tmp/.keep'
    assert hist[6] == "|1 V=7 /bin/sh -c echo exec form"  # exec form too (prependEnvOnCmd)
    # ARG and a RUN that changes nothing have no layer (docker: the empty diff)
    assert [bool(h.get("empty_layer")) for h in cfg["history"][-7:]] == [True] + [False] * 5 + [True]
    assert len(cfg["rootfs"]["diff_ids"]) == 2 + 5
    # the RUN layer holds the whiteout and the new file, nothing of the runtime's mountpoints
    entry = env.store._read_index()["images"][result["id"]]
    members = {m.name for m in tarfile.open(fileobj=io.BytesIO(gzip.decompress(
        env.store.content.read_bytes(entry["layers"][-1]["digest"])))).getmembers()}
    assert members == {"app", "app/run.txt", "tmp", "tmp/.wh..keep"}, members
    # a second build: every step from the cache
    again, out2 = build(env, df, files, tags=["app:1"], build_args={"V": "7"})
    assert again["id"] == result["id"] and again["cached"] == again["steps"] == 7
    assert out2.count(" ---> Using cache\n") == 7 and "Running in" not in out2
    # another build arg value: the RUN steps that see it run again, the steps before come from the cache
    third, _ = build(env, df, files, build_args={"V": "8"})
    assert third["id"] != result["id"] and third["cached"] == 5
    # one copied file changed: that COPY and everything after it run again
    files["dir/x"] = b"X2\n"
    fourth, out4 = build(env, df, files, build_args={"V": "7"})
    assert fourth["cached"] == 3 and fourth["steps"] == 7, out4
    none, _ = build(env, df, files, build_args={"V": "7"}, no_cache=True)
    assert none["cached"] == 0


def test_run_failure_names_the_command_and_leaves_no_image(env):
    _base(env)
    before = set(env.store._read_index()["images"])
    with pytest.raises(errors.Conflict) as exc:
        build(env, "FROM busybox\nRUN echo out; exit 3\n", tags=["bad:1"])
    assert str(exc.value) == "The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3"
    assert set(env.store._read_index()["images"]) == before
    # docker keeps the failed step's container unless --force-rm
    assert len(env.rt.list(all=True)) == 1
    with pytest.raises(errors.Conflict):
        build(env, "FROM busybox\nRUN exit 4\n", force_rm=True)
    assert len(env.rt.list(all=True)) == 1
    with pytest.raises(errors.InvalidArgument):
        build(env, "FROM busybox\nCOPY ../x /x\n")
    with pytest.raises(errors.InvalidArgument) as exc:
        build(env, "FROM busybox\nCOPY missing /x\n")
    assert "file not found in build context" in str(exc.value)
    with pytest.raises(errors.InvalidArgument) as exc:
        build(env, "FROM busybox\nCOPY a b /x\n", {"a": b"", "b": b""})
    assert "must be a directory and end with a /" in str(exc.value)
    with pytest.raises(errors.FailedPrecondition, match="mkdir /etc/passwd: not a directory"):
        build(env, "FROM busybox\nCOPY a /etc/passwd/x\n", {"a": b""})
    with pytest.raises(errors.InvalidArgument, match="failed to reach build target two"):
        build(env, "FROM busybox AS one\n", target="two")
    with pytest.raises(errors.InvalidArgument):
        build(env, "FROM busybox\nBOGUS x\n")
    # flags fleet cannot honour or bad values: refused before the first step runs (no container, no image)
    containers = len(env.rt.list(all=True))
    for bad, message in (("RUN --mount=type=cache,target=/c true", "RUN --mount is not supported"),
                         ("RUN --network=bridge true", "RUN --network=bridge not supported"),
                         ("RUN --security=insecure true", "not allowed"),
                         ("COPY --exclude=*.md . /", "COPY --exclude is not supported"),
                         ("COPY --chmod=u+x a /", "invalid chmod parameter"),
                         ("ADD --checksum=sha256:" + "0" * 64 + " a /", "checksum can't be specified"),
                         ("HEALTHCHECK --interval=1x CMD true", "invalid duration")):
        with pytest.raises(errors.InvalidArgument, match=re.escape(message)):
            build(env, "FROM busybox\nRUN echo first > /first\n" + bad + "\n", {"a": b""})
        assert len(env.rt.list(all=True)) == containers, bad
    assert os.listdir(os.path.join(env.paths.root, "build", "tmp")) == []  # no step's scratch left behind
    assert set(env.store._read_index()["images"]) == before


def test_multistage_target_and_copy_from(env):
    _base(env)
    df = """ARG BASE=busybox
FROM ${BASE} AS build
RUN echo built > /artifact
FROM busybox AS unused
RUN exit 9
FROM scratch AS final
COPY --from=build /artifact /bin/busybox /
FROM final AS more
ENV X=1
"""
    result, out = build(env, df, target="final", tags=["ms:1"])
    assert "exit 9" not in out and "Step 1/5 : ARG BASE=busybox\nStep 2/5 : FROM ${BASE} AS build\n" in out, out
    cfg = config(env, "ms:1")
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    assert run(env, "ms:1", ["/busybox", "cat", "/artifact"]) == "built\n"


def test_onbuild_triggers_run_in_the_child(env):
    _base(env)
    parent, _ = build(env, "FROM busybox\nONBUILD COPY f /from-trigger\nONBUILD RUN echo run-trigger > /t\n",
                      tags=["parent:1"])
    child, out = build(env, "FROM parent:1\nCMD [\"x\"]\n", {"f": b"F\n"}, tags=["child:1"])
    assert "# Executing 2 build triggers\n" in out
    assert run(env, "child:1", "cat /from-trigger /t") == "F\nrun-trigger\n"
    assert config(env, "child:1")["config"]["OnBuild"] is None


def test_add_archive_url_less(env):
    _base(env)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/file")
        data = b"in the tar\n"
        info.size, info.uid, info.gid, info.mode = len(data), 1000, 1000, 0o640
        tar.addfile(info, io.BytesIO(data))
    result, _ = build(env, "FROM busybox\nADD a.tgz /x/\nADD plain /p\n", {"a.tgz": buf.getvalue(),
                                                                          "plain": b"plain\n"}, tags=["add:1"])
    assert run(env, "add:1", "stat -c '%u %a' /x/pkg/file; cat /x/pkg/file /p") == "1000 640\nin the tar\nplain\n"


def test_source_date_epoch_gives_the_same_image_in_two_roots(env, tmp_path):
    _base(env)
    df = "FROM busybox\nCOPY a /a\nRUN echo x > /b\nCMD [\"sh\"]\n"
    first, _ = build(env, df, {"a": b"a\n"}, source_date_epoch=1700000000)
    cfg = env.store.image_config(first["id"])
    assert cfg["created"] == "2023-11-14T22:13:20Z" and cfg["history"][-1]["created"] == cfg["created"]
    # a second root, the same base and context: the same image ID
    from agent_payload.image import images
    from agent_payload.state.paths import Paths
    other = Paths(root=str(tmp_path / "root2"), config_dir=str(tmp_path / "etc2"))
    fx2 = fx.Fixture(other)
    fx2.ctx, fx2.rt = fx._Ctx(other), __import__("agent_payload.runtime.containers", fromlist=["x"]).Runtime(other)
    fx2.store = images.ImageStore(other, config={})
    try:
        _base(fx2)
        second, _ = build(fx2, df, {"a": b"a\n"}, build_args={"SOURCE_DATE_EPOCH": "1700000000"})
    finally:
        from tests.helpers.runtime import _cleanup
        _cleanup(other)
    assert second["id"] == first["id"]
    assert json.loads(json.dumps(cfg))["container"] == ""


def test_user_workdir_entrypoint_heredocs_and_args(env):
    _base(env)
    df = """FROM busybox
CMD ["from-stage"]
ENTRYPOINT ["/bin/echo"]
USER app
WORKDIR /srv/new
RUN id -u > /srv/new/uid.txt || echo cannot-write
USER root
RUN <<EOF
echo heredoc > /srv/hd.txt
id -u >> /srv/hd.txt
EOF
RUN <<EOF
#!/bin/sh -e
echo "shebang $0" > /srv/sb.txt
EOF
COPY <<EOT /srv/copied.txt
copied $HOME
EOT
ARG HTTP_PROXY
ARG USED=u
RUN echo "$HTTP_PROXY $USED" > /srv/args.txt
HEALTHCHECK NONE
"""
    result, out = build(env, df, tags=["misc:1"], build_args={"HTTP_PROXY": "http://proxy:3128", "NOTUSED": "1"})
    assert "[Warning] One or more build-args [NOTUSED] were not consumed\n" in out
    cfg = config(env, "misc:1")
    c = cfg["config"]
    # ENTRYPOINT after a CMD of the same stage keeps that CMD (docker's cmdSet)
    assert c["Entrypoint"] == ["/bin/echo"] and c["Cmd"] == ["from-stage"]
    assert c["Healthcheck"] == {"Test": ["NONE"]}
    # WORKDIR made the directory as root even under USER app (classic builder), so app cannot write there
    assert run(env, "misc:1", "stat -c '%u %a' /srv/new; cat /srv/hd.txt /srv/copied.txt /srv/args.txt; "
                              "test -e /srv/new/uid.txt || echo no-uid-file; cat /srv/sb.txt; "
                              "test -e /.fleet-heredoc || echo no-script-left") == \
        "0 755\nheredoc\n0\ncopied \nhttp://proxy:3128 u\nno-uid-file\nshebang /.fleet-heredoc\nno-script-left\n"
    rows = [h["created_by"] for h in cfg["history"]]
    # the declared proxy arg is in history, as docker (declared: IsReferencedOrNotBuiltin)
    assert any(r.startswith("|2 HTTP_PROXY=http://proxy:3128 USED=u /bin/sh -c ") for r in rows), rows
    # not declared: in RUN's environment but not in history (prependEnvOnCmd leaves "|0")
    build(env, "FROM busybox\nRUN echo $HTTP_PROXY > /p\n", tags=["proxy:1"],
          build_args={"HTTP_PROXY": "http://proxy:3128"})
    assert config(env, "proxy:1")["history"][-1]["created_by"] == "|0 /bin/sh -c echo $HTTP_PROXY > /p"
    assert run(env, "proxy:1", "cat /p") == "http://proxy:3128\n"
    # an ENTRYPOINT with only an inherited CMD resets it
    build(env, "FROM misc:1\nENTRYPOINT [\"/bin/true\"]\n", tags=["ep:1"])
    assert config(env, "ep:1")["config"]["Cmd"] is None


def test_dest_symlinks_are_followed_inside_the_image(env):
    env.image(["busybox:latest"], [_layer_with_links(), {"usr/local/.keep": b"", "etc/passwd": PASSWD}])
    build(env, "FROM busybox\nRUN ln -s usr/local /opt\n", tags=["links:1"])
    build(env, "FROM links:1\nCOPY f /opt/\nCOPY f /opt/sub/g\nCOPY ln l? /s/\n",
          {"f": b"F\n", "ln": ("link", "f"), "lk": ("link", "f")}, tags=["links:2"])
    assert run(env, "links:2", "readlink /opt; cat /usr/local/f /usr/local/sub/g") == "usr/local\nF\nF\n"
    # a source that is a symlink: its target's contents under the symlink's own name (docker's source.path)
    assert run(env, "links:2", "test -L /s/ln || cat /s/ln /s/lk") == "F\nF\n"


def test_add_url_copy_from_image_and_quiet(env):
    import http.server
    import threading

    _base(env)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"remote\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:{}/files/r.txt".format(server.server_address[1])
        result, out = build(env, "FROM busybox\nADD {} /dl/\nCOPY --from=busybox /etc/passwd /pw\n".format(url),
                            tags=["url:1"], quiet=True)
        with pytest.raises(errors.InvalidArgument, match="digest mismatch"):
            build(env, "FROM busybox\nADD --checksum=sha256:{} {} /dl/\n".format("0" * 64, url))
        good = hashlib.sha256(b"remote\n").hexdigest()
        build(env, "FROM busybox\nADD --checksum=sha256:{} {} /dl/\n".format(good, url))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert out == ""
    assert run(env, "url:1", "stat -c '%a %Y' /dl/r.txt; cat /dl/r.txt; head -1 /pw") == \
        "600 1700000000\nremote\nroot:x:0:0:root:/root:/bin/sh\n"


def test_intermediate_images_hidden_kept_by_prune_and_pruned_after_rmi(env):
    base = _base(env)
    result, _ = build(env, "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"sh\"]\n", tags=["steps:1"])
    listed = {r["id"] for r in dispatch(env.ctx, "images", {}, lambda *a: None)["images"]}
    every = {r["id"] for r in dispatch(env.ctx, "images", {"all": True}, lambda *a: None)["images"]}
    assert listed == {base, result["id"]}
    assert len(every - listed) == 2  # ENV and RUN's images: docker images -a only
    assert dispatch(env.ctx, "image_prune", {}, lambda *a: None)["deleted"] == []
    # history: each step's row has its image's ID (docker's, down the parent chain), the base's top row its own
    ids = [r["id"] for r in dispatch(env.ctx, "history", {"image": "steps:1"}, lambda *a: None)["history"]]
    assert ids[0] == result["id"] and len(set(ids[:3])) == 3 and ids[3] == base and ids[4:] == ["<missing>"]
    (obj,) = dispatch(env.ctx, "image_inspect", {"images": ["steps:1"]}, lambda *a: None)["images"]
    assert obj["Parent"] == ids[1]
    dispatch(env.ctx, "rmi", {"images": ["steps:1"]}, lambda *a: None)
    pruned = dispatch(env.ctx, "image_prune", {}, lambda *a: None)["deleted"]
    assert len(pruned) == 2 and set(env.store._read_index()["images"]) == {base}
    # the cache does not hand out images that are gone
    again, _ = build(env, "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"sh\"]\n")
    assert again["cached"] == 0 and again["steps"] == 3


def test_run_network_host(env):
    # (the default network's bridge belongs in a lab host's namespace: the lab tests cover it)
    _base(env)

    def host_ifaces():
        with open("/proc/net/dev") as f:
            return {line.split(":")[0].strip() for line in f if ":" in line}
    before = host_ifaces()
    build(env, "FROM busybox\nRUN cut -d: -f1 /proc/net/dev | grep -v '|' > /ifaces\n", network="host",
          tags=["net:1"])
    seen = {name.strip() for name in run(env, "net:1", "cat /ifaces").split()}
    # the host's own interfaces (those that lasted the build: other tests' veths come and go meanwhile)
    assert before & host_ifaces() <= seen and len(seen) > 1, (before, seen)
    build(env, "FROM busybox\nRUN grep -c : /proc/net/dev > /ifaces2\n", network="none", tags=["net:2"])
    assert run(env, "net:2", "cat /ifaces2") == "1\n"  # lo only


def test_from_a_stage_named_by_an_arg_and_an_empty_scratch_stage(env):
    _base(env)
    df = """ARG STAGE=first
FROM busybox AS first
RUN echo one > /one
FROM scratch AS empty
FROM empty AS onempty
COPY --from=first /bin/busybox /one /
FROM ${STAGE}
RUN cat /one > /two
"""
    result, out = build(env, df, tags=["arg:1"])
    assert run(env, "arg:1", "cat /two") == "one\n"
    built, _ = build(env, df, target="onempty", tags=["onempty:1"])
    assert run(env, "onempty:1", ["/busybox", "cat", "/one"]) == "one\n"
    assert len(config(env, "onempty:1")["rootfs"]["diff_ids"]) == 1
    with pytest.raises(errors.InvalidArgument, match="should not be blank"):
        build(env, "ARG NOTHING\nFROM ${NOTHING}\n")
