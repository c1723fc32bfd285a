"""The payload's directory layout under the state root (default /var/lib/fleet) and config dir."""

import os

DEFAULT_ROOT = "/var/lib/fleet"
DEFAULT_CONFIG_DIR = "/etc/fleet"
DEFAULT_RUN_DIR = "/run/fleet"


class Paths:
    """Every path the payload uses, derived from one state root and one config directory.

    ``FLEET_ROOT`` and ``FLEET_CONFIG_DIR`` override the defaults (tests use private trees).
    """

    def __init__(self, root=None, config_dir=None, run=None):
        self.root = root or os.environ.get("FLEET_ROOT") or DEFAULT_ROOT
        self.config_dir = config_dir or os.environ.get("FLEET_CONFIG_DIR") or DEFAULT_CONFIG_DIR
        # runtime state that must not outlive a boot (network namespace files): tmpfs /run, or beside a private root
        self.run = run or os.environ.get("FLEET_RUN_DIR") or (
            DEFAULT_RUN_DIR if self.root == DEFAULT_ROOT else os.path.join(self.root, "run"))

    def _under(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def payload_dir(self):
        """Where payload zipapps live, named ``<sha256>.pyz``."""
        return self._under("payload")

    @property
    def content(self):
        """Content store root: ``blobs/sha256/<hex>`` and ``ingest/``."""
        return self._under("content")

    @property
    def blobs(self):
        return self._under("content", "blobs", "sha256")

    @property
    def ingest(self):
        return self._under("content", "ingest")

    @property
    def snapshots(self):
        """Unpacked layers, one directory per chain ID."""
        return self._under("snapshots")

    @property
    def images(self):
        """Image index (references -> manifest and config digests)."""
        return self._under("images")

    @property
    def containers(self):
        """One directory per container ID."""
        return self._under("containers")

    @property
    def build_contexts(self):
        """fleet build's contexts, ``<sha256>.tar`` each, uploaded by the controller (ops/buildctx.py)."""
        return self._under("build", "contexts")

    def build_context(self, sha256):
        return os.path.join(self.build_contexts, sha256 + ".tar")

    @property
    def locks(self):
        return self._under("locks")

    @property
    def tmp(self):
        return self._under("tmp")

    @property
    def daemon_json(self):
        """Docker-compatible daemon configuration (registry-mirrors, insecure-registries, ...)."""
        return os.path.join(self.config_dir, "daemon.json")

    def container_dir(self, container_id):
        return os.path.join(self.containers, container_id)

    def lock_file(self, name):
        return os.path.join(self.locks, name + ".lock")
