"""One cell of a sweep: (dataset, model, norm, depth, train, …) × its seeds → one record.

``run_cell(cfg, base_dir)`` is what every Hydra job calls. It knows nothing about Hydra: it
takes the composed config and the folder to write ``records/<key>.json`` into. A cell whose
record already exists with status ``ok`` is skipped (resume). Any exception becomes a
``failed`` record with the error text, so the sweep goes on and the table shows the cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import platform
import resource
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures

from gdepth import (
    checkpoint,
    data,
    engine,
    models,
    parts,
    plan,
    progress,
    protocol,
    records,
    train,
    train_progress,
    train_trees,
)
from gdepth.diagnostics import run as diagnostics
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import adjacency_storage
from gdepth.options import unknown

log = logging.getLogger("gdepth")

# Per-process cache of what is fixed per dataset: the normalized adjacency and the features
# (sparse where they are sparse), reused by every seed, layer and epoch of every cell.
_PREPARED: dict[str, tuple[torch.Tensor, torch.Tensor, str]] = {}
# The labels on the device, per the same key: (the loaded graph's y, its copy on the device).
# Every seed then gets the same tensor, as the seed-batched engine requires (gdepth.engine).
_LABELS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
# Why the loop runs a cell that gdepth.engine.unsupported accepts but run_seeds declined.
DECLINED = ("gdepth.engine.run_seeds declined the cell (features or labels differ per seed, "
            "or a layer is not batchable)")
# Features at most this dense (bag-of-words: Cora 1.3 %, Coauthor CS 0.9 %) are kept as a
# sparse CSR matrix: the first layer multiplies it sparsely and dropout touches only nnz values.
SPARSE_DENSITY = 0.1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but torch sees no CUDA device; "
                           "use device=auto or device=cpu")
    return torch.device(name)


def describe(config: dict[str, Any]) -> str:
    """A short human label of a cell, e.g. ``csbm gcn_res·nodenorm L=8``."""
    return (f"{config['dataset']['name']} {config['model']['name']}·{config['norm']['name']} "
            f"L={config['depth']}")


def _versions() -> dict[str, str]:
    import hydra
    import omegaconf
    import torch_geometric

    return {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "hydra": hydra.__version__, "omegaconf": omegaconf.__version__,
            "python": platform.python_version()}


def prepare(graph: data.Graph, dataset_cfg: dict[str, Any], device: torch.device
             ) -> tuple[data.Graph, torch.Tensor, str]:
    """The graph on ``device`` with cached features, and its cached normalized adjacency.

    ``dataset.normalize_features`` row-normalizes the features (PyG's ``NormalizeFeatures``),
    ``dataset.adjacency`` / ``dataset.self_loops`` choose the adjacency's normalization.
    """
    key = f"{sorted(dataset_cfg.items())}|{device}"
    if key not in _PREPARED:
        x = graph.x
        if dataset_cfg.get("normalize_features"):
            x = NormalizeFeatures()(Data(x=x)).x
        density = float(torch.count_nonzero(x)) / max(x.numel(), 1)
        x = x.to(device)
        kind = f"dense (density {density:.2%})"
        if density <= SPARSE_DENSITY:
            with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
                warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
                x, kind = x.to_sparse_csr(), f"sparse_csr (density {density:.2%})"
        adj = normalized_adjacency(graph.edge_index, graph.num_nodes,
                                   self_loops=bool(dataset_cfg.get("self_loops", True)),
                                   normalization=str(dataset_cfg.get("adjacency", "sym")))
        adj = adj.to(device)
        _PREPARED[key] = (x, adj, kind)
    x, adj, kind = _PREPARED[key]
    source, y = _LABELS.get(key, (None, None))
    if source is not graph.y:
        y = graph.y.to(device)
        _LABELS[key] = (graph.y, y)
    masks = ("edge_index", "train_mask", "val_mask", "test_mask")
    moved = dataclasses.replace(graph, x=x, y=y,
                                **{f: getattr(graph, f).to(device) for f in masks})
    return moved, adj, kind


def loop_reason(cfg: DictConfig) -> str | None:
    """Why the cell ``cfg`` must run its seeds one by one (one line), or None if it may batch."""
    kind = diagnostics.check(cfg.get("diagnostics"))
    if kind != "none":
        return f"diagnostics={kind} measures each seed's own model"
    if cfg.dataset.name == "tree_match":
        return "dataset tree_match trains mini-batches of trees (gdepth/train_trees.py)"
    if cfg.get("activation_checkpointing"):
        return "activation_checkpointing is implemented in the per-seed models (gcn, gcn_res)"
    return engine.unsupported(cfg)


def _batched(cfg: DictConfig, config: dict[str, Any], device: torch.device,
             record: dict[str, Any], advance: Any, seeds: list[int],
             ckpts: checkpoint.CellCheckpoints | None) -> list[train.SeedResult] | None:
    """The cell's ``seeds`` trained together by :func:`gdepth.engine.run_seeds` (None:
    declined); each finished batch is kept in ``ckpts`` (a killed cell keeps its finished
    batches, as the loop keeps its finished seeds)."""
    def graph_for_seed(seed: int) -> data.Graph:
        graph, _, record["features"] = prepare(data.load(cfg.dataset, cfg.data, seed),
                                               config["dataset"], device)
        return graph

    _, adj, _ = prepare(data.load(cfg.dataset, cfg.data, 0), config["dataset"], device)
    storage = adjacency_storage(str(cfg.get("adjacency") or "auto"), adj)
    record["engine"]["adjacency"] = storage
    mode = engine.graph_dropout_mode(cfg)
    if mode is not None:
        record["engine"]["graph_dropout"] = mode

    def keep(batch: list[train.SeedResult]) -> None:
        for result in batch if ckpts is not None else []:
            ckpts.finish(result.seed, {"values": result.as_dict(), "params": record["params"],
                                       "features": record["features"], "diagnostics": None})

    return engine.run_seeds(
        cfg, graph_for_seed, adj, device, on_epoch=lambda _: advance(),
        on_model=lambda m: record.__setitem__("params", models.count_parameters(m)),
        seeds=seeds, adjacency=storage,
        on_split=lambda k: record["engine"].__setitem__("seeds_per_batch", k), on_batch=keep)


def _cannot_batch(reason: str) -> ValueError:
    return ValueError(f"engine=batched cannot run this cell: {reason} (engines: auto = batched "
                      "where the cell allows, else loop | batched | loop)")


def _run_seeds(cfg: DictConfig, config: dict[str, Any], device: torch.device,
               record: dict[str, Any], ckpts: checkpoint.CellCheckpoints | None = None
               ) -> None:
    lo, hi = parts.bounds(cfg)  # seeds lo..hi-1: the whole cell, or its part (seeds_per_job)
    seeds = hi - lo
    requested = str(cfg.get("engine") or "auto")  # configs from before `engine` existed: auto
    if requested not in engine.ENGINES:
        raise unknown("engine", requested, engine.ENGINES)
    reason = "engine=loop" if requested == "loop" else loop_reason(cfg)
    record["engine"] = {"requested": requested, "used": None, "reason": reason}
    if requested == "batched" and reason is not None:
        raise _cannot_batch(reason)
    with progress.epoch_bar(describe(config), seeds * int(cfg.train.epochs),
                            bool(cfg.progress)) as advance:
        if reason is None:
            kept = {s: d for s in range(lo, hi)
                    if (d := ckpts.finished(s) if ckpts is not None else None) is not None}
            pending = [s for s in range(lo, hi) if s not in kept]
            results = (_batched(cfg, config, device, record, advance, pending, ckpts)
                       if pending else [])
            if results is not None:
                record["engine"]["used"] = "batched"
                values = {r.seed: r.as_dict() for r in results}
                for seed, done in kept.items():  # finished before this cell was killed
                    values[seed] = done["values"]
                    for k in ("params", "features"):
                        record[k] = record.get(k) or done.get(k)
                    log.info("seed %d: kept its result from before the restart", seed)
                record["seeds"] += [values[s] for s in range(lo, hi)]
                return
            for key in ("adjacency", "seeds_per_batch", "graph_dropout"):
                record["engine"].pop(key, None)
            reason = record["engine"]["reason"] = DECLINED
            if requested == "batched":
                raise _cannot_batch(reason)
        record["engine"]["used"] = "loop"
        for seed in range(lo, hi):
            done = ckpts.finished(seed) if ckpts is not None else None
            if done is not None:  # finished before this cell was killed / requeued
                record["seeds"].append(done["values"])
                record.update({k: done[k] for k in ("params", "features", "diagnostics")
                               if done.get(k) is not None})
                log.info("seed %d: kept its result from before the restart", seed)
                continue
            graph, adj, record["features"] = prepare(data.load(cfg.dataset, cfg.data, seed),
                                                      config["dataset"], device)
            torch.manual_seed(seed)
            model = models.build(cfg.model, cfg.norm, int(cfg.depth), graph.num_features,
                                 graph.num_classes).to(device)
            record["params"] = models.count_parameters(model)
            if cfg.get("activation_checkpointing"):
                models.checkpoint_layers(model)
            train_adj = engine.graph_dropout_sampler(cfg, graph)  # the batched engine's too
            kind = diagnostics.check(cfg.get("diagnostics"))
            init = (diagnostics.smoothing(model, graph, adj, cfg.dataset, cfg.diagnostics)
                    if kind == "smoothing" else None)
            kept: dict[str, Any] | None = {} if kind != "none" else None
            if cfg.dataset.name == "tree_match":  # mini-batches of trees (gdepth/train_trees.py)
                batches = train_trees.batching(cfg.train, cfg.model.get("conv"),
                                               int(cfg.dataset.depth_r))
                record["tree_batching"] = dataclasses.asdict(batches)
                result = train_trees.fit_trees(model, graph, adj, cfg.train, seed, batches,
                                               on_epoch=lambda _: advance(), keep_state=kept)
            else:
                result = train.fit(model, graph, adj, cfg.train, seed,
                                   on_epoch=lambda _: advance(), train_adj=train_adj,
                                   keep_state=kept,
                                   checkpoint=ckpts.seed(seed) if ckpts is not None else None)
            values = result.as_dict()
            if kind != "none":
                _diagnose(kind, cfg, model, graph, adj, seed, kept, init, values, record)
            record["seeds"].append(values)
            if ckpts is not None:
                ckpts.finish(seed, {"values": values, "params": record["params"],
                                    "features": record["features"],
                                    "diagnostics": record.get("diagnostics")})


def _diagnose(kind: str, cfg: DictConfig, model: torch.nn.Module, graph: data.Graph,
              adj: torch.Tensor, seed: int, kept: dict[str, Any] | None, init: Any,
              values: dict[str, Any], record: dict[str, Any]) -> None:
    """Diagnostics of the model at its selected epoch, into the seed's values and the record."""
    if kept and "state" in kept:
        model.load_state_dict(kept["state"])
    found = record.setdefault("diagnostics", {"kind": kind, "seeds": []})
    if kind == "smoothing":
        selected = diagnostics.smoothing(model, graph, adj, cfg.dataset, cfg.diagnostics)
        if selected is None:
            found["note"] = (f"model {cfg.model.name} does not hand its layer outputs to "
                             "gdepth.models.common.tap; no smoothing profile")
            return
        found["seeds"].append({"seed": seed, "init": init, "selected": selected})
        values.update(diagnostics.last_hidden(selected))
    else:
        measured = diagnostics.influence(model, graph, cfg.dataset, cfg.diagnostics, seed)
        found["seeds"].append({"seed": seed, **measured})
        values["receptive_field"] = measured["receptive_field"]


def run_cell(cfg: DictConfig, base_dir: str | Path, overrides: list[str] | None = None
             ) -> dict[str, Any]:
    """Run (or resume) the cell ``cfg`` and write its record below ``base_dir``."""
    key, _ = plan.cell_identity(cfg, overrides)  # the key the sweeper planned, the same way
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    explicit = protocol.explicit_keys(overrides or [])  # command-line values beat the preset
    config, applied = protocol.apply(config, explicit)  # the train preset's dataset protocol
    if applied:
        log.info("train=%s sets %s", config["train"]["name"], applied)
    cfg = OmegaConf.create(config)  # plain values from here on (enums as their names)
    part = parts.seed_range(config)  # a part of a cell split into seed jobs, or None
    unit = parts.unit(key, part)  # its record's name: the key, or <key>.seeds-<lo>-<hi>
    path = records.record_path(base_dir, unit)
    old = parts.done_record(base_dir, key, part)  # its own record, or what covers its seeds
    if old is not None and old["status"] == "ok":
        log.info("%s skip %s: record is ok (%s)", progress.sweep_line(base_dir),
                 describe(config), path.name)
        return old
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if "progress_log_s" in cfg:  # progress lines in the job log off a terminal
        train_progress.configure(cfg.progress_log_s)
    record: dict[str, Any] = {
        "schema": records.SCHEMA_VERSION, "key": key, "status": "failed", "error": None,
        "config": config, "overrides": list(overrides or []),
        "convention": None, "seeds": [], "summary": {}, "params": None, "features": None,
        "engine": None,  # {"requested", "used": batched | loop, "reason": why the loop,
                         #  "adjacency": sparse | dense (batched only)}
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "device": None, "threads": torch.get_num_threads(), "host": platform.node(),
        "slurm_job": records.slurm_job_id(),
        "versions": _versions(),
    }
    if part is not None:
        record["seed_range"] = list(part)
    start = time.perf_counter()
    try:
        device = resolve_device(str(cfg.device))
        record["device"] = str(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        record["convention"] = models.convention(str(cfg.model.name))
        ckpts = checkpoint.CellCheckpoints(base_dir, key, cfg.get("checkpoint_every"))
        _run_seeds(cfg, config, device, record, ckpts)
        diverged = any(s["status"] == "diverged" for s in record["seeds"])
        record["status"] = "diverged" if diverged else "ok"
    except torch.cuda.OutOfMemoryError as err:  # too big for this GPU: say so, go on
        record["status"], record["error"] = "oom", f"OutOfMemoryError: {str(err)[:300]}"
        record["traceback"] = traceback.format_exc()
        torch.cuda.empty_cache()
    except Exception as err:  # a failed cell is a record too; the sweep goes on
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc()
    record["summary"] = records.summarize(record["seeds"])
    record["wall_s"] = time.perf_counter() - start
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if record["device"] and record["device"].startswith("cuda"):
        record["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    records.write(path, record)
    if record["status"] in ("ok", "diverged"):
        checkpoint.CellCheckpoints(base_dir, key, None).clear(s["seed"] for s in record["seeds"])
    log.info("%s %s", progress.sweep_line(base_dir), summary_line(record))
    return record


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
