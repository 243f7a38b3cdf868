"""The ``diagnostics`` group's schema (``configs/diagnostics/``): :class:`DiagnosticsConfig`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiagnosticsConfig:
    name: str = "none"  # none | smoothing | influence (gdepth/diagnostics/run.py)
    max_nodes: int = 1024  # smoothing: node sample of the pairwise measures
    measures: list[str] | None = None  # smoothing: None = all
    hops: int = 8  # influence: k
    samples: int = 50  # influence: sampled nodes
