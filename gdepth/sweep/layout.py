"""The layout of a sweep folder: every name in it is defined here, and only here.

```
<out_dir>/sweeps/<name>/
  plan.json            the cells of every launch into this folder (gdepth.sweep.plan)
  .plan.lock           held while plan.json is read-modified-written
  multirun.yaml        Hydra's composed sweep config (the last launch's)
  records/<key>.json   one record per cell (gdepth.sweep.records); a split cell's seed jobs
                       write records/<key>~<first>-<last>.json (gdepth.sweep.parts)
  running/<key>.json   the live marker of a cell being trained (gdepth.sweep.markers)
  checkpoints/<key>/   training checkpoints of a cell's seed batches (gdepth.sweep.checkpoint)
  search/<key>.json    a searched cell's study summary (gdepth.search.study)
  search/<key>.journal its Optuna study (journal storage; trials report to it: gdepth.search.prune)
  jobs/<n>/            one folder per launched job (Hydra's job dir: logs, .hydra/)
```
"""

from __future__ import annotations

from pathlib import Path

PLAN = "plan.json"
PLAN_LOCK = ".plan.lock"
CLAIM_LOCK = ".claim.lock"
MULTIRUN = "multirun.yaml"
RECORDS = "records"
MARKERS = "running"
CHECKPOINTS = "checkpoints"
SEARCH = "search"
JOBS = "jobs"


def record_path(sweep_dir: str | Path, unit: str) -> Path:
    """``records/<unit>.json``: a cell's record (or a seed job's part record)."""
    return Path(sweep_dir) / RECORDS / f"{unit}.json"


def marker_path(sweep_dir: str | Path, unit: str) -> Path:
    """``running/<unit>.json``: the live marker of a cell (or seed job) being trained."""
    return Path(sweep_dir) / MARKERS / f"{unit}.json"


def checkpoint_dir(sweep_dir: str | Path, key: str) -> Path:
    """``checkpoints/<key>/``: the training checkpoints of one cell's seed batches."""
    return Path(sweep_dir) / CHECKPOINTS / key


def journal_path(sweep_dir: str | Path, study: str) -> Path:
    """``search/<study>.journal``: a searched cell's Optuna study (its journal file storage)."""
    return Path(sweep_dir) / SEARCH / f"{study}.journal"
