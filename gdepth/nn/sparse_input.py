r"""The first layer on sparse (bag-of-words) features with a dropout mask per seed.

:math:`Y_s = (X \odot M_s)\,W_s` for S seeds, where ``X [N, F]`` is a sparse CSR matrix shared
by the seeds, :math:`M_s` seed s's dropout mask on X's stored values (zeros stay zero: dropout
on a sparse matrix touches only what is stored, :func:`gdepth.models.common.dropout`) and
``W [S, F, d]``. :class:`gdepth.nn.kernels.StackedInput` draws the masks; this module only
multiplies.

Both products are ``F.embedding_bag`` over index arrays made once per feature matrix
(:class:`SparseRows`):

* forward, per seed: bag i = row i's columns, weighted by the masked values:
  :math:`Y_s[i] = \sum_k v^s_{ik}\,W_s[c_{ik}]`;
* backward, per seed: :math:`\partial W_s = (X \odot M_s)^\top G_s`, bag j = the rows that
  store column j, weighted by the same masked values in column order (a permutation made once),
  read from the node-major gradient ``G [N, S, d]`` in place (row ``i·S + s`` of its
  ``[N·S, d]`` view).

Why by hand: ``torch.sparse.mm`` on a per-seed masked CSR matrix (what this replaced) builds
the transposed matrix for the weight gradient again at every step (a sort of the nnz
indices per seed), which made the first layer's backward the largest cost of a training step
of a small model on Cora; autograd's own ``embedding_bag`` backward sorts the indices every
step as well. The arithmetic is the same sums, so the results equal ``torch.sparse.mm``'s to
float rounding (``tests/test_sparse_input.py``; ``benchmarks/first_layer_speed.py`` times
both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class SparseRows:
    """The index arrays of a CSR matrix ``x [N, F]`` for :func:`masked_product`: its columns
    and row offsets (forward bags), and the same entries in column order (backward bags:
    ``perm`` into the stored values, the row of each entry, the column offsets)."""

    def __init__(self, x: Tensor) -> None:
        if x.layout != torch.sparse_csr:
            raise ValueError(f"SparseRows takes a sparse CSR matrix, got layout {x.layout}")
        crow, col = x.crow_indices(), x.col_indices()
        self.shape = (int(x.shape[0]), int(x.shape[1]))
        self.cols, self.offsets = col, crow[:-1]
        row = torch.repeat_interleave(torch.arange(self.shape[0], device=col.device),
                                      crow[1:] - crow[:-1])
        self.perm = torch.argsort(col, stable=True)
        self.rows_t = row[self.perm]
        counts = torch.bincount(col, minlength=self.shape[1])
        self.offsets_t = torch.cumsum(counts, 0) - counts


def masked_product(rows: SparseRows, values: Tensor, weight: Tensor) -> Tensor:
    r""":math:`(X \odot M_s)\,W_s` for every seed: ``values [S, nnz]`` the masked stored values
    of X per seed (:math:`v \odot m_s`), ``weight [S, F, d]``; returns ``[N, S, d]``
    (contiguous). Differentiable in ``weight`` only (the features need no gradient)."""
    return _MaskedProduct.apply(weight, values, rows)


class _MaskedProduct(torch.autograd.Function):
    r"""Forward :math:`Y_s = X_s W_s`, backward :math:`\partial W_s = X_s^\top G_s`, both as
    ``embedding_bag`` per seed (module docstring)."""

    @staticmethod
    def forward(ctx, weight: Tensor, values: Tensor,  # type: ignore[override]
                rows: SparseRows) -> Tensor:
        outs = [F.embedding_bag(rows.cols, weight[s], rows.offsets, mode="sum",
                                per_sample_weights=values[s]) for s in range(weight.shape[0])]
        ctx.save_for_backward(values)
        ctx.rows = rows
        return torch.stack(outs, dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (values,) = ctx.saved_tensors
        rows: SparseRows = ctx.rows
        n, s, d = grad.shape
        flat = grad.contiguous().view(n * s, d)  # row i·S + s: node i of seed s
        base = rows.rows_t * s
        grad_w = torch.stack([
            F.embedding_bag(base + k, flat, rows.offsets_t, mode="sum",
                            per_sample_weights=values[k][rows.perm]) for k in range(s)])
        return grad_w, None, None
