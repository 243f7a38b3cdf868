r"""GCN with the Bag-of-Tricks skip connections and identity mapping (``model=gcn`` with
``model.skip != none`` or ``model.identity_mapping=true``), seed-native (:mod:`gdepth.nn.seeds`),
and the seed-native GCN convolution both GCN models are built from (:class:`SeedGCNConv`,
:func:`identity_mapped`).

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

* ``residual``: :math:`X_l = (1-\alpha)\tilde X_l + \alpha \tilde X_{l-1}` (BoT's
  ``ResidualConnection`` mixes the previous layer's output *before* its skip, its
  ``x_list[-2]``; :math:`\tilde X_0 = X_0`);
* ``initial``: :math:`X_l = (1-\alpha)\tilde X_l + \alpha X_0`;
* ``dense``: :math:`X_l = W^{d}_l[X_0 \| \tilde X_1 \| \dots \| \tilde X_l] + b^d_l`
  (``layer_agg=concat``, over the layers' outputs before their skips);
* ``jumping``: no per-layer skip; the output layer reads every layer (above).

Identity mapping: :math:`\beta_l = \log(\lambda / l + 1)` (GCNII's, Chen et al. ICML 2020);
without it :math:`\beta_l = 1` and the convolution is :math:`\hat{A} X W` (no bias, as
``GCNIdMapConv``). With ``skip=none`` and identity mapping, the layers follow Kipf's GCN
(``depth`` convolutions, input and output included, :class:`gdepth.models.gcn.GCN`) and
:math:`\beta_l` applies to the hidden → hidden ones only, since :math:`(1-\beta)\hat{A}X` needs
equal widths.

Depth convention with a skip: ``depth`` = L hidden → hidden graph convolutions, plus a linear input
and output layer that do not count (Bag of Tricks' ``num_layers``).

Deviation, stated: the official code gives its Adam only the convolutions (``weight_decay1``)
and the two linear layers (``weight_decay2``), so the dense-skip / jumping linear layers and
the norms are never updated there; here they train, in the dense group
(:meth:`TricksGCN.named_parameter_groups`).

Seed axis: every parameter is seed-major ``[S, ...]``, hidden features ``[N, S, d]``; seed s's
initial tensors are drawn as the PyTorch / PyG layers of the one-seed model draw them
(``nn.Linear`` for the linear layers, ``GCNConv`` for the convolutions, in the order the model
builds them: input linear, convolutions, norms, dense-skip linears, output linear).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gdepth.models import common
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import StackedInput, stacked_conv
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear, glorot_
from gdepth.norms import build_seeded_norm

SKIPS = ("none", "residual", "initial", "dense", "jumping")

TRICKS_CONVENTION = (
    "with model.skip != none (Bag of Tricks, Chen et al. 2022): depth L = number of hidden->hidden "
    "GCN layers, plus a linear input and output layer that do not count"
)


class SeedGCNConv(nn.Module):
    r"""The parameters of PyG's ``GCNConv(d_in, d_out, normalize=False)`` for S seeds:
    ``weight [S, d_in, d_out]`` (seed s's ``lin.weight`` transposed) and ``bias [S, d_out]``
    (``None`` for ``bias=False``); ``forward(h, adj)`` is :math:`\hat{A}(H_s W_s) + b_s`,
    ``h`` the hidden ``[N, S, d_in]`` or the shared input features (:class:`StackedInput`, no
    dropout on them). The one seed-native GCN convolution of gcn, gcn_res, the tricks GCN,
    JKNet and DropEdge's backbones (:func:`identity_mapped` adds GCNII's identity mapping; the
    models' fused kernels read its tensors).

    ``reset_seed(s)``: what ``GCNConv.__init__`` draws: PyG glorot on ``lin.weight`` twice (its
    ``Linear`` initializes itself when built, then ``GCNConv.reset_parameters`` resets it
    again; the second draw is the weight), the bias zeros.
    """

    def __init__(self, num_seeds: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.num_seeds, self.d_in, self.d_out = num_seeds, d_in, d_out
        self.weight = nn.Parameter(torch.empty(num_seeds, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(num_seeds, d_out)) if bias else None
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        with torch.no_grad():
            glorot_(self.weight[s], self.d_in, self.d_out)  # Linear.__init__'s draw
            glorot_(self.weight[s], self.d_in, self.d_out)  # GCNConv.reset_parameters'
            if self.bias is not None:
                self.bias[s].zero_()

    def forward(self, h: Tensor | StackedInput, adj: Propagation) -> Tensor:
        if isinstance(h, StackedInput):  # the input layer: one product for all seeds
            z = h(self.weight, 0.0, None)
            n, s, d = z.shape
            out = adj(z.reshape(n, s * d)).view(n, s, d)
            return out if self.bias is None else out + self.bias
        bias = self.bias if self.bias is not None else h.new_zeros(self.num_seeds, self.d_out)
        return stacked_conv(h, self.weight, bias, adj)

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.d_in} -> {self.d_out}, "
                f"bias={self.bias is not None}")


def identity_mapped(conv: SeedGCNConv, h: Tensor, adj: Propagation, beta: float) -> Tensor:
    r""":math:`\beta\,(\hat{A}H_s)W_s + (1-\beta)\,\hat{A}H_s` (+ :math:`b_s`, if the conv has a
    bias) for every seed of ``h [N, S, d]``, with one sparse product for all seeds;
    ``beta == 1`` is the plain convolution :math:`\hat{A}(H_s W_s) + b_s` in ``GCNConv``'s
    order (:func:`gdepth.nn.kernels.stacked_conv`)."""
    n, s, d = h.shape
    if beta == 1.0:
        bias = conv.bias if conv.bias is not None else h.new_zeros(s, conv.d_out)
        return stacked_conv(h, conv.weight, bias, adj)
    support = adj(h.reshape(n, s * d)).view(n, s, d)
    out = (beta * torch.bmm(support.transpose(0, 1), conv.weight).transpose(0, 1)
           + (1.0 - beta) * support)
    return out if conv.bias is None else out + conv.bias


def norm_weights(norm: nn.Module) -> list[nn.Parameter]:
    """The parameters of a seed-native norm that the PyG norm it replaces named ``*weight*``
    (its ``weight_parameters()``; the identity has none)."""
    if hasattr(norm, "weight_parameters"):
        return list(norm.weight_parameters())
    return [p for name, p in norm.named_parameters() if "weight" in name]


class TricksGCN(nn.Module):
    """Bag-of-Tricks GCN (module docstring) for S seeds: ``forward(x_in, adj) -> [N, S, C]``.

    Args:
        in_dim, hidden, out_dim: widths.
        depth: L graph convolutions (see the module docstring), >= 1.
        skip: one of ``SKIPS``.
        num_seeds: S. (default: ``1``)
        skip_alpha: :math:`\\alpha` of ``residual`` / ``initial``. (default: ``0.1``)
        identity_mapping: use :math:`\\beta_l = \\log(\\lambda/l + 1)`. (default: ``False``)
        lamda: :math:`\\lambda`. (default: ``0.5``)
        embedding_dropout: dropout before the linear input and output layers. (default: 0.6)
        norm_cfg, activation, dropout, dropout_layers: as :class:`gdepth.models.gcn.GCN`;
            ``dropout`` precedes the convolutions ``dropout_layers`` selects.
    """

    layer_outputs = True  # calls common.tap (input, embedding, each layer, logits)
    # activation checkpointing (gdepth.models.checkpoint_layers): each convolution layer
    # (dropout, convolution, norm, activation) is recomputed in the backward pass
    checkpoint_layers = False

    def __init__(self, in_dim: int, hidden: int, out_dim: int, depth: int, *, skip: str,
                 num_seeds: int = 1, skip_alpha: float = 0.1, identity_mapping: bool = False,
                 lamda: float = 0.5, embedding_dropout: float = 0.6, norm_cfg: Any = None,
                 activation: str = "relu", dropout: float = 0.5,
                 dropout_layers: str = "all") -> None:
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"unknown skip '{skip}'; valid: {', '.join(SKIPS)}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds, self.hidden = num_seeds, hidden
        self.skip, self.alpha = skip, float(skip_alpha)
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping else 1.0
                      for i in range(depth)]
        # built in the one-seed model's order: its initial draws come in this order
        self.lin_in = SeedLinear(num_seeds, in_dim, hidden, init="kaiming")
        self.convs = nn.ModuleList(SeedGCNConv(num_seeds, hidden, hidden, bias=False)
                                   for _ in range(depth))
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth))
        self.dense = nn.ModuleList(
            SeedLinear(num_seeds, (i + 2) * hidden, hidden, init="kaiming") for i in range(depth)
        ) if skip == "dense" else nn.ModuleList()
        head_in = (depth + 1) * hidden if skip == "jumping" else hidden
        self.lin_out = SeedLinear(num_seeds, head_in, out_dim, init="kaiming")
        self.act = common.activation(activation)
        self.dropout, self.embedding_dropout = float(dropout), float(embedding_dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, depth)
        self.mask_fn: MaskFn | None = None  # injected dropout masks (tests)
        self.layer_sink: Any = None

    def _layer(self, x: Tensor, adj: Propagation, i: int) -> Tensor:
        p = self.dropout if i in self.dropout_at else 0.0
        h = stacked_dropout(x, p, self.training, self.mask_fn)
        return self.act(self.norms[i](identity_mapped(self.convs[i], h, adj, self.betas[i])))

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared features and the propagation."""
        common.tap(self, x_in.x)
        p_emb = self.embedding_dropout if self.training else 0.0
        x = x_in(self.lin_in.weight, p_emb, self.mask_fn) + self.lin_in.bias
        x = common.tap(self, self.act(x))
        xs = [x]
        recompute = self.checkpoint_layers and self.training and torch.is_grad_enabled()
        for i in range(len(self.convs)):
            h = (checkpoint(self._layer, x, adj, i, use_reentrant=False) if recompute
                 else self._layer(x, adj, i))
            xs.append(h)
            if self.skip == "residual":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[-2]
            elif self.skip == "initial":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[0]
            elif self.skip == "dense":
                x = self.dense[i](torch.cat(xs, dim=-1))
            else:
                x = h
            x = common.tap(self, x)
        if self.skip == "jumping":  # the official code reads x_list undropped here
            out = self.lin_out(torch.cat(xs, dim=-1))
        else:
            out = self.lin_out(stacked_dropout(x, self.embedding_dropout, self.training,
                                               self.mask_fn))
        out = common.tap(self, out)
        return out if rows is None else out[rows]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The input linear layer's weight and bias (Kipf & Welling decay only those)."""
        return [self.lin_in.weight, self.lin_in.bias]

    def weight_parameters(self) -> list[nn.Parameter]:
        """What the one-seed model named ``*weight*`` (the L1 penalty's): the linear and
        convolution weights and the norms' scales, in its order."""
        return [self.lin_in.weight, *(c.weight for c in self.convs),
                *(w for norm in self.norms for w in norm_weights(norm)),
                *(d.weight for d in self.dense), self.lin_out.weight]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``graph``: the convolutions (BoT's weight_decay1); ``dense``: everything else
        (weight_decay2)."""
        graph = list(self.convs.parameters())
        ids = {id(p) for p in graph}
        return {"graph": graph, "dense": [p for p in self.parameters() if id(p) not in ids]}
