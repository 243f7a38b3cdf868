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

Seed axis (:mod:`gdepth.nn.seeds`): the model holds S seeds, ``W [S, F, C]`` and ``b [S, C]``
(:class:`gdepth.nn.seeds.SeedLinear`, drawn as the one-seed model's ``torch.nn.Linear``):
:math:`\text{logits}_s = \mathrm{drop}_s(\hat{A}^K X)\,W_s + b_s`. :math:`\hat{A}^K X` is the
same for every seed, so an epoch is one product :math:`\hat{A}^K X\,[W_1|\dots|W_S]` for all
seeds (without dropout; with dropout each seed's masked copy), by :func:`precomputed_product`.

Row-wise (``rowwise``, :mod:`gdepth.engine.fit`): node i's logits read row i of
:math:`\hat{A}^K X` alone, so the training loop asks for the rows its loss or metrics read
(``forward(..., rows=index)``). That is where the time goes otherwise: :math:`\hat{A}^K X` is
dense ``[N, F]`` (Cora: 2,708 × 1,433) even where X is sparse, and every epoch multiplies it
three times (training forward, weight gradient, evaluation) and, with dropout, masks S copies
of it, while APPNP at the same depth multiplies the sparse X once and propagates only
``[N, S·C]``. The rows' features are gathered once per row set and cached with the features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.config import NormConfig, SGCConfig
from gdepth.models.mlp import no_first_layer
from gdepth.nn.dropout import MaskFn, keep_mask
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear

SGC_CONVENTION = (
    "depth K = number of propagation steps in logits = A^K X W (Wu et al. 2019); linear, no "
    "hidden layer; A^K X computed once per (x, adj) and cached"
)

# With dropout every seed multiplies its own masked copy of the dense [N, F] features: refuse
# (NotBatchable: fewer seeds per batch) past this many bytes of copies, for S > 1.
MAX_MASKED_BYTES = 2 << 30


def propagate_features(x: Tensor, adj: Tensor, steps: int) -> Tensor:
    """:math:`\\hat{A}^{steps} X` as a dense ``[N, F]`` tensor (``x`` dense or sparse CSR).

    A CSR ``adj`` on CPU multiplies as ``F.embedding_bag`` over its rows (bag i = row i's
    columns weighted by its values; the same sums as ``torch.sparse.mm``, as
    :class:`gdepth.nn.propagation.Propagation`; ``benchmarks/sgc_speed.py`` times it against
    ``torch.sparse.mm``). With autograd (``x`` requires grad):
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


def precomputed_product(x: Tensor, weight: Tensor, mask: Tensor | None = None) -> Tensor:
    r""":math:`(X \odot M_s)\,W_s` for every seed: ``x [N, F]`` dense features shared by the
    seeds (SGC's :math:`\hat{A}^K X`, SIGN's hops), ``weight [S, F, d]``, ``mask [S, N, F]`` the
    seeds' dropout masks (``None``: no dropout); returns ``[N, S, d]``.

    The same numbers as ``StackedInput``'s product through autograd, with both products in the
    layout this CPU's BLAS reads fastest: the forward with the weight transposed to ``[S, d,
    F]`` (a copy of the small weight), the weight gradient as :math:`G_s^\top X_s` (``[d, F]``)
    instead of autograd's :math:`X_s^\top G_s`. Why by hand: a dense ``[N, F] @ [F, d]`` product
    with a narrow ``d`` (the classes) and its gradient are slow in autograd's layouts
    (``benchmarks/sgc_speed.py`` times the SGC cell).
    """
    return _PrecomputedProduct.apply(x, weight, mask)


class _PrecomputedProduct(torch.autograd.Function):
    r"""Forward :math:`Y_s = X_s W_s` with :math:`X_s = X \odot M_s` (or X); backward with
    :math:`G_s = \partial L/\partial Y_s`: :math:`\partial W_s = (G_s^\top X_s)^\top`,
    :math:`\partial X = \sum_s (G_s W_s^\top) \odot M_s`."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor,  # type: ignore[override]
                mask: Tensor | None) -> Tensor:
        s, f, d = weight.shape
        n = x.shape[0]
        wt = weight.transpose(1, 2).contiguous()  # [S, d, F]
        if mask is None:
            out = (x @ wt.view(s * d, f).t()).view(n, s, d)
            ctx.save_for_backward(x, wt)
        else:
            xs = x * mask  # [S, N, F]
            out = torch.bmm(xs, wt.transpose(1, 2)).transpose(0, 1).contiguous()
            ctx.save_for_backward(xs, wt, mask)
        ctx.masked = mask is not None
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        n, s, d = grad.shape
        grad_x = grad_w = None
        if not ctx.masked:
            x, wt = ctx.saved_tensors
            flat = grad.reshape(n, s * d)
            if ctx.needs_input_grad[1]:
                grad_w = (flat.t() @ x).view(s, d, -1).transpose(1, 2)
            if ctx.needs_input_grad[0]:
                grad_x = flat @ wt.view(s * d, -1)
            return grad_x, grad_w, None
        xs, wt, mask = ctx.saved_tensors
        per_seed = grad.transpose(0, 1)  # [S, N, d]
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(per_seed.transpose(1, 2), xs).transpose(1, 2)
        if ctx.needs_input_grad[0]:
            grad_x = (torch.bmm(per_seed, wt) * mask).sum(dim=0)
        return grad_x, grad_w, None


class SGC(nn.Module):
    """``logits = Â^depth X W + b`` for S seeds with the propagated features cached (module
    docstring). ``forward(x_in, adj, rows=None)`` returns logits ``[N, S, out_dim]`` (``[R, S,
    out_dim]`` of the nodes ``rows``).

    Args:
        in_dim: input features (dense or sparse CSR).
        out_dim: output features (classes).
        depth: number of propagation steps :math:`K`, >= 1.
        dropout: dropout probability on :math:`\\hat{A}^K X`. (default: ``0.0``)
        bias: learn the additive bias :math:`b`. (default: ``True``)
        num_seeds: S. (default: ``1``)
    """

    rowwise = True  # logits of node i from row i of the fixed features alone

    def __init__(self, in_dim: int, out_dim: int, depth: int, dropout: float = 0.0,
                 bias: bool = True, num_seeds: int = 1) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds = num_seeds
        self.lin = SeedLinear(num_seeds, in_dim, out_dim, bias=bias, init="kaiming")
        self.steps = depth
        self.dropout = float(dropout)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        # (x, adj, x's version, Â^K X, {id(rows): (rows, those rows of Â^K X)})
        self._cache: tuple[Tensor, Tensor, int, Tensor, dict[Any, Any]] | None = None

    def __getstate__(self) -> dict[str, Any]:  # copies (select_seeds, pickling): no cache
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """SGC has no ``first_layer()`` (its one layer is the output)."""
        raise no_first_layer("SGC")

    def weight_parameters(self) -> list[nn.Parameter]:
        """``lin.weight``."""
        return [self.lin.weight]

    def propagated(self, x: Tensor, adj: Tensor) -> Tensor:
        """:math:`\\hat{A}^K X` ``[N, F]``, from the cache when ``x`` and ``adj`` are the cached
        ones (identity, and ``x``'s in-place version counter); an ``x`` that requires grad (a
        Jacobian diagnostic) is propagated afresh with autograd and not cached."""
        if x.requires_grad:
            return propagate_features(x, adj, self.steps)
        return self._cached(x, adj)[3]

    def cache_bytes(self, x: Tensor, adj: Tensor) -> int:
        """Bytes the cached :math:`\\hat{A}^K X` (dense ``[N, F]``) will hold for ``x``, shared
        by every seed of a batch."""
        return x.size(0) * x.size(1) * x.element_size()

    def _cached(self, x: Tensor, adj: Tensor) -> tuple[Tensor, Tensor, int, Tensor, dict]:
        cache = self._cache
        if cache is None or cache[0] is not x or cache[1] is not adj or cache[2] != x._version:
            self._cache = None  # free the old features before computing the new ones
            with torch.no_grad():
                cache = (x, adj, x._version, propagate_features(x, adj, self.steps), {})
            self._cache = cache
        return cache

    def features(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                 ) -> Tensor:
        r""":math:`\hat{A}^K X` (its ``rows`` only, if given), the shared input of the seeds'
        linear layers, cached per ``x`` and adjacency (:meth:`propagated`) and per row set
        (the same ``rows`` tensor)."""
        x, a = x_in.x, adj.adj
        if x.requires_grad:
            ax = propagate_features(x, a, self.steps)
            return ax if rows is None else ax[rows]
        kept = self._cached(x, a)[4]
        key = None if rows is None else id(rows)
        if key not in kept or kept[key][0] is not rows:
            if len(kept) >= 8:  # row sets of earlier fits
                kept.clear()
            ax = self._cache[3]
            kept[key] = (rows, ax if rows is None else ax[rows])
        return kept[key][1]

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, C]``, or ``[R, S, C]`` of the nodes ``rows [R]``."""
        feats = self.features(x_in, adj, rows)
        p = self.dropout if self.training else 0.0
        mask = None
        if p > 0.0:
            if self.num_seeds > 1 and self.num_seeds * feats.numel() * feats.element_size() \
                    > MAX_MASKED_BYTES:
                raise NotBatchable(f"sgc dropout {p}: {self.num_seeds} masked copies of the "
                                   f"{tuple(feats.shape)} propagated features exceed "
                                   f"{MAX_MASKED_BYTES >> 30} GiB")
            if self.mask_fn is None:
                mask = keep_mask(feats.expand(self.num_seeds, *feats.shape), p)
            else:
                mask_fn = (self.mask_fn if rows is None
                           else _rows_of(self.mask_fn, x_in.x.shape[0], rows))
                mask = mask_fn(tuple(feats.shape), p).to(feats.dtype)
        out = precomputed_product(feats, self.lin.weight, mask)
        return out + self.lin.bias if self.lin.bias is not None else out

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, K={self.steps}, dropout={self.dropout}, "
                f"bias={self.lin.bias is not None}, cached={self._cache is not None}")


def _rows_of(mask_fn: MaskFn, n: int, rows: Tensor) -> MaskFn:
    """Injected masks are drawn for all ``n`` nodes (tests replay the full forward's draws):
    keep the rows' ones."""
    def masks(shape: tuple[int, ...], p: float) -> Tensor:
        return mask_fn((n, *shape[1:]), p)[..., rows, :]

    return masks


def build_sgc(model_cfg: SGCConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
              out_dim: int, num_seeds: int = 1) -> SGC:
    """``sgc`` from its config (:class:`gdepth.config.SGCConfig`: dropout, bias)."""
    norm = "none" if norm_cfg is None else norm_cfg.name
    if norm != "none":
        raise ValueError(
            f"model sgc has no hidden layer to normalize; got norm '{norm}', use norm=none"
        )
    return SGC(in_dim, out_dim, depth, dropout=float(model_cfg.dropout),
               bias=bool(model_cfg.bias), num_seeds=num_seeds)
