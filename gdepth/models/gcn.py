r"""GCN and GCN-res: stacks of PyG ``GCNConv`` on a precomputed normalized adjacency.

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
``dropout_layers`` (``all``; ``io``: first and last only, as the NodeNorm code; ``hidden``: all
but the first, never on the input features, as DropEdge's ``mutigcn``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn import GCNConv

from gdepth.models import common
from gdepth.models.gcn_tricks import TRICKS_CONVENTION, TricksGCN, identity_mapped
from gdepth.norms import build_norm
from gdepth.options import option

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


class GCN(common.LayerDropout, nn.Module):
    r"""``depth`` GCN layers on a normalized adjacency (see the module docstring).

    Args:
        in_dim: input features.
        hidden: hidden width.
        out_dim: output features (classes).
        depth: number of graph convolutions, >= 1.
        norm_cfg: ``norm`` config for :func:`gdepth.norms.build_norm`, one norm after each
            convolution but the last; ``None`` for none. (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
        identity_mapping: GCNII's identity mapping on the hidden → hidden convolutions,
            :math:`\beta_l(\hat{A}H)W + (1-\beta_l)\hat{A}H`, :math:`\beta_l =
            \log(\lambda/l + 1)` with l the layer's 1-based index (Bag of Tricks'
            ``IdentityMapping``). (default: ``False``)
        lamda: :math:`\lambda`. (default: ``0.5``)
    """

    residual = False
    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
        identity_mapping: bool = False,
        lamda: float = 0.5,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in pairs)
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth)
        # beta per conv: 1 (plain) unless identity mapping, which needs hidden -> hidden
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping and 0 < i < depth - 1
                      else 1.0 for i in range(depth)]

    # activation checkpointing (``activation_checkpointing=true``, set through
    # :func:`gdepth.models.checkpoint_layers`): each hidden layer keeps only its input for the
    # backward pass and recomputes the rest there (torch.utils.checkpoint, which restores the RNG
    # state, so the dropout masks and the gradients are the same as without it)
    checkpoint_layers = False

    def _layer(self, x: Tensor, adj: Tensor, i: int) -> Tensor:
        return self.act(self.norms[i](identity_mapped(self.convs[i], self._drop(x, i), adj,
                                                      self.betas[i])))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        x = common.tap(self, x)
        recompute = self.checkpoint_layers and self.training and torch.is_grad_enabled()
        for i in range(len(self.convs) - 1):
            h = (checkpoint(self._layer, x, adj, i, use_reentrant=False) if recompute
                 else self._layer(x, adj, i))
            x = common.tap(self, h + x if self.residual and i > 0 else h)
        return common.tap(self, self.convs[-1](self._drop(x, len(self.convs) - 1), adj))

    def first_layer(self) -> nn.Module:
        """The input convolution (Kipf & Welling decay only its weights)."""
        return self.convs[0]


class GCNRes(GCN):
    """GCN-res: :class:`GCN` whose hidden layers (not the input/output ones) are residual."""

    residual = True


def _build(
    cls: type[GCN], model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int
) -> GCN:
    return cls(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        **common.model_options(model_cfg, norm_cfg),
    )


def build_gcn(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int
              ) -> nn.Module:
    """``gcn`` from a ``model`` config: keys hidden (64), dropout (0.5), dropout_layers
    ("all"), activation ("relu"), and the tricks skip ("none"), skip_alpha (0.1),
    identity_mapping (False), lamda (0.5), embedding_dropout (0.6). A skip other than
    ``none`` builds :class:`gdepth.models.gcn_tricks.TricksGCN`."""
    skip = str(option(model_cfg, "skip", "none"))
    identity = bool(option(model_cfg, "identity_mapping", False))
    lamda = float(option(model_cfg, "lamda", 0.5))
    if skip == "none":
        return GCN(in_dim, out_dim=out_dim, depth=depth, identity_mapping=identity, lamda=lamda,
                   **common.model_options(model_cfg, norm_cfg))
    return TricksGCN(in_dim, out_dim=out_dim, depth=depth, skip=skip,
                     skip_alpha=float(option(model_cfg, "skip_alpha", 0.1)),
                     identity_mapping=identity, lamda=lamda,
                     embedding_dropout=float(option(model_cfg, "embedding_dropout", 0.6)),
                     **common.model_options(model_cfg, norm_cfg))


def build_gcn_res(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GCN:
    """``gcn_res`` from a ``model`` config, same keys and defaults as :func:`build_gcn`."""
    return _build(GCNRes, model_cfg, norm_cfg, depth, in_dim, out_dim)
