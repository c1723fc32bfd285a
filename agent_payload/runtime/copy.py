"""``docker cp`` on the host: read or write a container's files from inside its own root.

A forked child does the filesystem work with the container's root as its ``/``::

    running container:  setns(/proc/<init>/ns/mnt)  -> root and cwd are the container's (as nsenter -m);
                        writes land in the merged view, its /proc, /dev and bind mounts included
    stopped container:  unshare(CLONE_NEWNS), private propagation, mount its overlay (l/<n>, diff, work) on
                        rootfs/, chroot there; the mount dies with the child's namespace; the container lock
                        is held meanwhile so that no start mounts the same upper dir

So every path, symlinks included, resolves inside the container's root: an absolute symlink or ".." can
never reach the host (CVE-2018-15664 class), and entries written from the archive are created component by
component with O_NOFOLLOW (archive.extract).  Before the child joins anything it drops every fd but the
staging file and its result pipe, stops being dumpable, and turns off imports (a module loaded after the
switch would come from the container's filesystem).  The tar itself lives in a staging file under the
fleet root's tmp/, opened by the parent in the host's view.
"""

import importlib.machinery
import os
import stat
import sys
import tempfile
import time

from .. import archive, errors
from ..linux import libc
from ..linux.consts import CLONE_NEWNS, MS_PRIVATE, MS_REC
from . import process, records, rootfs

PR_SET_DUMPABLE = 4
STAGING_PREFIX = "cp-"
STALE_SECONDS = 24 * 3600


def _not_found(path, ref):
    return errors.NotFound("Could not find the file {} in container {}".format(path, ref))


def _container_path(path):
    if not isinstance(path, str) or not path or "\x00" in path:
        raise errors.InvalidArgument("invalid container path: {!r}".format(path))
    return path if path.startswith("/") else "/" + path  # relative to the container's root, as docker


def staging_dir(paths):
    os.makedirs(paths.tmp, mode=0o700, exist_ok=True)
    return paths.tmp


def open_staging(paths, path):
    """Open an uploaded staging file for reading: it must be a regular file directly in the fleet tmp dir."""
    base = staging_dir(paths)
    if (not isinstance(path, str) or os.path.dirname(path) != base.rstrip("/")
            or not os.path.basename(path).startswith(STAGING_PREFIX)):
        raise errors.InvalidArgument("staging file must be {}/{}*: {!r}".format(base, STAGING_PREFIX, path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.NotFound("staging file {} not found".format(path))
    except OSError as exc:
        raise errors.InvalidArgument("staging file {}: {}".format(path, exc.strerror))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.InvalidArgument("staging file {} is not a regular file".format(path))
    return fd


def new_staging(paths):
    """A fresh 0600 staging file under the fleet tmp dir -> (fd, path); stale ones of dead copies go first."""
    clean_stale(paths)
    return tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".tar", dir=staging_dir(paths))


def clean_stale(paths, max_age=STALE_SECONDS):
    """Remove staging files older than ``max_age`` (a controller that died before fetching or deleting them)."""
    base = staging_dir(paths)
    cutoff = time.time() - max_age
    for name in os.listdir(base):
        if not name.startswith(STAGING_PREFIX):
            continue
        try:
            st = os.lstat(os.path.join(base, name))
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                os.unlink(os.path.join(base, name))
        except FileNotFoundError:
            pass


def _lock_imports():
    """From here on no module can be imported: the filesystem is the container's."""
    sys.path[:] = []
    sys.meta_path[:] = [f for f in sys.meta_path if f in (importlib.machinery.BuiltinImporter,
                                                         importlib.machinery.FrozenImporter)]
    sys.path_importer_cache.clear()


def _child(enter, work, keep, result_w):
    """In the forked child: keep only ``keep`` fds, enter the container's root, run ``work``; never returns."""
    try:
        libc.prctl(PR_SET_DUMPABLE, 0)
        for fd in [int(f) for f in os.listdir("/proc/self/fd")]:
            if fd > 2 and fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        null = os.open("/dev/null", os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(null, i)  # stdout is the RPC stream: nothing from here may reach it
        os.close(null)
        _lock_imports()
        enter()
        os.chdir("/")
        data = work()
        process.send(result_w, {"type": "ok", "data": data})
        os._exit(0)
    except BaseException as exc:
        try:
            # no traceback here: it would read (and maybe import) files from the container
            process.send(result_w, dict(errors.to_wire(exc), type="error"))
        except BaseException:
            pass
        os._exit(1)


def _run(runtime, ref, work, extra_fds):
    """Run ``work()`` in a child rooted in container ``ref``'s filesystem; returns its data or raises its error."""
    cid = runtime._resolve(ref)
    config, state = runtime._load(cid, ref)
    layout = records.Layout(runtime.paths, cid)
    if state.get("status") == "running":
        ns = os.open("/proc/{}/ns/mnt".format(state["pid"]), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not records.is_alive(state["pid"], state.get("pid_start")):
                raise errors.Conflict("container {} exited during the copy".format(cid))
            return _fork(lambda: (libc.setns(ns, CLONE_NEWNS), os.close(ns)), work, list(extra_fds) + [ns])
        finally:
            os.close(ns)
    layers = len(config.get("lowerdirs") or [])

    def enter_stopped():
        libc.unshare(CLONE_NEWNS)
        libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
        os.chdir(layout.dir)
        libc.mount("overlay", "rootfs", "overlay", 0, rootfs.overlay_options(layers))
        os.chroot("rootfs")

    with records.container_lock(runtime.paths, cid):
        state = records.read_state(runtime.paths, cid)
        if state.get("status") == "running":
            raise errors.Conflict("container {} started during the copy; try again".format(cid))
        return _fork(enter_stopped, work, extra_fds)


def _fork(enter, work, fds):
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(enter, work, set(fds) | {w}, w)
        os.close(w)
        w = None
        msg = process.recv(r)
        os.waitpid(pid, 0)
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    if msg is None:
        raise errors.Internal("the copy helper died without an answer")
    if msg.get("type") == "ok":
        return msg["data"]
    raise errors.from_wire(msg)


def copy_in(runtime, ref, dest, staging_fd, src_base, src_is_dir, contents=False, keep_owner=False):
    """Extract the staged tar (top entry ``src_base``) at ``dest`` in the container by docker's rules."""
    dest = _container_path(dest)

    def work():
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            raise _not_found(dest, ref)
        where, new_base = archive.plan(src_is_dir, src_base, contents, dest, archive.kind_of(st))
        try:
            dir_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(where, ref)
        try:
            with os.fdopen(staging_fd, "rb", closefd=False) as f:
                count = archive.extract(f, dir_fd, src_base, new_base, owner=(0, 0), keep_owner=keep_owner)
        finally:
            os.close(dir_fd)
        return {"entries": count, "path": os.path.join(where, new_base) if new_base else where}

    return _run(runtime, ref, work, [staging_fd])


def copy_out(runtime, ref, src, staging_fd, follow_link=False):
    """Write ``src`` of the container as a copy tar into the staging file -> {"base", "type", "size"}."""
    src = _container_path(src)

    def work():
        try:
            os.lstat(src.rstrip("/") or "/")
            if src.endswith("/") or archive.contents_only(src):
                os.stat(src)
        except FileNotFoundError:
            raise _not_found(src, ref)
        except NotADirectoryError:
            raise errors.InvalidArgument('"{}": {}'.format(src, archive.ERR_NOT_DIR))
        base = archive.base_name(src)
        with os.fdopen(staging_fd, "wb", closefd=False) as f:
            info = archive.write_tree(f, src, base, follow_link=follow_link)
        return dict(info, base=base)

    return _run(runtime, ref, work, [staging_fd])
