"""Syscalls through ctypes: the only FFI in the payload; every wrapper raises OSError(errno, strerror, path)."""

import ctypes
import os

from . import consts

_libc = None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


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
        lib.capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
        lib.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
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


def capget():
    """The calling thread's capability sets as ``(effective, permitted, inheritable)`` 64-bit masks."""
    header = _CapHeader(consts.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_lib().capget(ctypes.byref(header), data))
    return tuple(getattr(data[0], f) | (getattr(data[1], f) << 32) for f in ("effective", "permitted", "inheritable"))


def capset(effective, permitted, inheritable):
    """Set the calling thread's capability sets (64-bit masks; version 3 = two 32-bit words)."""
    header = _CapHeader(consts.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_lib().capset(ctypes.byref(header), data))


def interface_up(name):
    """Set IFF_UP on a network interface of the caller's network namespace (``ip link set NAME up``)."""
    import fcntl
    import socket
    import struct

    raw = _b(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        ifreq = fcntl.ioctl(sock.fileno(), consts.SIOCGIFFLAGS, struct.pack("16sH22x", raw, 0))
        flags = struct.unpack("16sH22x", ifreq)[1]
        fcntl.ioctl(sock.fileno(), consts.SIOCSIFFLAGS, struct.pack("16sH22x", raw, flags | consts.IFF_UP))
