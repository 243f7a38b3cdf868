r"""One level (depth) of a batch of complete binary trees, in heap order: the data of
:mod:`gdepth.models.bottleneck_trees`.

A level of ``B`` trees with ``w`` nodes at that depth is a ``[B, w, d]`` tensor whose node
:math:`i` has its children at :math:`2i, 2i+1` of the next level, so that every sibling pair is
contiguous and a sum over children is a reshape and a sum (Alon & Yahav's Tree-NeighborsMatch,
ICLR 2021, arXiv 2006.05205, trains on such trees). Two compressed kinds hold the same nodes
with fewer rows: *shared* (``[1, 1, d]``: one value for every node of the level in every tree)
and *table* (``[U, 1, d]`` distinct rows read through ``ids [B, w]``). PyG batches trees as
edge lists (``Batch``), which has neither the heap layout nor the compressed kinds, hence this
small type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

TREE, SHARED, TABLE = "tree", "shared", "table"


@dataclass(frozen=True)
class Level:
    """One depth of the batch's trees, ``w = width`` nodes per tree: ``value`` is ``[B, w, d]``
    (``kind`` tree: one row per node), ``[1, 1, d]`` (shared: every node of the level, in every
    tree) or ``[U, 1, d]`` read through ``ids [B, w]`` (table)."""

    value: Tensor
    kind: str
    width: int
    ids: Tensor | None = None
    counts: Tensor | None = None  # a table: how often the batch holds each row

    def map(self, fn: Callable[[Tensor], Tensor]) -> Level:
        return replace(self, value=fn(self.value))

    def nodes(self) -> Tensor:
        """``[B, w, d]`` (``[1, 1, d]`` for a shared level: it broadcasts)."""
        return table_nodes(self.value, self.ids) if self.kind == TABLE else self.value

    def pairs(self) -> Tensor:
        """The sum of each pair of siblings: ``[B, w / 2, d]`` (``[1, 1, d]`` if shared)."""
        if self.kind == SHARED:
            return 2 * self.value
        if self.kind == TABLE:  # two reads of half the rows: faster than one and a sum
            return (table_nodes(self.value, self.ids[:, 0::2])
                    + table_nodes(self.value, self.ids[:, 1::2]))
        b, w, d = self.value.shape
        return self.value.view(b, w // 2, 2, d).sum(2)

    def weights(self, trees: int) -> Tensor:
        """How many nodes of the batch each row of ``value`` stands for (flattened rows)."""
        if self.kind == SHARED:
            return self.value.new_full((1,), float(trees * self.width))
        if self.kind == TABLE:
            if self.counts is None:
                return torch.bincount(self.ids.flatten(), minlength=self.value.size(0)).to(
                    self.value.dtype)
            return self.counts
        return self.value.new_ones(self.value.shape[:-1].numel())


def table_nodes(value: Tensor, ids: Tensor) -> Tensor:
    """``[B, w, d]``: the rows ``ids [B, w]`` of a table ``value [U, 1, d]``."""
    rows = value[:, 0]
    return rows.index_select(0, ids.reshape(-1)).view(*ids.shape, rows.size(-1))
