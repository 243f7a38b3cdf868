r"""The fully-adjacent last layer of gcn, gcn_res and gin (``model.fully_adjacent_last``).

Alon and Yahav, "On the Bottleneck of Graph Neural Networks and its Practical Implications",
ICLR 2021, arXiv 2006.05205, §4: the last GNN layer runs on the *complete* graph of each input
graph, every pair of its nodes connected, so that every node's final state reads every node of
its graph in one step (no bottleneck), while the layers before it keep the graph's own edges.
On a dataset that is a disjoint union of small graphs (the transfer tasks,
:attr:`gdepth.data.Graph.instance` = each node's graph :math:`I(v)`, :math:`n_{I(v)}` nodes)
the complete graph is never built (:math:`\sum_t n_t^2` edges); by linearity its aggregation
is one ``torch_geometric.utils.scatter`` over the instance ids, then a gather back:

* **GCN** (``gcn``, ``gcn_res``: their output convolution). The complete graph with self loops
  under ``GCNConv``'s symmetric normalization :math:`D^{-1/2}(A+I)D^{-1/2}` has every degree
  :math:`n_{I(v)}`, so every weight is :math:`1/n_{I(v)}`: the instance mean,

  .. math:: (\hat{A}_{FA} Z)_v = \frac{1}{n_{I(v)}} \sum_{u \in I(v)} Z_u ;

  the row normalization :math:`D^{-1}(A+I)` gives the same matrix.
* **GIN** (``gin``: its last GIN layer). ``GINConv`` on the authors' complete graph, whose edge
  set includes every node's self loop (their ``gnn-comparison/models/graph_classifiers/GIN.py``:
  ``block_map = eq(batch[None], batch[:, None])`` keeps the diagonal, then ``dense_to_sparse``):

  .. math:: \mathbf{h}'_v = \mathrm{MLP}\Big((1+\epsilon)\mathbf{h}_v
            + \textstyle\sum_{u \in I(v)} \mathbf{h}_u\Big),

  i.e. the self loop's term counted in the instance sum as well (not the loop-free
  :math:`\epsilon \mathbf{h}_v + \sum_{u \in I(v)} \mathbf{h}_u`).

Normalization matched: the authors' complete graph with self loops (their GIN code above) under
PyG's own ``GCNConv`` / ``GINConv``. Their Tree-NeighborsMatch code instead adds only the edges
node → root (enough for a root-only readout; :class:`gdepth.models.bottleneck.Bottleneck`
keeps that), where ``GCNConv``'s degrees are 1 off the root, so the root reads
:math:`n^{-1/2}\sum_{u \ne root} Z_u + n^{-1} Z_{root}`, not the complete graph's mean; it is
not used here because the complete graph is the layer the paper defines (§4).

Both operators are symmetric (:math:`M^\top = M`), which :func:`gdepth.nn.kernels.stacked_conv`'s
backward uses (:attr:`CompleteGraph.transposed` is the operator itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.utils import scatter

REDUCES = ("mean", "sum")  # gcn / gcn_res: mean; gin: sum


class CompleteGraph:
    r"""The complete graph (self loops included) of every instance as a propagation of ``[N, k]``
    features (the duck type of :class:`gdepth.nn.propagation.Propagation`: called with or without
    autograd, ``product``, ``transposed``, ``block_diagonal``).

    Args:
        instance: ``[N]`` int64, node → its instance (graph) index, ``0 .. G-1``.
        reduce: ``"mean"`` (GCN's normalized complete graph) or ``"sum"`` (GIN's).
        num_instances: G (``None``: ``instance.max() + 1``).
    """

    def __init__(self, instance: Tensor, reduce: str, num_instances: int | None = None) -> None:
        if reduce not in REDUCES:
            raise ValueError(f"unknown reduce '{reduce}'; valid: {', '.join(REDUCES)}")
        self.instance, self.reduce = instance.to(torch.long), reduce
        self.num_instances = (int(instance.max()) + 1 if num_instances is None
                              else int(num_instances))
        self._blocks: dict[int, CompleteGraph] = {}

    def product(self, z: Tensor) -> Tensor:
        """``M z`` for ``z [N, ...]``: each node gets its instance's mean (or sum) of ``z``."""
        pooled = scatter(z, self.instance, dim=0, dim_size=self.num_instances,
                         reduce=self.reduce)
        return pooled.index_select(0, self.instance)

    __call__ = product  # scatter and index_select carry their own gradients

    @property
    def transposed(self) -> CompleteGraph:
        """The operator itself (the complete graph's matrix is symmetric)."""
        return self

    def block_diagonal(self, copies: int) -> CompleteGraph:
        r""":math:`I_S \otimes M` for a seed-major ``[S·N, d]`` stack: copy ``s``'s nodes are
        the instances ``s·G + I(v)``."""
        if copies not in self._blocks:
            shift = torch.arange(copies, device=self.instance.device) * self.num_instances
            ids = (self.instance[None, :] + shift[:, None]).reshape(-1)
            self._blocks[copies] = CompleteGraph(ids, self.reduce, copies * self.num_instances)
        return self._blocks[copies]


class FullyAdjacentLast:
    """The models' side of ``model.fully_adjacent_last`` (a mixin of ``GCN`` and ``GIN``):
    ``fully_adjacent_last`` says whether the last layer is fully adjacent, ``reduce`` which
    aggregation it uses; :meth:`set_instances` gives the node → instance ids (the cell does,
    :func:`gdepth.models.set_instances`), :meth:`complete_graph` the layer's propagation for
    the features at hand."""

    fully_adjacent_last: bool = False
    fully_adjacent_reduce: str = "mean"
    instance: Tensor | None = None
    _complete: CompleteGraph | None = None

    def set_instances(self, instance: Tensor) -> None:
        """Use ``instance [N]`` (node → its graph) in the fully-adjacent last layer."""
        self.instance = instance.reshape(-1).to(torch.long)
        self._complete = None

    def complete_graph(self, like: Tensor) -> CompleteGraph:
        """The last layer's :class:`CompleteGraph` for the features ``like [N, ...]`` (made once
        per device)."""
        if self.instance is None:
            raise ValueError("model.fully_adjacent_last=true but the model has no node -> "
                             "instance ids; call gdepth.models.set_instances(model, "
                             "graph.instance) (the cell does)")
        if self.instance.numel() != like.shape[0]:
            raise ValueError(f"model.fully_adjacent_last: {self.instance.numel()} instance ids "
                             f"for {like.shape[0]} nodes; set the ids of this graph")
        if self._complete is None or self._complete.instance.device != like.device:
            self._complete = CompleteGraph(self.instance.to(like.device),
                                           self.fully_adjacent_reduce)
        return self._complete

    def last_propagation(self, adj: Any, like: Tensor) -> Any:
        """``adj``, or the complete graph where the last layer is fully adjacent."""
        return self.complete_graph(like) if self.fully_adjacent_last else adj
