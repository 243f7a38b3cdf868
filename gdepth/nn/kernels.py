r"""Seed-stacked building blocks: S seeds' features side by side as one ``[N, S, d]`` tensor.

Seed ``s`` of a stacked tensor ``H`` of shape ``[N, S, d]`` is ``H[:, s]``, the ``[N, d]``
features one seed's model would hold. Every block here acts on each seed's slice exactly as
the one-seed module it copies from (same formula, same statistics), so S stacked seeds are S
independent runs. The normalizations are seed-native in :mod:`gdepth.norms` (which imports
this module, never the other way).

Dropout masks come from a :data:`MaskFn` when one is given (the equivalence test injects the
masks the loop models draw); otherwise from ``F.dropout`` over the whole stacked tensor, which
draws an independent mask per seed and element: the same distribution as S separate runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.nn.sparse_input import SparseRows, masked_product

# (per-seed shape, p) -> [S, *shape] multiplicative mask: 0 or 1/(1-p)
MaskFn = Callable[[tuple[int, ...], float], Tensor]


class NotBatchable(ValueError):
    """A model, norm or training option the seed-batched engine does not implement."""


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


class Propagation:
    r""":math:`\hat{A} Z` for ``Z [N, k]`` (k = S·d: all seeds in one product), built once.

    On CPU as ``F.embedding_bag`` over the CSR rows (bag i = row i's columns, weighted by its
    values): the same sum as ``torch.sparse.mm`` (to float rounding), and faster forward +
    backward there (``benchmarks/sweep_speed.py`` times the whole engine). Elsewhere
    ``torch.sparse.mm``.

    The backward pass is the same kind of product with :math:`\hat{A}^\top` (built once, at the
    first backward), through :class:`_Product`: autograd's own backward of ``embedding_bag``
    sorts the indices and scatters the gradient rows every step, slower than the forward
    kernel on the transposed rows. The adjacency's values never need a gradient here.
    """

    def __init__(self, adj: Tensor) -> None:
        self.adj = adj
        self.bags = adj.device.type == "cpu" and adj.layout == torch.sparse_csr
        if self.bags:
            self.cols, self.offsets = adj.col_indices(), adj.crow_indices()[:-1]
            self.values = adj.values()
        self._transposed: Propagation | None = None
        self._blocks: dict[int, Propagation] = {}

    @property
    def transposed(self) -> Propagation:
        r""":math:`\hat{A}^\top` as a :class:`Propagation` (made on first use, then cached)."""
        if self._transposed is None:
            adj = self.adj
            t = adj.to_sparse_coo().t().coalesce()
            self._transposed = Propagation(t.to_sparse_csr() if adj.layout == torch.sparse_csr
                                           else t)
            self._transposed._transposed = self
        return self._transposed

    def block_diagonal(self, copies: int) -> Propagation:
        r""":math:`I_S \otimes \hat{A}` (S copies of the graph, node ``i`` of copy ``s`` at
        row ``s·N + i``) as a :class:`Propagation` (made once per S, then cached): the product
        of a seed-major ``[S·N, d]`` stack, each seed's rows with its own copy of the graph."""
        if copies not in self._blocks:
            csr = self.adj.to_sparse_csr() if self.adj.layout != torch.sparse_csr else self.adj
            n, nnz = csr.shape[0], csr.values().numel()
            shift = torch.arange(copies, device=csr.device)
            crow = (csr.crow_indices()[:-1][None, :] + nnz * shift[:, None]).reshape(-1)
            crow = torch.cat([crow, crow.new_tensor([nnz * copies])])
            col = (csr.col_indices()[None, :] + n * shift[:, None]).reshape(-1)
            blocks = torch.sparse_csr_tensor(crow, col, csr.values().repeat(copies),
                                             (n * copies, n * copies))
            self._blocks[copies] = Propagation(
                blocks if self.adj.layout == torch.sparse_csr else blocks.to_sparse_coo())
        return self._blocks[copies]

    def product(self, z: Tensor) -> Tensor:
        r""":math:`\hat{A} Z` without autograd (``z`` needs no gradient, or the caller's
        backward handles it)."""
        if not self.bags:
            return torch.sparse.mm(self.adj, z)
        return F.embedding_bag(self.cols, z, self.offsets, mode="sum",
                               per_sample_weights=self.values)

    def __call__(self, z: Tensor) -> Tensor:
        if torch.is_grad_enabled() and z.requires_grad:
            return _Product.apply(z, self)
        return self.product(z)


# adjacency=auto stores a dense adjacency on CUDA up to this many nodes (N² fp32 values): there
# a small graph's dense product outruns CSR (benchmarks/gpu_check.sh compares them). On CPU a
# dense product costs N/deg times the sparse one's arithmetic, so auto stays sparse there.
DENSE_AUTO_MAX_NODES = 8192
ADJACENCY = ("auto", "sparse", "dense")


def adjacency_storage(requested: str, adj: Tensor) -> str:
    """``sparse`` or ``dense``: what ``adjacency=requested`` means for ``adj`` on its device."""
    if requested not in ADJACENCY:
        raise ValueError(f"unknown adjacency '{requested}'; valid: {', '.join(ADJACENCY)}")
    if requested != "auto":
        return requested
    small = adj.shape[0] <= DENSE_AUTO_MAX_NODES
    return "dense" if adj.device.type == "cuda" and small else "sparse"


def propagation(adj: Tensor, storage: str = "sparse") -> Propagation:
    """The :class:`Propagation` (``sparse``) or :class:`DensePropagation` (``dense``) of
    ``adj``."""
    return DensePropagation(adj) if storage == "dense" else Propagation(adj)


class DensePropagation(Propagation):
    r""":math:`\hat{A} Z` with :math:`\hat{A}` stored dense (``adjacency=dense``): one dense
    matmul, and for a seed-major stack (:meth:`block_diagonal`) one batched matmul of the same
    ``[N, N]`` matrix with every seed's ``[N, d]`` block (no S-fold matrix). ``adj`` stays the
    sparse tensor given (the models that precompute features read it)."""

    def __init__(self, adj: Tensor, dense: Tensor | None = None, copies: int = 1) -> None:
        self.adj, self.bags = adj, False
        self.dense = adj.to_dense() if dense is None else dense
        self.copies = copies
        self._transposed: Propagation | None = None
        self._blocks: dict[int, Propagation] = {}

    @property
    def transposed(self) -> Propagation:
        if self._transposed is None:
            t = DensePropagation(self.adj, self.dense.t().contiguous(), self.copies)
            t._transposed = self
            self._transposed = t
        return self._transposed

    def block_diagonal(self, copies: int) -> Propagation:
        if copies not in self._blocks:
            self._blocks[copies] = DensePropagation(self.adj, self.dense, copies)
        return self._blocks[copies]

    def product(self, z: Tensor) -> Tensor:
        if self.copies == 1:
            return self.dense @ z
        n = self.dense.shape[0]
        return torch.matmul(self.dense, z.view(self.copies, n, -1)).view(self.copies * n, -1)


class _Product(torch.autograd.Function):
    r"""``Propagation``'s product with its transposed product as the backward:
    :math:`\partial L/\partial Z = \hat{A}^\top\,\partial L/\partial(\hat{A}Z)`."""

    @staticmethod
    def forward(ctx, z: Tensor, prop: Propagation) -> Tensor:  # type: ignore[override]
        ctx.prop = prop
        return prop.product(z)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return ctx.prop.transposed.product(grad.contiguous()), None


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
