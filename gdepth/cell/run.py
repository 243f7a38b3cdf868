"""``run_cell``: one cell, one path — resume → typed config → graph → trainer → record.

1. the key the sweeper planned (:func:`gdepth.sweep.plan.cell_identity`) and the resolved
   config with the train preset's protocol (:mod:`gdepth.protocol`): what the record stores;
2. what is left to do (:func:`gdepth.cell.resume.find`): nothing (its record is ``ok``), or the
   seeds not kept from a killed run;
3. the config as the dataclasses of :mod:`gdepth.config`, once (:func:`gdepth.config.typed`);
4. the trainer of the dataset's task (:data:`gdepth.cell.trainers.TRAINERS`) trains the seeds;
5. the record (:class:`gdepth.cell.record.CellRecord`), written atomically. Any exception
   becomes a ``failed`` record (``oom`` for CUDA out of memory) with the error text, so the
   sweep goes on and the table shows the cell.
"""

from __future__ import annotations

import logging
import resource
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gdepth import config as schema
from gdepth import data, engine, models, protocol, train_progress
from gdepth.cell import graphs, resume, trainers
from gdepth.cell.record import (
    CellRecord,
    EngineInfo,
    describe,
    merged_diagnostics,
    now,
    portable,
    summary_line,
)
from gdepth.diagnostics import run as diagnostics
from gdepth.sweep import parts, plan, progress, records

log = logging.getLogger("gdepth")


def resolved(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """The cell's config as plain values (enums as their names), the train preset's protocol
    merged in (:func:`gdepth.protocol.apply`; command-line values beat the preset)."""
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(config, dict)
    config, applied = protocol.apply(config, protocol.explicit_keys(overrides or []))
    if applied:
        log.info("train=%s sets %s", config["train"]["name"], applied)
    return config


def run_cell(cfg: DictConfig | Mapping[str, Any], base_dir: str | Path,
             overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the cell ``cfg`` (a composed config) and write its record below
    ``base_dir``; the record, as written. ``overrides``: the job's command-line overrides."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    key, _ = plan.cell_identity(cfg, overrides)  # the key the sweeper planned, the same way
    config = resolved(cfg, overrides)
    part = parts.seed_range(config)  # a part of a cell split into seed jobs, or None
    lo, hi = parts.bounds(config)  # its seeds: the whole cell's, or the part's
    path = records.record_path(base_dir, parts.unit(key, part))
    state = resume.find(base_dir, key, part, range(lo, hi), config.get("checkpoint_every"))
    if state.done is not None:
        log.info("%s skip %s: record is ok (%s)", progress.sweep_line(base_dir),
                 describe(config), path.name)
        return state.done
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    if "progress_log_s" in config:  # progress lines in the job log off a terminal
        train_progress.configure(config["progress_log_s"])
    record = CellRecord(key=key, config=portable(config), overrides=list(overrides or []),
                        seed_range=list(part) if part is not None else None)
    start = time.perf_counter()
    try:
        typed = schema.typed(config)
        device = graphs.resolve_device(str(typed.device))
        record.device = str(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        record.convention = models.convention(typed.model.name)
        epochs = len(state.seeds) * int(typed.train.epochs)
        with progress.epoch_bar(describe(config), epochs, bool(typed.progress)) as advance:
            _train(typed, device, state, record, lambda _: advance())
        diverged = any(s["status"] == "diverged" for s in record.seeds)
        record.status = "diverged" if diverged else "ok"
    except torch.cuda.OutOfMemoryError as err:  # too big for this GPU: say so, go on
        record.status, record.error = "oom", f"OutOfMemoryError: {str(err)[:300]}"
        record.traceback = traceback.format_exc()
        torch.cuda.empty_cache()
    except Exception as err:  # a failed cell is a record too; the sweep goes on
        record.error = f"{type(err).__name__}: {err}"
        record.traceback = traceback.format_exc()
    record.summary = records.summarize(record.seeds)
    record.wall_s = time.perf_counter() - start
    record.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if record.device and record.device.startswith("cuda"):
        record.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    record.finished_at = now()
    out = record.to_json()
    records.write(path, out)
    if record.status in records.DONE:
        resume.clear(base_dir, key, (s["seed"] for s in record.seeds))
    log.info("%s %s", progress.sweep_line(base_dir), summary_line(out))
    return out


def _train(cfg: schema.GdepthConfig, device: torch.device, state: resume.Resume,
           record: CellRecord, on_epoch: Callable[[int], None]) -> None:
    """Train the seeds ``state`` leaves, with the trainer of the dataset's task, and put every
    seed (trained now, or kept from a killed run) into ``record``."""
    requested = str(cfg.engine)
    reason = "engine=loop" if requested == "loop" else engine.unsupported(cfg)
    record.engine = EngineInfo(requested, None, reason)
    if requested == "batched" and reason is not None:
        raise trainers.cannot_batch(reason)
    kind = diagnostics.check(cfg.diagnostics)
    outcomes = dict(state.finished)
    if state.pending:
        setup = trainers.Setup(cfg, device, state.pending, record.engine, state.checkpoints,
                               on_epoch)
        trainer = trainers.TRAINERS[data.spec(cfg.dataset.name).trainer](setup)
        record.engine, record.tree_batching = trainer.engine, trainer.tree_batching
        record.params, record.features = trainer.params, trainer.features
        for outcome in trainer.train():  # each seed kept as soon as it is trained
            if state.checkpoints is not None:
                state.checkpoints.finish(outcome.seed, outcome.to_json())
            outcomes[outcome.seed] = outcome
    if record.engine.used is None:
        record.engine.used = "loop" if record.engine.reason else "batched"
    ordered = [outcomes[s] for s in state.seeds]
    record.params = record.params or next((o.params for o in ordered if o.params), None)
    record.features = record.features or next((o.features for o in ordered if o.features),
                                              None)
    record.seeds = [o.values for o in ordered]
    if kind != "none":
        record.diagnostics = merged_diagnostics(kind, [o.diagnostics for o in ordered])
