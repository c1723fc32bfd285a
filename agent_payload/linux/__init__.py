"""Syscalls through ctypes: the only FFI in the payload."""
