"""Batches of Tree-NeighborsMatch trees by level, for :mod:`gdepth.models.bottleneck_trees`.

:class:`TreeInputs` reads, once per run, each tree's nodes in heap order (level by level) from the
disjoint graph that ``dataset=tree_match`` loads, and, per level, the distinct feature rows: a
level whose nodes all have one row (Tree-NeighborsMatch: every inner level, zero features) starts
shared, a level of few distinct rows (the leaves: ``L²`` (position, value) pairs; the roots:
``L`` keys) starts as a table, any other level is read per tree. :meth:`TreeInputs.logits` gives
the roots' logits of a batch of trees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gdepth.data import tree_match
from gdepth.models import bottleneck_trees as bt
from gdepth.models import heap_level
from gdepth.models.adjacency import edge_index_from_adj
from gdepth.models.bottleneck import Bottleneck

# A model whose layers keep every level (BatchNorm in training mode: GIN) gains nothing by levels
# on small batches, whose many small operations cost more than message passing does
# (benchmarks/tree_speed.py: GIN at r = 3, 64 trees of 15 nodes, 0.8 s per pass by levels and
# 0.6 s by message passing; at r = 4, 1024 trees of 31 nodes, 2.4x faster by levels).
SMALL_BATCH_NODES = 8192
MAX_TABLE_NNZ = 16  # a level with rows of more stored features than this is read per tree


def heap_order(edges: list[tuple[int, int]], num_nodes: int) -> Tensor:
    """``order[p]``: the node at heap position ``p`` (breadth first, left child first) of the
    complete binary tree given by ``(child, parent)`` edges, each parent's left child first;
    raises unless the edges are a complete binary tree rooted at 0."""
    children: dict[int, list[int]] = {}
    for child, parent in edges:
        children.setdefault(parent, []).append(child)
    order = [0]
    for v in order:
        order.extend(children.get(v, []))
    inner = (num_nodes - 1) // 2
    ok = len(edges) == num_nodes - 1 and sorted(order) == list(range(num_nodes)) and all(
        len(children.get(order[p], [])) == (2 if p < inner else 0) for p in range(num_nodes))
    if not ok:
        raise ValueError(f"tree_levels: the edges are not a complete binary tree of {num_nodes} "
                         "nodes rooted at 0")
    return torch.tensor(order, dtype=torch.long)


def _linear(model: Bottleneck, x: Tensor, nodes: Tensor) -> Tensor:
    """The input layer at the rows ``nodes [B, w]`` of ``x`` (dense or sparse CSR: then an
    ``embedding_bag`` over the rows' stored entries): ``[B, w, d]``."""
    weight, bias = model.lin_in.weight, model.lin_in.bias
    flat = nodes.flatten()
    if x.layout != torch.sparse_csr:
        return F.linear(x[flat], weight, bias).view(*nodes.shape, -1)
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    start = crow[flat]
    counts = crow[flat + 1] - start
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    row = torch.repeat_interleave(torch.arange(len(flat), device=flat.device), counts)
    entry = start[row] + torch.arange(int(offsets[-1]), device=flat.device) - offsets[row]
    h = F.embedding_bag(col[entry], weight.t(), offsets[:-1], mode="sum",
                        per_sample_weights=val[entry])
    return (h + bias).view(*nodes.shape, -1)


def _dense_rows(x: Tensor, nodes: Tensor) -> Tensor:
    """Rows ``nodes`` of ``x`` as a dense ``[R, F]`` tensor."""
    if x.layout != torch.sparse_csr:
        return x[nodes]
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    out = torch.zeros(len(nodes), x.size(1), dtype=val.dtype, device=val.device)
    counts = crow[nodes + 1] - crow[nodes]
    row = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), counts)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    entry = crow[nodes][row] + torch.arange(len(row), device=nodes.device) - offsets[row]
    out[row, col[entry]] = val[entry]
    return out


def _row_keys(x: Tensor, nodes: Tensor) -> Tensor | None:
    """``[R, K]`` integer keys equal iff the rows ``nodes`` of ``x`` are (None: too wide)."""
    if x.layout != torch.sparse_csr:
        return x[nodes].view(torch.int32) if x.dtype == torch.float32 else None
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    counts = crow[nodes + 1] - crow[nodes]
    width = int(counts.max()) if len(nodes) else 0
    if width > MAX_TABLE_NNZ or val.dtype != torch.float32:
        return None
    if width == 0:  # no leaf has a stored entry: all rows equal
        return nodes.new_zeros(len(nodes), 1)
    slot = torch.arange(width, device=nodes.device)
    present = slot[None, :] < counts[:, None]
    entry = (crow[nodes][:, None] + slot[None, :]).clamp(max=max(len(col) - 1, 0))
    cols = torch.where(present, col[entry], -1)
    vals = torch.where(present, val.view(torch.int32).long()[entry], 0)
    return torch.cat([cols, vals], 1)


@dataclass
class TreeInputs:
    """The features of every tree of the graph by level (module docstring).

    ``order``: heap position → node offset within a tree; ``starts``: each tree's first node;
    ``rows[ℓ]``: level ``ℓ``'s distinct feature rows ``[U, F]`` and ``ids[ℓ]`` ``[T, 2^ℓ]``
    which one each node has, where they are few (one row: a shared level; else a table), or
    None (the level is read per tree).
    """

    x: Tensor
    depth_r: int
    order: Tensor
    starts: Tensor
    rows: list[Tensor | None]
    ids: list[Tensor | None]

    @classmethod
    def build(cls, x: Tensor, ptr: Tensor, depth_r: int, order: Tensor) -> TreeInputs:
        order = order.to(ptr.device)
        starts = ptr[:-1]
        rows: list[Tensor | None] = []
        ids: list[Tensor | None] = []
        for level in range(depth_r + 1):
            nodes = starts[:, None] + order[2 ** level - 1:2 ** (level + 1) - 1][None]
            keys = _row_keys(x, nodes.flatten())
            found = None
            if keys is not None:
                unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
                if len(unique) == 1 or 4 * len(unique) <= keys.size(0):
                    first = torch.full((len(unique),), keys.size(0), dtype=torch.long,
                                       device=ptr.device).scatter_reduce(
                        0, inverse, torch.arange(keys.size(0), device=ptr.device), "amin")
                    found = (_dense_rows(x, nodes.flatten()[first]), inverse.view(nodes.shape))
            if found is not None and len(found[0]) == 1:  # one tensor for equal rows: the
                for earlier in rows:                        # layers then compute them once
                    if earlier is not None and len(earlier) == 1 and torch.equal(
                            earlier, found[0]):
                        found = (earlier, found[1])
                        break
            rows.append(None if found is None else found[0])
            ids.append(None if found is None else found[1])
        return cls(x, depth_r, order, starts, rows, ids)

    def levels(self, model: Bottleneck, trees: Tensor) -> list[heap_level.Level]:
        """The input layer's output by level for ``trees`` (the levels the layers need)."""
        out: list[heap_level.Level] = []
        shared: dict[int, Tensor] = {}  # a shared row's input layer, once per row tensor
        for level in range(bt.top_level(model, self.depth_r, 0) + 1):
            width, rows = 2 ** level, self.rows[level]
            if rows is not None and len(rows) == 1:
                if id(rows) not in shared:
                    shared[id(rows)] = F.linear(rows, model.lin_in.weight, model.lin_in.bias)[None]
                out.append(heap_level.Level(shared[id(rows)], heap_level.SHARED, width))
            elif rows is not None:
                value = F.linear(rows, model.lin_in.weight, model.lin_in.bias)[:, None]
                ids = self.ids[level][trees]
                counts = None
                if bt.keeps_every_level(model):  # BatchNorm's weights, once per batch
                    counts = torch.bincount(ids.flatten(), minlength=len(rows)).to(value.dtype)
                out.append(heap_level.Level(value, heap_level.TABLE, width, ids, counts))
            else:
                nodes = self.starts[trees][:, None] + self.order[width - 1:2 * width - 1][None]
                out.append(heap_level.Level(_linear(model, self.x, nodes), heap_level.TREE, width))
        return out

    def logits(self, model: Bottleneck, trees: Tensor) -> Tensor:
        """Root logits ``[B, C]`` of ``trees``."""
        levels = self.levels(model, trees)
        for i in range(len(model.convs)):
            levels = bt.layer(model, i, levels, self.depth_r, len(trees))
        return model.lin_out(levels[0].nodes()[:, 0]).expand(len(trees), -1)


def same_trees(adj: Tensor, ptr: Tensor, order: Tensor) -> bool:
    """Whether ``adj``'s entries off the diagonal are exactly every tree's child → parent
    edges, the node at heap position ``p`` of ``order`` under the one at ``(p - 1) // 2`` (the
    structure :class:`Bottleneck` reads from ``adj``; its weights are not used)."""
    got = edge_index_from_adj(adj)
    position = torch.arange(1, len(order), device=ptr.device)
    order = order.to(ptr.device)
    child, parent = order[position], order[(position - 1) // 2]
    start = ptr[:-1, None]
    src, dst = (start + child).flatten(), (start + parent).flatten()
    if got.size(1) != src.numel():
        return False
    perm = (dst * adj.size(1) + src).argsort()  # the coalesced (target, source) order
    return torch.equal(got[0], src[perm]) and torch.equal(got[1], dst[perm])


def fast_forward(model: Any, graph: Any, adj: Tensor, ptr: Tensor
                 ) -> tuple[Callable[[Tensor], Tensor] | None, str | None]:
    """``(tree ids -> their roots' logits, None)`` by levels for the bottleneck model on the
    Tree-NeighborsMatch graph ``graph`` (trees ``ptr``, adjacency ``adj``), or ``(None, why
    not)``: another model, a fully-adjacent last layer, dropout, or another graph."""
    reason = bt.check(model)
    if reason is not None:
        return None, reason
    depth_r = int(graph.num_classes).bit_length() - 1
    if depth_r not in tree_match.DEPTHS or 2 ** depth_r != int(graph.num_classes):
        return None, f"{graph.num_classes} classes are not 2^r leaves, r in 2..8"
    num_nodes, edges, _ = tree_match.tree_structure(depth_r)
    order = heap_order(edges, num_nodes)
    if not same_trees(adj, ptr, order):
        return None, "the adjacency is not the trees' child -> parent edges"
    return partial(TreeInputs.build(graph.x, ptr, depth_r, order).logits, model), None


def pays(model: Bottleneck, nodes: int) -> bool:
    """Whether the level-wise forward is worth it on a batch of ``nodes`` nodes (see
    :data:`SMALL_BATCH_NODES`)."""
    return nodes >= SMALL_BATCH_NODES or not bt.keeps_every_level(model)
