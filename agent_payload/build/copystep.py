"""COPY and ADD: sources from the context, a stage or an image (``--from``), remote URLs and local archives
(ADD), placed by docker's rules, owned by ``--chown`` (0:0 by default), ``--chmod`` applied; one layer.

Docker's rules (classic builder, copier.go): a directory source copies its contents; a file source lands at
DEST, or DEST/<name> when DEST ends with "/" or is an existing directory; several sources need a DEST that
ends with "/"; missing parents of DEST are made 0755 owned by the --chown identity.  ADD extracts a local tar
archive (plain, gzip, bzip2, xz) into DEST keeping its owners, and fetches a URL (``http(s)://``) to DEST (or
DEST/<last path component>) with mode 0600.  The history row is ``#(nop) COPY file:<hash> in DEST `` with
``dir:``/``multi:`` for a directory/several sources; the cache key adds --chown/--chmod to it.
"""

import bz2
import gzip
import lzma
import os
import posixpath
import tarfile
import tempfile

from .. import errors
from . import history as H
from . import layers, sources

_URL_PREFIXES = ("http://", "https://")


def _flag(inst, name):
    value = inst.flags.get(name)
    if isinstance(value, list):
        value = value[-1]
    return value if isinstance(value, str) else None


def _identity(lowers, chown):
    """--chown user[:group] -> (uid, gid) as docker's parseChownFlag: names looked up in the image's /etc/passwd
    and /etc/group, numbers taken as they are, a missing group part is the user part again."""
    if not chown:
        return 0, 0
    parts = chown.split(":")
    if len(parts) > 2:
        raise errors.InvalidArgument("invalid chown string format: " + chown)
    user_part, group_part = parts[0], parts[-1]
    files = {}

    def table(name, parse):
        if name not in files:
            from ..runtime import user as usermod
            text = (layers.read_file(lowers, "/etc/" + name) or b"").decode("utf-8", "replace")
            files[name] = getattr(usermod, parse)(text)
        return files[name]

    def lookup(value, name, parse, field, what):
        if value.isdigit():
            return int(value)
        for e in table(name, parse):
            if e.name == value:
                return getattr(e, field)
        raise errors.InvalidArgument("unable to convert uid/gid chown string to host mapping: can't find {} for "
                                     "{} {}: no such {}: {}".format("uid" if what == "user" else "gid", what,
                                                                    value, what, value))
    return (lookup(user_part, "passwd", "parse_passwd", "uid", "user"),
            lookup(group_part, "group", "parse_group", "gid", "group"))


def _archive_reader(f):
    """A decompressing reader if ``f`` holds a tar archive (plain, gzip, bzip2, xz), else None."""
    head = f.read(512)
    f.seek(0)
    if head[:2] == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=f)
    elif head[:3] == b"BZh":
        raw = bz2.BZ2File(f)
    elif head[:6] == b"\xfd7zXZ\x00":
        raw = lzma.LZMAFile(f)
    else:
        raw = f
    try:
        block = raw.read(512)
    except (OSError, EOFError, lzma.LZMAError):
        return None
    if len(block) < 512 or block[257:262] != b"ustar":
        return None
    if raw is f:
        f.seek(0)
        return f
    raw.seek(0)
    return raw


def _fetch(b, url, workdir):
    """Fetch ``url`` on the host into a temp file -> (path, name); errors name the URL."""
    import urllib.error
    import urllib.parse
    import urllib.request
    name = posixpath.basename(urllib.parse.urlparse(url).path.rstrip("/"))
    fd, path = tempfile.mkstemp(prefix="add-", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=60) as resp:
                if getattr(resp, "status", 200) >= 400:
                    raise errors.Unavailable("failed to GET {} with status {}".format(url, resp.status))
                mtime = resp.headers.get("Last-Modified")
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        os.unlink(path)
        raise errors.Unavailable("failed to GET {} with status {}: {}".format(url, exc.code, exc.reason))
    except (urllib.error.URLError, OSError) as exc:
        os.unlink(path)
        raise errors.Unavailable("failed to GET {}: {}".format(url, getattr(exc, "reason", exc)))
    stamp = 0
    if mtime:
        import email.utils
        try:
            stamp = int(email.utils.parsedate_to_datetime(mtime).timestamp())
        except (TypeError, ValueError):
            stamp = 0
    return path, name, stamp


def _sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _image_tree(b, st, ref, workdir):
    """--from=<stage|image>: that filesystem as a SourceTree (a merged tar under the build's scratch dir)."""
    from ..runtime import changes
    idx = b.stage_by_ref(ref, st.index)
    if idx is not None:
        image_id = b.stages[idx].image_id
        if image_id is None:
            return None  # FROM scratch with nothing in it
    else:
        image_id = b.base_image(ref)
    rec = b.store.resolve(image_id)
    fd, path = tempfile.mkstemp(prefix="from-", suffix=".tar", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        changes.write_merged_tar(list(reversed(rec.layers)), f)
    return sources.SourceTree(path, skip_dockerfile_dir=False)


def precheck(inst, srcs=None):
    """COPY/ADD's flags before anything runs: the ones fleet cannot honour, --chmod, ADD --checksum."""
    for flag in ("exclude", "parents", "keep-git-dir"):
        if inst.flags.get(flag):
            raise errors.InvalidArgument("Dockerfile:{}: {} --{} is not supported by fleet build".format(
                inst.line, inst.cmd, flag))
    checksum = _flag(inst, "checksum")
    sources.parse_chmod(_flag(inst, "chmod"))
    if checksum is not None and not (checksum.startswith("sha256:") and len(checksum) == 71):
        raise errors.InvalidArgument("Dockerfile:{}: invalid checksum digest format: {} (sha256:<64 hex> only)"
                                     .format(inst.line, checksum))
    if srcs is None:  # before the build: the words as written (one with a variable is checked when it runs)
        words = list(inst.args) if inst.json else (inst.args[0] if inst.args else "").split()
        srcs = [w for w in words[:-1] if "$" not in w]
    if checksum is not None and not all(s.startswith(_URL_PREFIXES) for s in srcs):
        raise errors.InvalidArgument("Dockerfile:{}: checksum can't be specified for non-HTTP(S) sources"
                                     .format(inst.line))


def copy(b, st, inst, add):
    from . import shellwords
    name = "ADD" if add else "COPY"
    env = b.env(st)
    words = [shellwords.expand(w, env, b.df.escape) for w in inst.args] if inst.json else \
        shellwords.expand_words(inst.args[0] if inst.args else "", env, b.df.escape)
    docs = {d.name: d for d in getattr(inst, "heredocs", None) or []}
    if len(words) < 2:
        raise errors.InvalidArgument("Dockerfile:{}: {} requires at least two arguments, but only {} provided"
                                     .format(inst.line, name, len(words)))
    srcs, dest_text = words[:-1], words[-1]
    chown = _flag(inst, "chown")
    chown = shellwords.expand(chown, env, b.df.escape) if chown else None
    chmod = sources.parse_chmod(_flag(inst, "chmod"))
    from_ref = _flag(inst, "from")
    if from_ref is not None:
        from_ref = shellwords.expand(from_ref, env, b.df.escape)
        if add:
            raise errors.InvalidArgument("Dockerfile:{}: ADD does not support --from".format(inst.line))
    precheck(inst, srcs)
    checksum = _flag(inst, "checksum")
    unpack = inst.flags.get("unpack")
    dest = b.workdir_path(st, dest_text)
    lowers = list(reversed(st.layers))
    os.makedirs(b.scratch, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="copy-", dir=b.scratch)
    trees = []
    try:
        tree = b.context()
        if from_ref is not None:
            tree = _image_tree(b, st, from_ref, workdir)
            trees.append(tree)
        items = []  # (tree, name, kind, hash, archive_reader|None, the name it gets in DEST/)
        for src in srcs:
            src_doc = src[2:] if src.startswith("<<") else None
            if src_doc is not None and src_doc.lstrip("-").strip("'\"") in docs:
                d = docs[src_doc.lstrip("-").strip("'\"")]
                content = shellwords.expand(d.content, env, b.df.escape) if d.expand else d.content
                path = os.path.join(workdir, "heredoc-{}".format(len(items)))
                with open(path, "wb") as f:
                    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
                        data = content.encode("utf-8", "surrogateescape")
                        info = tarfile.TarInfo(d.name)
                        info.size, info.mode = len(data), 0o644
                        import io
                        t.addfile(info, io.BytesIO(data))
                ht = sources.SourceTree(path, skip_dockerfile_dir=False)
                trees.append(ht)
                items.append((ht, d.name, "file", ht.content_hash([d.name]), None, d.name))
                continue
            if add and src.startswith(_URL_PREFIXES):
                path, fname, stamp = _fetch(b, src, workdir)
                if checksum is not None:
                    got = _sha256_file(path)
                    if got != checksum:
                        raise errors.InvalidArgument("digest mismatch {}: {}".format(got, checksum))
                wrapped = os.path.join(workdir, "url-{}.tar".format(len(items)))
                with open(wrapped, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
                    info = t.gettarinfo(path, arcname=fname or "download")
                    info.mode, info.mtime, info.uid, info.gid = 0o600, stamp, 0, 0
                    with open(path, "rb") as src_f:
                        t.addfile(info, src_f)
                ut = sources.SourceTree(wrapped, skip_dockerfile_dir=False)
                trees.append(ut)
                items.append((ut, fname or "download", "file", ut.content_hash([fname or "download"]), None,
                              fname or "download"))
                continue
            if src.startswith(_URL_PREFIXES):
                raise errors.InvalidArgument("Dockerfile:{}: source can't be a URL for COPY".format(inst.line))
            if tree is None:
                raise errors.InvalidArgument("{} failed: file not found in build context or excluded by "
                                             ".dockerignore: stat {}: file does not exist".format(name, src))
            try:
                matched = tree.match(src)
            except errors.InvalidArgument as exc:  # ../x, a bad pattern: docker's "COPY failed: ..."
                raise errors.InvalidArgument("{} failed: {}".format(name, exc.message))
            if not matched:
                if sources.has_wildcards(src):
                    continue
                raise errors.InvalidArgument("{} failed: file not found in build context or excluded by "
                                             ".dockerignore: stat {}: file does not exist".format(name, src))
            for named, m in matched:
                entry = tree.entries[m]
                kind = "dir" if entry.isdir() else "file"
                reader = None
                if add and kind == "file" and entry.isreg() and unpack is not False:
                    reader = _archive_reader(tree.read(m))
                items.append((tree, m, "extract" if reader is not None else kind, tree.content_hash([m]), reader,
                              posixpath.basename(named) or posixpath.basename(m)))
        if not items:
            raise errors.InvalidArgument("{} failed: no source files were specified".format(name))
        many = len(items) > 1
        if many and not dest_text.endswith("/"):
            raise errors.InvalidArgument("When using {} with more than one source file, the destination must be a "
                                         "directory and end with a /".format(name))
        hashes = [("dir" if k == "dir" else "file", h) for _, _, k, h, _, _ in items]
        # docker: the destination as written (after substitution), --chown right before the hash
        comment = "{} {}{} in {} ".format(name, "--chown={}".format(chown) if chown else "",
                                          sources.source_hash_text(hashes), dest_text)
        cmd = H.nop_cmd_string(st.config, comment)
        extra = "chown={}\0chmod={}".format(chown or "", _flag(inst, "chmod") or "")
        probe_cfg = dict(st.config, Cmd=cmd, Image=st.image_id or "")
        if b.probe(st, probe_cfg, extra) is not None:
            return
        uid, gid = _identity(lowers, chown)
        staging = os.path.join(workdir, "staging.tar")
        plan = []
        with open(staging, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as out:
            for n, (t, m, kind, _, reader, base) in enumerate(items):
                if kind == "extract":
                    _write_archive(out, n, reader)
                else:
                    sources.write_source(out, t, n, m, uid, gid, chmod)
                plan.append((kind, base))
        real = layers.resolve(lowers, dest)
        dest_dir = dest.endswith("/") or many or layers.kind(lowers, real) == "dir" or \
            any(k != "file" for k, _ in plan)
        upper = layers.new_upper(b.scratch)
        try:
            # docker performs each source in turn and the first one makes the missing directories: a file's
            # copy makes them all with the --chown identity (MkdirAllAndChownNew); a directory's (CopyWithTar)
            # and an archive's untar make them 0:0, then a directory's fixPermissions chowns DEST itself
            path = real if dest_dir else posixpath.dirname(real) or "/"
            first = plan[0][0] if plan else "file"
            if first in ("dir", "extract"):
                layers.make_dirs(upper, lowers, posixpath.dirname(path) if first == "dir" else path, 0, 0)
            layers.make_dirs(upper, lowers, path, uid, gid)
            layers.place(upper, lowers, staging, plan, dest, dest_dir)
            b.commit(st, st.config, cmd, write_tar=b.layer_writer(upper, lowers), extra=extra,
                     probe_config=probe_cfg)
        finally:
            layers.remove_upper(upper)
    finally:
        for t in trees:
            if t is not None:
                t.close()
        layers.remove_upper(workdir)


def _write_archive(out, n, reader):
    """An ADD archive's entries under ``<n>/``, owners kept (docker's untar); its top ``.`` skipped."""
    with tarfile.open(fileobj=reader, mode="r|", errors="surrogateescape") as src:
        for m in src:
            name = posixpath.normpath(m.name.lstrip("/"))
            if name in (".", "") or name == ".." or name.startswith("../"):
                continue
            m.name = "{}/{}".format(n, name)
            if m.islnk():
                m.linkname = "{}/{}".format(n, posixpath.normpath(m.linkname.lstrip("/")))
            out.addfile(m, src.extractfile(m) if m.isreg() else None)
