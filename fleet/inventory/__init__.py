"""Inventories (Ansible YAML/INI) and host patterns; pure data, no network I/O."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet.inventory.loader import load_inventory
    from fleet.inventory.models import Group, Host, Inventory
    from fleet.inventory.patterns import select

__all__ = ["Group", "Host", "Inventory", "load_inventory", "select"]

# Resolved on first use (PEP 562) so that `import fleet.inventory` does not pay for pydantic (~150-250 ms)
# in commands that never load an inventory, such as `fleet --help`.
_EXPORTS = {"Group": "models", "Host": "models", "Inventory": "models", "load_inventory": "loader",
            "select": "patterns"}


def __getattr__(name: str):
    """Import the public names lazily from their modules."""
    if name not in _EXPORTS:
        raise AttributeError("module 'fleet.inventory' has no attribute {!r}".format(name))
    import importlib

    value = getattr(importlib.import_module("fleet.inventory." + _EXPORTS[name]), name)
    globals()[name] = value
    return value
