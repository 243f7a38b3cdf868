r"""GCN with the Bag-of-Tricks skip connections and identity mapping (``model=gcn`` with
``model.skip != none`` or ``model.identity_mapping=true``).

Chen, Zhou, Duan, Wang, Jiang, Wang, "Bag of Tricks for Training Deeper Graph Neural Networks: A
Comprehensive Benchmark Study", IEEE TPAMI 2022, arXiv 2108.10521, official code
https://github.com/VITA-Group/Deep_GCN_Benchmarking (``tricks/tricks_comb.py``,
``tricks/tricks/skipConnections.py``, ``tricks/tricks/others.py``). With a skip connection the
model is

.. math::
    X_0 = \mathrm{ReLU}(W_{in}\,\mathrm{drop}_e(X)), \qquad
    S_l = \hat{A}\,\mathrm{drop}(X_{l-1}), \qquad
    X_l = \mathrm{skip}\big(\mathrm{ReLU}(\mathrm{norm}(\beta_l S_l W_l
          + (1-\beta_l) S_l))\big), \quad l = 1..L

and the logits are :math:`W_{out}\,\mathrm{drop}_e(X_L)` (``drop_e``: ``embedding_dropout``),
or, for ``jumping``, :math:`W_{jk}[X_0 \| X_1 \| \dots \| X_L] + b_{jk}`. The skips
(:math:`\tilde X_l` is the layer's output before the skip, :math:`\alpha` = ``skip_alpha``):

* ``residual``: :math:`X_l = (1-\alpha)\tilde X_l + \alpha X_{l-1}`;
* ``initial``: :math:`X_l = (1-\alpha)\tilde X_l + \alpha X_0`;
* ``dense``: :math:`X_l = W^{d}_l[X_0 \| \dots \| X_{l-1} \| \tilde X_l] + b^d_l`
  (``layer_agg=concat``);
* ``jumping``: no per-layer skip; the output layer reads every layer (above).

Identity mapping: :math:`\beta_l = \log(\lambda / l + 1)` (GCNII's, Chen et al. ICML 2020);
without it :math:`\beta_l = 1` and the convolution is :math:`\hat{A} X W` (no bias, as
``GCNIdMapConv``). With ``skip=none`` and identity mapping, the layers follow Kipf's GCN
(``depth`` convolutions, input and output included) and :math:`\beta_l` applies to the
hidden → hidden ones only, since :math:`(1-\beta)\hat{A}X` needs equal widths.

Depth convention with a skip: ``depth`` = L hidden → hidden graph convolutions, plus a linear input
and output layer that do not count (Bag of Tricks' ``num_layers``).

Deviation, stated: the official code gives its Adam only the convolutions (``weight_decay1``)
and the two linear layers (``weight_decay2``), so the dense-skip / jumping linear layers and
the norms are never updated there; here they train, in the dense group
(:meth:`TricksGCN.parameter_groups`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from gdepth.models import common
from gdepth.norms import build_norm

SKIPS = ("none", "residual", "initial", "dense", "jumping")

TRICKS_CONVENTION = (
    "with model.skip != none (Bag of Tricks, Chen et al. 2022): depth L = number of hidden->hidden "
    "GCN layers, plus a linear input and output layer that do not count"
)


class TricksGCN(nn.Module):
    """Bag-of-Tricks GCN (module docstring).

    Args:
        in_dim, hidden, out_dim: widths.
        depth: L graph convolutions (see the module docstring), >= 1.
        skip: one of ``SKIPS``.
        skip_alpha: :math:`\\alpha` of ``residual`` / ``initial``. (default: ``0.1``)
        identity_mapping: use :math:`\\beta_l = \\log(\\lambda/l + 1)`. (default: ``False``)
        lamda: :math:`\\lambda`. (default: ``0.5``)
        embedding_dropout: dropout before the linear input and output layers. (default: 0.6)
        norm_cfg, activation, dropout, dropout_layers: as :class:`gdepth.models.gcn.GCN`;
            ``dropout`` precedes every convolution.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, depth: int, *, skip: str,
                 skip_alpha: float = 0.1, identity_mapping: bool = False, lamda: float = 0.5,
                 embedding_dropout: float = 0.6, norm_cfg: Any = None,
                 activation: str = "relu", dropout: float = 0.5,
                 dropout_layers: str = "all") -> None:
        super().__init__()
        self.layer_outputs = True  # calls common.tap (input, embedding, each layer, logits)
        if skip not in SKIPS:
            raise ValueError(f"unknown skip '{skip}'; valid: {', '.join(SKIPS)}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.skip, self.alpha = skip, float(skip_alpha)
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping else 1.0
                      for i in range(depth)]
        self.lin_in = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(GCNConv(hidden, hidden, normalize=False, bias=False)
                                   for _ in range(depth))
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth))
        self.dense = nn.ModuleList(nn.Linear((i + 2) * hidden, hidden) for i in range(depth)
                                   ) if skip == "dense" else nn.ModuleList()
        head_in = (depth + 1) * hidden if skip == "jumping" else hidden
        self.lin_out = nn.Linear(head_in, out_dim)
        self.act = common.activation(activation)
        self.dropout, self.embedding_dropout = float(dropout), float(embedding_dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, depth)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        x = common.tap(self, x)
        x = common.tap(self, self.act(self.lin_in(
            common.dropout(x, self.embedding_dropout, self.training))))
        xs = [x]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = common.dropout(x, self.dropout, self.training) if i in self.dropout_at else x
            x = self.act(norm(identity_mapped(conv, h, adj, self.betas[i])))
            xs.append(x)
            if self.skip == "residual":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[-2]
            elif self.skip == "initial":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[0]
            elif self.skip == "dense":
                x = self.dense[i](torch.cat(xs, dim=-1))
            x = common.tap(self, x)
        if self.skip == "jumping":  # the official code reads x_list undropped here
            return common.tap(self, self.lin_out(torch.cat(xs, dim=-1)))
        return common.tap(self, self.lin_out(
            common.dropout(x, self.embedding_dropout, self.training)))

    def first_layer(self) -> nn.Module:
        return self.lin_in

    def parameter_groups(self, conv_weight_decay: float, dense_weight_decay: float
                         ) -> list[dict[str, Any]]:
        """The convolutions with ``conv_weight_decay`` (BoT's weight_decay1), everything else
        with ``dense_weight_decay`` (weight_decay2)."""
        graph = list(self.convs.parameters())
        ids = {id(p) for p in graph}
        dense = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": graph, "weight_decay": float(conv_weight_decay)},
                {"params": dense, "weight_decay": float(dense_weight_decay)}]


def identity_mapped(conv: GCNConv, x: Tensor, adj: Tensor, beta: float) -> Tensor:
    """:math:`\\beta\\,(\\hat{A}x)W + (1-\\beta)\\,\\hat{A}x` (+ the conv's bias, if any) with
    one sparse product; ``beta == 1`` is the plain convolution."""
    if beta == 1.0:
        return conv(x, adj)
    support = torch.sparse.mm(adj, x)
    out = beta * conv.lin(support) + (1.0 - beta) * support
    return out if conv.bias is None else out + conv.bias
