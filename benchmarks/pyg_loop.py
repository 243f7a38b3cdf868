"""The baseline of ``sweep_speed.py``: a depth sweep's cell as a PyG user writes it.

PyG's ``examples/gcn.py``: a stack of ``GCNConv`` (``cached=True``: the normalization of
``edge_index`` is computed once), dropout before every conv, ReLU, Adam, one seed after another,
evaluation after every epoch. Two variants of the input features:

* dense (as the example, and as ``Planetoid`` hands them out);
* sparse CSR (Cora's bag of words is 1.3 % dense): ``GCNConv``'s linear layer takes a CSR matrix
  as it is (``torch.nn.functional.linear``), and dropout touches only the stored values
  (:func:`sparse_dropout`; equal in distribution to dropout on the dense matrix, whose zeros
  stay zero). PyG has no dropout for ``torch.sparse`` tensors, hence the five lines here.

With DropEdge (``dropedge > 0``, Rong et al., ICLR 2020) every training epoch draws
``torch_geometric.utils.dropout_edge(edge_index, p)`` (a Bernoulli per edge, as a PyG user
writes it; gdepth keeps DropEdge's exact count, the same rate in expectation) and the convs are
built with ``cached=False``, so each call normalizes the graph it is given; evaluation uses the
full graph.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GCNConv
from torch_geometric.utils import dropout_edge

HIDDEN, DROPOUT, LR, WD = 64, 0.5, 0.01, 5e-4


def sparse_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout on the stored values of a sparse CSR matrix (the zeros stay zero)."""
    if not training or p == 0.0:
        return x
    return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(),
                                   F.dropout(x.values(), p=p, training=True), x.shape,
                                   check_invariants=False)  # x's own, valid indices


class PygNet(torch.nn.Module):
    """PyG's example GCN, ``depth`` convs; ``residual`` adds GCN-res's hidden skips."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, residual: bool,
                 cached: bool = True) -> None:
        super().__init__()
        dims = [in_dim] + [HIDDEN] * (depth - 1) + [out_dim]
        self.convs = torch.nn.ModuleList(GCNConv(a, b, cached=cached)
                                         for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.residual = residual

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            if x.layout == torch.sparse_csr:
                x_in = sparse_dropout(x, DROPOUT, self.training)
            else:
                x_in = F.dropout(x, p=DROPOUT, training=self.training)
            h = conv(x_in, edge_index)
            if i == len(self.convs) - 1:
                return h
            h = h.relu()
            x = h + x if self.residual and i > 0 else h
        raise AssertionError("unreachable: a model has at least one conv")


def run_pyg(graph: Any, x: Tensor, depth: int, residual: bool, seed: int, epochs: int,
            dropedge: float = 0.0) -> float:
    """One seed; the test accuracy at the first epoch of best validation accuracy.

    ``x`` is the graph's features, dense or sparse CSR, on the graph's device.
    """
    torch.manual_seed(seed)
    model = PygNet(graph.num_features, graph.num_classes, depth, residual,
                   cached=not dropedge).to(x.device)
    return fit_pyg(model, graph, x, LR, WD, epochs, dropedge)


def fit_pyg(model: torch.nn.Module, graph: Any, x: Tensor, lr: float, weight_decay: float,
            epochs: int, dropedge: float = 0.0) -> float:
    """PyG's example loop for any ``model(x, edge_index)``: Adam, full-batch training, an
    evaluation after every epoch; the test accuracy at the first epoch of best validation
    accuracy. With ``dropedge > 0`` each training epoch draws ``dropout_edge``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    ei, y = graph.edge_index, graph.y
    masks = (graph.train_mask, graph.val_mask, graph.test_mask)
    best_val = test_acc = 0.0
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        train_ei = dropout_edge(ei, p=dropedge)[0] if dropedge else ei
        out = model(x, train_ei)
        F.cross_entropy(out[graph.train_mask], y[graph.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, ei).argmax(dim=-1)
        _, val, test = [int((pred[m] == y[m]).sum()) / int(m.sum()) for m in masks]
        if val > best_val:
            best_val, test_acc = val, test
    return test_acc
