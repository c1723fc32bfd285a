"""save/load/import on the controller side without hosts: docker's refusals (exit 2, no host asked), load's
local check of the archive, what each host is sent and how the results print."""

import hashlib
import io
import json
import tarfile

from agent_payload.image import archive_formats
from tests.helpers import cli_fakes
from tests.helpers.cli_fakes import _cli
from tests.helpers.images import docker_archive

cli_calls = cli_fakes.cli_calls


def test_save_refusals_exit_2_before_any_host(cli_calls, tmp_path):
    r = _cli(cli_calls, "save", "-H", "all", "-o", str(tmp_path / "x.tar"), "app:1")
    assert r.exit_code == 2 and "exactly one host" in r.output
    r = _cli(cli_calls, "save", "-H", "h1", "-o", str(tmp_path / "nodir" / "x.tar"), "app:1")
    assert r.exit_code == 2 and "invalid output path" in r.output
    r = _cli(cli_calls, "save", "-H", "h1", "--format", "zip", "-o", str(tmp_path / "x.tar"), "app:1")
    assert r.exit_code == 2 and "unknown --format" in r.output
    assert cli_calls.calls == []


def test_save_writes_the_archive_from_the_fetched_blobs(cli_calls, tmp_path):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    image_id = "sha256:" + hashlib.sha256(config.encode()).hexdigest()
    plan = {"images": [{"id": image_id, "config": config, "manifest": "{}", "media_type": "",
                        "tags": [["docker.io/library/app:1", "app:1"]],
                        "layers": [{"diff_id": diff_id, "digest": diff_id, "size": 1, "mediaType": "",
                                    "path": "/var/lib/fleet/blobs/" + diff_id[7:]}]}]}
    cli_calls.answers.update({"save": plan, "cp_out:file": layer.getvalue()})
    r = _cli(cli_calls, "save", "-H", "h1", "-o", str(tmp_path / "x.tar"), "app:1", "busybox")
    assert r.exit_code == 0 and r.output == "", r.output
    with open(tmp_path / "x.tar", "rb") as f:
        arch = archive_formats.open_archive(f, "x.tar")
        arch.verify()
        assert [(i.id, i.tags) for i in arch.images] == [(image_id, ["app:1"])]
    assert cli_calls.calls == [("h1", "save", {"images": ["app:1", "busybox"]}, True)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inv.yml", "x.tar"]  # no temp file left
    cli_calls.answers["cp_out:file"] = b"corrupt"  # a blob that is not the layer: exit 1, no file
    r = _cli(cli_calls, "save", "-H", "h1", "-o", str(tmp_path / "y.tar"), "app:1")
    assert r.exit_code == 1 and "corrupt" in r.output and not (tmp_path / "y.tar").exists()


def test_load_checks_the_archive_before_any_host(cli_calls, tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    r = _cli(cli_calls, "load", "-H", "all", "-i", str(tmp_path / "junk.tar"))
    assert r.exit_code == 2 and "junk.tar: not a tar archive" in r.output
    data, _diff = docker_archive(tamper=True)
    (tmp_path / "bad.tar").write_bytes(data)
    r = _cli(cli_calls, "load", "-H", "all", "-i", str(tmp_path / "bad.tar"))
    assert r.exit_code == 2 and "does not match its digest" in r.output
    r = _cli(cli_calls, "load", "-H", "all", "-i", str(tmp_path / "missing.tar"))
    assert r.exit_code == 2 and "no such file" in r.output
    assert cli_calls.calls == []


def test_load_sends_only_missing_layers_and_prints_dockers_lines(cli_calls, tmp_path):
    data, diff_id = docker_archive()
    (tmp_path / "a.tar").write_bytes(data)
    cli_calls.answers.update({"load_probe": {"present": [diff_id]},
                              "load": {"loaded": [{"id": "sha256:" + "1" * 64, "tags": ["app:1"], "renamed": [
                                  {"tag": "app:1", "old": "sha256:" + "2" * 64}]}]}})
    r = _cli(cli_calls, "load", "-H", "h1", "-i", str(tmp_path / "a.tar"))
    assert r.exit_code == 0, r.output
    assert r.output == ("The image app:1 already exists, renaming the old one with ID sha256:{} to empty string\n"
                        "Loaded image: app:1\n".format("2" * 64))
    (_h, op, args, _b) = cli_calls.calls[-1]
    assert op == "load" and args["images"][0]["layers"] == [{"diff_id": diff_id, "staging": None}]
    cli_calls.answers["load_probe"] = {"present": []}
    r = _cli(cli_calls, "load", "-H", "all", "-i", str(tmp_path / "a.tar"), "--json")
    sent = json.loads(r.stdout)
    assert [h["bytes_sent"] for h in sent] == [10240, 10240] and [h["layers_sent"] for h in sent] == [1, 1]
    assert cli_calls.calls[-1][2]["images"][0]["layers"][0]["staging"].startswith("/var/lib/fleet/tmp/cp-")


def test_import_sends_staging_or_url(cli_calls, tmp_path):
    (tmp_path / "root.tar").write_bytes(b"t")
    cli_calls.answers["import"] = {"id": "sha256:" + "3" * 64}
    r = _cli(cli_calls, "import", "-H", "h1", "-c", "CMD x", "-m", "m", str(tmp_path / "root.tar"), "app:2")
    assert r.exit_code == 0 and r.output == "sha256:{}\n".format("3" * 64)
    args = cli_calls.calls[-1][2]
    assert args["staging"].startswith("/var/lib/fleet/tmp/cp-") and args["changes"] == ["CMD x"]
    r = _cli(cli_calls, "import", "-H", "h1", "https://example.invalid/r.tar")
    assert cli_calls.calls[-1][2]["url"] == "https://example.invalid/r.tar" and "staging" not in cli_calls.calls[-1][2]
    r = _cli(cli_calls, "import", "-H", "h1", str(tmp_path / "nope.tar"))
    assert r.exit_code == 2 and "no such file" in r.output
    r = _cli(cli_calls, "import", "-H", "h1", str(tmp_path / "root.tar"), "app@sha256:" + "4" * 64)
    assert r.exit_code == 2 and "digest" in r.output


def test_save_to_a_terminal_is_refused_as_docker(tmp_path):
    import pytest

    from fleet.commands import archive
    from fleet.commands.common import Session
    from fleet.errors import UsageError

    class Tty:
        def isatty(self):
            return True

    with pytest.raises(UsageError, match="cowardly refusing to save to a terminal"):
        archive.save(Session(inventories=[str(tmp_path / "none.yml")]), ["h1"], ["app:1"], None, "docker-archive",
                     stdout=Tty())
