r"""GIN: a stack of PyG ``GINConv`` layers (sum aggregation, an MLP per layer), a linear output.

Xu, Hu, Leskovec and Jegelka, "How Powerful are Graph Neural Networks?", ICLR 2019,
arXiv 1810.00826, https://arxiv.org/abs/1810.00826:

.. math::
    \mathbf{h}_i^{(l)} = \sigma\Big(\mathrm{norm}\Big(\mathrm{MLP}^{(l)}\Big((1 + \epsilon^{(l)})
        \mathbf{h}_i^{(l-1)} + \textstyle\sum_{j \in \mathcal{N}(i)} \mathbf{h}_j^{(l-1)}\Big)
        \Big)\Big), \qquad \text{logits} = H^{(L)} W_{out} + b_{out}

with :math:`\mathrm{MLP}^{(l)}(\mathbf{z}) = W_2\,\sigma(W_1 \mathbf{z} + b_1) + b_2` (two linear
layers, the config activation between them, no norm inside) and :math:`\epsilon` fixed to 0
(GIN-0, the paper's best variant) or learned (``train_eps``). The sum runs over the in-neighbors
from the structure of ``adj`` (its weights are not used, self loops dropped: the self term is
:math:`1 + \epsilon`); the edges are read once per adjacency object and cached on the module.

The first layer applies :math:`W_1` before the aggregation, which is the same function by
linearity, :math:`W_1((1+\epsilon)\mathbf{x}_i + \sum_j \mathbf{x}_j) + b_1 = (1+\epsilon) W_1
\mathbf{x}_i + \sum_j W_1 \mathbf{x}_j + b_1`: it takes sparse CSR (bag-of-words) features, which
``GINConv``'s gather does not, and aggregates ``hidden``- instead of ``in``-wide vectors.

Depth convention: depth :math:`L` = number of GIN layers (in → hidden, then hidden → hidden),
each followed by norm → activation; the output linear layer (hidden → out) does not count.
Dropout with probability ``dropout`` precedes every GIN layer and the output layer
(``dropout_layers=all``) or only the first GIN layer and the output layer (``io``).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GINConv

from gdepth.models import common
from gdepth.models.adjacency import EdgeIndexCache
from gdepth.norms import build_norm
from gdepth.options import option

GIN_CONVENTION = (
    "depth L = number of GINConv layers (in->hidden, hidden->hidden; MLP Linear-act-Linear "
    "each, eps 0 or learned), each followed by norm -> activation; the output linear layer "
    "(hidden->out) does not count (Xu et al. 2019); sums over the edges of adj, not its weights"
)


class GIN(common.LayerDropout, nn.Module):
    """``depth`` GIN layers and a linear output (see the module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: width of every GIN layer and its MLP.
        out_dim: output features (classes).
        depth: number of GIN layers :math:`L`, >= 1.
        train_eps: learn :math:`\\epsilon` (initialized to 0) instead of fixing it to 0.
            (default: ``False``)
        norm_cfg: ``norm`` config, one norm after each GIN layer; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``, inside each MLP and after
            each layer. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        train_eps: bool = False,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        dims = [in_dim] + [hidden] * (depth - 1)
        self.convs = nn.ModuleList(
            GINConv(
                nn.Sequential(
                    nn.Linear(a, hidden), common.activation(activation), nn.Linear(hidden, hidden)
                ),
                train_eps=bool(train_eps),
            )
            for a in dims
        )
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth))
        self.act = common.activation(activation)
        self.lin_out = nn.Linear(hidden, out_dim)
        self.set_dropout(dropout, dropout_layers, depth + 1)  # depth: lin_out
        self.edges = EdgeIndexCache()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        edge_index = self.edges(adj)
        x = common.tap(self, x)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = self._drop(x, i)
            h = _linear_first(conv, h, edge_index) if i == 0 else conv(h, edge_index)
            x = common.tap(self, self.act(norm(h)))
        return common.tap(self, self.lin_out(self._drop(x, len(self.convs))))


def _linear_first(conv: GINConv, x: Tensor, edge_index: Tensor) -> Tensor:
    """``conv(x, edge_index)`` with the MLP's first linear layer moved before the aggregation
    (equal by linearity; ``x`` may be sparse CSR)."""
    lin = conv.nn[0]
    h = F.linear(x, lin.weight)
    out = conv.propagate(edge_index, x=(h, h)) + (1 + conv.eps) * h + lin.bias
    return conv.nn[1:](out)


def build_gin(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GIN:
    """``gin`` from a ``model`` config: keys hidden (64), train_eps (False), dropout (0.5),
    dropout_layers ("all"), activation ("relu")."""
    return GIN(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        train_eps=bool(option(model_cfg, "train_eps", False)),
        **common.model_options(model_cfg, norm_cfg),
    )
