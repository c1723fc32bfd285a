"""File-tree helpers the stores and the runtime share (stdlib only, no payload imports).

``open_beneath``: a directory opened one component at a time from a directory fd, never through a symlink
(the archive extractor, the rootfs's mount targets, the diff of an overlay upper dir). ``tree_size``: the
bytes under a directory as Docker counts them (image and container sizes, volumes, ``system df``).
"""

import os
import stat


def open_beneath(dir_fd, parts, flags=os.O_PATH, mode=None):
    """A new fd of the directory ``parts`` (names, no "/") beneath ``dir_fd``, never leaving it by a symlink.

    Each component is opened with O_NOFOLLOW|O_DIRECTORY from the previous one's fd, so a symlink anywhere on
    the way fails (ELOOP or ENOTDIR, the OSError's filename naming the component) instead of redirecting the
    walk (CVE-2021-30465). ``flags``: O_PATH for a dirfd of *at calls and /proc/self/fd mounts, O_RDONLY for one
    to read or change. ``mode``: a missing component is created as a directory with it (else FileNotFoundError).
    """
    flags |= os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if mode is None:
                    raise
                os.mkdir(part, mode, dir_fd=fd)
                nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def tree_size(path):
    """Bytes of the files under ``path``, as Docker's ``directory.Size`` (image and container SizeRw, volumes):
    st_size of every non-directory, symlinks by their own size, hard links counted once; what vanishes or
    cannot be read meanwhile (a running container's upper dir) is skipped."""
    total, seen = 0, set()
    stack = [path]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def remove_stale(directory, max_age):
    """Remove every entry of ``directory`` (a tree, recursively) not modified for ``max_age`` seconds: what a
    killed writer left there. A missing directory, or an entry gone meanwhile, is fine."""
    import shutil
    import time
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    cutoff = time.time() - max_age
    for name in names:
        path = os.path.join(directory, name)
        try:
            if os.lstat(path).st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
