"""Containers: spec, namespaces and rootfs, the per-container shim, logs and lifecycle."""
