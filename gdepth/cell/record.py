"""A cell's record as a typed object: :class:`CellRecord`, written as the JSON it always was.

The fields and their order are those of ``records/<key>.json`` (:mod:`gdepth.sweep.records`
reads them): a field marked optional is left out of the JSON while it is ``None`` (a part's
``seed_range``, the tree task's ``tree_batching``, ``diagnostics``, a failure's ``traceback``,
a CUDA run's ``peak_cuda_mb``), every other field is always written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import torch

from gdepth.sweep import parts, records
from gdepth.sweep.plan import label as describe  # ``csbm gcn_res·nodenorm L=8``

OPTIONAL = {"optional": True}


def now() -> str:
    """The current UTC time, ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _optional(default: Any = None) -> Any:
    return field(default=default, metadata=OPTIONAL)


def _json(obj: Any) -> dict[str, Any]:
    """``obj``'s fields in order, the optional ones only when set."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if not (f.metadata.get("optional") and getattr(obj, f.name) is None)}


@dataclass
class EngineInfo:
    """How the cell's seeds were trained (the record's ``engine``)."""

    requested: str  # auto | batched | loop
    used: str | None = None  # batched | loop (None: the cell failed before it was decided)
    reason: str | None = None  # why the loop, in one line
    adjacency: str | None = _optional()  # sparse | dense storage of the adjacency
    graph_dropout: str | None = _optional()  # shared | per seed (with DropEdge / DropNode)
    seeds_per_batch: int | None = _optional()

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(kw_only=True)
class CellRecord:
    """One cell's record (:mod:`gdepth.sweep.records` describes every field), its fields in
    the order the JSON has them."""

    schema: int = records.SCHEMA_VERSION
    key: str
    status: str = "failed"  # ok | diverged | oom | failed
    error: str | None = None
    config: dict[str, Any]  # resolved, the train preset's protocol merged in
    overrides: list[str]
    convention: str | None = None  # the model's depth convention
    seeds: list[dict[str, Any]] = field(default_factory=list)  # per seed: its metrics
    summary: dict[str, Any] = field(default_factory=dict)
    params: int | None = None  # trainable parameters of one seed
    features: str | None = None  # dense | sparse_csr, with the density
    engine: EngineInfo | None = None
    started_at: str = field(default_factory=now)
    device: str | None = None
    threads: int = field(default_factory=torch.get_num_threads)
    host: str = field(default_factory=platform.node)
    slurm_job: str | None = field(default_factory=records.slurm_job_id)
    versions: dict[str, str] = field(default_factory=lambda: versions())
    seed_range: list[int] | None = _optional()  # a part of a cell split into seed jobs
    tree_batching: dict[str, Any] | None = _optional()  # the tree task's mini-batches
    diagnostics: dict[str, Any] | None = _optional()  # {"kind", "seeds": [...], "note"?}
    traceback: str | None = _optional()
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = _optional()
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = _json(self)
        if self.engine is not None:
            out["engine"] = self.engine.to_json()
        return out


def portable(config: dict[str, Any]) -> dict[str, Any]:
    """The config a record stores: the resolved one, less the machine's own dataset folders.

    ``data.root`` / ``data.mirror`` say where this machine caches and mirrors raw files
    (often from ``GDEPTH_DATA`` / ``GDEPTH_DATA_MIRROR``): not part of a cell's identity, not
    what was computed, and a local path a committed study must not carry. The record keeps
    the keys, as null; the job's own ``.hydra/config.yaml`` keeps the values."""
    data = config.get("data")
    if not isinstance(data, dict):
        return config
    return {**config, "data": {key: None for key in data}}


def versions() -> dict[str, str]:
    """The versions of the libraries a result depends on (read from the installed packages'
    metadata: no import of Hydra in the cell)."""
    import torch_geometric

    return {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "hydra": metadata.version("hydra-core"), "omegaconf": metadata.version("omegaconf"),
            "python": platform.python_version()}


def summary_line(record: dict[str, Any]) -> str:
    """``csbm gcn·none L=4: ok test 71.2 ± 1.3 (3 seeds, 4.1 s)``."""
    part = record.get("seed_range")  # a part of a cell split into seed jobs
    where = f" {parts.label(tuple(part))}" if part else ""
    head = f"{describe(record['config'])}{where}: {record['status']}"
    if record["status"] in ("failed", "oom"):
        return f"{head} ({record['error']})"
    test = record["summary"]["test_acc"]
    return (f"{head} test {100 * test['mean']:.1f} ± {100 * test['std']:.1f} "
            f"({test['n']} seeds, {record['wall_s']:.1f} s)")


@dataclass
class SeedOutcome:
    """One trained seed: its metrics (``values``, the record's ``seeds`` entry), its
    diagnostics entry, and the parameter count and features kind of its run. A finished seed of
    a killed cell is kept as :meth:`to_json` (:class:`gdepth.sweep.checkpoint.CellCheckpoints`)."""

    seed: int
    values: dict[str, Any]
    diagnostics: dict[str, Any] | None = None
    params: int | None = None
    features: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"values": self.values, "params": self.params, "features": self.features,
                "diagnostics": self.diagnostics}

    @classmethod
    def from_json(cls, seed: int, entry: dict[str, Any]) -> SeedOutcome:
        return cls(seed, entry["values"], entry.get("diagnostics"), entry.get("params"),
                   entry.get("features"))


def merged_diagnostics(kind: str, entries: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The record's ``diagnostics``: ``{"kind", "seeds": [every seed's entries], "note"?}``."""
    found: dict[str, Any] = {"kind": kind, "seeds": []}
    for entry in entries:
        if entry:
            found["seeds"] += entry.get("seeds", [])
            if "note" in entry:
                found["note"] = entry["note"]
    return found
