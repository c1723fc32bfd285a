"""Seed images built offline (busybox from busybox-static, nginx from Debian debs) into cached OCI image layouts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from . import oci
from .state import LabError, run, write_json

RECIPE = "fleet-lab-seed/1"          # bump to invalidate cached layouts when the recipes below change
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Not taken into the nginx image, with what they pull in: they are needed by maintainer scripts or tools, not by
# the nginx binary, and no maintainer script ever runs here (we dpkg -x, we do not install).
#   debconf, cdebconf, debconf-2.0: nginx-common's postinst questions; perl-base: debconf's interpreter;
#   iproute2 (and libbpf1, libelf1, libmnl0, libxtables12, libcap2*, libdb5.3, libtirpc*, libbsd0 ...): nginx
#   depends on it only for a packaging script, the server never runs `ip`; dpkg, tar, install-info: installers.
SKIP = {"debconf", "cdebconf", "debconf-2.0", "perl-base", "iproute2", "dpkg", "tar", "install-info"}

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" \
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"
INDEX_HTML = """<!DOCTYPE html>
<html><head><title>Welcome to the fleet lab</title></head>
<body><h1>Welcome to the fleet lab</h1>
<p>nginx from Debian packages, built offline by <code>fleet lab up</code> and served from the lab registry.</p>
</body></html>
"""
NGINX_CONF = """user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        server_name _;
        root /var/www/html;
        index index.html;
        location / {
            try_files $uri $uri/ =404;
        }
    }
}
"""


def _cached(cache: Path, name: str, key: str, build: Callable[[Path], None], log: Callable[[str], None]) -> Path:
    """Return cache/images/<name>-<key> (an OCI layout), having build(work) write work/layout on a miss."""
    final = cache / "images" / "{}-{}".format(name, key[:16])
    if (final / "index.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-{}-".format(name), dir=str(final.parent)))
    try:
        build(work)
        try:
            os.replace(work / "layout", final)
        except OSError:
            if not (final / "index.json").exists():
                raise
            return final                # a parallel lab up (another session) built it first
        log("built seed image {} -> {}".format(name, final))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _cached_rootfs(cache: Path, name: str, key: str, build: Callable[[Path], tuple[dict, str]],
                   log: Callable[[str], None]) -> Path:
    """_cached for one-layer images: build(rootfs) fills a tree and returns (runtime config, created_by)."""
    def layout(work: Path) -> None:
        rootfs = work / "rootfs"
        rootfs.mkdir(mode=0o755)
        config, created_by = build(rootfs)
        oci.write_layout(work / "layout", rootfs, config, created_by, RECIPE)

    return _cached(cache, name, key, layout, log)


def _base_files(rootfs: Path) -> None:
    """/etc/passwd, /etc/group, nsswitch and the empty top-level dirs every image has."""
    for d in ("etc", "root", "tmp", "dev", "proc", "sys", "run", "var/tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "var/tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    (rootfs / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")


def busybox(cache: Path, log: Callable[[str], None]) -> Path:
    """The busybox image: the host's static busybox plus its applet links; CMD ["sh"]."""
    binary = Path("/bin/busybox").resolve()
    key = hashlib.sha256(RECIPE.encode() + binary.read_bytes()).hexdigest()

    def build(rootfs: Path):
        _base_files(rootfs)
        (rootfs / "bin").mkdir(exist_ok=True)
        shutil.copy2(binary, rootfs / "bin/busybox")
        os.chmod(rootfs / "bin/busybox", 0o755)
        for applet in run([str(binary), "--list-full"]).stdout.split():
            target = rootfs / applet
            if applet == "bin/busybox" or os.path.lexists(target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", target)
        return {"Env": [PATH_ENV], "Cmd": ["sh"]}, "fleet lab: static busybox {} + applet links".format(binary)

    return _cached_rootfs(cache, "busybox", key, build, log)


def nginx_packages() -> list[str]:
    """nginx's Depends closure (first alternative, real packages only), minus SKIP and what only SKIP needs."""
    out = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
               "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends", "nginx"]).stdout
    graph: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            graph.setdefault(current, [])
        elif current and re.match(r"\s+\|?Depends: ", line):
            dep = line.split(":", 1)[1].strip()
            if not dep.startswith("<"):
                graph[current].append(dep)
    seen, todo = set(), ["nginx"]
    while todo:
        pkg = todo.pop()
        if pkg in seen or pkg in SKIP:
            continue
        seen.add(pkg)
        todo.extend(graph.get(pkg, []))
    return sorted(seen)


def _apt_key() -> str:
    """A fingerprint of apt's package lists: when it changes, the nginx closure and deb names are worked out anew."""
    h = hashlib.sha256(RECIPE.encode())
    for d in ("/var/lib/apt/lists", "/etc/apt/preferences.d"):
        for entry in sorted(os.scandir(d) if os.path.isdir(d) else [], key=lambda e: e.name):
            st = entry.stat()
            h.update("{} {} {}\n".format(entry.name, st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()


def download_debs(cache: Path, log: Callable[[str], None]) -> list[Path]:
    """apt-get download nginx's closure into cache/debs (reused across runs); return the .deb paths.

    The closure and file names are remembered in cache/debs/resolved.json until apt's lists change."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    note, key = debs / "resolved.json", _apt_key()
    try:
        resolved = json.loads(note.read_text())
    except (OSError, ValueError):
        resolved = {}
    if resolved.get("key") != key:
        packages = nginx_packages()
        with tempfile.TemporaryDirectory() as empty:   # apt-get prints nothing for files already in its cwd
            uris = run(["apt-get", "download", "--print-uris"] + packages, cwd=empty).stdout
        files = re.findall(r"^'[^']+' (\S+\.deb) ", uris, re.M)
        if len(files) != len(packages):
            raise LabError("apt-get download --print-uris named {} files for {} packages".format(
                len(files), len(packages)))
        resolved = {"key": key, "packages": packages, "files": files}
        write_json(note, resolved)
    missing = [f.split("_")[0] for f in resolved["files"] if not (debs / f).exists()]
    if missing:
        log("downloading {} Debian package(s) into {}".format(len(missing), debs))
        run(["apt-get", "download"] + missing, cwd=debs)
    return [debs / f for f in resolved["files"]]


def nginx(cache: Path, log: Callable[[str], None]) -> Path:
    """The nginx image from Debian's nginx debs and their runtime closure; checked with `nginx -t` in a chroot."""
    debs = download_debs(cache, log)
    key = hashlib.sha256("\n".join([RECIPE, NGINX_CONF, INDEX_HTML] + [d.name for d in debs]).encode()).hexdigest()

    def build(rootfs: Path):
        _base_files(rootfs)
        for deb in debs:
            run(["dpkg-deb", "-x", str(deb), str(rootfs)])
        run(["ldconfig", "-r", str(rootfs)], check=False)
        (rootfs / "etc/nginx/nginx.conf").write_text(NGINX_CONF)
        for d in ("sites-enabled", "modules-enabled"):
            shutil.rmtree(rootfs / "etc/nginx" / d, ignore_errors=True)
        html = rootfs / "var/www/html"
        html.mkdir(parents=True, exist_ok=True)
        for old in html.glob("index.nginx-debian.html"):
            old.unlink()
        (html / "index.html").write_text(INDEX_HTML)
        logs = rootfs / "var/log/nginx"
        logs.mkdir(parents=True, exist_ok=True)
        os.symlink("/dev/stdout", logs / "access.log")
        os.symlink("/dev/stderr", logs / "error.log")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (rootfs / "var/lib/nginx" / d).mkdir(parents=True, exist_ok=True)
            os.chown(rootfs / "var/lib/nginx" / d, 33, 33)
            os.chmod(rootfs / "var/lib/nginx" / d, 0o700)
        # Prove the tree runs: nginx -t in a chroot, with /dev and /proc in a throw-away mount namespace.
        check = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                                'mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" && '
                                'exec chroot "$1" /usr/sbin/nginx -t',
                                "nginx-check", str(rootfs)], capture_output=True, text=True)
        if check.returncode != 0:
            raise LabError("nginx -t failed in the seed rootfs: " + check.stderr.strip())
        config = {"Env": [PATH_ENV], "Cmd": ["nginx", "-g", "daemon off;"], "ExposedPorts": {"80/tcp": {}},
                  "StopSignal": "SIGQUIT"}
        return config, "fleet lab: dpkg -x " + " ".join(d.name for d in debs)

    return _cached_rootfs(cache, "nginx", key, build, log)


def multiarch(cache: Path, busybox_layout: Path, log: Callable[[str], None]) -> Path:
    """An OCI image index over linux/amd64 and linux/arm64: each is busybox's layer plus /etc/platform naming it.

    The arm64 image carries the same (amd64) busybox layer: it exists to be selected, listed and skipped, never run."""
    key = hashlib.sha256("{}\nmultiarch/1\n{}".format(RECIPE, busybox_layout.name).encode()).hexdigest()

    def build(work: Path) -> None:
        out = work / "layout"
        base, history, config = oci.image_layers(busybox_layout)
        manifests = []
        for arch in ("amd64", "arm64"):
            layer = oci.tar_entries([("dir", "etc", 0o755, None), ("file", "etc/platform", 0o644, arch + "\n")])
            step = {"created": oci.CREATED, "created_by": "fleet lab: /etc/platform = " + arch, "comment": RECIPE}
            desc = oci.write_image(out, base + [layer], config, history + [step], arch=arch)
            manifests.append(dict(desc, platform={"architecture": arch, "os": "linux"}))
        oci.finish_layout(out, oci.write_index_blob(out, manifests))

    return _cached(cache, "multiarch", key, build, log)


# library/layered: busybox (layer 1) plus three hand-written layers, each a tar in exactly this entry order.
# Layer 3 lists data/sub/y *before* the opaque marker on purpose: the marker hides only lower layers' children,
# whatever its position in the tar (image-spec layer.md; moby's UnpackLayer keeps paths unpacked from the same
# layer). Layer 4 puts a directory where the file data/a was and a symlink where the directory data/d was, with
# no whiteout: an applier must unlink the old path first. The hard link points inside its own layer, because
# Docker's overlay2 applies each layer into an empty directory where lower files do not exist.
LAYERED_LAYERS = [
    [("dir", "data", 0o755, None),
     ("file", "data/a", 0o644, "a\n"),
     ("file", "data/b", 0o644, "b\n"),
     ("file", "data/c", 0o644, "c\n"),
     ("dir", "data/d", 0o755, None),              # replaced by a symlink in layer 4
     ("file", "data/d/old", 0o644, "old\n"),
     ("dir", "data/sub", 0o755, None),
     ("file", "data/sub/x", 0o644, "x\n")],
    [("dir", "data", 0o755, None),
     ("file", "data/.wh.b", 0o644, ""),           # deletes data/b
     ("dir", "data/sub", 0o755, None),
     ("file", "data/sub/y", 0o644, "y\n"),        # same layer as the opaque marker below: survives it
     ("file", "data/sub/.wh..wh..opq", 0o644, "")],   # hides data/sub/x
    [("dir", "data", 0o755, None),
     ("dir", "data/a", 0o750, None),              # file -> directory
     ("file", "data/a/inner", 0o644, "inner\n"),
     ("symlink", "data/d", 0o777, "sub"),         # directory (with data/d/old) -> symlink
     ("file", "data/e", 0o644, "e\n"),
     ("hardlink", "data/e-link", 0o644, "data/e"),
     ("file", "data/suid", 0o4755, "#!/bin/sh\nid -u\n")],
]

# The exact tree Docker shows under /data after applying the four layers (everything else is busybox's):
#   /data           dir  0755
#   /data/a         dir  0750      (was a file in layer 2)
#   /data/a/inner   file 0644 "inner\n"
#   /data/c         file 0644 "c\n"
#   /data/d         symlink -> sub (was a directory; data/d/old is gone with it)
#   /data/e         file 0644 "e\n"   } one inode, link count 2
#   /data/e-link    file 0644 "e\n"   }
#   /data/sub       dir  0755
#   /data/sub/y     file 0644 "y\n"   (x is hidden by the opaque marker; no .wh.* name is ever visible)
#   /data/suid      file 04755 "#!/bin/sh\nid -u\n"
# All owned by 0:0. Absent: /data/b, /data/sub/x, /data/d/old and every .wh.* entry.
EXPECTED_LAYERED_TREE = {
    "/data": {"type": "dir", "mode": 0o755},
    "/data/a": {"type": "dir", "mode": 0o750},
    "/data/a/inner": {"type": "file", "mode": 0o644, "content": "inner\n"},
    "/data/c": {"type": "file", "mode": 0o644, "content": "c\n"},
    "/data/d": {"type": "symlink", "target": "sub"},
    "/data/e": {"type": "file", "mode": 0o644, "content": "e\n", "nlink": 2},
    "/data/e-link": {"type": "file", "mode": 0o644, "content": "e\n", "nlink": 2, "same_inode_as": "/data/e"},
    "/data/sub": {"type": "dir", "mode": 0o755},
    "/data/sub/y": {"type": "file", "mode": 0o644, "content": "y\n"},
    "/data/suid": {"type": "file", "mode": 0o4755, "content": "#!/bin/sh\nid -u\n"},
}
EXPECTED_LAYERED_ABSENT = ["/data/b", "/data/.wh.b", "/data/sub/x", "/data/sub/.wh..wh..opq", "/data/d/old"]


def layered(cache: Path, busybox_layout: Path, log: Callable[[str], None]) -> Path:
    """busybox plus LAYERED_LAYERS: whiteouts, an opaque directory, type changes, a hard link, a setuid file."""
    key = hashlib.sha256("{}\nlayered/1\n{}\n{!r}".format(RECIPE, busybox_layout.name, LAYERED_LAYERS)
                         .encode()).hexdigest()

    def build(work: Path) -> None:
        out = work / "layout"
        layers, history, config = oci.image_layers(busybox_layout)
        for n, entries in enumerate(LAYERED_LAYERS, start=2):
            layers.append(oci.tar_entries(entries))
            history.append({"created": oci.CREATED, "created_by": "fleet lab: layered layer {}".format(n),
                            "comment": RECIPE})
        oci.finish_layout(out, oci.write_image(out, layers, dict(config, Cmd=["ls", "-lR", "/data"]), history))

    return _cached(cache, "layered", key, build, log)


SHOP_PAGE = ("<!DOCTYPE html>\n<html><head><title>shop {version}</title></head>"
             "<body><h1>shop {version}</h1></body></html>\n")
#: the shop/web tags seeded for deploy tests and README's "Deploying services": two versions of a page served by
#: the lab's nginx, and one that exits at once (its nginx config does not parse)
SHOP_VERSIONS = ("1", "2", "broken")


def shop(cache: Path, nginx_layout: Path, version: str, log: Callable[[str], None]) -> Path:
    """nginx plus one layer with its own index.html ("shop <version>"); "broken" exits at start (bad nginx -g)."""
    key = hashlib.sha256("{}\nshop/1\n{}\n{}\n{}".format(RECIPE, nginx_layout.name, version, SHOP_PAGE)
                         .encode()).hexdigest()

    def build(work: Path) -> None:
        out = work / "layout"
        layers, history, config = oci.image_layers(nginx_layout)
        layers.append(oci.tar_entries([("dir", "var", 0o755, None), ("dir", "var/www", 0o755, None),
                                       ("dir", "var/www/html", 0o755, None),
                                       ("file", "var/www/html/index.html", 0o644, SHOP_PAGE.format(version=version))]))
        history.append({"created": oci.CREATED, "created_by": "fleet lab: shop {} page".format(version),
                        "comment": RECIPE})
        if version == "broken":
            config = dict(config, Cmd=["nginx", "-g", "daemon off; no_such_directive on;"])
        oci.finish_layout(out, oci.write_image(out, layers, config, history))

    return _cached(cache, "shop-" + version, key, build, log)


def seed_images(cache: Path, log: Callable[[str], None]) -> dict:
    """Build (or reuse) every seed layout; returns {name: {"layout", "repo", "tags", "format", "all",
    "registry" ('registry' or 'auth'), "config_digest" (single images) or "index_digest" (indexes)}}."""
    cache = Path(cache)
    bb = busybox(cache, log)
    ng = nginx(cache, log)
    ma = multiarch(cache, bb, log)
    ly = layered(cache, bb, log)
    # (name, layout, repo, tags, skopeo --format, registry); None keeps the layout's own OCI format.
    plan = [("busybox", bb, "library/busybox", ["latest", "1.36"], "v2s2", "registry"),
            ("nginx", ng, "library/nginx", ["latest"], None, "registry"),
            ("multiarch", ma, "library/multiarch", ["latest"], None, "registry"),
            ("layered", ly, "library/layered", ["latest"], None, "registry"),
            ("private-busybox", bb, "private/busybox", ["latest"], "v2s2", "auth")]
    plan += [("shop-" + v, shop(cache, ng, v, log), "shop/web", [v], None, "registry") for v in SHOP_VERSIONS]
    out = {}
    for name, layout, repo, tags, fmt, where in plan:
        top = oci.top_descriptor(layout)
        is_index = top["mediaType"] == oci.OCI_INDEX
        out[name] = {"layout": str(layout), "repo": repo, "tags": tags, "format": fmt, "all": is_index,
                     "registry": where, "config_digest": None if is_index else oci.config_digest(layout),
                     "index_digest": top["digest"] if is_index else None}
    return out
