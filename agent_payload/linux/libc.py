"""Syscalls through ctypes: the only FFI in the payload; every wrapper raises OSError(errno, strerror, path)."""

import ctypes
import os

from . import consts

_libc = None


def _lib():
    """Load libc lazily (``CDLL(None)`` = the already-linked C library) with errno capture."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _b(value):
    """Encode a str path or data argument for C (``None`` stays NULL)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _check(ret, path=None):
    """Raise ``OSError`` from the saved errno when a libc call returned -1."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ret


def unshare(flags):
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_lib().unshare(flags))


def setns(fd, nstype=0):
    """Join the namespace referred to by ``fd`` (0 = any type)."""
    _check(_lib().setns(fd, nstype))


def mount(source, target, fstype, flags=0, data=None):
    """mount(2); ``source``/``fstype``/``data`` may be None."""
    _check(_lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)), target)


def umount2(target, flags=0):
    """umount2(2), e.g. with ``MNT_DETACH``."""
    _check(_lib().umount2(_b(target), flags), target)


def pivot_root(new_root, put_old):
    """pivot_root(2) through syscall(2): glibc has no wrapper."""
    machine = os.uname().machine
    try:
        number = consts.SYS_PIVOT_ROOT[machine]
    except KeyError:
        raise OSError(38, "pivot_root: unsupported machine {}".format(machine), new_root)
    lib = _lib()
    ret = lib.syscall(ctypes.c_long(number), ctypes.c_char_p(_b(new_root)), ctypes.c_char_p(_b(put_old)))
    _check(ret, new_root)


def sethostname(name):
    """Set the UTS hostname of the calling process's UTS namespace."""
    raw = _b(name)
    _check(_lib().sethostname(raw, len(raw)))


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    """prctl(2) with integer arguments; returns the call's result."""
    return _check(_lib().prctl(option, arg2, arg3, arg4, arg5))
