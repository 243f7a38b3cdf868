r"""Dropout for seed-stacked tensors ``[N, S, d]`` (:mod:`gdepth.nn.kernels`): the mask of
each seed drawn independently, as S separate runs would.

Dropout masks come from a :data:`MaskFn` when one is given (the equivalence test injects the
masks the loop models draw); otherwise from ``F.dropout`` over the whole stacked tensor, which
draws an independent mask per seed and element: the same distribution as S separate runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# (per-seed shape, p) -> [S, *shape] multiplicative mask: 0 or 1/(1-p)
MaskFn = Callable[[tuple[int, ...], float], Tensor]


_LUTS: dict[tuple[int, int, torch.dtype, torch.device], Tensor] = {}


def _dyadic_bits(p: float) -> int | None:
    """The smallest k in 1, 2, 4, 8 with p·2^k an integer (p exact in k random bits), else None."""
    for k in (1, 2, 4, 8):
        if float(p * 2**k).is_integer():
            return k
    return None


def _lut(k: int, cut: int, dtype: torch.dtype, device: torch.device, scale: float) -> Tensor:
    """``[256, 8/k]``: for each byte, its 8/k k-bit fields mapped to 0 (field < cut) or scale."""
    key = (k, cut, dtype, device)
    if key not in _LUTS:
        fields = torch.arange(256)[:, None] >> (k * torch.arange(8 // k))[None, :] & (2**k - 1)
        _LUTS[key] = ((fields >= cut).to(dtype) * scale).to(device)
    return _LUTS[key]


def keep_mask(like: Tensor, p: float) -> Tensor:
    """A dropout mask shaped as ``like``: 0 with probability p, else 1/(1-p) (``F.dropout``'s
    distribution), independent per element.

    When p is a multiple of 2^-k for k in 1, 2, 4, 8 (p = 0.5, 0.25, 0.125, 0.1875, ...) the
    mask costs k random bits per element instead of a float: random bytes (``torch.randint``
    64-bit words, viewed as bytes) are looked up in a ``[256, 8/k]`` table of the masks their
    k-bit fields give (field ≥ p·2^k keeps, probability exactly 1 − p). Why by hand: torch's
    ``rand``/``bernoulli_`` draw 32 bits per element, and on CPU the mask can be the largest
    cost of a training step of a seed stack. Other p: ``rand >= p`` (cheaper than
    ``bernoulli_`` on CPU).
    """
    scale = 1.0 / (1.0 - p)
    k = _dyadic_bits(p)
    if k is None or not like.is_floating_point():
        return (torch.rand_like(like) >= p).to(like.dtype).mul_(scale)
    n, per_byte = like.numel(), 8 // k
    nbytes = -(-n // per_byte)
    words = torch.randint(-2**63, 2**63 - 1, (-(-nbytes // 8),), dtype=torch.int64,
                          device=like.device)
    table = _lut(k, int(p * 2**k), like.dtype, like.device, scale)
    index = words.view(torch.uint8)[:nbytes].long()
    return F.embedding(index, table).view(-1)[:n].view(like.shape)


def stacked_dropout(h: Tensor, p: float, training: bool, mask_fn: MaskFn | None) -> Tensor:
    """Dropout on ``h [N, S, d]``, an independent mask per seed (``mask_fn``'s if given)."""
    if not training or p == 0.0:
        return h
    if mask_fn is None:
        return h * keep_mask(h, p)
    n, s, d = h.shape
    return h * mask_fn((n, d), p).to(h.dtype).movedim(0, 1)


def relu_dropout(z: Tensor, p: float, training: bool, mask_fn: MaskFn | None) -> Tensor:
    r""":math:`\mathrm{drop}(\mathrm{ReLU}(Z))` for ``z [N, S, d]``, in place on ``z``, an
    independent mask per seed (``mask_fn``'s if given), saving only the output.

    The same numbers as ``stacked_dropout(relu(z))`` forward and backward: with a mask ``M``
    of values 0 or :math:`c = 1/(1-p)`, :math:`Y = \mathrm{ReLU}(Z) \odot M` and
    :math:`\partial Z = G \odot M \odot [Z > 0] = c\,G \odot [Y > 0]`, so the backward needs
    only :math:`Y`, which the next convolution saves anyway. Why by hand: autograd keeps the
    ReLU output and the float mask as well, three ``[N, S, d]`` tensors per unit instead of
    one (DropEdge's IncepGCN has about L²/2 units). ``z`` must not be needed by anything else
    (a convolution's fresh output)."""
    scale = 1.0 / (1.0 - p) if training and p > 0.0 else 1.0
    mask = None
    if scale != 1.0 and mask_fn is not None:
        mask = mask_fn((z.shape[0], z.shape[2]), p).to(z.dtype).movedim(0, 1)
    elif scale != 1.0:  # keep_mask's table path where it applies; other p: a boolean mask
        # drawn into a reused buffer
        mask = keep_mask(z, p) if _dyadic_bits(p) is not None else _drop_scratch(z, p)
    return _ReluDropout.apply(z, mask, scale)


_SCRATCH: dict[tuple, tuple[Tensor, Tensor]] = {}


def _drop_scratch(like: Tensor, p: float) -> Tensor:
    """A boolean ``drop`` mask (True: zeroed, probability ``p``) in a buffer reused across
    calls of one shape: a deep stack of units then allocates no per-unit mask temporaries,
    whose interleaving with the saved activations fragments glibc's heap (resident memory
    several times the saved tensors). The mask is consumed at once."""
    key = (tuple(like.shape), like.dtype, like.device)
    if key not in _SCRATCH:
        _SCRATCH.clear()  # one shape at a time: a new model or graph replaces the buffers
        _SCRATCH[key] = (torch.empty_like(like), torch.empty(like.shape, dtype=torch.bool,
                                                               device=like.device))
    noise, drop = _SCRATCH[key]
    noise.uniform_()
    return torch.lt(noise, p, out=drop)


class _ReluDropout(torch.autograd.Function):
    r"""Forward :math:`Y = \mathrm{ReLU}(Z) \odot M` in place; backward
    :math:`c\,G \odot [Y > 0]` (:func:`relu_dropout`)."""

    @staticmethod
    def forward(ctx, z: Tensor, mask: Tensor | None,  # type: ignore[override]
                scale: float) -> Tensor:
        z.clamp_(min=0)
        if mask is not None and mask.dtype == torch.bool:  # drop where True, then rescale
            z.masked_fill_(mask, 0.0).mul_(scale)
        elif mask is not None:  # a float mask (keep_mask's or injected), already scaled
            z.mul_(mask)
        ctx.mark_dirty(z)
        ctx.save_for_backward(z)
        ctx.scale = scale
        return z

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad, out, 0)  # ReLU's own backward kernel
        if ctx.scale != 1.0:
            g.mul_(ctx.scale)
        return g, None, None
