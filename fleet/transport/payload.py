"""Build the payload zipapp deterministically: same sources, same bytes, same sha256 (the hash is the version)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

# A fixed timestamp and file mode make the archive independent of checkout time and umask.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MODE = 0o100644 << 16
_SHEBANG = b"#!/usr/bin/env python3\n"
# The zipapp's __main__: on a host's first run it unpacks its own modules next to itself into <sha256>.d/ (temp
# dir, then an atomic rename) and imports from there, so that Python can cache bytecode; zipimport compiles every
# module from source on every run (~40 ms per command here).  The .pyz stays the identity: the directory is
# derived from it, named by the same hash, and never changes after the rename (the shiv approach).  The zip is
# checked against its own name before anything is unpacked.
_MAIN = b"""import os, sys


def _code_dir(pyz):
    if not (pyz.endswith(".pyz") and os.path.isfile(pyz)):
        return None
    target = pyz[:-4] + ".d"
    if os.path.isdir(target):
        return target
    import hashlib, shutil, zipfile
    with open(pyz, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != os.path.basename(pyz)[:-4]:
        sys.stderr.write("fleet payload {} is corrupt (sha256 {}); remove it to have it uploaded again\\n".format(
            pyz, digest))
        sys.exit(3)
    tmp = "{}.tmp-{}".format(target, os.getpid())
    try:
        with zipfile.ZipFile(pyz) as zf:
            zf.extractall(tmp, [n for n in zf.namelist() if n.startswith("agent_payload/")])
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(target):
            return None  # read-only or full disk: run from the zip itself
    return target


_dir = _code_dir(os.path.abspath(sys.argv[0]))
if _dir:
    sys.path.insert(0, _dir)
from agent_payload.cli import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Payload:
    """The built zipapp: its bytes and their sha256 (hex)."""

    data: bytes
    sha256: str

    @property
    def filename(self) -> str:
        return self.sha256 + ".pyz"


def source_dir() -> Path:
    """The directory of the agent_payload package that ships with this controller."""
    spec = importlib.util.find_spec("agent_payload")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("agent_payload package not found next to fleet")
    return Path(list(spec.submodule_search_locations)[0])


def source_files(root: Path) -> list[Path]:
    """Every .py file of the payload, in a stable order (caches and other files are never shipped)."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def build(root: Path | None = None) -> Payload:
    """Zip the payload sources into a zipapp with a root __main__.py."""
    root = root or source_dir()
    buf = io.BytesIO()
    buf.write(_SHEBANG)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        entries = [("__main__.py", _MAIN)]
        entries += [("agent_payload/" + p.relative_to(root).as_posix(), p.read_bytes()) for p in source_files(root)]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = _MODE
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    data = buf.getvalue()
    return Payload(data=data, sha256=hashlib.sha256(data).hexdigest())
