"""Where a cell starts: the one place that decides what a (re)started cell still has to train.

Three levels, decided here once, when the cell starts (:func:`find`):

- the cell: its record (or, for a part of a cell split into seed jobs, a done record covering
  its seeds, :func:`gdepth.sweep.parts.done_record`) says ``ok`` → nothing to run;
- its seeds: a seed a killed run finished was kept as its result
  (:meth:`gdepth.sweep.checkpoint.CellCheckpoints.finished`) → reported as kept, not trained;
- its batches: the seeds still to train resume each batch from its last training checkpoint
  (:meth:`~gdepth.sweep.checkpoint.CellCheckpoints.batch`, read by the training loop).

A cell whose record is written ``ok`` or ``diverged`` clears its checkpoints (:func:`clear`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdepth.cell.record import SeedOutcome
from gdepth.sweep import parts
from gdepth.sweep.checkpoint import CellCheckpoints

log = logging.getLogger("gdepth")


@dataclass
class Resume:
    """What a started cell finds: ``done`` (its ok record: nothing to run), else the seeds a
    killed run ``finished``, the ``pending`` ones, and the ``checkpoints`` store."""

    seeds: list[int]
    done: dict[str, Any] | None = None
    finished: dict[int, SeedOutcome] = field(default_factory=dict)
    checkpoints: CellCheckpoints | None = None

    @property
    def pending(self) -> list[int]:
        return [s for s in self.seeds if s not in self.finished]


def find(base_dir: str | Path, key: str, part: parts.Part | None, seeds: Iterable[int],
         checkpoint_every: int | None) -> Resume:
    """What the cell ``key`` (``part``: its seeds ``lo..hi-1``; ``seeds``: those it trains)
    still has to do below ``base_dir`` (module docstring)."""
    seeds = list(seeds)
    old = parts.done_record(base_dir, key, part)
    if old is not None and old["status"] == "ok":
        return Resume(seeds, done=old)
    checkpoints = CellCheckpoints(base_dir, key, checkpoint_every)
    finished = {}
    for seed in seeds:
        entry = checkpoints.finished(seed)
        if entry is not None:
            log.info("seed %d: kept its result from before the restart", seed)
            finished[seed] = SeedOutcome.from_json(seed, entry)
    return Resume(seeds, finished=finished, checkpoints=checkpoints)


def clear(base_dir: str | Path, key: str, seeds: Iterable[int]) -> None:
    """The record holding ``seeds`` is written: their checkpoints are no longer needed."""
    CellCheckpoints(base_dir, key, None).clear(seeds)
