"""Seed images built offline (busybox from busybox-static, nginx from Debian debs) into cached OCI image layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from .state import LabError, run, write_json

RECIPE = "fleet-lab-seed/1"          # bump to invalidate cached layouts when the recipes below change
EPOCH = 1700000000                   # fixed mtime for every tar entry and the image's "created"
CREATED = "2023-11-14T22:13:20Z"     # == EPOCH
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

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


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(rootfs: Path) -> tuple[bytes, str]:
    """A deterministic gzip'd tar of rootfs (sorted, fixed mtimes, no owner names); returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for entry in sorted(dirnames + filenames):
                full = os.path.join(dirpath, entry)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, rootfs))
                info.mtime, info.uname, info.gname = EPOCH, "", ""
                info.pax_headers = {}
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    data = raw.getvalue()
    blob = io.BytesIO()
    with gzip.GzipFile(fileobj=blob, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
        gz.write(data)
    return blob.getvalue(), _sha(data)


def write_layout(out: Path, rootfs: Path, config: dict, created_by: str) -> str:
    """Write an OCI image layout (blobs, index.json tagged latest, oci-layout) for a one-layer image; returns the
    config digest. config holds the image's runtime config (Cmd, Env, ...)."""
    blob, diff_id = _layer(rootfs)
    image = {
        "created": CREATED, "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": created_by, "comment": RECIPE}],
    }
    cfg = json.dumps(image, sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": _sha(blob), "size": len(blob)}],
    }, sort_keys=True, separators=(",", ":")).encode()
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (blob, cfg, manifest):
        (blobs / _sha(data).split(":")[1]).write_bytes(data)
    write_json(out / "index.json", {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                    "manifests": [{"mediaType": OCI_MANIFEST, "digest": _sha(manifest),
                                                   "size": len(manifest),
                                                   "annotations": {"org.opencontainers.image.ref.name": "latest"}}]})
    write_json(out / "oci-layout", {"imageLayoutVersion": "1.0.0"})
    return _sha(cfg)


def config_digest(layout: Path) -> str:
    """The config digest of the layout's 'latest' manifest."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    return json.loads((layout / "blobs" / "sha256" / digest).read_bytes())["config"]["digest"]


def _cached(cache: Path, name: str, key: str, build: Callable[[Path], tuple[dict, str]],
            log: Callable[[str], None]) -> Path:
    """Return cache/images/<name>-<key> (an OCI layout), building it with build(rootfs) on a miss."""
    final = cache / "images" / "{}-{}".format(name, key[:16])
    if (final / "index.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-{}-".format(name), dir=str(final.parent)))
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir(mode=0o755)
        config, created_by = build(rootfs)
        write_layout(work / "layout", rootfs, config, created_by)
        os.replace(work / "layout", final)
        log("built seed image {} -> {}".format(name, final))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


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

    return _cached(cache, "busybox", key, build, log)


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

    return _cached(cache, "nginx", key, build, log)


def seed_images(cache: Path, log: Callable[[str], None]) -> dict:
    """Build (or reuse) both seed layouts; returns {repo: {"layout", "config_digest", "format"}}."""
    out = {}
    for repo, builder, fmt in (("library/busybox", busybox, "v2s2"), ("library/nginx", nginx, None)):
        layout = builder(Path(cache), log)
        out[repo] = {"layout": str(layout), "config_digest": config_digest(layout), "format": fmt}
    return out

