"""The training loops a cell can run, one per kind of task, picked from the dataset's registry
entry (:attr:`gdepth.data.DatasetSpec.trainer`):

- ``graph``: full-batch training, the seeds in batches of one seed-native model
  (:mod:`gdepth.engine`, :func:`gdepth.engine.fit.fit_batched`);
- ``trees``: mini-batches of trees, one seed after another (:func:`gdepth.train_trees.fit_trees`).

A trainer is made from the cell's :class:`Setup`; it then knows how the seeds will run
(``engine``, ``params``, ``features``, ``tree_batching``: the record's fields) and ``train()``
yields each trained seed as a :class:`gdepth.cell.record.SeedOutcome`, its diagnostics
measured on the seed's own model at its selected epoch (:class:`Measure`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from gdepth import data, engine, models, train_trees, tree_batch
from gdepth.cell import graphs
from gdepth.cell.record import EngineInfo, SeedOutcome
from gdepth.config import GdepthConfig
from gdepth.diagnostics import run as diagnostics
from gdepth.engine import slices
from gdepth.nn.propagation import adjacency_storage
from gdepth.sweep.checkpoint import CellCheckpoints


@dataclass
class Setup:
    """What a trainer of a cell is given: the typed config, the device, the seeds to train, the
    engine as far as the cell decided it (requested, why the loop), the checkpoints store, what
    to call once per seed and epoch (the progress bar) and the ``monitor`` of the selected
    validation accuracy after each epoch (a pruned search's trial, :mod:`gdepth.search.prune`;
    the graph trainer's loop only)."""

    cfg: GdepthConfig
    device: torch.device
    seeds: list[int]
    engine: EngineInfo
    checkpoints: CellCheckpoints | None = None
    on_epoch: Callable[[int], None] | None = None
    monitor: Callable[[int, dict[int, float]], None] | None = None


class Trainer(Protocol):
    engine: EngineInfo
    params: int
    features: str
    tree_batching: dict[str, Any] | None

    def train(self) -> Iterator[SeedOutcome]: ...


def cannot_batch(reason: str) -> ValueError:
    return ValueError(f"engine=batched cannot run this cell: {reason} (engines: auto = batched "
                      "where the cell allows, else loop | batched | loop)")


class Measure:
    """The cell's diagnostics (``diagnostics=smoothing|influence``) of one seed's one-seed
    model: its entry of the record's ``diagnostics`` (``{"kind", "seeds": [entry]}``, or a
    ``note``); per-seed metrics go into the seed's values."""

    def __init__(self, cfg: GdepthConfig) -> None:
        self.cfg, self.kind = cfg, diagnostics.check(cfg.diagnostics)

    def initial(self, model: nn.Module, graph: data.Graph, adj: Tensor) -> Any:
        """The smoothing profile at the model's initial weights (``None`` for other kinds)."""
        if self.kind != "smoothing":
            return None
        return diagnostics.smoothing(model, graph, adj, self.cfg.dataset, self.cfg.diagnostics)

    def __call__(self, model: nn.Module, graph: data.Graph, adj: Tensor, seed: int, init: Any,
                 values: dict[str, Any]) -> dict[str, Any] | None:
        cfg = self.cfg
        if self.kind == "none":
            return None
        if self.kind == "smoothing":
            selected = diagnostics.smoothing(model, graph, adj, cfg.dataset, cfg.diagnostics)
            if selected is None:
                return {"kind": self.kind, "seeds": [],
                        "note": (f"model {cfg.model.name} does not hand its layer outputs to "
                                 "gdepth.models.common.tap; no smoothing profile")}
            values.update(diagnostics.last_hidden(selected))
            return {"kind": self.kind,
                    "seeds": [{"seed": seed, "init": init, "selected": selected}]}
        measured = diagnostics.influence(model, graph, cfg.dataset, cfg.diagnostics, seed)
        values["receptive_field"] = measured["receptive_field"]
        return {"kind": self.kind, "seeds": [{"seed": seed, **measured}]}


def _load(cfg: GdepthConfig, seed: int, device: torch.device
          ) -> tuple[data.Graph, Tensor, str]:
    return graphs.prepare(data.load(cfg.dataset, cfg.data, seed), cfg.dataset, device)


class GraphTrainer:
    """Full-batch training of the seeds in batches (:mod:`gdepth.engine`; ``engine=loop``:
    batches of one). Each finished batch's training checkpoint is removed."""

    tree_batching = None

    def __init__(self, setup: Setup) -> None:
        cfg, self.setup, self.measure = setup.cfg, setup, Measure(setup.cfg)
        loaded = [_load(cfg, seed, setup.device) for seed in setup.seeds]
        self.graphs = [graph for graph, _, _ in loaded]
        self.adj, self.features = loaded[0][1], loaded[-1][2]
        self.storage = adjacency_storage(str(cfg.adjacency), self.adj)
        probe = engine.build(cfg, self.graphs[0], setup.seeds[:1], setup.device,
                             checkpointed=False)
        self.params = slices.parameters_per_seed(probe)
        loop = setup.engine.requested == "loop"
        self.per_batch, why = engine.batch_size(
            cfg, self.graphs, self.params, setup.device, max_seeds=1 if loop else None,
            shared=engine.memory.shared_bytes(probe, self.graphs[0].x, self.adj))
        reason = setup.engine.reason
        if why is not None and reason is None:
            if setup.engine.requested == "batched":
                raise cannot_batch(why)
            reason = why
        self.engine = dataclasses.replace(
            setup.engine, used="batched" if reason is None else "loop", reason=reason,
            adjacency=self.storage, graph_dropout=engine.graph_dropout_mode(cfg),
            seeds_per_batch=self.per_batch)

    def train(self) -> Iterator[SeedOutcome]:
        cfg, setup, measure, adj = self.setup.cfg, self.setup, self.measure, self.adj
        for lo in range(0, len(setup.seeds), self.per_batch):
            seeds = setup.seeds[lo:lo + self.per_batch]
            batch = self.graphs[lo:lo + self.per_batch]
            model = engine.build(cfg, batch[0], seeds, setup.device)
            inits = [measure.initial(slices.one_seed(model, i), g, adj) if measure.kind ==
                     "smoothing" else None for i, g in enumerate(batch)]
            kept: list[Any] | None = [] if measure.kind != "none" else None
            ckpt = setup.checkpoints.batch(seeds) if setup.checkpoints is not None else None
            results = engine.train_batch(cfg, model, batch, adj, seeds, self.storage,
                                         setup.on_epoch, kept, ckpt, setup.monitor)
            for i, result in enumerate(results):
                values, diag = result.as_dict(), None
                if kept is not None:  # the seed's own model at its selected epoch
                    diag = measure(slices.one_seed(model, i, kept[i]), batch[i], adj,
                                   result.seed, inits[i], values)
                yield SeedOutcome(result.seed, values, diag, self.params, self.features)
            if ckpt is not None:
                ckpt.remove()


class TreeTrainer:
    """The tree task's seeds, one after another, each on its own mini-batches of trees
    (:func:`gdepth.train_trees.fit_trees`; the model's one-seed module), each resuming from its
    training checkpoint (:meth:`gdepth.sweep.checkpoint.CellCheckpoints.trees`)."""

    def __init__(self, setup: Setup) -> None:
        cfg, self.setup, self.measure = setup.cfg, setup, Measure(setup.cfg)
        self.engine = setup.engine
        self.batches = tree_batch.batching(cfg.train, getattr(cfg.model, "conv", None),
                                            int(cfg.dataset.depth_r))
        self.tree_batching = dataclasses.asdict(self.batches)
        graph, _, self.features = _load(cfg, setup.seeds[0], setup.device)
        self.params = slices.parameters_per_seed(self._seeded(graph, setup.seeds[0]))

    def _seeded(self, graph: data.Graph, seed: int) -> nn.Module:
        cfg = self.setup.cfg
        return models.build_seeded(cfg.model, cfg.norm, int(cfg.depth), graph.num_features,
                                   graph.num_classes, seeds=[seed]).to(self.setup.device)

    def train(self) -> Iterator[SeedOutcome]:
        cfg, setup, measure = self.setup.cfg, self.setup, self.measure
        for seed in setup.seeds:
            graph, adj, features = _load(cfg, seed, setup.device)
            seeded = self._seeded(graph, seed)
            if cfg.activation_checkpointing:
                slices.checkpoint_layers(seeded)
            model = slices.one_seed(seeded, 0)
            del seeded
            init = measure.initial(model, graph, adj)
            kept: dict[str, Any] | None = {} if measure.kind != "none" else None
            ckpt = (setup.checkpoints.trees(seed, self.batches.passes_per_epoch)
                    if setup.checkpoints is not None else None)
            result = train_trees.fit_trees(model, graph, adj, cfg.train, seed, self.batches,
                                           on_epoch=setup.on_epoch, keep_state=kept,
                                           checkpoint=ckpt)
            values, diag = result.as_dict(), None
            if kept is not None:
                if "state" in kept:
                    model.load_state_dict(kept["state"])
                diag = measure(model, graph, adj, seed, init, values)
            yield SeedOutcome(seed, values, diag, self.params, features)
            if ckpt is not None:  # the seed is kept as finished (gdepth.cell.run)
                ckpt.remove()


# Keyed by :attr:`gdepth.data.DatasetSpec.trainer`.
TRAINERS: dict[str, Callable[[Setup], Trainer]] = {"graph": GraphTrainer, "trees": TreeTrainer}
