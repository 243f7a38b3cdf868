"""gdepth: depth sweeps for graph neural networks, and why depth helps or hurts."""

__version__ = "0.1.0"
