"""What a cell records when ``diagnostics=smoothing`` or ``diagnostics=influence`` is set.

* ``smoothing``: every over-smoothing measure of :mod:`gdepth.diagnostics.oversmoothing` for
  every layer output — the input features, each layer's output and the logits, as the model hands
  them to :func:`gdepth.models.common.tap` — at initialization and at the selected epoch (the
  model's state at that epoch is kept during training). Per seed the record holds the profiles;
  ``<measure>_last`` (the last hidden layer, the input of the output layer) becomes a per-seed
  metric that ``gdepth table --metric dirichlet_last`` tabulates.
* ``influence``: PyG's ``total_influence`` (Jacobian L1 influence per hop, averaged over sampled
  nodes and normalized by hop 0, and the influence-weighted receptive field R; Bamberger et al.,
  "Towards Quantifying Long-Range Interactions in Graph Machine Learning", arXiv 2503.09008) of
  the model at the selected epoch.

Both measure one seed's model behind the one-seed interface ``model(x [N, F], adj) -> [N, C]``:
the cell trains its seeds in batches and hands each seed's slice of the batch, at its
selected epoch, as :func:`gdepth.engine.slices.one_seed` (a
:class:`gdepth.nn.one_seed.OneSeed` of the seed-native model; a one-seed module of a
:class:`gdepth.nn.seeds.SeedStack`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import DatasetConfig, DiagnosticsConfig
from gdepth.diagnostics import oversmoothing
from gdepth.diagnostics.graph_info import graph_info
from gdepth.models.adjacency import normalized_adjacency
from gdepth.options import unknown

KINDS = ("none", "smoothing", "influence")


def check(cfg: DiagnosticsConfig) -> str:
    """The diagnostics kind of ``cfg`` (``diagnostics.name``), validated."""
    name = str(cfg.name)
    if name not in KINDS:
        raise unknown("diagnostics", name, KINDS)
    return name


@torch.no_grad()
def layer_outputs(model: nn.Module, x: Tensor, adj: Tensor) -> list[Tensor] | None:
    """The outputs the model taps in one eval-mode forward, or None if it taps none."""
    if not getattr(model, "layer_outputs", False):
        return None
    was_training = model.training
    model.eval()
    model.layer_sink = []
    try:
        model(x, adj)
        return list(model.layer_sink)
    finally:
        model.layer_sink = None
        model.train(was_training)


def smoothing(model: nn.Module, graph: Any, adj: Tensor, dataset_cfg: DatasetConfig,
              diag_cfg: DiagnosticsConfig) -> dict[str, list[float]] | None:
    """``{measure: [value per tapped output]}`` of the model's current weights, or None."""
    outputs = layer_outputs(model, graph.x, adj)
    if outputs is None:
        return None
    info = graph_info(
        graph.edge_index, graph.num_nodes, graph.y,
        self_loops=bool(dataset_cfg.self_loops), normalization=str(dataset_cfg.adjacency),
        max_nodes=int(diag_cfg.max_nodes))
    measures = tuple(diag_cfg.measures or oversmoothing.MEASURES)
    # The input features are the same for every seed and cell of a dataset: measure them once.
    x = outputs[0]
    key = (x.data_ptr() if x.layout == torch.strided else x.values().data_ptr(), tuple(x.shape),
           id(info), measures)
    if key not in _INPUT:
        _INPUT[key] = oversmoothing.smoothing_profile([x], info, measures)
    rest = oversmoothing.smoothing_profile(outputs[1:], info, measures)
    return {m: _INPUT[key][m] + rest[m] for m in measures}


# input-feature profiles, keyed by the tensor's storage, shape, graph and measures (per process;
# the features are the per-process cached tensors of gdepth.cell.prepare, never freed)
_INPUT: dict[tuple, dict[str, list[float]]] = {}


def last_hidden(profile: dict[str, list[float]]) -> dict[str, float]:
    """``{<measure>_last: value}`` at the last hidden layer (second to last tapped output; the
    last one when a model taps only two)."""
    out = {}
    for measure, values in profile.items():
        index = len(values) - 2 if len(values) > 2 else len(values) - 1
        out[f"{measure}_last"] = values[index] if values else math.nan
    return out


class _EdgeIndexModel(nn.Module):
    """``model(x, edge_index)`` for PyG's ``total_influence``: the subgraph's adjacency is
    normalized the way the cell's is, then the wrapped ``model(x, adj)`` runs."""

    def __init__(self, model: nn.Module, self_loops: bool, normalization: str) -> None:
        super().__init__()
        self.model, self.self_loops, self.normalization = model, self_loops, normalization

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        adj = normalized_adjacency(edge_index, x.size(0), self_loops=self.self_loops,
                                   normalization=self.normalization)
        return self.model(x, adj)


def influence(model: nn.Module, graph: Any, dataset_cfg: DatasetConfig,
              diag_cfg: DiagnosticsConfig, seed: int) -> dict[str, Any]:
    """``{"influence": [I_0, …, I_k], "receptive_field": R}`` of the model (eval mode)."""
    from torch_geometric.data import Data
    from torch_geometric.utils import total_influence

    x = graph.x.to_dense() if graph.x.layout != torch.strided else graph.x
    wrapped = _EdgeIndexModel(model, bool(dataset_cfg.self_loops), str(dataset_cfg.adjacency))
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)  # the sampled nodes
    try:
        values, breadth = total_influence(
            wrapped, Data(x=x, edge_index=graph.edge_index),
            max_hops=int(diag_cfg.hops), num_samples=int(diag_cfg.samples),
            device=x.device, vectorize=False)
    finally:
        model.train(was_training)
    return {"influence": [float(v) for v in values], "receptive_field": float(breadth)}
