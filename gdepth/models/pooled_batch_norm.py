"""Batch normalization over rows that stand for several nodes each, for the level-wise trees.

:mod:`gdepth.models.bottleneck_trees` stores a level every tree shares as one row and a level of
few distinct values as a table; GIN's BatchNorm in training mode (Ioffe & Szegedy, "Batch
Normalization", ICML 2015, arXiv 1502.03167) must still take its statistics over every node of
the batch, as Alon & Yahav's model does on the whole batch graph. :func:`pooled_batch_norm`
normalizes ``head`` rows (one node each) and ``tail`` rows (``w_j`` nodes each) with the
statistics of all those nodes, and its gradient is autograd's on the nodes, summed per row.
``torch.nn.functional.batch_norm`` has no row weights, hence the hand-written function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PooledBatchNorm(torch.autograd.Function):
    r"""Batch normalization over the rows of ``head`` (a node each) and ``tail`` (row ``j``
    standing for ``w_j`` nodes) with the statistics ``mean``, ``invstd`` of all those nodes,
    given ``out = (head - m_h) σ_h⁻¹`` (``torch.native_batch_norm`` of the head) and ``a, b``
    with ``x̂_head = a · out + b``. The gradient is the one autograd would give on the nodes,
    summed per row (Ioffe & Szegedy 2015, the statistics' dependence on the input included):
    :math:`\partial x_j = \gamma \sigma^{-1} (g_j - w_j (\bar g + \hat x_j
    \overline{g \hat x}))`, :math:`\bar g = \sum_j g_j / N` (a row's ``g`` is already the sum
    over its nodes)."""

    @staticmethod
    def forward(ctx, head: Tensor, tail: Tensor, gamma: Tensor, beta: Tensor, out: Tensor,
                a: Tensor, b: Tensor, mean: Tensor, invstd: Tensor, total: float, w: Tensor
                ) -> tuple[Tensor, Tensor]:
        hat_tail = (tail - mean) * invstd
        ctx.save_for_backward(gamma, invstd, out, a, b, hat_tail, w)
        ctx.total = total
        return (torch.addcmul(b * gamma + beta, out, a * gamma),
                torch.addcmul(beta, hat_tail, gamma))

    @staticmethod
    def backward(ctx, g_head: Tensor, g_tail: Tensor) -> tuple[Tensor | None, ...]:
        gamma, invstd, out, a, b, hat_tail, w = ctx.saved_tensors
        head_sum = g_head.sum(0)
        g_sum = head_sum + g_tail.sum(0)
        gx_sum = a * (g_head * out).sum(0) + b * head_sum + (g_tail * hat_tail).sum(0)
        mean_g, mean_gx, scale = g_sum / ctx.total, gx_sum / ctx.total, gamma * invstd
        d_head = torch.addcmul(-(mean_g + b * mean_gx) * scale, out, -a * mean_gx * scale)
        d_head.add_(g_head * scale)
        d_tail = (g_tail - w[:, None] * torch.addcmul(mean_g, hat_tail, mean_gx)) * scale
        return (d_head, d_tail, gx_sum, g_sum) + (None,) * 7


def pooled_batch_norm(bn: nn.modules.batchnorm._BatchNorm, head: Tensor, tail: Tensor, w: Tensor
                ) -> tuple[Tensor, Tensor]:
    """``bn`` in training mode over every node of the batch: ``head``'s rows one node each,
    ``tail``'s row ``j`` ``w_j`` nodes (:class:`PooledBatchNorm`); the running statistics
    updated as ``bn`` does. The head's statistics are ``torch.native_batch_norm``'s (what
    ``bn`` itself computes, and fast), pooled with the tail's (Chan, Golub & LeVeque 1979)."""
    with torch.no_grad():
        if len(head):
            out, m_h, inv_h = torch.native_batch_norm(head, None, None, None, None, True, 0.0,
                                                      bn.eps)
        else:  # every row stands for several nodes
            out, m_h, inv_h = head, head.new_zeros(head.size(1)), head.new_ones(head.size(1))
        n_h, n_t = float(head.size(0)), float(w.sum())  # counts: exact in float32
        var_h = inv_h.pow(-2) - bn.eps
        m_t = (w[:, None] * tail).sum(0) / max(n_t, 1.0)
        m2_t = (w[:, None] * (tail - m_t) ** 2).sum(0)
        total = n_h + n_t
        mean = (n_h * m_h + n_t * m_t) / total  # pooled: no cancellation (positive terms)
        var = (n_h * var_h + m2_t + n_h * n_t / total * (m_h - m_t) ** 2) / total
        invstd = torch.rsqrt(var + bn.eps)
        a, b = invstd / inv_h, (m_h - mean) * invstd
        if bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                      else bn.momentum)
            bn.running_mean.mul_(1 - factor).add_(factor * mean)
            bn.running_var.mul_(1 - factor).add_(factor * var * (total / max(total - 1, 1)))
    gamma = bn.weight if bn.affine else torch.ones_like(mean)
    beta = bn.bias if bn.affine else torch.zeros_like(mean)
    return PooledBatchNorm.apply(head, tail, gamma, beta, out, a, b, mean, invstd, total, w)
