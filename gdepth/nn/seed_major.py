r"""One hidden ``gcn`` / ``gcn_res`` layer for all seeds in the seed-major layout, forward and
backward by hand (Kipf and Welling, "Semi-Supervised Classification with Graph Convolutional
Networks", ICLR 2017, arXiv 1609.02907; the residual block of GCN-res, Zhou et al., CIKM 2021,
arXiv 2006.07107):

.. math::
    H'_s = \mathrm{ReLU}\big(\hat{A}\,(\mathrm{drop}_s(H_s)\, W_s) + b_s\big)\;(+\,H_s)

:class:`gdepth.models.gcn.GCN` calls it for its hidden layers when their norm is ``none`` and
their activation ReLU; its module docstring gives the seed axis and the layer in full.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdepth.nn.propagation import Propagation


def seed_major_layer(h: Tensor, mask: Tensor | None, weight: Tensor, bias: Tensor,
                     blocks: Propagation, residual: bool) -> Tensor:
    r"""One hidden ``gcn`` / ``gcn_res`` layer (norm ``none``, ReLU) for all seeds, seed-major:
    ``h [S, N, d]`` contiguous, ``mask`` the dropout mask (``None``: none), ``blocks`` the
    block-diagonal :math:`I_S \otimes \hat{A}`; returns
    :math:`\mathrm{ReLU}(\hat{A}(\mathrm{drop}_s(H_s) W_s) + b_s)\;(+\,H_s)` as ``[S, N, d]``.

    Why by hand (:class:`_SeedMajorLayer`): the layer's products in the layout their kernels
    read fastest (``bmm`` on contiguous seed-major operands rather than node-major strides),
    the ReLU and the residual sum in place, the
    backward's ReLU gate from a saved boolean mask and its residual gradient fused into the
    dropout's (``addcmul``): fewer passes over ``[S, N, d]`` tensors, which is what a deep
    layer's time is spent on here. No torch or PyG op fuses these.
    """
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    out = _SeedMajorLayer.apply(h, mask, weight, bias, blocks, residual, need_grad)
    return out.view(h.shape[0], h.shape[1], -1)


class _SeedMajorLayer(torch.autograd.Function):
    r"""Forward: :math:`X = H \odot M`, :math:`Z_s = X_s W_s`, :math:`P = (I_S \otimes
    \hat{A}) Z + b`, :math:`Y = \mathrm{ReLU}(P)\,(+\,H)`. Backward with :math:`G =
    \partial L/\partial Y`: :math:`G^P = G \odot [P > 0]`, :math:`\partial b_s = \sum_i
    G^P_{si}`, :math:`G^Z = (I_S \otimes \hat{A})^\top G^P`, :math:`\partial W_s = X_s^\top
    G^Z_s`, :math:`\partial H = (G^Z W^\top) \odot M\,(+\,G)`. Returns the flat
    ``[S·N, d]`` output (a view made inside a custom Function could not be viewed in place)."""

    @staticmethod
    def forward(ctx, h: Tensor, mask: Tensor | None, weight: Tensor,  # type: ignore[override]
                bias: Tensor, blocks: Propagation, residual: bool, need_grad: bool) -> Tensor:
        s, n, _ = h.shape
        x = h if mask is None else h * mask
        out = blocks.product(torch.bmm(x, weight).view(s * n, -1))
        out.view(s, n, -1).add_(bias[:, None]).relu_()
        if need_grad:
            ctx.save_for_backward(x, mask, out > 0, weight)
            ctx.blocks, ctx.residual = blocks, residual
        if residual:
            out.add_(h.reshape(s * n, -1))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, mask, positive, weight = ctx.saved_tensors
        s, n, _ = x.shape
        grad = grad.contiguous()
        g_pre = grad * positive
        grad_bias = g_pre.view(s, n, -1).sum(dim=1)
        gz = ctx.blocks.transposed.product(g_pre).view(s, n, -1)
        grad_weight = torch.bmm(x.transpose(1, 2), gz)
        gx = torch.bmm(gz, weight.transpose(1, 2))
        g_res = grad.view(s, n, -1)
        if mask is None:
            grad_h = gx.add_(g_res) if ctx.residual else gx
        else:
            grad_h = torch.addcmul(g_res, gx, mask) if ctx.residual else gx.mul_(mask)
        return grad_h, None, grad_weight, grad_bias, None, None, None
