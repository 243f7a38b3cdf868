"""Seed-batched training: S seeds of one cell train as one stacked model (issue 7).

A depth sweep is hundreds of small trainings of identical shape. For the propagation family
the S seeds of a cell run together: weights stacked per seed, the seed dimension folded into
the feature dimension for each sparse propagation (one SpMM ``adj @ H[N, S·d]`` per layer for
all seeds), per-seed dropout masks, norms, optimizer state, early stopping and selection.
Mathematically the same as S separate ``train.fit`` runs (``tests/test_engine.py`` checks it
with the same weights and dropout masks); see :mod:`gdepth.engine.fit` for why.

Entry point for the cell: :func:`run_seeds` (``None`` when the cell is not batchable, the cell
then runs its seed loop); :func:`unsupported` says why in one line. Batched today: ``gcn``
(without skip / identity mapping), ``gcn_res``, ``appnp``, ``jknet`` (``cat`` / ``max``,
shared dropout mask or not), ``gcnii`` / GCNII* (with ``weight_decay_graph``, the official two
decays), ``sgc``, ``sign`` and DropEdge's ``resgcn`` / ``densegcn`` / ``incepgcn``, with
norms ``none``, ``nodenorm``, ``pairnorm``, ``batchnorm``, any dropout placement, Adam / AdamW /
SGD, every selection and stopping rule, label smoothing, L1 and adaptive clipping, per-group
weight decay for the models in :data:`GROUPED`. Not: DropEdge / DropNode (a different graph
per seed), other models and norms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.engine.fit import fit_batched
from gdepth.nn.kernels import NotBatchable
from gdepth.options import option
from gdepth.train import SeedResult

ENGINES = ("auto", "batched", "loop")
MODELS = ("gcn", "gcn_res", "appnp", "jknet", "gcnii", "sgc", "sign", "resgcn", "densegcn",
          "incepgcn")
NORMS = ("none", "nodenorm", "pairnorm", "batchnorm")
# Models whose stacked form declares parameter groups (train.weight_decay_groups): APPNP input /
# output, JKNet graph / output, GCNII graph / dense (models.common.optimizer_groups)
GROUPED = ("appnp", "jknet", "gcnii")

__all__ = ["ENGINES", "NotBatchable", "fit_batched", "run_seeds", "stack", "unsupported"]


def stack(loop_models: Sequence[nn.Module]) -> nn.Module:
    """The stacked model of S loop models of one architecture (:class:`NotBatchable` if none)."""
    from gdepth.nn.seeds import OneSeed, concat_seeds

    if isinstance(loop_models[0], OneSeed):  # seed-native models: their seeds side by side
        return concat_seeds([m.native for m in loop_models])
    raise NotBatchable(f"model {type(loop_models[0]).__name__} is not seed-batched")


def unsupported(cfg: Any) -> str | None:
    """Why the cell ``cfg`` cannot be seed-batched (one line), or ``None`` if it can."""
    model, norm, train = cfg.model, cfg.norm, cfg.train
    name = str(option(model, "name"))
    if name not in MODELS:
        return f"model {name} is not seed-batched (batched: {', '.join(MODELS)})"
    if str(option(model, "skip", "none")) != "none" or option(model, "identity_mapping", False):
        return "gcn skip connections / identity mapping are not seed-batched"
    if str(option(norm, "name", "none")) not in NORMS:
        return f"norm {option(norm, 'name')} is not seed-batched (batched: {', '.join(NORMS)})"
    asked = [*(option(train, "weight_decay_groups") or {})]
    if option(train, "weight_decay_graph") is not None:
        asked.append("graph")
    if asked and name not in GROUPED:
        return (f"per-group weight decay (train.weight_decay_groups / weight_decay_graph): "
                f"the batched {name} declares no parameter groups (batched with groups: "
                f"{', '.join(GROUPED)})")
    from gdepth import models

    missing = [g for g in asked if g not in models.groups(name)]
    if missing:  # the loop then fails the cell, naming the fix
        return (f"per-group weight decay: model {name} has no parameter group "
                f"'{missing[0]}' (its groups: {', '.join(models.groups(name))})")
    return None


def graph_dropout_mode(cfg: Any) -> str | None:
    """``None`` without DropEdge / DropNode; else ``"shared"`` (``train.shared_graph_dropout``:
    one draw per epoch for all the seeds of a batch) or ``"per seed"`` (each seed its own
    draws, as the loop: the seeds train in batches of one)."""
    train = option(cfg, "train")
    if not (float(option(train, "dropedge", 0.0)) or float(option(train, "dropnode", 0.0))):
        return None
    return "shared" if option(train, "shared_graph_dropout", False) else "per seed"


def graph_dropout_sampler(cfg: Any, graph: Any) -> Callable[[], Tensor] | None:
    """With a DropEdge / DropNode rate: the sampler of one dropped, normalized adjacency per
    epoch (the loop's :func:`gdepth.graph_dropout.sampler` on the same graph); else ``None``."""
    if graph_dropout_mode(cfg) is None:
        return None
    from gdepth import graph_dropout

    dataset = option(cfg, "dataset")
    return graph_dropout.sampler(
        graph.edge_index, graph.num_nodes,
        dropedge=float(option(cfg.train, "dropedge", 0.0)),
        dropnode=float(option(cfg.train, "dropnode", 0.0)),
        self_loops=bool(option(dataset, "self_loops", True)),
        normalization=str(option(dataset, "adjacency", "sym")))


def run_seeds(
    cfg: Any,
    graph_for_seed: Callable[[int], Any],
    adj: Tensor,
    device: torch.device,
    on_epoch: Callable[[int], None] | None = None,
    on_model: Callable[[nn.Module], None] | None = None,
    max_seeds: int | None = None,
    seeds: Sequence[int] | None = None,
    adjacency: str = "sparse",
    on_split: Callable[[int], None] | None = None,
    on_batch: Callable[[list[SeedResult]], None] | None = None,
) -> list[SeedResult] | None:
    """Train the seeds of the cell ``cfg`` batched, or return ``None``.

    Args:
        cfg: the cell's config (``model``, ``norm``, ``train``, ``depth``, ``seeds``).
        graph_for_seed: seed → its prepared graph on ``device`` (``gdepth.cell.prepare``):
            the split may differ per seed, the features must be the same cached tensor.
        adj: the cached normalized adjacency on ``device``.
        device: where the models live.
        on_epoch: called once per seed-epoch (progress bar).
        on_model: called with seed 0's loop model (e.g. to count its parameters).
        max_seeds: at most this many seeds per batch; ``None``: ``cfg.seeds_per_batch``, else
            as many as fit in the memory at hand (:func:`gdepth.engine.memory.seeds_per_batch`).
        seeds: the seed numbers to train (a seed job's part); ``None``: ``0..cfg.seeds-1``.
        adjacency: ``sparse`` or ``dense`` storage of ``adj`` (``adjacency_storage``).
        on_split: called with the seeds per batch chosen (to record it).
        on_batch: called with each batch's results as soon as it is trained (to keep them
            when a later batch is killed).

    Each seed's initial weights are those its loop run would have: the loop model is built
    after ``torch.manual_seed(seed)`` and its parameters are stacked. The results differ from
    the loop engine's only through the dropout masks drawn (same distribution) and float
    rounding.
    """
    if unsupported(cfg) is not None:
        return None
    from gdepth import models

    seeds = list(range(int(cfg.seeds))) if seeds is None else list(seeds)
    graphs = [graph_for_seed(s) for s in seeds]
    if any(g.x is not graphs[0].x or g.y is not graphs[0].y for g in graphs):
        return None  # features or labels differ per seed: nothing to share
    loop_models = []
    for seed in seeds:
        torch.manual_seed(seed)
        loop_models.append(models.build(cfg.model, cfg.norm, int(cfg.depth),
                                        graphs[0].num_features, graphs[0].num_classes))
    if on_model is not None:
        on_model(loop_models[0])
    from gdepth.engine import memory

    step = max_seeds or memory.seeds_per_batch(
        cfg, len(seeds), graphs[0].num_nodes, models.count_parameters(loop_models[0]), device)
    if graph_dropout_mode(cfg) == "per seed":
        step = 1  # each seed its own DropEdge / DropNode graphs
    if on_split is not None:
        on_split(step)
    results: list[SeedResult] = []
    try:
        for lo in range(0, len(seeds), step):
            stacked = stack(loop_models[lo:lo + step]).to(device)
            train_adj = graph_dropout_sampler(cfg, graphs[0])
            if train_adj is not None:
                torch.manual_seed(seeds[lo])  # the batch's draws, as its first seed's loop run
            batch = fit_batched(stacked, graphs[lo:lo + step], adj, cfg.train,
                                seeds[lo:lo + step], on_epoch, adjacency, train_adj=train_adj)
            if on_batch is not None:
                on_batch(batch)
            results += batch
    except NotBatchable:
        return None
    return results
