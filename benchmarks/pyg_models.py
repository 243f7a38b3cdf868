"""The baseline of ``models_speed.py`` for gat, gin, ggnn and mlp: gdepth's per-seed loop as it
was before these models were seed-native, written as a PyG user writes it.

Until they were rewritten seed-native, gdepth trained these models one seed after another as
stacks of PyG's own layers (``GATConv``, ``GINConv``, ``GatedGraphConv``, ``torch.nn.Linear``)
on the sparse CSR features, with dropout on the stored values only. These classes are those
models (same layers, same placements of dropout and activations, the configs' defaults passed
in), trained by :func:`run_pyg_model`: Adam with the train config's learning rate and weight
decay, the cross-entropy of the training nodes, evaluation after every epoch, the test accuracy
at the first epoch of best validation accuracy, one seed after another.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pyg_loop import fit_pyg, sparse_dropout
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GatedGraphConv, GINConv

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}


def _drop(x: Tensor, p: float, training: bool) -> Tensor:
    if x.layout == torch.sparse_csr:
        return sparse_dropout(x, p, training)
    return F.dropout(x, p=p, training=training)


class PygGAT(nn.Module):
    """``depth`` ``GATConv`` layers: hidden ones ``heads`` × ``hidden // heads`` concatenated,
    the output one ``output_heads`` averaged; dropout before each, attention dropout, the
    activation after each hidden one."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, m: Any) -> None:
        super().__init__()
        dims = [in_dim] + [m.hidden] * (depth - 1)
        att = float(m.attention_dropout)
        self.convs = nn.ModuleList(GATConv(a, m.hidden // m.heads, heads=m.heads, concat=True,
                                           dropout=att) for a in dims[:-1])
        self.convs.append(GATConv(dims[-1], out_dim, heads=m.output_heads, concat=False,
                                  dropout=att))
        self.act, self.p = ACTIVATIONS[m.activation](), float(m.dropout)

    def forward(self, x: Tensor, ei: Tensor) -> Tensor:
        for conv in self.convs[:-1]:
            x = self.act(conv(_drop(x, self.p, self.training), ei))
        return self.convs[-1](_drop(x, self.p, self.training), ei)


class PygGIN(nn.Module):
    """``depth`` GIN layers (MLP Linear-act-Linear, epsilon 0), the activation after each, a
    linear output; dropout before every layer. The first layer applies its first linear map
    before ``GINConv``'s sum (the same function; sparse features cannot be gathered), as
    gdepth's loop model did."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, m: Any) -> None:
        super().__init__()
        h, act = m.hidden, ACTIVATIONS[m.activation]
        self.first = nn.Linear(in_dim, h)
        self.first_sum = GINConv(nn.Identity())
        self.first_out = nn.Sequential(act(), nn.Linear(h, h))
        self.convs = nn.ModuleList(GINConv(nn.Sequential(nn.Linear(h, h), act(),
                                                         nn.Linear(h, h)))
                                   for _ in range(depth - 1))
        self.out = nn.Linear(h, out_dim)
        self.act, self.p = act(), float(m.dropout)

    def forward(self, x: Tensor, ei: Tensor) -> Tensor:
        z = F.linear(_drop(x, self.p, self.training), self.first.weight)
        h = self.act(self.first_out(self.first_sum(z, ei) + self.first.bias))
        for conv in self.convs:
            h = self.act(conv(F.dropout(h, self.p, self.training), ei))
        return self.out(F.dropout(h, self.p, self.training))


class PygGGNN(nn.Module):
    """A linear input layer, ``GatedGraphConv(hidden, num_layers=depth)``, a linear output;
    dropout before the input and the output layer."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, m: Any) -> None:
        super().__init__()
        self.lin_in = nn.Linear(in_dim, m.hidden)
        self.ggc = GatedGraphConv(m.hidden, num_layers=depth, aggr="add")
        self.lin_out = nn.Linear(m.hidden, out_dim)
        self.p = float(m.dropout)

    def forward(self, x: Tensor, ei: Tensor) -> Tensor:
        h = self.ggc(self.lin_in(_drop(x, self.p, self.training)), ei)
        return self.lin_out(F.dropout(h, self.p, self.training))


class PygMLP(nn.Module):
    """``depth`` linear layers, dropout before each, the activation after each but the last."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, m: Any) -> None:
        super().__init__()
        dims = [in_dim] + [m.hidden] * (depth - 1) + [out_dim]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:],
                                                                   strict=True))
        self.act, self.p = ACTIVATIONS[m.activation](), float(m.dropout)

    def forward(self, x: Tensor, ei: Tensor) -> Tensor:
        for lin in self.lins[:-1]:
            x = self.act(lin(_drop(x, self.p, self.training)))
        return self.lins[-1](_drop(x, self.p, self.training))


MODELS = {"gat": PygGAT, "gin": PygGIN, "ggnn": PygGGNN, "mlp": PygMLP}


def run_pyg_model(name: str, model_cfg: Any, train_cfg: Any, graph: Any, depth: int,
                  seed: int, epochs: int) -> float:
    """One seed of model ``name``; the test accuracy at the first epoch of best validation
    accuracy. ``graph``: a prepared gdepth graph (features sparse CSR or dense)."""
    torch.manual_seed(seed)
    model = MODELS[name](graph.num_features, graph.num_classes, depth, model_cfg)
    return fit_pyg(model, graph, graph.x, float(train_cfg.lr), float(train_cfg.weight_decay),
                   epochs)
