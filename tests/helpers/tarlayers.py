"""Hand-made tar layers for the layer applier's tests (agent_payload.image.unpack)."""

import gzip
import hashlib
import io
import tarfile

from agent_payload.image import unpack

MTIME = 1600000000


def _info(name, kind, mode=0o644, uid=0, gid=0, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, MTIME
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def reg(name, data=b"", mode=0o644, uid=0, gid=0, pax=None):
    ti = _info(name, tarfile.REGTYPE, mode, uid, gid)
    ti.size = len(data)
    if pax:
        ti.pax_headers = pax
    return ti, data


def dirent(name, mode=0o755, uid=0, gid=0):
    return _info(name, tarfile.DIRTYPE, mode, uid, gid), None


def sym(name, target):
    return _info(name, tarfile.SYMTYPE, 0o777, linkname=target), None


def hard(name, target):
    return _info(name, tarfile.LNKTYPE, 0o644, linkname=target), None


def dev(name, kind, major, minor, mode=0o666):
    return _info(name, kind, mode, devmajor=major, devminor=minor), None


def make_tar(entries, gz=False):
    """Return (layer bytes, diff_id) for ``entries`` [(TarInfo, data|None)]."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    return (gzip.compress(raw) if gz else raw), diff_id


def apply(root, entries, gz=False, expected=True):
    data, diff_id = make_tar(entries, gz)
    got = unpack.apply_layer(io.BytesIO(data), str(root), "", diff_id if expected else None)
    assert got == diff_id
    return got
