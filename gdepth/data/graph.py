"""The :class:`Graph` every loader returns, and the error raised for data that cannot be had.

This module imports no heavy library at import time (torch only for type checking), so the
registry in :mod:`gdepth.data` stays cheap to import for ``gdepth list datasets``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Evaluator = Callable[["torch.Tensor", "torch.Tensor"], float]


class DatasetUnavailable(RuntimeError):
    """A dataset is in neither the cache nor the mirror, and could not be downloaded.

    The message is one line: the dataset, the folders looked in, and the fix.
    """


@dataclass
class Graph:
    """One node-classification graph with one train/val/test split.

    Attributes:
        name: registry key, e.g. ``"cora"``.
        x: ``[N, F]`` float32 dense node features.
        y: ``[N]`` int64 class labels.
        edge_index: ``[2, E]`` int64; undirected (both directions stored), no self-loops,
            coalesced (sorted by row, then column, no duplicates).
        num_classes: number of classes.
        train_mask, val_mask, test_mask: ``[N]`` bool masks, pairwise disjoint.
        split: human description of the split, e.g. ``"public"``, ``"ogb"`` or
            ``"random_per_class(20/30/rest, seed=3)"``.
        evaluator: ``(y_true, y_pred) -> accuracy`` on label tensors, or ``None`` (plain
            accuracy). Set to OGB's official ``Evaluator`` for ``ogbn_*`` datasets.
        instance: ``[N]`` int64, the graph (instance) each node belongs to when the dataset is
            a disjoint union of small graphs (PyG's ``batch`` vector; the transfer tasks), else
            ``None``. The fully-adjacent last layer (``model.fully_adjacent_last``) reads it.

    The tensors ``x``, ``y``, ``edge_index`` and ``instance`` are shared between all graphs
    loaded from the same base dataset in one process (see :func:`gdepth.data.load`): do not
    modify them in place.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    num_classes: int
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    split: str
    evaluator: Evaluator | None = field(default=None, repr=False)
    instance: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        """Number of nodes N."""
        return int(self.x.size(0))

    @property
    def num_features(self) -> int:
        """Number of input features F."""
        return int(self.x.size(1))

    @property
    def num_edges(self) -> int:
        """Number of directed edges E (each undirected edge counts twice)."""
        return int(self.edge_index.size(1))

    def __repr__(self) -> str:
        sizes = "/".join(
            str(int(m.sum())) for m in (self.train_mask, self.val_mask, self.test_mask)
        )
        return (
            f"Graph(name={self.name!r}, nodes={self.num_nodes}, edges={self.num_edges}, "
            f"features={self.num_features}, classes={self.num_classes}, split={self.split!r}, "
            f"train/val/test={sizes})"
        )

    def to(self, device: torch.device | str) -> Graph:
        """A copy with every tensor moved to ``device``."""
        return replace(
            self,
            x=self.x.to(device),
            y=self.y.to(device),
            edge_index=self.edge_index.to(device),
            train_mask=self.train_mask.to(device),
            val_mask=self.val_mask.to(device),
            test_mask=self.test_mask.to(device),
            instance=None if self.instance is None else self.instance.to(device),
        )


@dataclass(frozen=True)
class BaseGraph:
    """A loaded dataset before a split is chosen: what the per-process cache holds.

    ``fixed_splits`` maps a split name (``"public"``, ``"ogb"``) to its
    ``(train_mask, val_mask, test_mask)``; ``instance`` is :attr:`Graph.instance`.
    """

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    num_classes: int
    fixed_splits: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )
    evaluator: Evaluator | None = None
    instance: torch.Tensor | None = None


def make_base(
    x: torch.Tensor,
    y: torch.Tensor,
    edge_index: torch.Tensor,
    num_classes: int,
    fixed_splits: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
    evaluator: Evaluator | None = None,
    instance: torch.Tensor | None = None,
) -> BaseGraph:
    """Bring raw tensors to the :class:`Graph` conventions (dtypes, undirected, coalesced);
    ``instance`` (node → its graph, nodes kept in order) as int64."""
    import torch
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    num_nodes = int(x.size(0))
    x = x.to_dense() if x.is_sparse else x
    edge_index = edge_index.to(torch.long)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)
    masks = {k: tuple(m.to(torch.bool) for m in v) for k, v in (fixed_splits or {}).items()}
    return BaseGraph(
        x=x.to(torch.float32).contiguous(),
        y=y.reshape(-1).to(torch.long),
        edge_index=edge_index.contiguous(),
        num_classes=int(num_classes),
        fixed_splits=masks,  # type: ignore[arg-type]
        evaluator=evaluator,
        instance=None if instance is None else instance.reshape(-1).to(torch.long),
    )
