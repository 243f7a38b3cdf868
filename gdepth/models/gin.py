r"""GIN: a stack of GIN layers (sum aggregation, an MLP per layer), a linear output.

Xu, Hu, Leskovec and Jegelka, "How Powerful are Graph Neural Networks?", ICLR 2019,
arXiv 1810.00826, https://arxiv.org/abs/1810.00826:

.. math::
    \mathbf{h}_i^{(l)} = \sigma\Big(\mathrm{norm}\Big(\mathrm{MLP}^{(l)}\Big((1 + \epsilon^{(l)})
        \mathbf{h}_i^{(l-1)} + \textstyle\sum_{j \in \mathcal{N}(i)} \mathbf{h}_j^{(l-1)}\Big)
        \Big)\Big), \qquad \text{logits} = H^{(L)} W_{out} + b_{out}

with :math:`\mathrm{MLP}^{(l)}(\mathbf{z}) = W_2\,\sigma(W_1 \mathbf{z} + b_1) + b_2` (two linear
layers, the config activation between them, no norm inside) and :math:`\epsilon` fixed to 0
(GIN-0, the paper's best variant) or learned (``train_eps``): PyG's ``GINConv`` with that MLP.
The sum runs over the in-neighbors from the structure of ``adj`` (its weights are not used, self
loops dropped: the self term is :math:`1 + \epsilon`), as the product with the 0/1 matrix
:math:`A` of that structure (``A[i, j] = 1`` for an edge j → i), made once per adjacency object
and cached on the module (:class:`NeighbourSum`).

The first layer applies :math:`W_1` before the aggregation, which is the same function by
linearity, :math:`W_1((1+\epsilon)\mathbf{x}_i + \sum_j \mathbf{x}_j) + b_1 = (1+\epsilon) W_1
\mathbf{x}_i + \sum_j W_1 \mathbf{x}_j + b_1`: it takes sparse CSR (bag-of-words) features, which
``GINConv``'s gather does not, and aggregates ``hidden``- instead of ``in``-wide vectors.

Depth convention: depth :math:`L` = number of GIN layers (in → hidden, then hidden → hidden),
each followed by norm → activation; the output linear layer (hidden → out) does not count.
Dropout with probability ``dropout`` precedes every GIN layer and the output layer
(``dropout_layers=all``) or only the first GIN layer and the output layer (``io``).

Seed-native (:mod:`gdepth.nn.seeds`): S seeds' weights stacked (``[S, d_in, d_out]``), the
features ``[N, S, d]``; the neighbour sum of all seeds is one sparse product over ``[N, S·d]``,
the MLPs are :class:`gdepth.nn.seeds.SeedLinear` (``torch.nn.Linear``'s initialization).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import GINConfig, NormConfig
from gdepth.models import common
from gdepth.models.fully_adjacent import FullyAdjacentLast
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.propagation import DensePropagation, Propagation, propagation
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm

GIN_CONVENTION = (
    "depth L = number of GINConv layers (in->hidden, hidden->hidden; MLP Linear-act-Linear "
    "each, eps 0 or learned), each followed by norm -> activation; the output linear layer "
    "(hidden->out) does not count (Xu et al. 2019); sums over the edges of adj, not its weights"
)


def neighbour_matrix(adj: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """The 0/1 matrix of ``adj``'s structure without its diagonal: ``A[i, j] = 1`` where ``adj``
    stores an entry (rows targets, columns sources, as
    :func:`gdepth.models.adjacency.normalized_adjacency`) and ``i != j``; ``A @ H`` sums each
    node's in-neighbors (``GINConv``'s ``add`` aggregation over the edges
    :func:`gdepth.models.adjacency.edge_index_from_adj` reads). Sparse CSR if ``adj`` is, else
    COO."""
    if adj.layout not in (torch.sparse_csr, torch.sparse_coo):
        raise ValueError(f"adj must be a sparse CSR or COO tensor, got layout {adj.layout}")
    index = adj.to_sparse_coo().coalesce().indices()
    index = index[:, index[0] != index[1]]
    ones = torch.ones(index.shape[1], dtype=dtype or adj.dtype, device=adj.device)
    out = torch.sparse_coo_tensor(index, ones, tuple(adj.shape)).coalesce()
    return out.to_sparse_csr() if adj.layout == torch.sparse_csr else out


class NeighbourSum:
    """The :class:`Propagation` of :func:`neighbour_matrix` for a propagation of the normalized
    adjacency (dense where that one is dense), made once per adjacency object and dtype; the
    two most recent are kept (a training step's DropEdge graph and the evaluation graph)."""

    def __init__(self) -> None:
        self._cache: list[tuple[Tensor, torch.dtype, bool, Propagation]] = []

    def __call__(self, adj: Propagation, dtype: torch.dtype) -> Propagation:
        dense = isinstance(adj, DensePropagation)
        for i, (a, d, den, prop) in enumerate(self._cache):
            if a is adj.adj and d == dtype and den == dense:
                self._cache.insert(0, self._cache.pop(i))
                return prop
        prop = propagation(neighbour_matrix(adj.adj, dtype), "dense" if dense else "sparse")
        self._cache = [(adj.adj, dtype, dense, prop), *self._cache[:1]]
        return prop

    def __deepcopy__(self, memo: dict) -> NeighbourSum:  # a copied model starts empty
        return NeighbourSum()


class GINLayer(nn.Module):
    r"""S seeds of ``GINConv(Sequential(Linear(d_in, hidden), act, Linear(hidden, hidden)),
    train_eps)``: :math:`\mathrm{MLP}_s((1 + \epsilon_s) H_s + A H_s)`. ``eps [S, 1]`` (a
    parameter with ``train_eps``, else a buffer of zeros)."""

    def __init__(self, num_seeds: int, d_in: int, hidden: int, activation: str,
                 train_eps: bool) -> None:
        super().__init__()
        self.num_seeds = num_seeds
        self.lin1 = SeedLinear(num_seeds, d_in, hidden, init="kaiming")
        self.act = common.activation(activation)
        self.lin2 = SeedLinear(num_seeds, hidden, hidden, init="kaiming")
        self.train_eps = bool(train_eps)
        if self.train_eps:
            self.eps = nn.Parameter(torch.zeros(num_seeds, 1))
        else:
            self.register_buffer("eps", torch.zeros(num_seeds, 1))
        for s in range(num_seeds):  # GINConv.reset_parameters: the MLP drawn a second time
            self.lin1.reset_seed(s)
            self.lin2.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        """The draws of the MLP's ``nn.Linear`` layers when built (``reset_seeds`` then calls
        ``lin1`` / ``lin2``'s own ``reset_seed``: the draws of ``GINConv.reset_parameters``,
        which are kept), and :math:`\\epsilon = 0`."""
        self.lin1.reset_seed(s)
        self.lin2.reset_seed(s)
        with torch.no_grad():
            self.eps[s].zero_()

    def _self_term(self, h: Tensor) -> Tensor:
        return h * (1 + self.eps) if self.train_eps else h

    def forward(self, h: Tensor, sums: Propagation) -> Tensor:
        """``h [N, S, d_in]`` (dropout applied), ``sums`` the neighbour sum."""
        n, s, d = h.shape
        agg = sums(h.reshape(n, s * d)).view(n, s, d) + self._self_term(h)
        return self.lin2(self.act(self.lin1(agg)))

    def forward_first(self, x_in: StackedInput, p: float, mask_fn: MaskFn | None,
                      sums: Propagation) -> Tensor:
        """The first layer with :math:`W_1` before the aggregation (module docstring): ``x_in``
        the shared features, ``p`` the dropout on them."""
        z = x_in(self.lin1.weight, p, mask_fn)  # drop_s(X) W_1s, [N, S, hidden]
        n, s, d = z.shape
        agg = sums(z.reshape(n, s * d)).view(n, s, d) + self._self_term(z) + self.lin1.bias
        return self.lin2(self.act(agg))

    def extra_repr(self) -> str:
        return f"train_eps={self.train_eps}"


class GIN(FullyAdjacentLast, nn.Module):
    """``depth`` GIN layers and a linear output for S seeds (see the module docstring):
    ``forward(x_in, adj) -> [N, S, out_dim]``.

    Args:
        num_seeds: S.
        in_dim: input features (dense or sparse CSR).
        hidden: width of every GIN layer and its MLP.
        out_dim: output features (classes).
        depth: number of GIN layers :math:`L`, >= 1.
        train_eps: learn :math:`\\epsilon` (initialized to 0) instead of fixing it to 0.
            (default: ``False``)
        norm_cfg: ``norm`` config, one norm after each GIN layer; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``, inside each MLP and after
            each layer. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
        fully_adjacent_last: the last GIN layer sums over each instance's complete graph, self
            loops included, :math:`\\mathrm{MLP}((1+\\epsilon)\\mathbf{h}_v + \\sum_{u \\in
            I(v)} \\mathbf{h}_u)` (:mod:`gdepth.models.fully_adjacent`; Alon & Yahav 2021 §4).
            (default: ``False``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)
    fully_adjacent_reduce = "sum"

    def __init__(
        self,
        num_seeds: int,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        train_eps: bool = False,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
        fully_adjacent_last: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds = int(num_seeds)
        self.fully_adjacent_last = bool(fully_adjacent_last)
        dims = [in_dim] + [hidden] * (depth - 1)
        self.convs = nn.ModuleList(
            GINLayer(self.num_seeds, a, hidden, activation, bool(train_eps)) for a in dims)
        self.norms = nn.ModuleList(
            build_seeded_norm(norm_cfg, hidden, self.num_seeds) for _ in range(depth))
        self.act = common.activation(activation)
        self.lin_out = SeedLinear(self.num_seeds, hidden, out_dim, init="kaiming")
        self.dropout = float(dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, depth + 1)  # depth: lin_out
        self.sums = NeighbourSum()
        self.layer_sink: list | None = None
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    def _p(self, position: int) -> float:
        return self.dropout if self.training and position in self.dropout_at else 0.0

    def _drop(self, h: Tensor, position: int) -> Tensor:
        return stacked_dropout(h, self._p(position), self.training, self.mask_fn)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """None: GIN has no ``first_layer()`` (Kipf & Welling's first-layer decay)."""
        raise NotBatchable("train.weight_decay_first_only=true but model GIN has no "
                           "first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """What the one-seed PyG model named ``*weight*``: the MLPs' and the output layer's
        weights, the norms' (e.g. BatchNorm's scale)."""
        out = [p for conv in self.convs for p in (conv.lin1.weight, conv.lin2.weight)]
        out += [p for norm in self.norms for p in norm.weight_parameters()]
        return [*out, self.lin_out.weight]

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None) -> Tensor:
        """Logits ``[N, S, out_dim]`` (``[R, S, out_dim]`` for ``rows``) from the shared
        features and the propagation of the (normalized) adjacency, whose structure is read."""
        sums = self.sums(adj, self.lin_out.weight.dtype)
        common.tap(self, x_in.x)
        h = None
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if i == last:  # the complete graph of each instance where fully adjacent
                sums = self.last_propagation(sums, x_in.x)
            if i == 0:
                out = conv.forward_first(x_in, self._p(0), self.mask_fn, sums)
            else:
                out = conv(self._drop(h, i), sums)
            h = common.tap(self, self.act(norm(out)))
        logits = common.tap(self, self.lin_out(self._drop(h, len(self.convs))))
        return logits if rows is None else logits[rows]

    def extra_repr(self) -> str:
        fa = ", fully_adjacent_last=True" if self.fully_adjacent_last else ""
        return (f"seeds={self.num_seeds}, dropout={self.dropout}, "
                f"dropout_at={sorted(self.dropout_at)}{fa}")


def build_gin(model_cfg: GINConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
              out_dim: int, num_seeds: int) -> GIN:
    """``gin`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.GINConfig`:
    hidden, train_eps, dropout, dropout_layers, activation, fully_adjacent_last)."""
    return GIN(
        num_seeds,
        in_dim,
        out_dim=out_dim,
        depth=depth,
        train_eps=bool(model_cfg.train_eps),
        fully_adjacent_last=bool(model_cfg.fully_adjacent_last),
        **common.model_options(model_cfg, norm_cfg),
    )

