r"""The normalized adjacency that every propagation layer multiplies by, built once per dataset.

On CPU a precomputed normalized adjacency in torch sparse CSR layout, passed to
``GCNConv(normalize=False)`` as ``conv(x, adj)``, is the fast path: one sparse-dense matmul per
layer instead of gcn_norm and gather/scatter message passing at every call (the gain grows
with the graph).

Layout: PyG's ``adj_t`` convention, row = target node, column = source node, so that
``adj @ x`` aggregates the messages each node receives along ``edge_index`` (source → target):

.. math::
    (\hat{A} X)_i = \sum_{j \,:\, (j, i) \in E} \hat{A}_{ij}\, \mathbf{x}_j

Normalizations, with :math:`\tilde{A} = A + I` (or :math:`A` without self loops) and
:math:`\tilde{D}` its in-degree (target-side) diagonal matrix:

* ``sym``: :math:`\tilde{D}^{-1/2}\tilde{A}\tilde{D}^{-1/2}` (Kipf & Welling, "Semi-Supervised
  Classification with Graph Convolutional Networks", ICLR 2017, arXiv 1609.02907,
  https://arxiv.org/abs/1609.02907), computed by PyG's ``gcn_norm``;
* ``row``: :math:`\tilde{D}^{-1}\tilde{A}` (mean aggregation, rows sum to 1; the form the
  PairNorm code uses, Zhao & Akoglu, ICLR 2020, arXiv 1909.12223).

Nodes of degree 0 get a zero row. Duplicate edges count once per copy, as in ``GCNConv``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_remaining_self_loops, scatter, to_torch_csr_tensor

NORMALIZATIONS = ("sym", "row")


def normalized_adjacency(
    edge_index: Tensor,
    num_nodes: int,
    *,
    self_loops: bool = True,
    normalization: str = "sym",
) -> Tensor:
    """Return the normalized adjacency as a torch sparse CSR tensor of shape ``[N, N]``.

    Args:
        edge_index: ``[2, E]`` edges, source in row 0 and target in row 1 (PyG convention).
        num_nodes: ``N``.
        self_loops: add a self loop of weight 1 to every node that lacks one. (default: ``True``)
        normalization: ``"sym"`` or ``"row"``, see the module docstring. (default: ``"sym"``)

    Returns:
        ``adj`` with ``adj[target, source] = weight``, ready for
        ``GCNConv(normalize=False)(x, adj)``.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization '{normalization}'; valid: {', '.join(sorted(NORMALIZATIONS))}"
        )
    if normalization == "sym":
        edge_index, weight = gcn_norm(
            edge_index, None, num_nodes, add_self_loops=self_loops, dtype=torch.float
        )
    else:
        # gcn_norm only does the symmetric form; the row form is D^-1 A with the same degrees.
        weight = torch.ones(edge_index.size(1), device=edge_index.device)
        if self_loops:
            edge_index, weight = add_remaining_self_loops(edge_index, weight, 1.0, num_nodes)
        deg = scatter(weight, edge_index[1], dim=0, dim_size=num_nodes, reduce="sum")
        deg_inv = deg.pow(-1.0).masked_fill(deg == 0, 0.0)
        weight = deg_inv[edge_index[1]] * weight
    with warnings.catch_warnings():
        # torch warns once per process that sparse CSR is "beta" and that invariant checks are
        # off; PyG builds the tensor from sorted, valid indices, so both are noise here.
        warnings.filterwarnings("ignore", message=r"Sparse (CSR tensor support|invariant)")
        return to_torch_csr_tensor(edge_index.flip(0), weight, size=(num_nodes, num_nodes))


def edge_index_from_adj(adj: Tensor) -> Tensor:
    """``[2, E]`` edge_index (row 0 = source, row 1 = target) of a sparse ``adj`` whose rows are
    targets and columns sources (as :func:`normalized_adjacency` builds it), self loops dropped;
    for the models that need the graph's structure but not its normalized weights."""
    if adj.layout not in (torch.sparse_csr, torch.sparse_coo):
        raise ValueError(f"adj must be a sparse CSR or COO tensor, got layout {adj.layout}")
    target, source = adj.to_sparse_coo().coalesce().indices()
    keep = source != target
    return torch.stack([source[keep], target[keep]])


class PerAdjacency:
    """``make(adj, *key)`` once per adjacency object and key (the same object and key: cached),
    e.g. ``PerAdjacency(edge_index_from_adj)``: the edge index once per adjacency."""

    def __init__(self, make) -> None:
        self.make = make
        self._adj: Tensor | None = None
        self._key: tuple = ()
        self._value: Any = None

    def __deepcopy__(self, memo: dict) -> PerAdjacency:
        """An empty cache (``copy.deepcopy`` of a model, as ``select_seeds`` and
        ``concat_seeds`` make, cannot copy a sparse CSR adjacency; the copy rebuilds)."""
        return PerAdjacency(self.make)

    def __call__(self, adj: Tensor, *key: Any) -> Any:
        if adj is not self._adj or key != self._key or self._value is None:
            self._value = self.make(adj, *key)
            self._adj, self._key = adj, key
        return self._value
