"""fleet: an agentless container fleet manager (controller side)."""

__version__ = "0.1.0"
