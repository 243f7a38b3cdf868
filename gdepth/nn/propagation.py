r"""The graph product :math:`\hat{A} Z` shared by every seed of a seed-stacked model
(:mod:`gdepth.nn.kernels`): sparse (CSR rows) or dense storage, chosen by
:func:`adjacency_storage`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
