"""The ``tracking`` group's schemas (``configs/tracking/``): :class:`TrackingConfig` and the
trackers with keys of their own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackingConfig:
    """Experiment tracking of every cell (gdepth/sweep/tracking.py, configs/tracking/); not
    identity."""

    name: str = "none"  # none | mlflow | tensorboard
    curves: bool = True  # also log every seed's per-epoch train/val/test curves


@dataclass
class MLflowTrackingConfig(TrackingConfig):
    uri: str | None = None  # tracking URI (None: sqlite:///<sweep dir>/mlflow.db)
    experiment: str | None = None  # experiment name (None: the sweep's name)


@dataclass
class TensorBoardTrackingConfig(TrackingConfig):
    log_dir: str | None = None  # event files' root (None: <sweep dir>/tensorboard)
