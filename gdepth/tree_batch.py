"""Batches of Tree-NeighborsMatch trees: how many per step (the authors' table), and the batch.

Alon and Yahav, "On the Bottleneck of Graph Neural Networks and its Practical Implications",
ICLR 2021, arXiv 2006.05205; code github.com/tech-srl/bottleneck, ``run-{gcn,gat,gin,ggnn}-2-8.py``
(``override_params``: batch size, gradient accumulation and passes per epoch per depth r), which
:func:`batching` reads from ``train.tree_batches``.

Batches are cut from the disjoint union of all trees that ``dataset=tree_match`` loads (trees
are contiguous node ranges ``ptr[t] .. ptr[t+1]``, root first, :func:`tree_ptr`).
:func:`tree_batch` gathers the rows of the trees' blocks of the features and of the cached
normalized CSR adjacency, which is exactly the adjacency of those trees because no edge leaves a
tree (:func:`check_within_trees`, checked once per run). PyG's ``Batch.from_data_list`` would
build the same block-diagonal graph from per-tree ``Data`` objects, one Python object per tree
and step; these index arithmetics on the CSR arrays take the already-normalized adjacency
instead, with no per-tree Python. Training: :mod:`gdepth.train_trees`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gdepth.config import TrainConfig
from gdepth.options import unknown

BATCH_KEYS = ("accum_grad", "batch_size", "passes_per_epoch")


@dataclass(frozen=True)
class Batching:
    """Trees per batch (``None``: all), batches per optimizer step, passes per epoch."""

    batch_size: int | None
    accum_grad: int
    passes_per_epoch: int


def batching(train_cfg: TrainConfig, conv: str | None, depth_r: int) -> Batching:
    """``train.batch_size / accum_grad / passes_per_epoch`` with the entry of
    ``train.tree_batches`` for ``all`` and then for ``conv``, key ``r<depth_r>``, merged over
    them (the authors' ``override_params`` per depth in ``run-<conv>-2-8.py``)."""
    values = {k: getattr(train_cfg, k) for k in BATCH_KEYS}
    table = train_cfg.tree_batches
    for entry in ("all", conv):
        for key, value in ((table.get(entry) or {}).get(f"r{depth_r}") or {}).items():
            if key not in BATCH_KEYS:
                raise unknown(f"train.tree_batches.{entry}.r{depth_r} key", key, BATCH_KEYS)
            values[key] = value
    size = values["batch_size"]
    return Batching(None if size is None else int(size), int(values["accum_grad"] or 1),
                    int(values["passes_per_epoch"] or 1))


def tree_ptr(graph: Any) -> Tensor:
    """``ptr [T+1]`` of a Tree-NeighborsMatch graph: trees of ``n = 2·classes − 1`` nodes each,
    root first, the roots being the labelled nodes (``train_mask | test_mask``)."""
    n = 2 * int(graph.num_classes) - 1
    if graph.num_nodes % n:
        raise ValueError(f"train_trees: {graph.num_nodes} nodes are not whole trees of {n} nodes")
    ptr = torch.arange(0, graph.num_nodes + 1, n, device=graph.y.device)
    roots = torch.nonzero(graph.train_mask | graph.test_mask).flatten()
    if not torch.equal(roots, ptr[:-1]):
        raise ValueError("train_trees: the labelled nodes are not the first node of every tree")
    return ptr


def _nodes(ptr: Tensor, trees: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(node ids of the trees in order, the batch's ptr, each node's batch-local tree)``."""
    sizes = ptr[trees + 1] - ptr[trees]
    local_ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    tree_of = torch.repeat_interleave(torch.arange(len(trees), device=ptr.device), sizes)
    offset = torch.arange(int(local_ptr[-1]), device=ptr.device) - local_ptr[tree_of]
    return ptr[trees][tree_of] + offset, local_ptr, tree_of


def _rows(csr: Tensor, nodes: Tensor, column_shift: Tensor | None, width: int) -> Tensor:
    """Rows ``nodes`` of the sparse CSR ``csr`` as a CSR matrix, each row's column indices
    shifted by ``column_shift[row]`` (``None``: unchanged) and ``width`` columns."""
    crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
    counts = crow[nodes + 1] - crow[nodes]
    new_crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    row = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
    entry = crow[nodes][row] + torch.arange(int(new_crow[-1]), device=nodes.device) - new_crow[row]
    cols = col[entry] if column_shift is None else col[entry] + column_shift[row]
    return torch.sparse_csr_tensor(new_crow, cols, val[entry], (len(nodes), width))


def tree_batch(x: Tensor, adj: Tensor, ptr: Tensor, trees: Tensor
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x, adj, root_of, roots)`` of the batch of ``trees`` (ids into ``ptr``, repeats
    allowed): their features, the block-diagonal restriction of ``adj``, each node's root and
    the roots, all in batch-local node ids."""
    nodes, local_ptr, tree_of = _nodes(ptr, trees)
    shift = local_ptr[tree_of] - ptr[trees][tree_of]  # global → batch-local, per row
    n = len(nodes)
    xb = _rows(x, nodes, None, x.size(1)) if x.layout == torch.sparse_csr else x[nodes]
    return xb, _rows(adj, nodes, shift, n), local_ptr[tree_of], local_ptr[:-1]


def check_within_trees(adj: Tensor, ptr: Tensor) -> None:
    """Raise unless every entry of ``adj`` joins two nodes of the same tree."""
    target = torch.repeat_interleave(torch.arange(adj.size(0), device=ptr.device),
                                     adj.crow_indices().diff())
    tree = torch.bucketize(torch.arange(adj.size(0), device=ptr.device), ptr, right=True) - 1
    if not torch.equal(tree[target], tree[adj.col_indices()]):
        raise ValueError("train_trees: the adjacency has edges between trees")
