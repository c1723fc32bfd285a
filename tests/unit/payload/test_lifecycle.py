"""Lifecycle building blocks: ps filters, --since/--until parsing, diff classification, merged export, inspect."""

import os
import stat
import tarfile
import time

import pytest

from agent_payload import errors
from agent_payload.runtime import changes, inspect, records
from agent_payload.runtime.logs import parse_duration, parse_timestamp, read
from agent_payload.runtime.status import PsFilters
from agent_payload.state.paths import Paths

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts (mknod 0/0) and trusted.* xattrs need root")


def _rec(name="web", status="running", exit_code=None, labels=None, image="nginx", image_id="sha256:" + "ab" * 32,
         cid="c" * 64, created="2024-01-01T00:00:00.000000000Z"):
    return {"id": cid, "name": name, "status": status, "exit_code": exit_code, "labels": labels or {},
            "image": image, "image_id": image_id, "created": created}


# ---------------------------------------------------------------- ps filters

def test_same_key_values_are_ored_and_different_keys_anded():
    f = PsFilters(["status=running", "status=exited", "name=web"])
    assert f.match(_rec(status="running"))
    assert f.match(_rec(status="exited", exit_code=0))
    assert not f.match(_rec(status="created"))
    assert not f.match(_rec(name="db", status="running"))


def test_name_is_an_unanchored_regex_with_or_without_the_slash():
    assert PsFilters(["name=eb"]).match(_rec(name="web1"))
    assert PsFilters(["name=^web1$"]).match(_rec(name="web1"))
    assert PsFilters(["name=^/web1$"]).match(_rec(name="web1"))
    assert not PsFilters(["name=^eb"]).match(_rec(name="web1"))


def test_labels_key_or_key_value_and_several_are_anded():
    rec = _rec(labels={"tier": "front", "team": "a"})
    assert PsFilters(["label=tier"]).match(rec)
    assert PsFilters(["label=tier=front", "label=team=a"]).match(rec)
    assert not PsFilters(["label=tier=front", "label=team=b"]).match(rec)
    assert not PsFilters(["label=other"]).match(rec)


def test_exited_needs_an_exited_container_with_that_code():
    f = PsFilters(["exited=0", "exited=3"])
    assert f.match(_rec(status="exited", exit_code=3))
    assert not f.match(_rec(status="exited", exit_code=1))
    assert not f.match(_rec(status="running"))


def test_ancestor_by_normalised_reference_or_image_id_prefix():
    norm = {"nginx": "docker.io/library/nginx:latest", "nginx:latest": "docker.io/library/nginx:latest"}.get
    f = PsFilters(["ancestor=nginx:latest"], ancestor_of=lambda v: {norm(v)}, normalize=norm)
    assert f.match(_rec(image="nginx"))
    assert not f.match(_rec(image="busybox"))
    assert PsFilters(["ancestor=abab"]).match(_rec(image="other"))
    assert PsFilters(["ancestor=sha256:abab"]).match(_rec(image="other"))
    assert not PsFilters(["ancestor=abac"]).match(_rec(image="other"))


def test_id_prefix_and_before_since():
    assert PsFilters(["id=ccc"]).match(_rec())
    assert not PsFilters(["id=ddd"]).match(_rec())
    older = _rec(created="2024-01-01T00:00:00.000000000Z")
    newer = _rec(created="2024-01-02T00:00:00.000000000Z")
    by_name = {"old": older, "new": newer}.get
    assert PsFilters(["before=new"], resolve=by_name).match(older)
    assert not PsFilters(["before=new"], resolve=by_name).match(newer)
    assert PsFilters(["since=old"], resolve=by_name).match(newer)
    assert PsFilters(["status=exited"]).shows_stopped() and not PsFilters(["name=x"]).shows_stopped()


@pytest.mark.parametrize("bad,needle", [
    (["foo=bar"], "invalid filter 'foo'"),
    (["status=sleeping"], "invalid filter 'status=sleeping'"),
    (["exited=x"], "invalid filter 'exited=x'"),
    (["noequals"], "bad format"),
    (["name=("], "name=("),
    (["network=bridge"], "not supported"),
    (["health=sick"], "Unrecognised filter value for health: sick"),
])
def test_bad_filters_are_invalid_arguments(bad, needle):
    with pytest.raises(errors.InvalidArgument) as exc:
        PsFilters(bad)
    assert needle in exc.value.message


# ---------------------------------------------------------------- --since / --until

NOW = 1700000000 * 10 ** 9


@pytest.mark.parametrize("text,ns", [
    ("10m", 600 * 10 ** 9), ("1h30m", 5400 * 10 ** 9), ("1.5h", 5400 * 10 ** 9), ("300ms", 3 * 10 ** 8),
    ("2h45m10s", (2 * 3600 + 45 * 60 + 10) * 10 ** 9),
])
def test_durations_are_relative_to_now(text, ns):
    assert parse_duration(text) == ns
    assert parse_timestamp(text, NOW) == NOW - ns


@pytest.mark.parametrize("text,ns", [
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20.5Z", NOW + 5 * 10 ** 8),
    ("2023-11-14T23:13:20+01:00", NOW),
    ("2023-11-14T22:13:20.000000001Z", NOW + 1),
    ("1700000000", NOW),
    ("1700000000.25", NOW + 25 * 10 ** 7),
    ("0", 0),
])
def test_absolute_times(text, ns):
    assert parse_timestamp(text, 123) == ns


def test_local_times_use_this_hosts_zone():
    expected = int(time.mktime((2023, 11, 14, 22, 13, 20, 0, 0, -1))) * 10 ** 9
    assert parse_timestamp("2023-11-14T22:13:20") == expected
    assert parse_timestamp("2023-11-14") == int(time.mktime((2023, 11, 14, 0, 0, 0, 0, 0, -1))) * 10 ** 9


@pytest.mark.parametrize("bad", ["yesterday", "10x", "2023-13-01", "2023-02-30T00:00:00Z", "", "1h-"])
def test_bad_times(bad):
    with pytest.raises(errors.InvalidArgument):
        parse_timestamp(bad)


def test_read_keeps_only_the_window(tmp_path):
    log = tmp_path / "c-json.log"
    lines = []
    for i, stamp in enumerate(["2024-01-01T00:00:01.000000000Z", "2024-01-01T00:00:02.000000000Z",
                               "2024-01-01T00:00:03.000000000Z"]):
        lines.append('{{"log":"line {}\\n","stream":"stdout","time":"{}"}}'.format(i, stamp))
    log.write_text("\n".join(lines) + "\n")
    since = records.parse_ns("2024-01-01T00:00:02.000000000Z")
    assert [e["line"] for e in read(str(log), since=since)] == ["line 1\n", "line 2\n"]
    assert [e["line"] for e in read(str(log), until=since)] == ["line 0\n", "line 1\n"]
    assert [e["line"] for e in read(str(log), since=since, until=since)] == ["line 1\n"]
    offset = len(lines[0]) + 1
    assert [e["line"] for e in read(str(log), offset=offset)] == ["line 1\n", "line 2\n"]


# ---------------------------------------------------------------- diff and export on a real overlay layout

def _write(base, rel, text="x", mode=0o644):
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _whiteout(base, rel):
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _mirror_dir_times(src, dst):
    st = os.stat(src)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def tree(tmp_path):
    """bottom: /etc/{a,b,gone}, /opt/old/{x,y}, /lib/keep; top: /etc/c, whiteout of /etc/b; upper: changes."""
    bottom, top, upper = str(tmp_path / "bottom"), str(tmp_path / "top"), str(tmp_path / "upper")
    for rel in ("etc/a", "etc/b", "etc/gone", "opt/old/x", "opt/old/y", "lib/keep"):
        _write(bottom, rel, "bottom " + rel)
    _write(top, "etc/c", "top c")
    os.makedirs(upper)
    return bottom, top, upper


@needs_root
def test_diff_classifies_added_changed_deleted_and_opaque(tree):
    bottom, top, upper = tree
    _whiteout(top, "etc/b")
    _write(upper, "etc/a", "changed")          # C: exists below
    _write(upper, "etc/new", "added")          # A
    _whiteout(upper, "etc/gone")               # D
    _write(upper, "srv/fresh/file")            # A dir + A file, no parent C at the root
    os.makedirs(os.path.join(upper, "opt", "old"))
    os.setxattr(os.path.join(upper, "opt", "old"), "trusted.overlay.opaque", b"y")  # rm -rf + mkdir again
    _write(upper, "opt/old/z")
    _write(upper, "etc/b", "recreated")        # A: the top layer whited it out
    os.makedirs(os.path.join(upper, "lib"))
    _mirror_dir_times(os.path.join(bottom, "lib"), os.path.join(upper, "lib"))
    _write(upper, "lib/keep", "modified")      # C file; lib is an unchanged copy-up, so no "C /lib"
    _mirror_dir_times(os.path.join(bottom, "lib"), os.path.join(upper, "lib"))
    got = [(c["kind"], c["path"]) for c in changes.diff(upper, [top, bottom])]
    assert got == [
        ("C", "/etc"), ("C", "/etc/a"), ("A", "/etc/b"), ("D", "/etc/gone"), ("A", "/etc/new"),
        ("C", "/lib/keep"),
        ("C", "/opt"), ("D", "/opt/old"), ("A", "/opt/old/z"),
        ("A", "/srv"), ("A", "/srv/fresh"), ("A", "/srv/fresh/file"),
    ]


def test_diff_skips_runtime_mountpoints_the_image_lacks(tree):
    bottom, top, upper = tree
    _write(upper, "etc/hostname", "")   # a bind-mount target the runtime created: not a change
    _write(upper, "etc/a", "")          # the image has it: still C even though ignored names include it
    got = [(c["kind"], c["path"]) for c in changes.diff(upper, [top, bottom], ignore={"/etc/hostname", "/etc/a"})]
    assert got == [("C", "/etc"), ("C", "/etc/a")]


def test_diff_of_an_untouched_container_is_empty(tree):
    """docker diff of a container that changed nothing prints nothing: /etc/hostname, /etc/hosts and
    /etc/resolv.conf (its init layer) and the mountpoints of its volumes and binds, with the directories made
    for them, are not changes, nor is the image directory they were made in (issue 13, item 7)."""
    bottom, top, upper = tree
    for rel in ("etc/hostname", "etc/hosts", "etc/resolv.conf", "data/x/y"):
        _write(upper, rel, "")
    os.unlink(os.path.join(upper, "data/x/y"))
    os.makedirs(os.path.join(upper, "data/x/y"))  # -v vol:/data/x/y: the image has no /data
    os.makedirs(os.path.join(upper, "opt/mnt"))  # -v /host:/opt/mnt: the image has /opt
    ignore = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/data/x/y", "/opt/mnt"}
    assert changes.diff(upper, [top, bottom], ignore=ignore) == []
    _write(upper, "data/other", "")  # something of the container's own beside a made directory
    _write(upper, "etc/new", "")
    got = [(c["kind"], c["path"]) for c in changes.diff(upper, [top, bottom], ignore=ignore)]
    assert got == [("A", "/data"), ("A", "/data/other"), ("C", "/etc"), ("A", "/etc/new")]


@needs_root
def test_lower_lookup_respects_whiteouts_and_opaque_dirs(tree):
    bottom, top, _upper = tree
    _whiteout(top, "etc/b")
    os.makedirs(os.path.join(top, "opt", "old"))
    os.setxattr(os.path.join(top, "opt", "old"), "trusted.overlay.opaque", b"y")
    assert changes.lower_lookup([top, bottom], "/etc/a") is not None
    assert changes.lower_lookup([top, bottom], "/etc/b") is None
    assert changes.lower_lookup([top, bottom], "/opt/old/x") is None
    assert changes.lower_lookup([top, bottom], "/opt/old") is not None
    assert changes.lower_lookup([top, bottom], "/nope") is None


@needs_root
def test_export_layers_lowers_and_upper_with_whiteouts(tree, tmp_path):
    bottom, top, upper = tree
    _whiteout(top, "etc/b")
    _write(upper, "etc/a", "changed")
    _whiteout(upper, "etc/gone")
    os.makedirs(os.path.join(upper, "opt", "old"))
    os.setxattr(os.path.join(upper, "opt", "old"), "trusted.overlay.opaque", b"y")
    _write(upper, "opt/old/z", "zz")
    os.symlink("/etc/shadow", os.path.join(upper, "escape"))  # archived as a link, never followed
    _write(upper, "bin/tool", "#!", 0o4755)
    out = str(tmp_path / "out.tar")
    result = changes.export([upper, top, bottom], out)
    assert result["size"] == os.path.getsize(out) and result["sha256"].startswith("sha256:")
    with tarfile.open(out) as tar:
        names = sorted(m.name for m in tar.getmembers())
        assert names == ["bin", "bin/tool", "escape", "etc", "etc/a", "etc/c", "lib", "lib/keep", "opt",
                         "opt/old", "opt/old/z"]
        assert tar.extractfile("etc/a").read() == b"changed"
        assert tar.extractfile("etc/c").read() == b"top c"
        assert tar.getmember("escape").issym() and tar.getmember("escape").linkname == "/etc/shadow"
        assert tar.getmember("bin/tool").mode == 0o4755
    with pytest.raises(errors.AlreadyExists):
        changes.export([upper], out)
    assert changes.export([upper], out, force=True)["size"] == os.path.getsize(out)
    assert [n for n in os.listdir(str(tmp_path)) if n.startswith(".out.tar")] == []


@pytest.mark.parametrize("bad", ["relative.tar", "/no/such/dir/x.tar", "/tmp/"])
def test_export_target_is_checked_first(bad):
    with pytest.raises((errors.InvalidArgument, errors.NotFound)):
        changes.check_output(bad, False)


def test_tree_size_counts_hard_links_once(tmp_path):
    _write(str(tmp_path), "d/a", "12345")
    os.link(str(tmp_path / "d" / "a"), str(tmp_path / "d" / "b"))
    _write(str(tmp_path), "c", "12")
    assert changes.tree_size(str(tmp_path)) == 7


# ---------------------------------------------------------------- inspect

def test_inspect_object_has_dockers_shape(tmp_path):
    paths = Paths(root=str(tmp_path))
    rec = {"id": "f" * 64, "name": "web", "image": "nginx", "image_id": "sha256:" + "ab" * 32,
           "argv": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"], "env": ["A=1"], "workdir": "/",
           "hostname": "ffffffffffff", "labels": {"a": "b"}, "stop_signal": "SIGQUIT", "lowerdirs": ["/l0", "/l1"],
           "created": "2024-01-01T00:00:00.000000000Z", "status": "exited", "exit_code": 3, "pid": 0,
           "started_at": "2024-01-01T00:00:01.000000000Z", "finished_at": "2024-01-01T00:00:02.000000000Z",
           "error": None, "cmd": ["nginx", "-g", "daemon off;"], "entrypoint": ["/docker-entrypoint.sh"]}
    obj = inspect.inspect_object(paths, rec)
    assert obj["Id"] == rec["id"] and obj["Name"] == "/web"
    assert obj["Path"] == "/docker-entrypoint.sh" and obj["Args"] == ["nginx", "-g", "daemon off;"]
    assert obj["State"] == {"Status": "exited", "Running": False, "Paused": False, "Restarting": False,
                            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 3, "Error": "",
                            "StartedAt": rec["started_at"], "FinishedAt": rec["finished_at"]}
    assert obj["Driver"] == "overlay2" and obj["Platform"] == "linux"
    assert obj["GraphDriver"]["Data"]["LowerDir"] == "/l1:/l0"
    assert obj["GraphDriver"]["Data"]["UpperDir"].endswith("/diff")
    cfg = obj["Config"]
    assert cfg["Cmd"] == rec["cmd"] and cfg["Entrypoint"] == rec["entrypoint"]
    assert (cfg["Image"], cfg["StopSignal"], cfg["Labels"], cfg["Env"]) == ("nginx", "SIGQUIT", {"a": "b"}, ["A=1"])
    assert obj["Mounts"] == []
    assert obj["NetworkSettings"]["Networks"] == {} and obj["NetworkSettings"]["SandboxKey"] == ""  # not running
    never = inspect.inspect_object(paths, dict(rec, status="created", started_at=None, finished_at=None))
    assert never["State"]["StartedAt"] == inspect.ZERO_TIME


def test_top_lists_this_process_namespace():
    rows = inspect.top(os.getpid())
    assert rows["titles"] == inspect.TOP_TITLES
    mine = [r for r in rows["processes"] if r[1] == str(os.getpid())]
    assert mine and mine[0][2] == str(os.getppid())
    assert "python" in mine[0][7] or "pytest" in mine[0][7]
