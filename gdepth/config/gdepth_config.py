"""The root of the config tree (``configs/config.yaml``): :class:`GdepthConfig`, its ``data``
node (:class:`DataConfig`) and :func:`check` of its counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from gdepth.config.choices import Adjacency, Device, Engine
from gdepth.config.diagnostics_config import DiagnosticsConfig
from gdepth.config.model_config import ModelConfig
from gdepth.config.search_config import TrialConfig
from gdepth.config.tracking_config import TrackingConfig
from gdepth.config.train_config import TrainConfig


@dataclass
class DataConfig:
    root: str | None = "${oc.env:GDEPTH_DATA,null}"  # writable cache (None: user cache)
    mirror: str | None = "${oc.env:GDEPTH_DATA_MIRROR,null}"  # read-only raw-layout folder


@dataclass
class GdepthConfig:
    dataset: Any = MISSING
    model: ModelConfig = MISSING
    norm: Any = MISSING
    train: TrainConfig = MISSING
    diagnostics: DiagnosticsConfig = MISSING
    search: Any = MISSING  # {name: none} or a SearchConfig (configs/search/)
    tracking: TrackingConfig = MISSING  # none | mlflow | tensorboard (configs/tracking/)
    data: DataConfig = field(default_factory=DataConfig)
    depth: int = 2  # message-passing layers; see each model's convention
    seeds: int = 3  # independent seeds per cell (seed i also draws split i)
    seeds_per_job: int | None = None  # sweep: seeds per job (None: all; gdepth/sweep/parts.py)
    seed_range: list[int] | None = None  # [lo, hi]: a part's seeds (set by the sweeper)
    name: str | None = None  # sweep name -> <out_dir>/sweeps/<name>; the CLI fills it in
    device: Device = Device.auto
    engine: Engine = Engine.auto  # seeds batched (gdepth/engine) or looped; not identity
    adjacency: Adjacency = Adjacency.auto  # batched engine's adjacency storage; not identity
    seeds_per_batch: int | None = None  # batched engine: seeds trained together (None: as
    # many as fit in memory, gdepth/engine/memory.py); not identity
    out_dir: str = "outputs"
    threads: int | None = None  # torch CPU threads (results depend on it; recorded)
    progress: bool = True  # per-epoch progress bar on a terminal
    progress_log_s: float | None = 60.0  # seconds between progress lines in the job log when
    # stderr is not a terminal (0: every epoch; None: none); not identity
    checkpoint_every: int | None = 50  # epochs (tree_match: passes) between checkpoints (None: off)
    activation_checkpointing: bool = False  # recompute layers in backward; not identity
    trial: TrialConfig = field(default_factory=TrialConfig)  # a pruned search's trial; not identity


# Top-level counts a cell cannot run without (null where the schema allows it). Hydra's typed
# schema checks types, not ranges, hence this check on the composed config.
POSITIVE = ("seeds", "depth", "seeds_per_job", "seeds_per_batch", "threads", "checkpoint_every")


def check(config: Any) -> None:
    """Raise ValueError (one line, the key and value named) if a count is not positive.

    ``config``: a composed config, as a dict or DictConfig. ``threads`` that a running job
    resolves later (the pool's interpolation) is left to it.
    """
    for key in POSITIVE:
        value = config.get(key)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}={value}: must be a whole number >= 1"
                             + (" (or null)" if key != "seeds" and key != "depth" else ""))
