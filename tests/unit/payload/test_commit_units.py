"""commit's pieces without containers: --change parsing, the upper-dir layer writer, cp's path rules."""

import io
import os
import stat
import tarfile

import pytest

from agent_payload import archive, errors
from agent_payload.image.instructions import apply_changes, parse_duration, split_words
from agent_payload.runtime import changes
from agent_payload.runtime.spec import signal_number

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts (mknod 0/0) and trusted.* xattrs need root")
BASE = {"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/srv", "Labels": {}}


def apply(*lines):
    return apply_changes(BASE, list(lines), check_signal=signal_number)


# ---- --change

def test_cmd_and_entrypoint_forms():
    assert apply('CMD ["a", "b c"]')["Cmd"] == ["a", "b c"]
    assert apply("CMD echo $HOME")["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]  # shell form: not expanded
    out = apply('ENTRYPOINT ["/init"]')
    assert out["Entrypoint"] == ["/init"] and out["Cmd"] is None  # ENTRYPOINT resets the inherited CMD
    out = apply("CMD x", 'ENTRYPOINT ["/init"]')
    assert out["Cmd"] == ["/bin/sh", "-c", "x"]  # unless CMD came in the same commit
    assert BASE["Cmd"] == ["sh"]  # the input is not modified


def test_env_label_expose_volume_user_workdir_stopsignal_onbuild_healthcheck():
    out = apply('ENV A=1 B="two words" C=${HOME}/x', "ENV PATH /usr/bin:$PATH", "LABEL k=v 'x y'=z",
                "EXPOSE 80 53/udp 7000-7001", 'VOLUME ["/data"]', "VOLUME /a /b", "USER nobody",
                "WORKDIR sub", "WORKDIR ../abs", "STOPSIGNAL SIGQUIT", "ONBUILD RUN make",
                "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/")
    assert out["Env"] == ["PATH=/usr/bin:/bin", "HOME=/root", "A=1", "B=two words", "C=/root/x"]
    assert out["Labels"] == {"k": "v", "x y": "z"}
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "7000/tcp": {}, "7001/tcp": {}}
    assert out["Volumes"] == {"/data": {}, "/a": {}, "/b": {}}
    assert out["User"] == "nobody" and out["WorkingDir"] == "/srv/abs" and out["StopSignal"] == "SIGQUIT"
    assert out["OnBuild"] == ["RUN make"]
    assert out["Healthcheck"] == {"Interval": 5 * 10 ** 9, "Retries": 3,
                                  "Test": ["CMD-SHELL", "curl -f http://localhost/"]}
    assert apply("HEALTHCHECK NONE")["Healthcheck"] == {"Test": ["NONE"]}
    assert apply('HEALTHCHECK CMD ["true"]')["Healthcheck"] == {"Test": ["CMD", "true"]}


@pytest.mark.parametrize("line,message", [
    ("RUN make", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL a=1 b", "can't find ="),
    ("EXPOSE http", "invalid containerPort: http"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("ONBUILD ONBUILD RUN x", "isn't allowed as an ONBUILD trigger"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
    ("HEALTHCHECK --interval=5 CMD x", "invalid duration"),
    ('ENV A="unterminated', "matching"),
])
def test_bad_changes_are_invalid_argument(line, message):
    with pytest.raises(errors.InvalidArgument, match=message.replace("(", r"\(")):
        apply("CMD ok", line)


def test_words_and_durations():
    assert split_words('a "b c" d\\ e') == ['a', '"b c"', 'd\\ e']
    assert parse_duration("1m30s") == 90 * 10 ** 9 and parse_duration("250ms") == 250 * 10 ** 6


# ---- the layer writer

def _tar(upper, lowers=(), skip=()):
    buf = io.BytesIO()
    n = changes.write_layer_tar(str(upper), buf, [str(x) for x in lowers], skip=skip)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert n == len(members)
    return members


@needs_root
def test_whiteouts_opaque_dirs_links_and_attributes(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "opq", "same", "var/log"):
        (lower / d).mkdir(parents=True)
    (lower / "etc" / "gone").write_text("x")
    (lower / "opq" / "old").write_text("x")
    (upper / "etc").mkdir(parents=True)
    os.mknod(str(upper / "etc" / "gone"), stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opq").mkdir()
    os.setxattr(str(upper / "opq"), "trusted.overlay.opaque", b"y")
    (upper / "opq" / "new").write_text("n")
    (upper / "same").mkdir()  # a copied-up parent with nothing in it: not in the layer
    (upper / "var" / "log").mkdir(parents=True)
    (upper / "var" / "log" / "app.log").write_text("log")
    (upper / "file").write_text("data")
    os.chown(str(upper / "file"), 1000, 1001)
    os.chmod(str(upper / "file"), 0o4755)
    os.setxattr(str(upper / "file"), "user.note", b"hi")
    os.link(str(upper / "file"), str(upper / "hard"))
    os.symlink("/etc/passwd", str(upper / "sym"))
    (upper / "etc" / "hostname").write_text("")  # a runtime mountpoint: skipped
    m = _tar(upper, [lower], skip={"/etc/hostname"})
    assert m["etc/.wh.gone"].isreg() and m["etc/.wh.gone"].size == 0
    assert m["opq"].isdir() and m["opq/.wh..wh..opq"].isreg() and m["opq/new"].isreg()
    assert "trusted.overlay.opaque" not in "".join(m["opq"].pax_headers)
    assert "same" not in m and m["var"].isdir() and m["var/log"].isdir() and m["var/log/app.log"].isreg()
    names = list(m)
    assert names.index("var") < names.index("var/log") < names.index("var/log/app.log")
    assert (m["file"].uid, m["file"].gid, m["file"].mode) == (1000, 1001, 0o4755)
    assert m["file"].pax_headers.get("SCHILY.xattr.user.note") == "hi"
    assert m["hard"].islnk() and m["hard"].linkname == "file"
    assert m["sym"].issym() and m["sym"].linkname == "/etc/passwd"
    assert "etc/hostname" not in m


@needs_root
def test_layer_roundtrips_through_the_applier(tmp_path):
    from agent_payload.image import unpack
    upper, out = tmp_path / "upper", tmp_path / "out"
    (upper / "d").mkdir(parents=True)
    os.setxattr(str(upper / "d"), "trusted.overlay.opaque", b"y")
    os.mknod(str(upper / "w"), stat.S_IFCHR, os.makedev(0, 0))
    (upper / "d" / "f").write_text("f")
    out.mkdir()
    buf = io.BytesIO()
    changes.write_layer_tar(str(upper), buf)
    unpack.apply_layer(io.BytesIO(buf.getvalue()), str(out))
    assert os.getxattr(str(out / "d"), "trusted.overlay.opaque") == b"y"
    st = os.lstat(str(out / "w"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (out / "d" / "f").read_text() == "f"


# ---- cp's path rules

@pytest.mark.parametrize("src_dir,base,contents,dst,kind,expected", [
    (False, "f", False, "/x", None, ("/", "x")),
    (False, "f", False, "/d", "dir", ("/d", "f")),
    (False, "f", False, "/d/g", "file", ("/d", "g")),
    (True, "src", False, "/d", "dir", ("/d", "src")),
    (True, "src", True, "/d", "dir", ("/d", "")),
    (True, "src", False, "/new", None, ("/", "new")),
    (True, "src", True, "/a/new/", None, ("/a", "new")),
    (False, "f", False, "rel", None, (".", "rel")),
    (False, "f", False, "rel", "file", (".", "rel")),
])
def test_cp_plan(src_dir, base, contents, dst, kind, expected):
    assert archive.plan(src_dir, base, contents, dst, kind) == expected


def test_cp_plan_errors():
    with pytest.raises(errors.InvalidArgument, match="cannot copy directory"):
        archive.plan(True, "d", False, "/f", "file")
    with pytest.raises(errors.NotFound, match="no such directory"):
        archive.plan(False, "f", False, "/missing/", None)
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        archive.plan(False, "f", False, "/file/", "file")
    assert archive.contents_only("a/.") and not archive.contents_only("a/") and archive.base_name("/a/b/.") == "b"


def _copy_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return io.BytesIO(buf.getvalue())


def _info(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("entries,message", [
    ([_info("src", tarfile.DIRTYPE), _info("src/../../evil", data=b"x")], "escapes"),
    ([_info("/abs", data=b"x")], "absolute"),
    ([_info("other", data=b"x")], "not under"),
    ([_info("src", tarfile.DIRTYPE), _info("src/l", tarfile.SYMTYPE, linkname="/"), _info("src/l/x", data=b"x")],
     "symlink"),
    ([_info("src", tarfile.DIRTYPE), _info("src/h", tarfile.LNKTYPE, linkname="/etc/passwd")], "absolute"),
    ([_info("src", tarfile.DIRTYPE), _info("src/h", tarfile.LNKTYPE, linkname="src/never")], "hard link"),
])
def test_extract_refuses_escapes(tmp_path, entries, message):
    dest = tmp_path / "dest"
    dest.mkdir()
    fd = os.open(str(dest), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(errors.InvalidArgument, match=message):
            archive.extract(_copy_tar(entries), fd, "src", "src", owner=None)
    finally:
        os.close(fd)
    assert not os.path.exists(str(tmp_path / "evil")) and not os.path.exists("/x")


def test_write_and_extract_roundtrip(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("f")
    os.link(str(src / "sub" / "f"), str(src / "hl"))
    os.symlink("sub/f", str(src / "sl"))
    buf = io.BytesIO()
    info = archive.write_tree(buf, str(src) + "/.", "src")
    assert info["type"] == "dir"
    dest = tmp_path / "dest"
    dest.mkdir()
    fd = os.open(str(dest), os.O_RDONLY | os.O_DIRECTORY)
    try:
        archive.extract(io.BytesIO(buf.getvalue()), fd, "src", "", owner=None)
    finally:
        os.close(fd)
    assert (dest / "sub" / "f").read_text() == "f" and os.readlink(str(dest / "sl")) == "sub/f"
    assert os.stat(str(dest / "hl")).st_ino == os.stat(str(dest / "sub" / "f")).st_ino
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        archive.write_tree(io.BytesIO(), str(src / "sub" / "f") + "/", "f")
