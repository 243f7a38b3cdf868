"""Cell records: one JSON file per cell, written atomically, keyed by the config's hash.

A record holds the fully resolved config, the per-seed metrics, their mean and std, timings,
parameter count, peak memory, device, torch threads, library versions, the model's depth
convention and a status (``ok | diverged | failed``, with the error text). Records live in
``<sweep dir>/records/<key>.json``; ``load(DIR)`` finds them anywhere below DIR, so folders
merged from several machines aggregate like one sweep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1
METRICS = ("train_acc", "val_acc", "test_acc")
STATUSES = ("ok", "diverged", "failed")

# Keys that say where and how a cell runs, not what it computes: they are recorded but are
# not part of the cell's identity, so a re-run from another folder or device resumes.
NOT_IDENTITY = ("name", "out_dir", "data", "device", "progress", "threads")

log = logging.getLogger(__name__)


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines a cell's results."""
    return {k: v for k, v in config.items() if k not in NOT_IDENTITY}


def cell_key(config: dict[str, Any]) -> str:
    """A stable 16-hex-digit hash of the cell's identity."""
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_path(base_dir: str | Path, key: str) -> Path:
    return Path(base_dir) / "records" / f"{key}.json"


def write(path: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, default=str, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | Path) -> dict[str, Any] | None:
    """The record at ``path``; None if absent, unreadable or not a gdepth record."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable record %s: %s", path, err)
        return None
    if not isinstance(record, dict) or "key" not in record or "status" not in record:
        log.warning("ignoring %s: not a gdepth record", path)
        return None
    return record


def summarize(seeds: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, population std (ddof=0, as numpy and the papers' code) and n of each metric."""
    out: dict[str, dict[str, float]] = {}
    rows = [s for s in seeds if s.get("status") == "ok"]
    for metric in (*METRICS, "selected_epoch", "epoch_s"):
        values = [float(s[metric]) for s in rows if not math.isnan(float(s[metric]))]
        n = len(values)
        mean = sum(values) / n if n else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n) if n else math.nan
        out[metric] = {"mean": mean, "std": std, "n": n}
    return out


def load(directory: str | Path) -> list[dict[str, Any]]:
    """Every record below ``directory``; where a key occurs twice, the newest ok one wins."""
    best: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).rglob("records/*.json")):
        record = read(path)
        if record is None:
            continue
        old = best.get(record["key"])
        rank = (record["status"] == "ok", record.get("finished_at", ""))
        if old is None or rank > (old["status"] == "ok", old.get("finished_at", "")):
            best[record["key"]] = record
    return list(best.values())


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else value


def to_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Tidy results: one row per seed per cell (one row with NaN metrics for a failed cell).

    Columns: ``key, status, error`` then every identity config leaf (``dataset.name``,
    ``model.name``, ``norm.name``, ``depth``, ``train.lr``, …), then ``seed`` and the per-seed
    metrics and timings.
    """
    rows = []
    for record in records:
        cell: dict[str, Any] = {}
        _flatten("", identity(record["config"]), cell)
        base = {"key": record["key"], "status": record["status"], "error": record.get("error")}
        seeds = record.get("seeds") or [{}]
        for seed in seeds:
            per_seed = {("seed_status" if k == "status" else k): v for k, v in seed.items()}
            rows.append({**base, **cell, **per_seed})
    frame = pd.DataFrame(rows)
    for column in ("seed", "seed_status", *METRICS):  # present even if every cell failed
        if column not in frame:
            frame[column] = None if column == "seed_status" else math.nan
    return frame
