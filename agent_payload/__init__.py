"""fleet's payload: a daemonless container engine shipped to each host as one zipapp (stdlib only)."""

__version__ = "0.1.0"  # fleet's own (fleet/__init__.py): the payload ships with its controller
