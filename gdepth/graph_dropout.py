"""Graph dropout: a new random graph for every training epoch, re-normalized.

* **DropEdge** — Rong, Huang, Xu, Huang, "DropEdge: Towards Deep Graph Convolutional Networks
  on Node Classification", ICLR 2020, arXiv 1907.10903. Each epoch keeps a uniformly random
  ``floor((1 - p)·|E|)`` of the (directed) adjacency entries and re-normalizes that copy,
  exactly as the official ``randomedge_sampler`` (``src/sample.py``: a permutation of the
  ``nnz`` entries, the first ``int(nnz * percent)`` kept, then the adjacency normalization with
  self loops). Evaluation uses the full graph.
* **DropNode** — Chen et al., "Bag of Tricks for Training Deeper Graph Neural Networks",
  TPAMI 2022, arXiv 2108.10521 (official code ``tricks/tricks/dropouts.py``): each node is
  kept with probability ``1 - p`` (Bernoulli) and only the edges between kept nodes survive
  (PyG ``subgraph``); features are untouched; the normalization then adds self loops to every
  node.

PyG's ``dropout_edge`` draws a Bernoulli per edge; DropEdge's code keeps an exact count, which
is what :func:`drop_edges` reproduces. Only the dropped copy is normalized per epoch; the full
normalized adjacency stays cached by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch_geometric.utils import subgraph

from gdepth.models.adjacency import normalized_adjacency


def drop_edges(edge_index: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random ``floor((1 - p)·E)`` of the columns of ``edge_index``."""
    num_edges = edge_index.size(1)
    keep = int(num_edges * (1.0 - p))
    perm = torch.randperm(num_edges, generator=generator, device="cpu")[:keep]
    return edge_index[:, perm.to(edge_index.device)]


def drop_nodes(edge_index: Tensor, num_nodes: int, p: float,
               generator: torch.Generator | None = None) -> Tensor:
    """The edges between nodes kept with probability ``1 - p`` each."""
    keep = torch.rand(num_nodes, generator=generator) >= p
    kept, _ = subgraph(keep.to(edge_index.device), edge_index, num_nodes=num_nodes)
    return kept


def sampler(
    edge_index: Tensor,
    num_nodes: int,
    *,
    dropedge: float = 0.0,
    dropnode: float = 0.0,
    self_loops: bool = True,
    normalization: str = "sym",
) -> Callable[[], Tensor] | None:
    """A function returning a freshly dropped, normalized adjacency, or None when both rates
    are 0. Draws come from torch's global generator, which the caller seeds per seed."""
    for name, rate in (("dropedge", dropedge), ("dropnode", dropnode)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"train.{name}={rate} must be in [0, 1)")
    if dropedge and dropnode:
        raise ValueError(f"train.dropedge={dropedge} and train.dropnode={dropnode} are both set; "
                         "use one graph dropout at a time (as the Bag-of-Tricks code)")
    if not dropedge and not dropnode:
        return None

    def draw() -> Tensor:
        if dropedge:
            kept = drop_edges(edge_index, dropedge)
        else:
            kept = drop_nodes(edge_index, num_nodes, dropnode)
        return normalized_adjacency(kept, num_nodes, self_loops=self_loops,
                                    normalization=normalization)

    return draw
