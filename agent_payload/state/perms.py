"""Who may read the state root: nobody but its owner (root), as Docker keeps /var/lib/docker.

The state root holds secrets (a container's ``config.json`` carries its ``-e`` env; volume data; image
content; a ``--rm`` container's config waits under ``containers/.removed`` for ten minutes), so:

- the root itself is 0710, owned by the user the payload runs as (root): others can neither list nor traverse
  it (Docker: ``/var/lib/docker`` 0710 root:root);
- the directories under it that the payload makes are 0700 (``containers`` 0710, as Docker's), and every
  config/state file is 0600 (``store.write_bytes_atomic``'s default).  The exceptions are the files that are
  bind-mounted into containers (``hosts``, ``resolv.conf``, ``hostname``): a container process running as a
  non-root user (nginx's workers) reads them, so they stay 0644 -- behind the private root, where only the
  bind mount reaches them;
- the run dir (``/run/fleet``: network namespace files) is 0700.

Nothing in a container ever walks this path: its processes run after ``pivot_root``, and the overlay and bind
mounts are made by root, so a container running as ``nobody`` is unaffected by these modes.

The config dir (``/etc/fleet``) follows Docker's ``/etc/docker``: 0755 with a 0644 ``daemon.json``, which holds
no secrets (registry credentials live in Docker's ``config.json``, 0600 in a 0700 ``~/.docker``).

Checking at start (``ensure_root``, every payload command) costs one ``stat`` of the root: its mode 0710 is
also the mark that this version set up the tree.  A root with another mode -- made by an older version (0755),
or by the controller's first upload (0700, see fleet/transport/invoke.py) -- gets one repair walk over the
known secret-bearing directories and files, and only then (last, so that a crash mid-walk walks again) the mode
0710.  A root owned by another user is refused rather than chowned: whoever owns it may have planted anything
below it.
"""

import os
import stat

ROOT_MODE = 0o710
DIR_MODE = 0o700
FILE_MODE = 0o600
# Files bind-mounted into containers, read there by any user the container runs as.
SHARED_FILE_MODE = 0o644
SHARED_FILES = ("hosts", "resolv.conf", "hostname")

# The directories directly under the root, and their modes.  ``payload`` holds code that root runs: 0755 (not
# writable by others; fleet/transport/payload.py checks it before running anything from it).
TOP_DIRS = (("containers", 0o710), ("content", DIR_MODE), ("snapshots", DIR_MODE), ("images", DIR_MODE),
            ("volumes", DIR_MODE), ("networks", DIR_MODE), ("locks", DIR_MODE), ("tmp", DIR_MODE),
            ("deploys", DIR_MODE), ("events", DIR_MODE), ("checks", DIR_MODE), ("payload", 0o755))


class StateRootError(Exception):
    """The state root is not ours (owned by another user, or not a directory)."""


def make_dir(path, mode):
    """mkdir ``path`` with exactly ``mode`` (the umask cannot widen or narrow it); False if it existed."""
    try:
        os.mkdir(path, mode & 0o700)  # never wider than owner-only until the chmod below
    except FileExistsError:
        return False
    os.chmod(path, mode)
    return True


def makedirs(path, mode=DIR_MODE):
    """``os.makedirs`` where every directory it creates gets exactly ``mode``."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path and not os.path.isdir(parent):
        makedirs(parent, mode)
    make_dir(path, mode)


def ensure_root(paths):
    """Make sure the state root is private; cheap when it is (one stat).  Raises StateRootError."""
    try:
        st = os.stat(paths.root)
    except FileNotFoundError:
        parent = os.path.dirname(paths.root.rstrip("/"))
        if parent:
            os.makedirs(parent, 0o755, exist_ok=True)
        make_dir(paths.root, DIR_MODE)  # private from the start; 0710 once set up (below)
        st = os.stat(paths.root)
    if not stat.S_ISDIR(st.st_mode):
        raise StateRootError("fleet state root {} is not a directory".format(paths.root))
    if st.st_uid != os.geteuid():
        raise StateRootError("fleet state root {} is owned by uid {}, not by uid {} that runs the payload; "
                             "refusing to use it (chown it, or remove it)".format(paths.root, st.st_uid,
                                                                                 os.geteuid()))
    if stat.S_IMODE(st.st_mode) == ROOT_MODE and st.st_gid == os.getegid():
        return False
    os.chmod(paths.root, DIR_MODE)  # close the door first, then repair what is behind it
    if st.st_gid != os.getegid():
        os.chown(paths.root, -1, os.getegid())
    repair(paths)
    os.chmod(paths.root, ROOT_MODE)
    return True


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _chmod(path, mode, want_dir):
    """chmod a file or directory the payload made (never through a symlink); False when absent or not one."""
    st = _lstat(path)
    if st is None or stat.S_ISDIR(st.st_mode) != want_dir or not (want_dir or stat.S_ISREG(st.st_mode)):
        return False
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return True


def _private_file(path):
    st = _lstat(path)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        _chmod(path, stat.S_IMODE(st.st_mode) & 0o700, False)


def _entries(path):
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _private_tree(path):
    """Every directory 0700 and every file owner-only, all the way down (small trees of state only)."""
    for name in _entries(path):
        p = os.path.join(path, name)
        if _chmod(p, DIR_MODE, True):
            _private_tree(p)
        else:
            _private_file(p)


def repair(paths):
    """The one-time walk on a root set up by an older version: the known secret-bearing dirs and files.

    Never descends into data that belongs to containers or images (layer trees, volume data, a container's
    rootfs/diff/work), and never follows a symlink.
    """
    root = paths.root
    for name, mode in TOP_DIRS:
        p = os.path.join(root, name)
        if not _chmod(p, mode, True) and _lstat(p) is None and name != "payload":  # payload/: the upload's
            make_dir(p, mode)
    containers = os.path.join(root, "containers")
    for name in _entries(containers):
        d = os.path.join(containers, name)
        if name == ".removed":  # tombstones of --rm containers: config.json (env!), state, log
            _chmod(d, DIR_MODE, True)
            _private_tree(d)
            continue
        if not _chmod(d, 0o710, True):
            continue
        for f in _entries(d):
            if f in SHARED_FILES:
                _chmod(os.path.join(d, f), SHARED_FILE_MODE, False)
            else:
                _private_file(os.path.join(d, f))
    volumes = os.path.join(root, "volumes")
    for name in _entries(volumes):
        _private_file(os.path.join(volumes, name, "volume.json"))
    # deploys: journal, locks, retired, progress; events: the event journal (labels in its attributes);
    # checks: the last-seen counters
    for name in ("networks", "images", "locks", "tmp", "deploys", "events", "checks"):
        _private_tree(os.path.join(root, name))
    for name in _entries(paths.snapshots):  # the index; the layer trees below keep the image's own modes
        _private_file(os.path.join(paths.snapshots, name))
    _private_tree(paths.ingest)  # partial downloads; finished blobs are content-addressed and behind 0700
    _chmod(paths.run, DIR_MODE, True)
