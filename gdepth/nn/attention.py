r"""Graph attention's edge kernels for S seeds at once: the softmax of edge scores over each
node's incoming edges and the attention-weighted sum, each one autograd node that runs seed by
seed (:class:`gdepth.models.gat.SeedGATConv` calls them; Veličković et al., "Graph Attention
Networks", ICLR 2018, arXiv 1710.10903, https://arxiv.org/abs/1710.10903).

Both read the edges as :class:`AttentionEdges`, sorted by target with CSR segment offsets, which
:func:`gdepth.models.gat.attention_edges` builds from an adjacency.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class AttentionEdges(NamedTuple):
    """The edges a GAT layer attends over: ``src``, ``dst`` ``[E]`` sorted by target (then
    source), one self loop per node included; ``ptr [N + 1]`` the target segments (CSR)."""

    src: Tensor
    dst: Tensor
    ptr: Tensor


class EdgeSoftmax(torch.autograd.Function):
    r"""Softmax of the edge scores ``e [S, E, heads]`` over each target's incoming edges
    (:math:`\alpha_e = \exp(e_e - m_i) / \sum_{e': dst_{e'} = i} \exp(e_{e'} - m_i)`,
    :math:`m_i` the segment's maximum; PyG's ``utils.softmax`` up to its ``+1e-16`` in the
    denominator, which is at least 1 here), seed by seed with ``torch.segment_reduce`` over the
    target-sorted edges; backward from the output alone,
    :math:`\partial e = \alpha \odot (G - \sum_{seg} \alpha \odot G)`.
    Why by hand: PyG's index path (``scatter_reduce`` of the maximum on ``[S, E, heads]``) is
    slower, forward + backward (``benchmarks/models_speed.py`` times the model)."""

    @staticmethod
    def forward(ctx, e: Tensor, edges: AttentionEdges) -> Tensor:  # type: ignore[override]
        out = torch.empty_like(e)
        for s in range(e.shape[0]):
            top = torch.segment_reduce(e[s], "max", offsets=edges.ptr, axis=0)
            ex = torch.sub(e[s], top.index_select(0, edges.dst), out=out[s]).exp_()
            total = torch.segment_reduce(ex, "sum", offsets=edges.ptr, axis=0)
            ex.div_(total.index_select(0, edges.dst))
        ctx.save_for_backward(out)
        ctx.edges = edges
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (alpha,) = ctx.saved_tensors
        edges = ctx.edges
        out = grad * alpha
        for s in range(alpha.shape[0]):
            total = torch.segment_reduce(out[s], "sum", offsets=edges.ptr, axis=0)
            out[s].sub_(alpha[s] * total.index_select(0, edges.dst))
        return out, None


class Aggregate(torch.autograd.Function):
    r"""The attention-weighted sum :math:`O_{s,i} = \sum_{e: dst_e = i} \alpha_{s,e}
    Z_{s, src_e}` per seed and head, ``z [S, N, heads, C]``, ``alpha [S, E, heads]``, seed by
    seed. Backward, with :math:`G = \partial L/\partial O`:
    :math:`\partial\alpha_{s,e} = G_{s,dst_e} \cdot Z_{s,src_e}` (over the channels),
    :math:`\partial Z_{s,j} = \sum_{e: src_e = j} \alpha_{s,e} G_{s,dst_e}`.

    Why by hand, seed by seed: the messages ``[E, S, heads, C]`` of all seeds at once (gather,
    multiply, ``index_add``) spill every cache; one seed's ``[E, heads, C]`` on seed-major
    tensors does not (node-major slices or one autograd gather / multiply / ``index_add`` for
    all seeds are slower). Autograd would also save the gathered messages for the backward;
    this saves ``z`` and ``alpha`` only."""

    @staticmethod
    def forward(ctx, z: Tensor, alpha: Tensor,  # type: ignore[override]
                edges: AttentionEdges) -> Tensor:
        out = z.new_zeros(z.shape)
        for s in range(z.shape[0]):
            msg = z[s].index_select(0, edges.src).mul_(alpha[s].unsqueeze(-1))
            out[s].index_add_(0, edges.dst, msg)
        ctx.save_for_backward(z, alpha)
        ctx.edges = edges
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        z, alpha = ctx.saved_tensors
        edges = ctx.edges
        grad = grad.contiguous()
        grad_z = torch.zeros_like(z) if ctx.needs_input_grad[0] else None
        grad_alpha = torch.empty_like(alpha) if ctx.needs_input_grad[1] else None
        for s in range(z.shape[0]):
            g = grad[s].index_select(0, edges.dst)  # [E, heads, C]
            if grad_alpha is not None:
                torch.sum(g * z[s].index_select(0, edges.src), dim=-1, out=grad_alpha[s])
            if grad_z is not None:
                grad_z[s].index_add_(0, edges.src, g.mul_(alpha[s].unsqueeze(-1)))
        return grad_z, grad_alpha, None
