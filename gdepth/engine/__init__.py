"""A cell's seeds trained by the one training loop, in batches (issues 7, 17).

A depth sweep is hundreds of small trainings of identical shape. Every model is seed-native
(:mod:`gdepth.nn.seeds`: parameters ``[S, ...]``, features ``[N, S, d]``), so the S seeds of a
cell train as one model: one sparse product per layer for all seeds, per-seed dropout masks,
norms, optimizer state, early stopping and selection (:func:`gdepth.engine.fit.fit_batched`).
Mathematically the same as S separate runs (``tests/test_engine.py`` checks it against S
one-seed models with the same weights and dropout masks). ``engine=batched`` cuts the seeds
into batches of at most ``seeds_per_batch`` (:mod:`gdepth.engine.memory`), ``engine=loop``
into batches of one: the same code either way.

Entry point for the cell: :func:`run_seeds`; :func:`unsupported` says in one line why a cell
trains its seeds one at a time whatever the engine (what truly cannot batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.engine import memory, slices
from gdepth.engine.fit import fit_batched
from gdepth.options import option
from gdepth.train import SeedResult

ENGINES = ("auto", "batched", "loop")
# Why a batch holds one seed when the seeds' graphs differ (run_seeds)
OWN_INPUTS = ("the seeds' features or labels differ (one graph per seed: nothing to share "
              "in a batch)")

__all__ = ["ENGINES", "OWN_INPUTS", "batched_kernels", "fit_batched", "graph_dropout_mode",
           "graph_dropout_sampler", "run_seeds", "unsupported"]


def unsupported(cfg: Any) -> str | None:
    """Why the seeds of the cell ``cfg`` cannot share a batch (one line), or ``None``.

    Only the tree task: its loop (:mod:`gdepth.train_trees`) draws each seed's own order of
    mini-batches of trees, so there is no common step to batch. Every model and norm is
    seed-native (or runs per seed inside one model, :class:`gdepth.nn.seeds.SeedStack`), and
    DropEdge / DropNode batch with ``train.shared_graph_dropout`` (else batches of one).
    """
    if str(option(option(cfg, "dataset"), "name", "")) == "tree_match":
        return ("dataset tree_match trains each seed on its own mini-batches of trees "
                "(gdepth/train_trees.py)")
    return None


def batched_kernels(cfg: Any) -> bool:
    """Whether a batch of the cell's seeds shares its kernels (one product per layer for all
    seeds, cost per seed well below a batch of one's): the seeds can share a batch, the model
    is written seed-native (not one module per seed, :func:`gdepth.models.per_seed`: a
    :class:`gdepth.nn.seeds.SeedStack` runs its seeds one after another inside the batch) and
    no per-seed DropEdge / DropNode cuts the batches to one seed."""
    from gdepth import models

    name = str(option(option(cfg, "model"), "name", ""))
    return (unsupported(cfg) is None and name in models.MODELS
            and models.per_seed(name) is None and graph_dropout_mode(cfg) != "per seed")


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
    on_split: Callable[[int, str | None], None] | None = None,
    on_batch: Callable[[list[SeedResult], nn.Module, list[Any]], None] | None = None,
    on_start: Callable[[nn.Module, list[int], list[Any]], None] | None = None,
    checkpoints: Any = None,
    keep_states: bool = False,
) -> list[SeedResult]:
    """Train the seeds of the cell ``cfg`` in batches; one :class:`SeedResult` per seed.

    Args:
        cfg: the cell's config (``model``, ``norm``, ``train``, ``depth``, ``seeds``,
            ``activation_checkpointing``).
        graph_for_seed: seed → its prepared graph on ``device`` (``gdepth.cell.prepare``):
            the split may differ per seed; seeds share a batch when their features and labels
            are the same cached tensors.
        adj: the cached normalized adjacency on ``device``.
        device: where the models live.
        on_epoch: called once per seed-epoch (progress bar).
        on_model: called with a one-seed model of the cell (e.g. to count its parameters).
        max_seeds: at most this many seeds per batch (``engine=loop``: 1); ``None``:
            ``cfg.seeds_per_batch``, else as many as fit in the memory at hand
            (:func:`gdepth.engine.memory.seeds_per_batch`).
        seeds: the seed numbers to train (a seed job's part); ``None``: ``0..cfg.seeds-1``.
        adjacency: ``sparse`` or ``dense`` storage of ``adj`` (``adjacency_storage``).
        on_split: called with the seeds per batch chosen and why it is one where the cell
            forces that (``None`` otherwise), before the first batch.
        on_start: called with each batch's model (at its initial weights), seeds and graphs
            before it trains (a diagnostic of the initial weights).
        on_batch: called with each batch's results, trained model and kept states (per seed,
            ``keep_states``) as soon as it is trained (to keep them when a later batch is
            killed, and to measure each seed's model).
        checkpoints: a :class:`gdepth.sweep.checkpoint.CellCheckpoints`: each batch saves its
            training state there and resumes from it.
        keep_states: keep each seed's state at its selected epoch (handed to ``on_batch``).

    Each batch's model is built right before it trains, with
    :func:`gdepth.models.build_seeded`: seed s's initial weights are those drawn after
    ``torch.manual_seed(s)``, whatever batch it is in, and the dropout masks of a batch of one
    come from the generator as that seed's initialization left it (as the per-seed loop drew
    them before issue 17).
    """
    from gdepth import models

    seeds = list(range(int(cfg.seeds))) if seeds is None else list(seeds)
    if not seeds:
        return []
    graphs = [graph_for_seed(s) for s in seeds]
    first = graphs[0]

    def build(batch: list[int]) -> nn.Module:
        return models.build_seeded(cfg.model, cfg.norm, int(cfg.depth), first.num_features,
                                   first.num_classes, seeds=batch).to(device)

    probe = build(seeds[:1])
    if on_model is not None:
        on_model(probe)
    reason = None
    if any(g.x is not first.x or g.y is not first.y for g in graphs):
        step, reason = 1, OWN_INPUTS
    elif graph_dropout_mode(cfg) == "per seed":
        step = 1  # each seed its own DropEdge / DropNode graphs
    else:
        step = max_seeds or memory.seeds_per_batch(
            cfg, len(seeds), first.num_nodes, slices.parameters_per_seed(probe), device)
    del probe
    if on_split is not None:
        on_split(step, reason)
    results: list[SeedResult] = []
    for lo in range(0, len(seeds), step):
        batch, batch_graphs = seeds[lo:lo + step], graphs[lo:lo + step]
        model = build(batch)  # the generator now: as the last seed's initialization left it
        if option(cfg, "activation_checkpointing", False):
            slices.checkpoint_layers(model)
        if on_start is not None:
            on_start(model, batch, batch_graphs)
        kept: list[Any] | None = [] if keep_states else None
        ckpt = checkpoints.batch(batch) if checkpoints is not None else None
        trained = fit_batched(model, batch_graphs, adj, cfg.train, batch, on_epoch, adjacency,
                              train_adj=graph_dropout_sampler(cfg, batch_graphs[0]),
                              keep_states=kept, checkpoint=ckpt)
        if on_batch is not None:
            on_batch(trained, model, kept if kept is not None else [None] * len(batch))
        if ckpt is not None:
            ckpt.remove()
        results += trained
    return results
