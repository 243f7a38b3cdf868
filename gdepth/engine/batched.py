r"""S seeds of ``gcn`` / ``gcn_res`` as one model with stacked weights.

Seed ``s`` of layer ``l`` has the weights of the loop model's ``convs[l]``:
:math:`W^{(l)}_s` (``lin.weight`` transposed, ``[d_in, d_out]``) and :math:`b^{(l)}_s`, stacked
into ``weight [S, d_in, d_out]`` and ``bias [S, d_out]``. With ``H`` of shape ``[N, S, d]``
(seed s is ``H[:, s]``) one layer is, for all seeds at once,

.. math::
    Z_s = \mathrm{drop}_s(H_s)\,W_s \quad(\texttt{bmm}), \qquad
    [\hat{A} Z_1 | \dots | \hat{A} Z_S] = \hat{A}\,[Z_1 | \dots | Z_S] \quad
    (\text{one sparse product } [N, N] \times [N, S{\cdot}d]), \qquad
    H'_s = \sigma(\mathrm{norm}(\hat{A} Z_s + b_s)) \;(+\,H_s \text{ in a gcn\_res block})

in the order ``GCNConv`` computes it (transform, then propagate, then bias), so each seed's
numbers equal its loop model's up to float rounding. The sparse product is
:class:`gdepth.nn.kernels.Propagation` (``embedding_bag`` on CPU, ``torch.sparse.mm`` on
GPU); the first layer multiplies the shared input features X (sparse CSR where sparse) by
:class:`gdepth.nn.kernels.StackedInput`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.models.gcn import GCN, GCNRes
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    StackedNorm,
    keep_mask,
    stack_norms,
    stacked_conv,
    stacked_dropout,
)


class StackedGCN(nn.Module):
    """``gcn`` / ``gcn_res`` for S seeds; build with :meth:`from_models`.

    ``forward(x_in, adj)`` returns logits ``[N, S, C]``; ``x_in`` is the
    :class:`StackedInput` of the shared features, made once per dataset.
    """

    def __init__(self, weights: Sequence[Tensor], biases: Sequence[Tensor],
                 norms: Sequence[nn.Module], act: nn.Module, dropout: float,
                 dropout_at: frozenset[int], residual: bool) -> None:
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)
        self.norms = nn.ModuleList(norms)
        self.act = act
        self.dropout = dropout
        self.dropout_at = dropout_at
        self.residual = residual
        self.num_seeds = weights[0].shape[0]
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: F.dropout

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedGCN:
        """Stack the parameters (copies) of S loop models of one architecture.

        Raises :class:`NotBatchable` for anything but plain :class:`GCN` / ``GCNRes``
        (identity mapping and the Bag-of-Tricks skips are not batched yet).
        """
        first = loop_models[0]
        if type(first) not in (GCN, GCNRes) or any(
                type(m) is not type(first) for m in loop_models):
            raise NotBatchable(f"model {type(first).__name__} is not seed-batched yet")
        if any(beta != 1.0 for beta in first.betas):
            raise NotBatchable("identity_mapping is not seed-batched yet")
        depth = len(first.convs)
        weights = [torch.stack([m.convs[i].lin.weight.detach().t() for m in loop_models])
                   .contiguous() for i in range(depth)]
        biases = [torch.stack([m.convs[i].bias.detach() for m in loop_models]).clone()
                  for i in range(depth)]
        norms = [stack_norms([m.norms[i] for m in loop_models]) for i in range(depth - 1)]
        return cls(weights, biases, norms, first.act, first.dropout, first.dropout_at,
                   first.residual)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The input convolution's weight and bias (Kipf & Welling decay only those)."""
        return [self.weights[0], self.biases[0]]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (conv weights, BatchNorm's
        scale), in the same per-seed order; the L1 penalty sums over them."""
        norm_weights = [n.weight for n in self.norms if hasattr(n, "weight")]
        return [*self.weights, *norm_weights]

    def _p(self, layer: int) -> float:
        return self.dropout if self.training and layer in self.dropout_at else 0.0

    def _seed_major_applies(self) -> bool:
        return type(self.act) is nn.ReLU and all(type(n) is StackedNorm for n in self.norms)

    def _mask(self, shape: tuple[int, int, int], layer: int) -> Tensor | None:
        """Seed ``s``'s dropout mask at ``[s]`` of a seed-major ``[S, N, d]`` mask."""
        p = self._p(layer)
        if p == 0.0:
            return None
        if self.mask_fn is not None:
            return self.mask_fn(shape[1:], p).to(self.weights[0].dtype)
        return keep_mask(torch.empty(shape, dtype=self.weights[0].dtype,
                                     device=self.weights[0].device), p)

    def _forward_seed_major(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        """The same network with norm ``none`` and ReLU, hidden layers seed-major."""
        z = x_in(self.weights[0], self._p(0), self.mask_fn)
        n, s, d = z.shape
        first = adj(z.reshape(n, s * d)).view(n, s, d).add_(self.biases[0]).relu_()
        h = first.transpose(0, 1).contiguous()  # [S, N, d]: one copy per forward
        blocks = adj.block_diagonal(s)
        last = len(self.weights) - 1
        for i in range(1, last):
            mask = self._mask(tuple(h.shape), i)
            h = seed_major_layer(h, mask, self.weights[i], self.biases[i], blocks,
                                 self.residual)
        mask = self._mask(tuple(h.shape), last)
        x = h if mask is None else h * mask
        out = blocks(torch.bmm(x, self.weights[last]).view(s * n, -1))
        return (out.view(s, n, -1) + self.biases[last][:, None]).transpose(0, 1)

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        """Logits ``[N, S, C]`` of the S seeds; ``adj`` the cached :class:`Propagation`."""
        if len(self.weights) > 2 and self._seed_major_applies():
            return self._forward_seed_major(x_in, adj)
        last = len(self.weights) - 1
        h = None
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if i == 0:
                z = x_in(weight, self._p(0), self.mask_fn)
                n, s, d = z.shape
                # a fresh tensor no backward needs: add the bias (and ReLU) in place
                out = adj(z.reshape(n, s * d)).view(n, s, d).add_(bias)
            else:
                out = stacked_conv(stacked_dropout(h, self._p(i), True, self.mask_fn),
                                   weight, bias, adj)
            if i == last:
                return out
            norm = self.norms[i]
            if type(norm) is StackedNorm and type(self.act) is nn.ReLU:
                new = out.relu_()
            else:
                new = self.act(norm(out))
            h = new + h if self.residual and i > 0 else new
        raise AssertionError("unreachable")


def seed_major_layer(h: Tensor, mask: Tensor | None, weight: Tensor, bias: Tensor,
                     blocks: Propagation, residual: bool) -> Tensor:
    r"""One hidden ``gcn`` / ``gcn_res`` layer (norm ``none``, ReLU) for all seeds, seed-major:
    ``h [S, N, d]`` contiguous, ``mask`` the dropout mask (``None``: none), ``blocks`` the
    block-diagonal :math:`I_S \otimes \hat{A}`; returns
    :math:`\mathrm{ReLU}(\hat{A}(\mathrm{drop}_s(H_s) W_s) + b_s)\;(+\,H_s)` as ``[S, N, d]``.

    Why by hand (:class:`_SeedMajorLayer`): the layer's products in the layout their kernels
    read fastest (``bmm`` on contiguous seed-major operands: 5.1 vs 9.5 ms for Cora, S = 10,
    one thread, against node-major strides), the ReLU and the residual sum in place, the
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
