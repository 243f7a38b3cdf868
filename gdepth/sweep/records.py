"""Cell records: one JSON file per cell, written atomically, keyed by the config's hash.

A record holds the fully resolved config, the per-seed metrics, their mean and std, timings,
parameter count, peak memory, device, torch threads, library versions, the model's depth
convention and a status (``ok | diverged | oom | failed``, with the error text). Records live
in ``<sweep dir>/records/<key>.json``; ``load(DIR)`` finds them anywhere below DIR, so folders
merged from several machines aggregate like one sweep. A cell a sweep planned (``plan.json``)
that has no readable record yet comes back from ``load`` as a placeholder whose status says why
(``running | missing | corrupt``), so a table marks it instead of dropping it.

Schema versions: 2 added the ``oom`` status and ``slurm_job``; a version-1 record reads as is.
``engine`` (``{"requested", "used", "reason"}``: whether the seeds ran seed-batched or in a
loop) is an optional field of version 2: records without it read as before.
A record of another version (older than 1, or newer than this gdepth) is not trusted: it reads
as ``corrupt`` with the reason, and the cell runs again on resume.

A cell split into seed jobs (``seeds_per_job``, :mod:`gdepth.sweep.parts`) has one record per part,
``records/<key>.seeds-<lo>-<hi>.json``, with ``seed_range: [lo, hi]`` (optional field of
version 2); ``load`` merges the parts of a key into one cell record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from gdepth.sweep import layout

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
METRICS = ("train_acc", "val_acc", "test_acc")
# Statuses of a record a cell wrote, then those of a placeholder for a planned cell without one.
STATUSES = ("ok", "diverged", "oom", "failed", "corrupt", "running", "missing")
DONE = ("ok", "diverged")  # a resumed sweep does not run these again

# Keys that say where and how a cell runs, not what it computes: they are recorded but are
# not part of the cell's identity, so a re-run from another folder or device resumes. The
# engine (seeds batched or looped) computes the same results in distribution (other dropout
# masks), so a re-run with another engine is the same cell. A cell split into seed jobs
# (``seeds_per_job``, each job's ``seed_range``: gdepth.sweep.parts) is the same cell too.
NOT_IDENTITY = ("name", "out_dir", "data", "device", "progress", "threads", "engine",
                "checkpoint_every", "seeds_per_job", "seed_range", "activation_checkpointing",
                "adjacency", "seeds_per_batch", "progress_log_s", "tracking")

log = logging.getLogger(__name__)


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines a cell's results.

    A preset's ``train.per_model`` table (every model's and dataset's row, ``configs/train/
    bot2021.yaml``) is left out: the values of the row a cell uses are in its own keys
    (``train.lr``, ``model.hidden``, …), so editing another model's row re-keys no cell.
    """
    out = {k: v for k, v in config.items() if k not in NOT_IDENTITY}
    train = out.get("train")
    if isinstance(train, dict) and "per_model" in train:
        out["train"] = {k: v for k, v in train.items() if k != "per_model"}
    return out


# Options added after records were first written, at the value that computes exactly what the
# cell computed before the option existed. At that value an option is left out of the hash, so
# adding an option (a trick, a diagnostics group) does not orphan the records already computed:
# their sweeps still resume. Never change one of these values; add new options here with theirs.
NEUTRAL: dict[str, Any] = {
    "dataset.val_size": None, "dataset.test_size": None, "dataset.train_frac": 0.6,
    "dataset.val_frac": 0.2, "dataset.num_splits": None,
    "model.skip": "none", "model.skip_alpha": 0.1, "model.identity_mapping": False,
    "model.lamda": 0.5,  # also gcnii's default: leaving it out changes no key's meaning
    "model.embedding_dropout": 0.6,
    "train.weight_decay_first_only": False, "train.stopping": "patience",
    "train.label_smoothing": 0.0, "train.l1_weight": 0.0, "train.grad_clip": "none",
    "train.grad_clip_window": 50, "train.grad_clip_norm": 1.0, "train.dropedge": 0.0,
    "train.dropnode": 0.0, "train.shared_graph_dropout": False,
    "train.dataset_overrides": {}, "train.model_overrides": {},
    "train.batch_size": None, "train.accum_grad": 1, "train.passes_per_epoch": 1,
    "train.max_passes": None, "train.min_delta": 0.0, "train.stop_at": None,
    "train.lr_schedule": "none", "train.lr_factor": 0.5, "train.lr_patience": 10,
    "train.tree_batches": {},
    "train.weight_decay_groups": {}, "train.per_model": {}, "model.shared_dropout": False,
    "diagnostics": {"name": "none", "max_nodes": 1024, "measures": None, "hops": 8,
                    "samples": 50},
    "search": {"name": "none"},  # no per-cell search (gdepth/search/): trials and finals too
    "model.bias": True,  # sgc's bias (configs/model/sgc.yaml), on before the option existed
    "model.fully_adjacent_last": False,  # gcn, gcn_res, gin (bottleneck's: NEUTRAL_EXCEPT)
}
# The models whose keys held an option of NEUTRAL at every value before it became neutral:
# for them it stays in the key (bottleneck had fully_adjacent_last before every model got it).
NEUTRAL_EXCEPT: dict[str, tuple[str, ...]] = {"model.fully_adjacent_last": ("bottleneck",)}


def _without_neutral(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    model = config.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    for dotted, neutral in NEUTRAL.items():
        if name in NEUTRAL_EXCEPT.get(dotted, ()):
            continue
        head, _, leaf = dotted.rpartition(".")
        parent = out.get(head) if head else out
        if not isinstance(parent, dict) or leaf not in parent or parent[leaf] != neutral:
            continue
        if head:
            out[head] = parent = dict(parent) if parent is config.get(head) else parent
        del parent[leaf]
    return out


def cell_key(config: dict[str, Any]) -> str:
    """A stable 16-hex-digit hash of the cell's identity (options at their :data:`NEUTRAL`
    value left out)."""
    text = json.dumps(_without_neutral(identity(config)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slurm_job_id() -> str | None:
    """``<array job>_<task>`` (or the plain job id) inside a Slurm job, else None."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    return env.get("SLURM_JOB_ID")


def record_path(base_dir: str | Path, key: str) -> Path:
    return layout.record_path(base_dir, key)


class RecordWriteError(OSError):
    """A record (or marker, or plan) could not be written: one line with the path and why."""


def _create_temp(folder: Path, stem: str) -> tuple[int, str]:
    """A new, empty temp file in ``folder``: its descriptor and path.

    Created with mode 0666 less the umask, as any other file (``tempfile.mkstemp`` makes 0600
    files, which the group cannot read on a shared cluster).
    """
    for _ in range(100):
        tmp = str(folder / f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name in {folder}")


def write(path: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically: a temp file in the same folder, then rename.

    Readers see the old file or the new one, never a part. The file's mode honours the umask.
    On failure (full disk, unwritable folder) the temp file is removed and ``RecordWriteError``
    names the file and the reason.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path.parent, path.stem)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, default=str, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise RecordWriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def inspect(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)``, or ``(None, why)`` for a file that is not a usable record.

    ``why`` is None when the file does not exist; otherwise one line naming the file and the
    fault (truncated JSON, not a gdepth record, a schema this version cannot read).
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as err:
        return None, f"unreadable record {path.name}: {type(err).__name__}: {err}"
    if not isinstance(record, dict) or "key" not in record or "status" not in record:
        return None, f"{path.name} is not a gdepth record (no key/status)"
    schema = record.get("schema")
    if schema not in READABLE_SCHEMAS:
        newer = isinstance(schema, int) and schema > SCHEMA_VERSION
        hint = "upgrade gdepth to read it" if newer else "the cell runs again on resume"
        return None, (f"{path.name} has record schema {schema!r}, this gdepth reads "
                      f"{', '.join(map(str, READABLE_SCHEMAS))}: {hint}")
    if record["status"] not in STATUSES[:4]:
        return None, f"{path.name} has an unknown status {record['status']!r}"
    return record, None


def read(path: str | Path) -> dict[str, Any] | None:
    """The record at ``path``; None if absent or not a usable record (logged with the reason)."""
    record, problem = inspect(path)
    if problem:
        log.warning("ignoring %s", problem)
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
