"""fleet build's controller side without hosts (tests/helpers/cli_fakes): the checks before anything is sent, the
context sent only to a host that lacks it, the output as docker's classic builder, -q, --iidfile."""

import os
import tempfile

import pytest

from fleet.transport import files, invoke
from tests.helpers import cli_fakes
from tests.helpers.cli_fakes import _cli

cli_calls = cli_fakes.cli_calls

ID1 = "sha256:" + "1" * 64
ID2 = "sha256:" + "2" * 64
STEPS = ["Step 1/2 : FROM scratch\n", " ---> \n", "Step 2/2 : COPY a /\n", " ---> 1111111111\n",
         "Successfully built 1111111111\n"]


@pytest.fixture
def build_host(cli_calls, monkeypatch):
    """cli_calls, plus: the build op streams STEPS as "build" events and answers per host ``ids[host]``;
    build_context answers ``present[(host, sha256)]``; every SFTP upload is recorded in ``uploads``."""
    rec = cli_calls
    rec.ids, rec.present, rec.uploads = {}, {}, []

    async def call(conn, host, payload, op, args, on_event=None):
        rec.calls.append((host.name, op, args, conn.bounded))
        if op == "build_context":
            key = (host.name, args["sha256"])
            if args.get("staging"):
                rec.present[key] = True
                return invoke.Invocation(data={"present": True, "kept": True})
            return invoke.Invocation(data={"present": rec.present.get(key, False)})
        if op == "build":
            for chunk in STEPS:
                on_event("build", {"stream": chunk})
            return invoke.Invocation(data={"id": rec.ids.get(host.name, ID1), "tags": args["tags"]})
        return invoke.Invocation(data={})

    async def put_file(conn, local_path, remote_path):
        with open(local_path, "rb") as f:
            rec.uploads.append((remote_path, len(f.read())))

    monkeypatch.setattr(invoke, "call", call)
    monkeypatch.setattr(files, "put_file", put_file)
    return rec


@pytest.fixture
def ctx_dir(tmp_path):
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM scratch AS base\nCOPY a /\n")
    (d / "a").write_text("a")
    return d


def _ops(rec):
    return [(h, op) for h, op, _a, _b in rec.calls]


def test_one_host_raw_output_and_the_request(build_host, ctx_dir, monkeypatch):
    monkeypatch.setenv("FROM_ENV", "e")
    monkeypatch.delenv("UNSET_ARG", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    result = _cli(build_host, "build", "-H", "h1", "-t", "app:1", "-t", "reg:5000/app", "--build-arg", "A=1",
                  "--build-arg", "FROM_ENV", "--build-arg", "UNSET_ARG", "--label", "k=v", "--target", "BASE",
                  "--network", "none", "--no-cache", "--pull", "--no-rm", "--force-rm", "--platform", "linux/amd64",
                  str(ctx_dir))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Sending build context to Docker daemon ")
    assert result.stdout_bytes.decode().split("\r\r\n", 1)[1] == "".join(STEPS)
    assert _ops(build_host) == [("h1", "build_context"), ("h1", "build_context"), ("h1", "build")]
    staged = build_host.calls[1][2]["staging"]
    assert staged.startswith("/var/lib/fleet/tmp/cp-") and build_host.uploads[0][0] == staged
    request = build_host.calls[2][2]
    assert request["context"] == build_host.calls[0][2]["sha256"] and request["dockerfile"] == "Dockerfile"
    assert request["build_args"] == {"A": "1", "FROM_ENV": "e", "UNSET_ARG": None}
    assert request["tags"] == ["app:1", "reg:5000/app"] and request["labels"] == {"k": "v"}
    assert (request["target"], request["network"], request["no_cache"], request["pull"]) == ("BASE", "none",
                                                                                             True, True)
    assert (request["rm"], request["force_rm"], request["platform"], request["quiet"]) == (False, True,
                                                                                          "linux/amd64", False)
    assert request["source_date_epoch"] is None
    assert build_host.calls[2][3] is False  # a build is not cut by the command timeout


def test_a_host_that_has_the_context_is_sent_nothing(build_host, ctx_dir):
    assert _cli(build_host, "build", "-H", "all", str(ctx_dir)).exit_code == 0
    assert len(build_host.uploads) == 2
    build_host.calls.clear()
    assert _cli(build_host, "build", "-H", "all", str(ctx_dir)).exit_code == 0
    assert len(build_host.uploads) == 2  # the second build sent no byte
    assert [op for _h, op in _ops(build_host)] == ["build_context", "build", "build_context", "build"]
    (ctx_dir / "a").write_text("changed")
    assert _cli(build_host, "build", "-H", "h1", str(ctx_dir)).exit_code == 0
    assert len(build_host.uploads) == 3


def test_several_hosts_prefix_each_line(build_host, ctx_dir):
    result = _cli(build_host, "build", "-H", "all", str(ctx_dir))
    assert result.exit_code == 0
    lines = result.stdout_bytes.decode().split("\r\r\n", 1)[1].splitlines()
    assert lines == ["h1 | " + s.rstrip("\n") for s in STEPS] + ["h2 | " + s.rstrip("\n") for s in STEPS]


def test_quiet_prints_the_id_only(build_host, ctx_dir):
    result = _cli(build_host, "build", "-H", "h1", "-q", str(ctx_dir))
    assert (result.exit_code, result.output) == (0, ID1 + "\n")
    assert build_host.calls[-1][2]["quiet"] is True
    build_host.ids["h2"] = ID2
    result = _cli(build_host, "build", "-H", "all", "-q", str(ctx_dir))
    assert result.output == "h1 | {}\nh2 | {}\n".format(ID1, ID2)


def test_iidfile(build_host, ctx_dir, tmp_path):
    iid = tmp_path / "iid"
    assert _cli(build_host, "build", "-H", "h1", "--iidfile", str(iid), str(ctx_dir)).exit_code == 0
    assert iid.read_text() == ID1
    assert _cli(build_host, "build", "-H", "all", "--iidfile", str(iid), str(ctx_dir)).exit_code == 0
    assert iid.read_text() == ID1
    build_host.ids["h2"] = ID2
    result = _cli(build_host, "build", "-H", "all", "--iidfile", str(iid), str(ctx_dir))
    assert result.exit_code == 1 and "the hosts built different image IDs" in result.output
    assert not iid.exists()


@pytest.mark.parametrize("dockerfile,args,message", [
    ("FROM scratch\nBOGUS x\n", [], "Dockerfile:2: BOGUS: unknown instruction: BOGUS"),
    ("COPY a /\n", [], "Dockerfile:1: COPY: no build stage in current context"),
    ("FROM scratch\nRUN <<EOF\nx\n", [], "Dockerfile:2: RUN: unterminated heredoc EOF"),
    ('FROM scratch\nCMD ["a"\n', [], "unterminated JSON array"),
    ("FROM scratch AS a\n", ["--target", "b"], 'target stage "b" could not be found'),
    ("FROM scratch\n", ["-t", "Bad:Tag:x"], 'invalid argument "Bad:Tag:x" for "-t, --tag" flag'),
    ("FROM scratch\n", ["--network", "bridge"], 'invalid --network "bridge"'),
    ("FROM scratch\n", ["--build-arg", "=x"], "invalid environment variable: =x"),
    ("FROM scratch\n", ["--build-arg", "SOURCE_DATE_EPOCH=soon"], "invalid SOURCE_DATE_EPOCH"),
])
def test_bad_input_exits_2_and_sends_nothing(build_host, ctx_dir, dockerfile, args, message, tmp_path, monkeypatch):
    (ctx_dir / "Dockerfile").write_text(dockerfile)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = _cli(build_host, "build", "-H", "all", *args, str(ctx_dir))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert build_host.calls == [] and build_host.uploads == []
    assert os.listdir(str(temp)) == []  # the context tar made on this machine is gone too


def test_a_big_context_without_dockerignore_warns_and_builds(build_host, ctx_dir, tmp_path, monkeypatch):
    from fleet.build import context
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(context, "WARN_SIZE", 1000)  # the size fleet chooses: 100 MiB
    (ctx_dir / "big").write_bytes(b"x" * 2000)
    result = _cli(build_host, "build", "-H", "h1", str(ctx_dir))
    assert result.exit_code == 0, result.output
    warning = "WARNING: the build context {} is ".format(ctx_dir)
    assert warning in result.stderr and "has no .dockerignore" in result.stderr and warning not in result.stdout
    assert _ops(build_host)[-1] == ("h1", "build") and os.listdir(str(temp)) == []
    (ctx_dir / ".dockerignore").write_text("big\n")
    result = _cli(build_host, "build", "-H", "h1", str(ctx_dir))
    assert result.exit_code == 0 and "WARNING" not in result.output


def test_dockerfile_on_stdin_and_source_date_epoch(build_host, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = _cli(build_host, "build", "-H", "h1", "-", input="FROM scratch\nLABEL a=b\n")
    assert result.exit_code == 0, result.output
    request = build_host.calls[-1][2]
    assert request["dockerfile"] == "Dockerfile" and request["source_date_epoch"] == 1700000000
    result = _cli(build_host, "build", "-H", "h1", "--build-arg", "SOURCE_DATE_EPOCH=5", "-",
                  input="FROM scratch\n")
    assert build_host.calls[-1][2]["source_date_epoch"] == 5


def test_outside_dockerfile_travels_apart(build_host, ctx_dir, tmp_path):
    (tmp_path / "Other.Dockerfile").write_text("FROM scratch\n")
    result = _cli(build_host, "build", "-H", "h1", "-f", str(tmp_path / "Other.Dockerfile"), str(ctx_dir))
    assert result.exit_code == 0, result.output
    assert build_host.calls[-1][2]["dockerfile"] == ".fleet-dockerfile/Dockerfile"


def test_image_build_alias(build_host, ctx_dir):
    assert _cli(build_host, "image", "build", "-H", "h1", "-q", str(ctx_dir)).output == ID1 + "\n"


def test_a_context_the_host_did_not_keep_fails_that_host(build_host, ctx_dir, monkeypatch):
    real = invoke.call

    async def call(conn, host, payload, op, args, on_event=None):
        if op == "build_context" and args.get("staging") and host.name == "h2":
            build_host.calls.append((host.name, op, args, conn.bounded))
            return invoke.Invocation(data={"present": False})
        return await real(conn, host, payload, op, args, on_event)

    monkeypatch.setattr(invoke, "call", call)
    result = _cli(build_host, "build", "-H", "all", "-q", str(ctx_dir))
    assert result.exit_code == 1
    assert "h2: the build context" in result.output and "was uploaded but not kept" in result.output
    assert [op for h, op in _ops(build_host) if h == "h2"] == ["build_context", "build_context"]
