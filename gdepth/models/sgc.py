r"""SGC: :math:`K` weightless propagations of the features, then one linear layer.

Wu, Souza, Zhang, Fifty, Yu and Weinberger, "Simplifying Graph Convolutional Networks", ICML
2019, arXiv 1902.07153, https://arxiv.org/abs/1902.07153:

.. math::
    \text{logits} = \hat{A}^{K} X\, W + b,
    \qquad \hat{A} = \tilde{D}^{-1/2}(A + I)\tilde{D}^{-1/2}

the same computation as PyG's ``SGConv(K=K)`` (``bias=False``: without :math:`b`, as
``SGConv(bias=False)``). Depth convention: depth :math:`K` = number of
propagation steps; the model is linear and has no hidden layer (``hidden``, ``activation`` and
``dropout_layers`` are ignored). Dropout with probability ``dropout`` is applied to
:math:`\hat{A}^K X` before the linear layer (the paper uses none: ``configs/model/sgc.yaml`` sets
0).

Caching: :math:`\hat{A}^K X` is fixed per dataset, so it is computed once, without autograd, and
kept on the module (not in its ``state_dict``) together with the ``x`` and ``adj`` tensors it
was computed from. Later calls with the very same tensor objects (identity, and for ``x`` its
in-place version counter) reuse it, in train and eval mode alike, so an epoch costs one linear
layer instead of :math:`K` sparse products. A different ``x`` or ``adj`` recomputes it; an ``x``
that requires grad (e.g. a Jacobian diagnostic) is propagated afresh with autograd and not
cached. Sparse CSR features are densified for the propagation, since :math:`\hat{A}^K X` is
dense after a few steps anyway.

Norm: SGC has no hidden representation to normalize, so any ``norm`` other than ``none`` is an
error.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.models import common
from gdepth.options import option

SGC_CONVENTION = (
    "depth K = number of propagation steps in logits = A^K X W (Wu et al. 2019); linear, no "
    "hidden layer; A^K X computed once per (x, adj) and cached"
)


def propagate_features(x: Tensor, adj: Tensor, steps: int) -> Tensor:
    """:math:`\\hat{A}^{steps} X` as a dense ``[N, F]`` tensor (``x`` dense or sparse CSR).

    A CSR ``adj`` on CPU multiplies as ``F.embedding_bag`` over its rows (bag i = row i's
    columns weighted by its values; the same sums as ``torch.sparse.mm``, as
    :class:`gdepth.nn.kernels.Propagation`): 1.8x faster for Cora's 32 steps of 1,433
    columns (``benchmarks/sgc_speed.py``). With autograd (``x`` requires grad):
    ``torch.sparse.mm``.
    """
    h = x.to_dense() if x.layout != torch.strided else x
    if adj.device.type != "cpu" or adj.layout != torch.sparse_csr or h.requires_grad:
        for _ in range(steps):
            h = torch.sparse.mm(adj, h)
        return h
    cols, offsets, values = adj.col_indices(), adj.crow_indices()[:-1], adj.values()
    for _ in range(steps):
        h = F.embedding_bag(cols, h, offsets, mode="sum", per_sample_weights=values)
    return h


class SGC(nn.Module):
    """``logits = Â^depth X W + b`` with the propagated features cached (module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        out_dim: output features (classes).
        depth: number of propagation steps :math:`K`, >= 1.
        dropout: dropout probability on :math:`\\hat{A}^K X`. (default: ``0.0``)
        bias: learn the additive bias :math:`b`. (default: ``True``)
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.lin = nn.Linear(in_dim, out_dim, bias=bias)
        self.steps = depth
        self.dropout = float(dropout)
        self._cache: tuple[Tensor, Tensor, int, Tensor] | None = None

    def features(self, x: Tensor, adj: Tensor) -> Tensor:
        """:math:`\\hat{A}^K X`, from the cache when ``x`` and ``adj`` are the cached ones."""
        if x.requires_grad:
            return propagate_features(x, adj, self.steps)
        cache = self._cache
        if cache is not None and cache[0] is x and cache[1] is adj and cache[2] == x._version:
            return cache[3]
        with torch.no_grad():
            ax = propagate_features(x, adj, self.steps)
        self._cache = (x, adj, x._version, ax)
        return ax

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        h = common.dropout(self.features(x, adj), self.dropout, self.training)
        return self.lin(h)

    def extra_repr(self) -> str:
        return (f"K={self.steps}, dropout={self.dropout}, bias={self.lin.bias is not None}, "
                f"cached={self._cache is not None}")


def build_sgc(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> SGC:
    """``sgc`` from a ``model`` config: keys dropout (0.0 here; the YAML also sets 0) and bias
    (true)."""
    norm = "none" if norm_cfg is None else option(norm_cfg, "name", "none")
    if norm != "none":
        raise ValueError(
            f"model sgc has no hidden layer to normalize; got norm '{norm}', use norm=none"
        )
    return SGC(in_dim, out_dim, depth, dropout=float(option(model_cfg, "dropout", 0.0)),
               bias=bool(option(model_cfg, "bias", True)))
