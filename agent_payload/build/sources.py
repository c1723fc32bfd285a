"""COPY/ADD sources: which files a source pattern names in a tree, their content hash, and the staging tar.

A source tree is a plain tar read with random access: the build context (``<root>/build/contexts/<sha>.tar``)
or, for ``COPY --from``, a stage's or image's merged filesystem written to a temp tar.  Patterns follow the
classic builder (copyWithWildcards): a pattern without wildcards names one path (a symlink as the source
itself is followed inside the tree, as docker's FollowSymlinkInScope); with ``*``, ``?`` or ``[...]`` every
path Go's ``filepath.Match`` accepts (``*`` never crosses ``/``).  A matched directory stands for its contents.

The staging tar written for a step names every entry ``<n>/<path inside the source>`` (n: the source's index),
with the owner and mode it will have in the image, so the extraction inside the build container (builder
``apply_sources``) only decides where each source lands.
"""

import hashlib
import posixpath
import re
import tarfile

from .. import errors
from .dockerfile import CONTEXT_DOCKERFILE_DIR

#: The directory the controller puts an outside Dockerfile under; never a COPY source
FLEET_DOCKERFILE_DIR = CONTEXT_DOCKERFILE_DIR
_WILD = re.compile(r"[*?\[]")


def has_wildcards(pattern):
    return bool(_WILD.search(pattern.replace("\\\\", "")))


def go_match_regex(pattern):
    """Go's filepath.Match as a regex: ``*`` and ``?`` never match ``/``; ``[...]``/``[^...]`` classes; ``\\``
    escapes.  A malformed class is Go's ErrBadPattern (InvalidArgument)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            if j < 0:
                raise errors.InvalidArgument("syntax error in pattern: {}".format(pattern))
            body = pattern[i + 1:j]
            neg = body[:1] in ("^", "!")
            if neg:
                body = body[1:]
            out.append("[" + ("^/" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def clean(path):
    """A source path as a tree-relative name ("." for the root); ``..`` that leaves the tree is refused."""
    n = posixpath.normpath("/" + path.lstrip("/"))  # the context's root is "/": ../x can not climb above it
    raw = posixpath.normpath(path) if path else "."
    if raw == ".." or raw.startswith("../"):
        raise errors.InvalidArgument("forbidden path outside the build context: {} ()".format(path))
    return n.lstrip("/") or "."


class SourceTree:
    """A tar read with random access: ``entries`` maps each cleaned name to its TarInfo."""

    def __init__(self, path, skip_dockerfile_dir=True):
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:", errors="surrogateescape")
            members = self.tar.getmembers()
        except (tarfile.TarError, OSError) as exc:
            raise errors.FailedPrecondition("cannot read the build context {}: {}".format(path, exc))
        self.entries = {}
        self.children = {}
        for m in members:
            name = posixpath.normpath(m.name.lstrip("/")) if m.name.strip("/.") else "."
            if name == ".." or name.startswith("../"):
                continue
            top = name.split("/", 1)[0]
            if skip_dockerfile_dir and top == FLEET_DOCKERFILE_DIR:
                continue
            self.entries[name] = m
            if name != ".":
                parent = posixpath.dirname(name) or "."
                self.children.setdefault(parent, []).append(name)
                p = parent
                while p != "." and p not in self.entries:  # implied parent directories
                    info = tarfile.TarInfo(p)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    self.entries[p] = info
                    pp = posixpath.dirname(p) or "."
                    self.children.setdefault(pp, []).append(p)
                    p = pp
        if "." not in self.entries:
            root = tarfile.TarInfo(".")
            root.type, root.mode = tarfile.DIRTYPE, 0o755
            self.entries["."] = root

    def close(self):
        self.tar.close()

    def resolve(self, name, depth=0):
        """``name`` with symlinks among its components (the last one too) followed inside the tree."""
        if depth > 40:
            raise errors.InvalidArgument("too many levels of symbolic links: {}".format(name))
        parts = [p for p in name.split("/") if p and p != "."]
        cur = "."
        for i, part in enumerate(parts):
            nxt = part if cur == "." else cur + "/" + part
            m = self.entries.get(nxt)
            if m is not None and m.issym():
                target = m.linkname
                base = "/" if target.startswith("/") else "/" + (cur if cur != "." else "")
                joined = posixpath.normpath(posixpath.join(base, target, *parts[i + 1:]))
                return self.resolve(joined.lstrip("/") or ".", depth + 1)
            cur = nxt
        return cur

    def walk(self, name):
        """``name`` and everything under it, parents first (sorted as the tar names sort)."""
        out = [name]
        for child in sorted(self.children.get(name, [])):
            if self.entries[child].isdir():
                out.extend(self.walk(child))
            else:
                out.append(child)
        return out

    def match(self, pattern):
        """What a COPY source pattern selects (see the module doc): [(name, real)] where ``name`` is the path as
        named (its base name is the copy's name, as docker's source.path) and ``real`` the entry with symlinks
        followed (whose contents are copied); [] when none."""
        p = clean(pattern)
        if not has_wildcards(p):
            real = self.resolve(p)
            return [(p, real)] if real in self.entries else []
        rx = go_match_regex(p)
        out = []
        for n in sorted(self.entries):
            if n != "." and rx.match(n):
                real = self.resolve(n)
                if real in self.entries:
                    out.append((n, real))
        return out

    def read(self, name):
        f = self.tar.extractfile(self.entries[name])
        return f if f is not None else None

    def content_hash(self, names):
        """sha256 over each selected source's tree: names, types, modes, link targets and file contents."""
        h = hashlib.sha256()
        for top in names:
            for name in self.walk(top):
                m = self.entries[name]
                rel = _rel(name, top)
                h.update("{}\0{}\0{:o}\0{}\0".format(rel, m.type.decode("latin-1"), m.mode, m.linkname)
                         .encode("utf-8", "surrogateescape"))
                if m.isreg():
                    f = self.read(name)
                    while True:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        h.update(chunk)
            h.update(b"\1")
        return h.hexdigest()


def _rel(name, top):
    """``name`` (``top`` or under it) relative to ``top``; "" for ``top`` itself (the context's root is ".")."""
    if name == top:
        return ""
    return name if top == "." else name[len(top) + 1:]


def source_hash_text(kinds_and_hashes):
    """docker's ``file:<h>`` / ``dir:<h>`` for one source, ``multi:<h>`` for several."""
    if len(kinds_and_hashes) == 1:
        kind, digest = kinds_and_hashes[0]
        return "{}:{}".format(kind, digest)
    h = hashlib.sha256()
    for kind, digest in kinds_and_hashes:
        h.update("{}:{},".format(kind, digest).encode())
    return "multi:" + h.hexdigest()


def parse_chmod(value):
    """--chmod: an octal mode (BuildKit), else InvalidArgument."""
    if value is None:
        return None
    if not re.match(r"^[0-7]{3,4}$", value):
        raise errors.InvalidArgument("invalid chmod parameter: {}".format(value))
    return int(value, 8)


def write_source(out, tree, index, top, uid, gid, chmod=None, keep_owner=False):
    """Add ``top`` (and what is under it) to the staging tar ``out`` as ``<index>/...``; returns the count."""
    count = 0
    links = {}
    for name in tree.walk(top):
        m = tree.entries[name]
        rel = _rel(name, top)
        info = tarfile.TarInfo("{}/{}".format(index, rel) if rel else str(index))
        info.type, info.mode, info.mtime = m.type, m.mode, m.mtime
        info.linkname, info.size = m.linkname, 0
        info.devmajor, info.devminor = m.devmajor, m.devminor
        info.uid, info.gid = (m.uid, m.gid) if keep_owner else (uid, gid)
        if chmod is not None and not m.issym():
            info.mode = chmod
        if m.islnk():
            target = posixpath.normpath(m.linkname.lstrip("/"))
            if target in links:
                info.linkname = links[target]
            else:  # a hard link to a file outside what is copied: the file itself
                src = tree.entries.get(target)
                if src is None or not src.isreg():
                    continue
                info.type, info.linkname, info.size = tarfile.REGTYPE, "", src.size
                out.addfile(info, tree.read(target))
                links[target] = info.name
                count += 1
                continue
        if info.isreg():
            info.size = m.size
            out.addfile(info, tree.read(name))
            links[name] = info.name
        else:
            out.addfile(info)
        count += 1
    return count
