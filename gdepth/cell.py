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

from gdepth import data, engine, models, protocol, train, train_progress, train_trees
from gdepth.diagnostics import run as diagnostics
from gdepth.engine import slices
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import adjacency_storage
from gdepth.options import unknown
from gdepth.sweep import checkpoint, parts, plan, progress, records

log = logging.getLogger("gdepth")

# Per-process cache of what is fixed per dataset: the normalized adjacency and the features
# (sparse where they are sparse), reused by every seed, layer and epoch of every cell.
_PREPARED: dict[str, tuple[torch.Tensor, torch.Tensor, str]] = {}
# The labels on the device, per the same key: (the loaded graph's y, its copy on the device).
# Every seed then gets the same tensor, as the seed-batched engine requires (gdepth.engine).
_LABELS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
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
    """Why the cell ``cfg`` must train its seeds one at a time under any engine (one line), or
    None: only what truly cannot batch (:func:`gdepth.engine.unsupported`: the tree task)."""
    return engine.unsupported(cfg)


def _cannot_batch(reason: str) -> ValueError:
    return ValueError(f"engine=batched cannot run this cell: {reason} (engines: auto = batched "
                      "where the cell allows, else loop | batched | loop)")


def _batched(cfg: DictConfig, config: dict[str, Any], device: torch.device,
             record: dict[str, Any], advance: Any, seeds: list[int], kind: str,
             ckpts: checkpoint.CellCheckpoints | None) -> dict[int, dict[str, Any]]:
    """The cell's ``seeds`` trained by :func:`gdepth.engine.run_seeds` (batches of one under
    ``engine=loop``): ``{seed: {"values", "diagnostics"}}``. Each finished batch is kept in
    ``ckpts`` (a killed cell keeps its finished seeds) and every batch checkpoints there."""
    graphs: dict[int, data.Graph] = {}

    def graph_for_seed(seed: int) -> data.Graph:
        graph, _, record["features"] = prepare(data.load(cfg.dataset, cfg.data, seed),
                                               config["dataset"], device)
        graphs[seed] = graph
        return graph

    _, adj, _ = prepare(data.load(cfg.dataset, cfg.data, seeds[0]), config["dataset"], device)
    storage = adjacency_storage(str(cfg.get("adjacency") or "auto"), adj)
    info = record["engine"]
    info["adjacency"] = storage
    mode = engine.graph_dropout_mode(cfg)
    if mode is not None:
        info["graph_dropout"] = mode

    def split(per_batch: int, why: str | None) -> None:
        info["seeds_per_batch"] = per_batch
        if why is not None and info["reason"] is None:
            if info["requested"] == "batched":
                raise _cannot_batch(why)
            info["reason"] = why
        info["used"] = "batched" if info["reason"] is None else "loop"

    inits: dict[int, Any] = {}

    def start(model: torch.nn.Module, batch: list[int], _graphs: list[Any]) -> None:
        if kind == "smoothing":  # each seed's profile at its initial weights
            for i, seed in enumerate(batch):
                inits[seed] = diagnostics.smoothing(slices.one_seed(model, i), graphs[seed],
                                                    adj, cfg.dataset, cfg.diagnostics)

    out: dict[int, dict[str, Any]] = {}

    def finish(results: list[train.SeedResult], model: torch.nn.Module, kept: list[Any]
               ) -> None:
        for i, result in enumerate(results):
            values, diag = result.as_dict(), None
            if kind != "none":  # the seed's own model at its selected epoch
                diag = _diagnose(kind, cfg, slices.one_seed(model, i, kept[i]),
                                 graphs[result.seed], adj, result.seed, inits.pop(result.seed,
                                                                                 None), values)
            out[result.seed] = {"values": values, "diagnostics": diag}
            if ckpts is not None:
                ckpts.finish(result.seed, {"values": values, "params": record["params"],
                                           "features": record["features"], "diagnostics": diag})

    engine.run_seeds(
        cfg, graph_for_seed, adj, device, on_epoch=lambda _: advance(),
        on_model=lambda m: record.__setitem__("params", slices.parameters_per_seed(m)),
        max_seeds=1 if info["requested"] == "loop" else None, seeds=seeds,
        adjacency=storage, on_split=split, on_start=start, on_batch=finish,
        checkpoints=ckpts, keep_states=kind != "none")
    return out


def _trees(cfg: DictConfig, config: dict[str, Any], device: torch.device,
           record: dict[str, Any], advance: Any, seeds: list[int], kind: str,
           ckpts: checkpoint.CellCheckpoints | None) -> dict[int, dict[str, Any]]:
    """The tree task's seeds, one after another (:func:`gdepth.train_trees.fit_trees`)."""
    out: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        graph, adj, record["features"] = prepare(data.load(cfg.dataset, cfg.data, seed),
                                                  config["dataset"], device)
        seeded = models.build_seeded(cfg.model, cfg.norm, int(cfg.depth), graph.num_features,
                                     graph.num_classes, seeds=[seed]).to(device)
        record["params"] = slices.parameters_per_seed(seeded)
        if cfg.get("activation_checkpointing"):
            slices.checkpoint_layers(seeded)
        model = slices.one_seed(seeded, 0)
        del seeded
        init = (diagnostics.smoothing(model, graph, adj, cfg.dataset, cfg.diagnostics)
                if kind == "smoothing" else None)
        kept: dict[str, Any] | None = {} if kind != "none" else None
        batches = train_trees.batching(cfg.train, cfg.model.get("conv"),
                                       int(cfg.dataset.depth_r))
        record["tree_batching"] = dataclasses.asdict(batches)
        result = train_trees.fit_trees(model, graph, adj, cfg.train, seed, batches,
                                       on_epoch=lambda _: advance(), keep_state=kept)
        values, diag = result.as_dict(), None
        if kind != "none":
            if kept and "state" in kept:
                model.load_state_dict(kept["state"])
            diag = _diagnose(kind, cfg, model, graph, adj, seed, init, values)
        out[seed] = {"values": values, "diagnostics": diag}
        if ckpts is not None:
            ckpts.finish(seed, {"values": values, "params": record["params"],
                                "features": record["features"], "diagnostics": diag})
    return out


def _run_seeds(cfg: DictConfig, config: dict[str, Any], device: torch.device,
               record: dict[str, Any], ckpts: checkpoint.CellCheckpoints | None = None
               ) -> None:
    lo, hi = parts.bounds(cfg)  # seeds lo..hi-1: the whole cell, or its part (seeds_per_job)
    requested = str(cfg.get("engine") or "auto")  # configs from before `engine` existed: auto
    if requested not in engine.ENGINES:
        raise unknown("engine", requested, engine.ENGINES)
    reason = "engine=loop" if requested == "loop" else loop_reason(cfg)
    record["engine"] = {"requested": requested, "used": None, "reason": reason}
    if requested == "batched" and reason is not None:
        raise _cannot_batch(reason)
    kind = diagnostics.check(cfg.get("diagnostics"))
    with progress.epoch_bar(describe(config), (hi - lo) * int(cfg.train.epochs),
                            bool(cfg.progress)) as advance:
        done = {s: d for s in range(lo, hi)
                if (d := ckpts.finished(s) if ckpts is not None else None) is not None}
        pending = [s for s in range(lo, hi) if s not in done]
        trees = cfg.dataset.name == "tree_match"
        run = _trees if trees else _batched
        fresh = run(cfg, config, device, record, advance, pending, kind, ckpts) if pending else {}
        if record["engine"]["used"] is None:
            record["engine"]["used"] = "loop" if record["engine"]["reason"] else "batched"
        for seed in range(lo, hi):
            entry = fresh.get(seed)
            if entry is None:  # finished before this cell was killed / requeued
                entry = done[seed]
                for k in ("params", "features"):
                    record[k] = record.get(k) or entry.get(k)
                log.info("seed %d: kept its result from before the restart", seed)
            record["seeds"].append(entry["values"])
            if kind != "none":
                _merge_diagnostics(record, kind, entry.get("diagnostics"))


def _merge_diagnostics(record: dict[str, Any], kind: str, diag: dict[str, Any] | None) -> None:
    """Add one seed's diagnostics (:func:`_diagnose`) to the record's."""
    found = record.setdefault("diagnostics", {"kind": kind, "seeds": []})
    if diag:
        found["seeds"] += diag.get("seeds", [])
        if "note" in diag:
            found["note"] = diag["note"]


def _diagnose(kind: str, cfg: DictConfig, model: torch.nn.Module, graph: data.Graph,
              adj: torch.Tensor, seed: int, init: Any, values: dict[str, Any]
              ) -> dict[str, Any]:
    """Diagnostics of one seed's one-seed ``model`` (at its selected epoch): its entry of the
    record's ``diagnostics`` (``{"kind", "seeds": [entry]}``, or a ``note``); per-seed
    metrics go into ``values``."""
    if kind == "smoothing":
        selected = diagnostics.smoothing(model, graph, adj, cfg.dataset, cfg.diagnostics)
        if selected is None:
            return {"kind": kind, "seeds": [],
                    "note": (f"model {cfg.model.name} does not hand its layer outputs to "
                             "gdepth.models.common.tap; no smoothing profile")}
        values.update(diagnostics.last_hidden(selected))
        return {"kind": kind, "seeds": [{"seed": seed, "init": init, "selected": selected}]}
    measured = diagnostics.influence(model, graph, cfg.dataset, cfg.diagnostics, seed)
    values["receptive_field"] = measured["receptive_field"]
    return {"kind": kind, "seeds": [{"seed": seed, **measured}]}


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
                         #  "adjacency": sparse | dense, "seeds_per_batch",
                         #  "graph_dropout": shared | per seed (with DropEdge / DropNode)}
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
