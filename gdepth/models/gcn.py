r"""GCN and GCN-res on a precomputed normalized adjacency, seed-native (:mod:`gdepth.nn.seeds`).

``gcn`` — Kipf and Welling, "Semi-Supervised Classification with Graph Convolutional Networks",
ICLR 2017, arXiv 1609.02907, https://arxiv.org/abs/1609.02907:

.. math::
    H^{(l+1)} = \sigma\big(\mathrm{norm}(\hat{A} H^{(l)} W^{(l)} + b^{(l)})\big),
    \qquad \text{logits} = \hat{A} H^{(L-1)} W^{(L-1)} + b^{(L-1)}

``gcn_res`` — GCN-res of Zhou et al., "Understanding and Resolving Performance Degradation in
Deep Graph Convolutional Networks", CIKM 2021, arXiv 2006.07107, https://arxiv.org/abs/2006.07107
(official code https://github.com/miafei/NodeNorm, ``layer_type=gcn_res``, hidden block type
``a_r``, or ``n_a_r`` / ``b_a_r`` with NodeNorm / BatchNorm): the input layer is as in ``gcn``
(no residual, the width changes), each hidden layer is a residual block

.. math::
    H^{(l+1)} = \sigma\big(\mathrm{norm}(\hat{A} H^{(l)} W^{(l)} + b^{(l)})\big) + H^{(l)},

and the output layer is a plain convolution giving the logits.

Depth convention (both): depth :math:`L` = number of graph convolutions, the input
(in → hidden) and output (hidden → out) ones included; :math:`L = 1` is one in → out
convolution, :math:`L = 2` is input + output, and :math:`L - 2` hidden layers follow the input
one. Dropout with probability ``dropout`` is applied to the input of the convolutions selected by
``dropout_layers`` (``all``; ``io``: first and last only; ``nodenorm``: the second layer's input
and the logits, as the NodeNorm code; ``hidden``: all
but the first, never on the input features, as DropEdge's ``mutigcn``).

Seed axis: one model holds S seeds. Seed ``s`` of layer ``l`` has the weights of a
PyG ``GCNConv``: :math:`W^{(l)}_s` (``lin.weight`` transposed, ``[d_in, d_out]``) and
:math:`b^{(l)}_s`, stacked into ``weight [S, d_in, d_out]`` and ``bias [S, d_out]``
(:class:`gdepth.models.gcn_tricks.SeedGCNConv`, drawn as ``GCNConv`` draws them). With ``H`` of
shape ``[N, S, d]`` (seed s is ``H[:, s]``) one layer is, for all seeds at once,

.. math::
    Z_s = \mathrm{drop}_s(H_s)\,W_s \quad(\texttt{bmm}), \qquad
    [\hat{A} Z_1 | \dots | \hat{A} Z_S] = \hat{A}\,[Z_1 | \dots | Z_S] \quad
    (\text{one sparse product } [N, N] \times [N, S{\cdot}d]), \qquad
    H'_s = \sigma(\mathrm{norm}(\hat{A} Z_s + b_s)) \;(+\,H_s \text{ in a gcn\_res block})

in the order ``GCNConv`` computes it (transform, then propagate, then bias), so each seed's
numbers equal a PyG ``GCNConv`` stack's up to float rounding. The sparse product is
:class:`gdepth.nn.propagation.Propagation` (``embedding_bag`` on CPU, ``torch.sparse.mm`` on
GPU); the first layer multiplies the shared input features X (sparse CSR where sparse) by
:class:`gdepth.nn.kernels.StackedInput`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gdepth.config import GCNConfig, ModelConfig, NormConfig
from gdepth.models import common
from gdepth.models.fully_adjacent import FullyAdjacentLast
from gdepth.models.gcn_tricks import (
    TRICKS_CONVENTION,
    SeedGCNConv,
    TricksGCN,
    identity_mapped,
    norm_weights,
)
from gdepth.nn.dropout import MaskFn, keep_mask, stacked_dropout
from gdepth.nn.kernels import StackedInput, StackedNorm
from gdepth.nn.propagation import Propagation
from gdepth.nn.seed_major import seed_major_layer
from gdepth.norms import build_seeded_norm

GCN_CONVENTION = (
    "depth L = number of GCNConv layers, input (in->hidden) and output (hidden->out) included "
    "(Kipf & Welling 2017); L=1 is one in->out conv; each conv but the last is followed by "
    "norm -> activation; " + TRICKS_CONVENTION
)
GCN_RES_CONVENTION = (
    "depth L = number of GCNConv layers, input and output included (NodeNorm code num_layers); "
    "input conv -> norm -> act, then L-2 residual blocks x = act(norm(conv(x))) + x, "
    "then the output conv; L=1 is one in->out conv"
)


class GCN(FullyAdjacentLast, nn.Module):
    r"""``depth`` GCN layers on a normalized adjacency for S seeds (see the module docstring):
    ``forward(x_in, adj) -> [N, S, out_dim]``, ``x_in`` the
    :class:`gdepth.nn.kernels.StackedInput` of the shared features, ``adj`` the cached
    :class:`gdepth.nn.propagation.Propagation`.

    Args:
        in_dim: input features.
        hidden: hidden width.
        out_dim: output features (classes).
        depth: number of graph convolutions, >= 1.
        num_seeds: S. (default: ``1``)
        norm_cfg: ``norm`` config for :func:`gdepth.norms.build_seeded_norm`, one norm after
            each convolution but the last; ``None`` for none. (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"``, ``"hidden"`` or ``"nodenorm"``. (default: ``"all"``)
        identity_mapping: GCNII's identity mapping on the hidden → hidden convolutions,
            :math:`\beta_l(\hat{A}H)W + (1-\beta_l)\hat{A}H`, :math:`\beta_l =
            \log(\lambda/l + 1)` with l the layer's 1-based index (Bag of Tricks'
            ``IdentityMapping``). (default: ``False``)
        lamda: :math:`\lambda`. (default: ``0.5``)
        fully_adjacent_last: the output convolution runs on each instance's complete graph, the
            instance mean :math:`\frac{1}{n}\sum_{u \in I(v)} (H W)_u + b`
            (:mod:`gdepth.models.fully_adjacent`; Alon & Yahav 2021 §4). (default: ``False``)
    """

    residual = False
    layer_outputs = True  # calls common.tap (input, each layer, logits)
    # activation checkpointing (``activation_checkpointing=true``, set through
    # :func:`gdepth.models.checkpoint_layers`): each layer but the output one keeps only its
    # input for the backward pass and recomputes the rest there (torch.utils.checkpoint, which
    # restores the RNG state, so the dropout masks and the gradients are the same as without
    # it; an injected ``mask_fn`` is called again in the recomputation)
    checkpoint_layers = False

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        num_seeds: int = 1,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
        identity_mapping: bool = False,
        lamda: float = 0.5,
        fully_adjacent_last: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds, self.hidden = num_seeds, hidden
        self.fully_adjacent_last = bool(fully_adjacent_last)
        dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.convs = nn.ModuleList(SeedGCNConv(num_seeds, a, b) for a, b in pairs)
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.dropout = float(dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, depth, logits=True)
        self.logits_dropout = dropout_layers == common.LOGITS_DROPOUT
        # beta per conv: 1 (plain) unless identity mapping, which needs hidden -> hidden
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping and 0 < i < depth - 1
                      else 1.0 for i in range(depth)]
        self.mask_fn: MaskFn | None = None  # injected dropout masks (tests); None: drawn
        self.layer_sink: Any = None

    def extra_repr(self) -> str:
        logits = ", logits" if self.logits_dropout else ""
        fa = ", fully_adjacent_last=True" if self.fully_adjacent_last else ""
        return f"dropout={self.dropout}, dropout_at={sorted(self.dropout_at)}{logits}{fa}"

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The input convolution's weight and bias (Kipf & Welling decay only those)."""
        return [self.convs[0].weight, self.convs[0].bias]

    def weight_parameters(self) -> list[nn.Parameter]:
        """What the one-seed PyG model named ``*weight*`` (conv weights, the norms' scales),
        in its order; the L1 penalty sums over them."""
        return [*(c.weight for c in self.convs),
                *(w for norm in self.norms for w in norm_weights(norm))]

    def _p(self, layer: int) -> float:
        return self.dropout if self.training and layer in self.dropout_at else 0.0

    def _p_logits(self) -> float:
        return self.dropout if self.training else 0.0

    def _seed_major_applies(self) -> bool:
        return (type(self.act) is nn.ReLU and all(type(n) is StackedNorm for n in self.norms)
                and all(beta == 1.0 for beta in self.betas))

    def _mask(self, shape: tuple[int, int, int], layer: int) -> Tensor | None:
        """Seed ``s``'s dropout mask at ``[s]`` of a seed-major ``[S, N, d]`` mask."""
        p = self._p(layer)
        if p == 0.0:
            return None
        weight = self.convs[0].weight
        if self.mask_fn is not None:
            return self.mask_fn(shape[1:], p).to(weight.dtype)
        return keep_mask(torch.empty(shape, dtype=weight.dtype, device=weight.device), p)

    def _first(self, x_in: StackedInput, adj: Propagation, relu: bool) -> Tensor:
        """The input convolution ``[N, S, d]`` (with ReLU: the seed-major path's first layer)."""
        conv = self.convs[0]
        z = x_in(conv.weight, self._p(0), self.mask_fn)
        n, s, d = z.shape
        # a fresh tensor no backward needs: add the bias (and ReLU) in place
        out = adj(z.reshape(n, s * d)).view(n, s, d).add_(conv.bias)
        return out.relu_() if relu else out

    def _layer(self, h: Tensor | None, x_in: StackedInput, adj: Propagation, i: int) -> Tensor:
        """Layer ``i`` but the output one, before the residual: act(norm(conv(drop(h))))."""
        if i == 0:
            out = self._first(x_in, adj, relu=False)
        else:
            out = identity_mapped(self.convs[i], stacked_dropout(h, self._p(i), True,
                                                                 self.mask_fn),
                                  adj, self.betas[i])
        norm = self.norms[i]
        if type(norm) is StackedNorm and type(self.act) is nn.ReLU:
            return out.relu_()
        return self.act(norm(out))

    def _recompute(self) -> bool:
        return self.checkpoint_layers and self.training and torch.is_grad_enabled()

    def _forward_seed_major(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        """The same network with norm ``none``, ReLU and no identity mapping, hidden layers
        seed-major."""
        if self._recompute():
            first = checkpoint(self._first, x_in, adj, True, use_reentrant=False)
        else:
            first = self._first(x_in, adj, relu=True)
        common.tap(self, first)
        n, s, _ = first.shape
        h = first.transpose(0, 1).contiguous()  # [S, N, d]: one copy per forward
        blocks = adj.block_diagonal(s)
        last = len(self.convs) - 1
        for i in range(1, last):
            if self._recompute():
                h = checkpoint(self._seed_major_hidden, h, blocks, i, use_reentrant=False)
            else:
                h = self._seed_major_hidden(h, blocks, i)
            common.tap(self, h.transpose(0, 1))
        mask = self._mask(tuple(h.shape), last)
        x = h if mask is None else h * mask
        conv = self.convs[last]
        if self.fully_adjacent_last:  # the output conv on each instance's complete graph
            blocks = self.complete_graph(first).block_diagonal(s)
        out = blocks(torch.bmm(x, conv.weight).view(s * n, -1))
        return (out.view(s, n, -1) + conv.bias[:, None]).transpose(0, 1)

    def _seed_major_hidden(self, h: Tensor, blocks: Propagation, i: int) -> Tensor:
        conv = self.convs[i]
        return seed_major_layer(h, self._mask(tuple(h.shape), i), conv.weight, conv.bias,
                                blocks, self.residual)

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` of the S seeds (``[R, S, out_dim]`` for ``rows``)."""
        common.tap(self, x_in.x)
        if len(self.convs) > 2 and self._seed_major_applies():
            out = self._forward_seed_major(x_in, adj)
        else:
            out = self._forward_node_major(x_in, adj)
        if self.logits_dropout:  # NodeNorm's placement: dropout on the logits too
            out = stacked_dropout(out, self._p_logits(), True, self.mask_fn)
        out = common.tap(self, out)
        return out if rows is None else out[rows]

    def _forward_node_major(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        last = len(self.convs) - 1
        if last == 0:
            return self._first(x_in, self.last_propagation(adj, x_in.x), relu=False)
        h: Tensor | None = None
        for i in range(last):
            if self._recompute():
                new = checkpoint(self._layer, h, x_in, adj, i, use_reentrant=False)
            else:
                new = self._layer(h, x_in, adj, i)
            h = common.tap(self, new + h if self.residual and h is not None else new)
        return identity_mapped(self.convs[last],
                               stacked_dropout(h, self._p(last), True, self.mask_fn),
                               self.last_propagation(adj, h), self.betas[last])


class GCNRes(GCN):
    """GCN-res: :class:`GCN` whose hidden layers (not the input/output ones) are residual."""

    residual = True


def build_gcn(model_cfg: GCNConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
              out_dim: int, num_seeds: int = 1) -> nn.Module:
    """``gcn`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.GCNConfig`:
    hidden, dropout, dropout_layers, activation, fully_adjacent_last, and the tricks skip,
    skip_alpha, identity_mapping, lamda, embedding_dropout). A skip other than ``none`` builds
    :class:`gdepth.models.gcn_tricks.TricksGCN` (no fully-adjacent last layer)."""
    skip = str(model_cfg.skip)
    identity = bool(model_cfg.identity_mapping)
    lamda = float(model_cfg.lamda)
    fully_adjacent = bool(model_cfg.fully_adjacent_last)
    if skip == "none":
        return GCN(in_dim, out_dim=out_dim, depth=depth, num_seeds=num_seeds,
                   identity_mapping=identity, lamda=lamda, fully_adjacent_last=fully_adjacent,
                   **common.model_options(model_cfg, norm_cfg))
    if fully_adjacent:
        raise ValueError(f"model.fully_adjacent_last=true with model.skip={skip}: the Bag-of-"
                         "Tricks GCN has no fully-adjacent last layer; use model.skip=none")
    return TricksGCN(in_dim, out_dim=out_dim, depth=depth, skip=skip, num_seeds=num_seeds,
                     skip_alpha=float(model_cfg.skip_alpha),
                     identity_mapping=identity, lamda=lamda,
                     embedding_dropout=float(model_cfg.embedding_dropout),
                     **common.model_options(model_cfg, norm_cfg))


def build_gcn_res(model_cfg: ModelConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
                  out_dim: int, num_seeds: int = 1) -> GCN:
    """``gcn_res`` for ``num_seeds`` seeds from its config (hidden, dropout, dropout_layers,
    activation, fully_adjacent_last)."""
    return GCNRes(in_dim, out_dim=out_dim, depth=depth, num_seeds=num_seeds,
                  fully_adjacent_last=bool(model_cfg.fully_adjacent_last),
                  **common.model_options(model_cfg, norm_cfg))

