"""The ``search`` group's schema (``configs/search/``): :class:`SearchConfig`; and
:class:`TrialConfig`, the trial a pruned search's job is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class SearchConfig:
    """Per-cell hyperparameter search (gdepth/search/, configs/search/)."""

    name: str = MISSING  # none | default | a search/ option of your own
    trials: int = 30  # Optuna trials per cell: the equal budget
    seeds: int = 3  # seeds (splits) per trial; objective: their mean validation accuracy
    sampler_seed: int = 0  # TPE's seed
    startup_trials: int = 10  # random trials before TPE
    parallel: int = 1  # trials launched together
    space: dict[str, Any] = field(default_factory=dict)  # key: {low, high, log} | {choices}
    models: dict[str, Any] = field(default_factory=dict)  # model name: its own extra space
    pruner: str = "none"  # none | median: stop trials behind the median (gdepth/search/prune.py)
    pruner_startup_trials: int = 5  # median: complete trials before any trial is pruned
    pruner_warmup_epochs: int = 50  # median: no trial is pruned before this epoch
    pruner_interval: int = 10  # epochs between a trial's reports to its study


@dataclass
class TrialConfig:
    """The search trial a cell is, set on the trial's job by a search that prunes
    (gdepth/search/prune.py); not identity."""

    study: str | None = None  # the study's key: its journal is <sweep>/search/<study>.journal
    number: int | None = None  # the trial's number in the study
    pruner: str = "none"  # the search's search.pruner
    startup_trials: int = 5  # its search.pruner_startup_trials
    warmup_epochs: int = 50  # its search.pruner_warmup_epochs
    interval: int = 10  # its search.pruner_interval
