"""The validated inventory, cached: a warm command loads a pickle instead of parsing YAML, rendering templates
and validating every host with pydantic (the models defer their schema build, so a hit never builds one).

The key covers everything ``load_inventory`` reads or looks for: the paths as given and the working directory
(relative paths, group_vars/ next to them), each inventory file's contents, every file under the group_vars/ and
host_vars/ directories next to them (names and contents; a directory that appears or disappears changes the key
too), $HOME (``~`` in key paths), and the code that loads and validates (these modules' sizes and mtimes, the
Python and pydantic versions).  So an entry is never stale: any change misses and reloads.  Files are read in
full and hashed (no mtime shortcuts: an edit within the same second still counts).  Errors are never cached: a
bad inventory raises from ``load_inventory`` on every run.  Storage, modes and atomicity: fleet/cache.py.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

from fleet import cache

_CODE = ("loader.py", "models.py", "cache.py")
_VARS_DIRS = ("group_vars", "host_vars")


def _walk(h, directory: Path) -> None:
    for kind in _VARS_DIRS:
        top = directory / kind
        h.update(b"\0dir " + str(top).encode())
        if not top.is_dir():
            h.update(b" absent")
            continue
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            dirnames.sort()
            h.update(b"\0d " + dirpath.encode())
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                h.update(b"\0f " + path.encode() + b"\0")
                try:
                    h.update(Path(path).read_bytes())
                except OSError as exc:
                    h.update("unreadable {}".format(exc.errno).encode())


def key(paths: list) -> str:
    """The cache key of loading ``paths`` now (OSError when an inventory file cannot be read)."""
    import pydantic

    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE:
        st = os.stat(here / name)
        h.update("{} {} {}\0".format(name, st.st_size, st.st_mtime_ns).encode())
    h.update("{}\0{}\0{}\0{}\0".format(sys.version, pydantic.VERSION, os.getcwd(),
                                       os.path.expanduser("~")).encode())
    seen = set()
    for path in paths:
        h.update(b"\0inventory " + str(path).encode() + b"\0")
        h.update(Path(path).read_bytes())
        directory = Path(path).parent
        if directory not in seen:
            seen.add(directory)
            _walk(h, directory)
    return h.hexdigest()


def load(paths: list):
    """``load_inventory(paths)``, from the cache when nothing it depends on changed."""
    try:
        digest = key(paths)
    except OSError:
        return _load(paths)  # it reports the unreadable file
    name = "inventory-{}.pickle".format(hashlib.sha256("\0".join(map(str, paths)).encode()
                                                       + os.getcwd().encode()).hexdigest()[:32])
    data = cache.read(name)
    if data is not None:
        try:
            stored_key, inventory = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a damaged entry is a miss
            stored_key = None
        if stored_key == digest:
            return inventory
    inventory = _load(paths)
    cache.write(name, pickle.dumps((digest, inventory), protocol=pickle.HIGHEST_PROTOCOL),
                prune="inventory-*.pickle", keep=16)
    return inventory


def _load(paths: list):
    from fleet.inventory.loader import load_inventory  # YAML, jinja2 and validation: only on a miss

    return load_inventory(paths)
