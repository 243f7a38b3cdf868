r"""Seed-stacked building blocks: S seeds' features side by side as one ``[N, S, d]`` tensor.

Seed ``s`` of a stacked tensor ``H`` of shape ``[N, S, d]`` is ``H[:, s]``, the ``[N, d]``
features one seed's model would hold. Every block here acts on each seed's slice exactly as
the one-seed module it copies from (same formula, same statistics), so S stacked seeds are S
independent runs. The normalizations are seed-native in :mod:`gdepth.norms` (which imports
this module, never the other way).

Dropout is in :mod:`gdepth.nn.dropout`, the graph product in :mod:`gdepth.nn.propagation`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gdepth.nn.dropout import MaskFn, keep_mask
from gdepth.nn.propagation import Propagation
from gdepth.nn.sparse_input import SparseRows, masked_product


class NotBatchable(ValueError):
    """A model, norm or training option the seed-batched engine does not implement."""


def stacked_conv(h: Tensor, weight: Tensor, bias: Tensor, adj: Propagation) -> Tensor:
    r"""One GCN convolution for every seed: :math:`\hat{A}(H_s W_s) + b_s`, ``h [N, S, d_in]``,
    ``weight [S, d_in, d_out]``, ``bias [S, d_out]``; returns ``[N, S, d_out]`` (contiguous).

    The same numbers as ``bmm`` → ``Propagation`` → ``+ bias`` through autograd, computed by
    :class:`_StackedConv` with every operand in the layout its kernel reads: the seed-major
    products write straight into (and read straight from) node-major buffers (BLAS strides),
    instead of the transposed copies and the mixed-stride elementwise ops autograd's graph
    made. Why by hand: no PyG or torch op batches a per-seed weight with a shared sparse
    product, and autograd's graph of it is slower (``benchmarks/models_speed.py`` times the
    models).
    """
    return _StackedConv.apply(h, weight, bias, adj).view(h.shape[0], weight.shape[0], -1)


class _StackedConv(torch.autograd.Function):
    r"""Forward :math:`Z_s = H_s W_s`, :math:`P = \hat{A}[Z_1|\dots|Z_S] + b`. Backward, with
    :math:`G = \partial L/\partial P`: :math:`\partial b_s = \sum_i G_{is}`,
    :math:`G^Z = \hat{A}^\top G`, :math:`\partial W_s = H_s^\top G^Z_s`,
    :math:`\partial H_s = G^Z_s W_s^\top`. Returns the flat ``[N, S·d_out]`` product (a view
    made inside a custom Function could not be modified in place by the caller)."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor,  # type: ignore[override]
                adj: Propagation) -> Tensor:
        n, s = h.shape[0], weight.shape[0]
        d_out = weight.shape[2]
        z = h.new_empty(n, s, d_out)
        torch.bmm(h.transpose(0, 1), weight, out=z.transpose(0, 1))
        out = adj.product(z.view(n, s * d_out))
        out.view(n, s, d_out).add_(bias)
        ctx.save_for_backward(h, weight)
        ctx.adj = adj
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        h, weight = ctx.saved_tensors
        n, s = h.shape[0], weight.shape[0]
        grad = grad.contiguous()
        grad_bias = grad.view(n, s, -1).sum(dim=0) if ctx.needs_input_grad[2] else None
        gz = ctx.adj.transposed.product(grad).view(n, s, -1)
        grad_weight = (torch.bmm(h.transpose(0, 1).transpose(1, 2), gz.transpose(0, 1))
                       if ctx.needs_input_grad[1] else None)
        grad_h = None
        if ctx.needs_input_grad[0]:
            grad_h = h.new_empty(h.shape)
            torch.bmm(gz.transpose(0, 1), weight.transpose(1, 2), out=grad_h.transpose(0, 1))
        return grad_h, grad_weight, grad_bias, None


class StackedInput(nn.Module):
    r"""The first layer's product :math:`\mathrm{drop}_s(X)\,W_s` for every seed.

    ``X [N, F]`` is shared by the seeds, dense or sparse CSR. Without dropout (eval, or no
    dropout at layer 0) all seeds are one product :math:`X\,[W_1 | \dots | W_S]` (one SpMM
    ``[N, F] @ [F, S·d]`` when X is sparse). With dropout each seed has its own mask on X:

    * sparse X: the mask acts on the stored values only (zeros stay zero; as
      :func:`gdepth.models.common.dropout`), one ``[S, nnz]`` draw for all seeds; on CPU the
      products are :func:`gdepth.nn.sparse_input.masked_product` (``embedding_bag`` over
      index arrays made once, forward and backward), elsewhere one SpMM per seed,
      ``X_s @ W_s``.
    * dense X: ``[S, N, F]`` masked copies and one ``bmm`` with ``W [S, F, d]``.

    Which features are stored sparse is the cell's choice
    (:data:`gdepth.cell.graphs.SPARSE_DENSITY`).

    Returns ``[N, S, d]`` (before the bias and the propagation).
    """

    def __init__(self, x: Tensor) -> None:
        super().__init__()
        self.x = x
        self.sparse = x.layout == torch.sparse_csr
        if self.sparse:
            self.crow, self.col, self.values = x.crow_indices(), x.col_indices(), x.values()
            self.product = Propagation(x)
            self._rows: SparseRows | None = None  # made at the first masked product

    def rows(self) -> SparseRows | None:
        """The index arrays of :func:`masked_product` (made once), ``None`` off the CPU."""
        if self._rows is None and self.x.device.type == "cpu":
            self._rows = SparseRows(self.x)
        return self._rows

    def forward(self, weight: Tensor, p: float, mask_fn: MaskFn | None) -> Tensor:
        """``weight [S, F, d]``; ``p`` the dropout on X (0: none)."""
        s, f, d = weight.shape
        n = self.x.shape[0]
        if p == 0.0:  # one product for all seeds: X @ [W_1 | ... | W_S]
            flat = weight.permute(1, 0, 2).reshape(f, s * d)
            out = self.product(flat) if self.sparse else self.x @ flat
            return out.view(n, s, d)
        if self.sparse:
            shape = tuple(self.values.shape)
            masks = (mask_fn(shape, p) if mask_fn is not None else
                     keep_mask(self.values.expand(s, *shape), p))
            rows = self.rows()
            if rows is not None:
                return masked_product(rows, (self.values * masks).to(weight.dtype), weight)
            outs = [torch.sparse.mm(torch.sparse_csr_tensor(
                self.crow, self.col, self.values * masks[i], (n, f)), weight[i])
                for i in range(s)]
            return torch.stack(outs, dim=1)
        if mask_fn is None:
            xs = self.x * keep_mask(self.x.expand(s, n, f), p)
        else:
            xs = self.x * mask_fn((n, f), p).to(self.x.dtype)
        return torch.bmm(xs, weight).transpose(0, 1)


class StackedNorm(nn.Module):
    """The seed-native ``none`` norm: the identity on ``h [N, S, d]``
    (:func:`gdepth.norms.build_seeded_norm` returns exactly this type for ``norm=none``, which
    the models' fast paths test with ``type(norm) is StackedNorm``). The other norms are in
    :mod:`gdepth.norms`."""

    def __init__(self, num_seeds: int = 1) -> None:
        super().__init__()
        self.num_seeds = int(num_seeds)

    def forward(self, h: Tensor) -> Tensor:  # identity
        return h

    def weight_parameters(self) -> list[nn.Parameter]:
        return []
