"""Helpers shared by test modules: plain functions, classes and fixtures that test modules import (test modules
never import each other).

- ``runtime``: the payload runtime on this machine (busybox layers, ``env``/``layers`` fixtures, run, logs, cleanup).
- ``images``: images without a registry (``Fixture``), and ``env`` with a real runtime for image/cp/commit tests.
- ``lab``: the lab's name and subnet, the fleet CLI as a user runs it, ``Lab``, ``_ssh`` to a lab host.
- ``registries``: OCI layouts, skopeo and a real registry on loopback.
- ``registry_stub``: a registry stub on 127.0.0.1 for pull tests (slow, stalled, counted requests).
- ``procs``: the fleet CLI with bytes in and out (``fleet_bytes``) and in the background with its PID known
  (``Background``: wait for output, send it a signal, read its exit status).
- ``cli_fakes``: the fleet CLI with its host calls (fan-out, interactive runner, cp's payload call) replaced by a
  recorder (``cli_calls``, ``calls``, ``inventory``).

Fixtures defined here reach a test module by assignment (``env = runtime.env``), which ruff sees as used;
fixtures every test in a directory needs live in that directory's ``conftest.py``.
"""
