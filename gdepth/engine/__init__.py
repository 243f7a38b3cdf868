"""A cell's seeds trained by the one training loop, in batches.

A depth sweep is hundreds of small trainings of identical shape. Every model is seed-native
(:mod:`gdepth.nn.seeds`: parameters ``[S, ...]``, features ``[N, S, d]``), so the S seeds of a
cell train as one model: one sparse product per layer for all seeds, per-seed dropout masks,
norms, optimizer state, early stopping and selection (:func:`gdepth.engine.fit.fit_batched`).
Mathematically the same as S separate runs (``tests/test_engine.py`` checks it against S
one-seed models with the same weights and dropout masks). ``engine=batched`` cuts the seeds
into batches of at most ``seeds_per_batch`` (:mod:`gdepth.engine.memory`), ``engine=loop``
into batches of one: the same code either way.

The cell's graph trainer (:mod:`gdepth.cell.trainers`) uses the steps: :func:`batch_size`
(how many seeds a batch holds, and why one where the cell forces that), :func:`build` (a
batch's model), :func:`train_batch`; :func:`run_seeds` chains them for scripts and benchmarks.
:func:`unsupported` says in one line why a cell trains its seeds one at a time whatever the
engine (what truly cannot batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gdepth import data
from gdepth.config import GdepthConfig
from gdepth.engine import memory, policy, slices
from gdepth.engine.fit import fit_batched
from gdepth.sweep.checkpoint import BatchCheckpoint
from gdepth.train import SeedResult

ENGINES = ("auto", "batched", "loop")
# Why a batch holds one seed when the seeds' graphs differ (batch_size)
OWN_INPUTS = ("the seeds' features or labels differ (one graph per seed: nothing to share "
              "in a batch)")
# Why a dataset's own training loop (its registry entry's ``trainer``) trains one seed at a time
ONE_SEED_LOOPS = {"trees": "trains each seed on its own mini-batches of trees "
                           "(gdepth/train_trees.py)"}

__all__ = ["ENGINES", "OWN_INPUTS", "batch_size", "batched_kernels", "build", "fit_batched",
           "graph_dropout_mode", "graph_dropout_sampler", "instances", "run_seeds",
           "train_batch", "unsupported"]


def unsupported(cfg: GdepthConfig) -> str | None:
    """Why the seeds of the cell ``cfg`` cannot share a batch (one line), or ``None``.

    Only a dataset whose task has its own loop (its registry entry's ``trainer``; the tree
    task, :mod:`gdepth.train_trees`, draws each seed's own order of mini-batches of trees, so
    there is no common step to batch). Every model and norm is seed-native (or runs per seed
    inside one model, :class:`gdepth.nn.seeds.SeedStack`), and DropEdge / DropNode batch with
    ``train.shared_graph_dropout`` (else batches of one).
    """
    why = ONE_SEED_LOOPS.get(data.spec(cfg.dataset.name).trainer)
    return None if why is None else f"dataset {cfg.dataset.name} {why}"


def batched_kernels(cfg: GdepthConfig) -> bool:
    """Whether a batch of the cell's seeds shares its kernels (one product per layer for all
    seeds, cost per seed well below a batch of one's): the seeds can share a batch, the model
    is written seed-native (not one module per seed, :func:`gdepth.models.per_seed`: a
    :class:`gdepth.nn.seeds.SeedStack` runs its seeds one after another inside the batch) and
    no per-seed DropEdge / DropNode cuts the batches to one seed."""
    from gdepth import models

    name = cfg.model.name
    return (unsupported(cfg) is None and name in models.MODELS
            and models.per_seed(name) is None and graph_dropout_mode(cfg) != "per seed")


def graph_dropout_mode(cfg: GdepthConfig) -> str | None:
    """``None`` without DropEdge / DropNode; else ``"shared"`` (``train.shared_graph_dropout``:
    one draw per epoch for all the seeds of a batch) or ``"per seed"`` (each seed its own
    draws, as the loop: the seeds train in batches of one)."""
    if not (cfg.train.dropedge or cfg.train.dropnode):
        return None
    return "shared" if cfg.train.shared_graph_dropout else "per seed"


def graph_dropout_sampler(cfg: GdepthConfig, graph: Any) -> Callable[[], Tensor] | None:
    """With a DropEdge / DropNode rate: the sampler of one dropped, normalized adjacency per
    epoch (the loop's :func:`gdepth.graph_dropout.sampler` on the same graph); else ``None``."""
    if graph_dropout_mode(cfg) is None:
        return None
    from gdepth import graph_dropout

    return graph_dropout.sampler(
        graph.edge_index, graph.num_nodes, dropedge=float(cfg.train.dropedge),
        dropnode=float(cfg.train.dropnode), self_loops=bool(cfg.dataset.self_loops),
        normalization=str(cfg.dataset.adjacency))


def build(cfg: GdepthConfig, graph: Any, seeds: Sequence[int], device: torch.device,
          checkpointed: bool = True) -> nn.Module:
    """The cell's seed-native model for ``seeds`` on ``device`` (:func:`gdepth.models.
    build_seeded`: seed s's initial weights are those drawn after ``torch.manual_seed(s)``,
    whatever batch it is in, and the generator is left as the last seed's initialization left
    it: a batch of one draws its dropout masks as the seed's own run), its layers checkpointed
    with ``activation_checkpointing`` (unless ``checkpointed`` is false: a probe); with
    ``model.fully_adjacent_last``, the graph's node → instance ids given to it
    (:func:`instances`)."""
    from gdepth import models

    model = models.build_seeded(cfg.model, cfg.norm, int(cfg.depth), graph.num_features,
                                graph.num_classes, seeds=list(seeds)).to(device)
    if cfg.model.fully_adjacent_last and hasattr(model, "set_instances"):
        models.set_instances(model, instances(cfg, graph))
    if checkpointed and cfg.activation_checkpointing:
        slices.checkpoint_layers(model)
    return model


def instances(cfg: GdepthConfig, graph: Any) -> Tensor:
    """The node → instance ids of ``graph`` for ``model.fully_adjacent_last=true``
    (:attr:`gdepth.data.Graph.instance`); a ValueError naming the datasets that have them
    where it has none."""
    if graph.instance is None:
        raise ValueError(f"model.fully_adjacent_last=true needs each node's graph (instance) "
                         f"id; dataset {cfg.dataset.name} has none; datasets with them: "
                         f"{', '.join(data.with_instances())}")
    return graph.instance


def batch_size(cfg: GdepthConfig, graphs: Sequence[Any], params_per_seed: int,
               device: torch.device, max_seeds: int | None = None,
               shared: int = 0) -> tuple[int, str | None]:
    """``(seeds per batch, why one where the cell forces that)`` for the seeds whose prepared
    graphs are ``graphs``: one when their features or labels are not the same tensors
    (:data:`OWN_INPUTS`) or each seed draws its own DropEdge / DropNode graphs (reason
    ``None``: the engine's choice); else ``max_seeds`` (``engine=loop``: 1), else
    ``cfg.seeds_per_batch``, else as many as fit in memory beside the ``shared`` bytes the
    model caches (:func:`gdepth.engine.memory.seeds_per_batch`), and with ``engine=auto`` at
    most the measured fastest batch of the model on the device for a graph of that size
    (:func:`gdepth.engine.policy.preferred_seeds`)."""
    first = graphs[0]
    if any(g.x is not first.x or g.y is not first.y for g in graphs):
        return 1, OWN_INPUTS
    if graph_dropout_mode(cfg) == "per seed":
        return 1, None
    if max_seeds:
        return max_seeds, None
    fit = memory.seeds_per_batch(cfg, len(graphs), first.num_nodes, params_per_seed, device,
                                 shared=shared)
    preferred = policy.preferred_seeds(cfg.model.name, device, first.num_nodes)
    if str(cfg.engine) == "auto" and cfg.seeds_per_batch is None and preferred is not None:
        return min(fit, preferred), None
    return fit, None


def train_batch(cfg: GdepthConfig, model: nn.Module, graphs: Sequence[Any], adj: Tensor,
                seeds: Sequence[int], adjacency: str = "sparse",
                on_epoch: Callable[[int], None] | None = None,
                keep_states: list[Any] | None = None,
                checkpoint: BatchCheckpoint | None = None,
                monitor: Callable[[int, dict[int, float]], None] | None = None
                ) -> list[SeedResult]:
    """One batch of the cell's seeds trained by :func:`fit_batched` (its DropEdge / DropNode
    draws from :func:`graph_dropout_sampler`); arguments as :func:`fit_batched`'s."""
    return fit_batched(model, graphs, adj, cfg.train, seeds, on_epoch, adjacency,
                       train_adj=graph_dropout_sampler(cfg, graphs[0]),
                       keep_states=keep_states, checkpoint=checkpoint, monitor=monitor)


def run_seeds(cfg: GdepthConfig, graph_for_seed: Callable[[int], Any], adj: Tensor,
              device: torch.device, max_seeds: int | None = None,
              seeds: Sequence[int] | None = None, adjacency: str = "sparse",
              on_epoch: Callable[[int], None] | None = None) -> list[SeedResult]:
    """Train the seeds of the cell ``cfg`` (``None``: ``0..cfg.seeds-1``) in batches of
    :func:`batch_size`; one :class:`SeedResult` per seed. ``graph_for_seed``: seed → its
    prepared graph on ``device`` (:func:`gdepth.cell.prepare`), ``adj`` the cached normalized
    adjacency stored as ``adjacency`` (``sparse`` or ``dense``)."""
    seeds = list(range(int(cfg.seeds))) if seeds is None else list(seeds)
    if not seeds:
        return []
    graphs = [graph_for_seed(s) for s in seeds]
    built = build(cfg, graphs[0], seeds[:1], device, False)
    probe = slices.parameters_per_seed(built)
    step, _ = batch_size(cfg, graphs, probe, device, max_seeds,
                         shared=memory.shared_bytes(built, graphs[0].x, adj))
    results: list[SeedResult] = []
    for lo in range(0, len(seeds), step):
        batch = seeds[lo:lo + step]
        model = build(cfg, graphs[0], batch, device)
        results += train_batch(cfg, model, graphs[lo:lo + step], adj, batch, adjacency,
                               on_epoch)
    return results
