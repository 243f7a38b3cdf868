r"""GGNN: an input linear layer, gated propagation (L GRU steps), a linear output; seed-native.

Li, Tarlow, Brockschmidt and Zemel, "Gated Graph Sequence Neural Networks", ICLR 2016,
arXiv 1511.05493, https://arxiv.org/abs/1511.05493, with one edge type:

.. math::
    \mathbf{h}_i^{(0)} = W_{in} \mathbf{x}_i + b_{in}, \qquad
    \mathbf{m}_i^{(l)} = \textstyle\sum_{j \in \mathcal{N}(i)} \Theta^{(l)} \mathbf{h}_j^{(l-1)},
    \qquad \mathbf{h}_i^{(l)} = \mathrm{norm}\big(\mathrm{GRU}(\mathbf{m}_i^{(l)},
    \mathbf{h}_i^{(l-1)})\big),

.. math::
    \text{logits} = H^{(L)} W_{out} + b_{out}

(:math:`l = 1, \dots, L`): a weight :math:`\Theta^{(l)}` per step and one GRU cell shared by all
steps, as PyG's ``GatedGraphConv(hidden, num_layers=L)`` (aggr ``add``), whose steps the model
runs one by one to put the norm after each (with no norm the result is exactly
``GatedGraphConv``'s). The paper pads :math:`\mathbf{x}` with zeros to the state width; here a
learned input linear layer maps it (dense or sparse CSR) to ``hidden``. The sum runs over the
in-neighbors from the structure of ``adj`` (its weights are not used, self loops dropped: the GRU
carries the node's own state); the edges are read once per adjacency object and cached.
The GRU gates are the nonlinearity: the config's ``activation`` is not used.

Seed-native (:mod:`gdepth.nn.seeds`): S seeds compute together. Each step is one ``bmm`` for
every seed's :math:`H_s\Theta^{(l)}_s` and one sparse product of the unweighted adjacency
(:math:`A`, the sparsity pattern of ``adj`` without its diagonal) with the ``[N, S·d]`` stack
(:func:`gdepth.nn.kernels.stacked_conv`), then the GRU cell (:class:`SeedGRUCell`, torch's
``GRUCell`` formula with per-seed ``[S, 3d, d]`` weights). The initial weights are the draws of
``nn.Linear`` (input), ``GatedGraphConv`` (its ``GRUCell``'s construction draws, then the
step weights, then the ``GRUCell`` again, as its ``reset_parameters``) and ``nn.Linear``
(output), in that order: seed s starts where the PyG model built after
``torch.manual_seed(s)`` started.

Depth convention: depth :math:`L` = number of propagation steps (``GatedGraphConv``'s
``num_layers``), each followed by norm; the input (in → hidden) and output (hidden → out) linear
layers do not count. Dropout with probability ``dropout`` precedes the input and the output
linear layer (``all`` and ``io`` are the same here).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import ModelConfig, NormConfig
from gdepth.models import common
from gdepth.models.adjacency import PerAdjacency, edge_index_from_adj
from gdepth.nn.dropout import stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput, stacked_conv
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm

GGNN_CONVENTION = (
    "depth L = number of GatedGraphConv propagation steps (num_layers; per-step weight, shared "
    "GRU), each followed by norm; the input (in->hidden) and output (hidden->out) linear layers "
    "do not count (Li et al. 2016); no activation; sums over the edges of adj, not its weights"
)


def sum_adjacency(adj: Tensor, dtype: torch.dtype | None = None) -> Propagation:
    r"""The unweighted adjacency :math:`A` (``A[target, source] = 1`` for every edge of the
    sparse ``adj``, its values unused, self loops dropped) as a CSR
    :class:`gdepth.nn.propagation.Propagation`: :math:`AZ` is ``GatedGraphConv``'s ``add``
    aggregation over :func:`gdepth.models.adjacency.edge_index_from_adj`'s edges; its values
    of ``dtype`` (the features'; default ``adj``'s)."""
    source, target = edge_index_from_adj(adj)
    n = adj.shape[0]
    ones = torch.ones(source.numel(), dtype=dtype or adj.dtype, device=adj.device)
    coo = torch.sparse_coo_tensor(torch.stack([target, source]), ones, (n, n)).coalesce()
    return Propagation(coo.to_sparse_csr() if adj.device.type == "cpu" else coo)


class SeedGRUCell(nn.Module):
    r"""``torch.nn.GRUCell(d, d)`` for S seeds: ``weight_ih`` / ``weight_hh [S, 3d, d]``,
    ``bias_ih`` / ``bias_hh [S, 3d]`` (gates r, z, n as torch orders them);
    ``forward(x [N, S, d], h [N, S, d]) -> [N, S, d]``:

    .. math::
        r = \sigma(W_{ir}x + b_{ir} + W_{hr}h + b_{hr}),\quad
        z = \sigma(W_{iz}x + b_{iz} + W_{hz}h + b_{hz}),\quad
        n = \tanh(W_{in}x + b_{in} + r \odot (W_{hn}h + b_{hn})),\quad
        h' = (1 - z) \odot n + z \odot h.

    Computed by :class:`_GRUCell`. :meth:`draw` draws seed s's
    tensors as ``GRUCell.reset_parameters`` (each of the four in order,
    :math:`U(-1/\sqrt d, 1/\sqrt d)`); the owner calls it (its draw order is the owner's).
    """

    def __init__(self, num_seeds: int, dim: int, draw: bool = True) -> None:
        super().__init__()
        self.num_seeds, self.dim = num_seeds, dim
        self.weight_ih = nn.Parameter(torch.empty(num_seeds, 3 * dim, dim))
        self.weight_hh = nn.Parameter(torch.empty(num_seeds, 3 * dim, dim))
        self.bias_ih = nn.Parameter(torch.empty(num_seeds, 3 * dim))
        self.bias_hh = nn.Parameter(torch.empty(num_seeds, 3 * dim))
        for s in range(num_seeds if draw else 0):  # draw=False: the owner draws
            self.draw(s)

    def draw(self, s: int) -> None:
        """Seed ``s``'s tensors from the global RNG, as ``GRUCell.reset_parameters``."""
        bound = 1.0 / math.sqrt(self.dim)
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                p[s].copy_(torch.empty(p.shape[1:], dtype=p.dtype).uniform_(-bound, bound))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return _GRUCell.apply(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, {self.dim} -> {self.dim}"


class _GRUCell(torch.autograd.Function):
    r""":class:`SeedGRUCell`'s step seed by seed, ``x``, ``h [N, S, d]`` (any strides) to
    ``[N, S, d]`` (a view of a seed-major tensor). Forward per seed:
    :math:`g_i = xW_{ih}^\top + b_{ih}`, :math:`g_h = hW_{hh}^\top + b_{hh}`, the gates as
    :class:`SeedGRUCell` says; it saves the gates :math:`r, z, n` and :math:`h_n = (g_h)_n`.
    Backward, with :math:`G = \partial L/\partial h'`:
    :math:`\partial n^{pre} = G(1 - z)(1 - n^2)`, :math:`\partial z^{pre} = G(h - n)z(1 - z)`,
    :math:`\partial r^{pre} = \partial n^{pre} h_n r(1 - r)`;
    :math:`\partial g_i = [\partial r^{pre}, \partial z^{pre}, \partial n^{pre}]`,
    :math:`\partial g_h = [\partial r^{pre}, \partial z^{pre}, r\,\partial n^{pre}]`;
    :math:`\partial x = \partial g_i W_{ih}`, :math:`\partial h = \partial g_h W_{hh} + Gz`,
    :math:`\partial W_{ih} = \partial g_i^\top x`, :math:`\partial W_{hh} = \partial g_h^\top h`,
    the biases' the column sums.

    Why by hand, seed by seed: the gate arithmetic of all seeds at once runs on ``[S, N, 3d]``
    tensors that leave the cache (and autograd's backward of the gate split concatenates
    them); one seed's ``[N, 3d]`` stays in it. The products dominate the time either way
    (``benchmarks/models_speed.py`` times the model); it also saves 4 ``[N, d]`` tensors per
    seed and step instead of autograd's 8."""

    @staticmethod
    def forward(ctx, x: Tensor, h: Tensor, w_ih: Tensor,  # type: ignore[override]
                w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
        n_nodes, seeds, d = h.shape
        out = h.new_empty(seeds, n_nodes, d)
        gates = h.new_empty(seeds, n_nodes, 3 * d)  # r, z, n after their nonlinearities
        h_n = h.new_empty(seeds, n_nodes, d)
        for s in range(seeds):
            hs = h[:, s]
            gi = torch.addmm(b_ih[s], x[:, s], w_ih[s].t())
            gh = torch.addmm(b_hh[s], hs, w_hh[s].t())
            g = gates[s]
            torch.add(gi[:, :2 * d], gh[:, :2 * d], out=g[:, :2 * d]).sigmoid_()
            h_n[s].copy_(gh[:, 2 * d:])
            n = torch.addcmul(gi[:, 2 * d:], g[:, :d], h_n[s], out=g[:, 2 * d:]).tanh_()
            torch.addcmul(n, g[:, d:2 * d], hs - n, out=out[s])
        ctx.save_for_backward(x, h, w_ih, w_hh, gates, h_n)
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, h, w_ih, w_hh, gates, h_n = ctx.saved_tensors
        n_nodes, seeds, d = h.shape
        grad_x, grad_h = x.new_empty(seeds, n_nodes, d), h.new_empty(seeds, n_nodes, d)
        grad_w_ih, grad_w_hh = torch.empty_like(w_ih), torch.empty_like(w_hh)
        grad_b_ih, grad_b_hh = w_ih.new_empty(seeds, 3 * d), w_hh.new_empty(seeds, 3 * d)
        for s in range(seeds):
            g, hs = grad[:, s], h[:, s]
            r, z, n = gates[s, :, :d], gates[s, :, d:2 * d], gates[s, :, 2 * d:]
            d_gi = x.new_empty(n_nodes, 3 * d)
            d_n = torch.mul(g, 1 - z, out=d_gi[:, 2 * d:]).mul_(1 - n * n)
            torch.mul(g * (hs - n), z * (1 - z), out=d_gi[:, d:2 * d])
            torch.mul(d_n * h_n[s], r * (1 - r), out=d_gi[:, :d])
            d_gh = d_gi.clone()
            d_gh[:, 2 * d:].mul_(r)
            torch.mm(d_gi.t(), x[:, s], out=grad_w_ih[s])
            torch.mm(d_gh.t(), hs, out=grad_w_hh[s])
            torch.sum(d_gi, 0, out=grad_b_ih[s])
            torch.sum(d_gh, 0, out=grad_b_hh[s])
            torch.mm(d_gi, w_ih[s], out=grad_x[s])
            torch.addmm(g * z, d_gh, w_hh[s], out=grad_h[s])
        return (grad_x.transpose(0, 1), grad_h.transpose(0, 1), grad_w_ih, grad_w_hh,
                grad_b_ih, grad_b_hh)


class SeedGatedGraphConv(nn.Module):
    r"""PyG's ``GatedGraphConv(d, num_layers=L)`` (aggr ``add``, bias) for S seeds: ``weight
    [S, L, d, d]`` (:math:`\Theta^{(l)}`, applied as ``H @ weight[l]``) and ``rnn`` a
    :class:`SeedGRUCell`. :meth:`step` is one propagation step, :math:`\mathrm{GRU}(A(H
    \Theta^{(l)}), H)`."""

    def __init__(self, num_seeds: int, dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_seeds, self.dim, self.num_layers = num_seeds, dim, num_layers
        self.weight = nn.Parameter(torch.empty(num_seeds, num_layers, dim, dim))
        self.rnn = SeedGRUCell(num_seeds, dim, draw=False)
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        r"""``GatedGraphConv``'s draws: its ``GRUCell``'s construction draws (then overwritten),
        the step weights :math:`U(-1/\sqrt d, 1/\sqrt d)` in one ``[L, d, d]`` draw (PyG's
        ``uniform(d, weight)``), the ``GRUCell`` again."""
        self.rnn.draw(s)
        bound = 1.0 / math.sqrt(self.dim)
        with torch.no_grad():
            self.weight[s].copy_(torch.empty(self.weight.shape[1:], dtype=self.weight.dtype)
                                 .uniform_(-bound, bound))
        self.rnn.draw(s)

    def step(self, h: Tensor, layer: int, adj: Propagation) -> Tensor:
        r"""One step on ``h [N, S, d]``: the messages :math:`A(H_s \Theta^{(l)}_s)` of all seeds
        in one :func:`gdepth.nn.kernels.stacked_conv`, then the GRU."""
        zero = h.new_zeros(self.num_seeds, self.dim)
        m = stacked_conv(h, self.weight[:, layer], zero, adj)
        return self.rnn(m, h)

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, {self.dim}, num_layers={self.num_layers}"


class GGNN(nn.Module):
    """Input linear, ``depth`` gated propagation steps, linear output, for ``num_seeds`` seeds
    (see the module docstring): ``forward(x_in, adj) -> [N, S, out_dim]``.

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: width of the node states.
        out_dim: output features (classes).
        depth: number of propagation steps :math:`L`, >= 1.
        norm_cfg: ``norm`` config, one norm after each step; ``None`` for none.
            (default: ``None``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"`` or ``"io"`` (the same: input and output), ``"hidden"``
            (output only). (default: ``"all"``)
        num_seeds: seeds held side by side. (default: ``1``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        norm_cfg: Any = None,
        dropout: float = 0.5,
        dropout_layers: str = "all",
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds = num_seeds
        self.lin_in = SeedLinear(num_seeds, in_dim, hidden, init="kaiming")
        self.ggc = SeedGatedGraphConv(num_seeds, hidden, depth)
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth))
        self.lin_out = SeedLinear(num_seeds, hidden, out_dim, init="kaiming")
        self.dropout = float(dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, 2)  # 0: lin_in, 1: lin_out
        self.mask_fn = None
        self.layer_sink: list | None = None
        self.adjacency = PerAdjacency(sum_adjacency)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        raise NotBatchable("train.weight_decay_first_only=true but model GGNN has no "
                           "first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """``lin_in.weight``, the step weights, the GRU's ``weight_ih`` / ``weight_hh``, the
        norms' weights, ``lin_out.weight``: what the one-seed model named ``*weight*``."""
        return [p for child in self.children() for p in common.weight_parameters_of(child)]

    def forward(self, x_in: Any, adj: Any, rows: Tensor | None = None) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the input features (a
        :class:`gdepth.nn.kernels.StackedInput` or ``[N, in_dim]``) and the propagation (a
        :class:`gdepth.nn.propagation.Propagation` or the sparse ``adj``); only its edges are
        read."""
        x_in = x_in if isinstance(x_in, StackedInput) else StackedInput(x_in)
        prop = self.adjacency(getattr(adj, "adj", adj), self.lin_in.weight.dtype)
        common.tap(self, x_in.x)
        p = self.dropout if 0 in self.dropout_at and self.training else 0.0
        h = common.tap(self, x_in(self.lin_in.weight, p, self.mask_fn) + self.lin_in.bias)
        for layer, norm in enumerate(self.norms):
            h = common.tap(self, norm(self.ggc.step(h, layer, prop)))
        p = self.dropout if 1 in self.dropout_at else 0.0
        out = common.tap(self, self.lin_out(stacked_dropout(h, p, self.training, self.mask_fn)))
        return out if rows is None else out[rows]


def build_ggnn(model_cfg: ModelConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
               out_dim: int, num_seeds: int) -> GGNN:
    """``ggnn`` for ``num_seeds`` seeds from its config (hidden, dropout, dropout_layers;
    ``activation`` is ignored, see the module docstring)."""
    return GGNN(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg, without=("activation",)),
    )
