r"""ResGCN, DenseGCN and IncepGCN: the deep backbones of DropEdge, built from GCN blocks.

Rong, Huang, Xu and Huang, "DropEdge: Towards Deep Graph Convolutional Networks on Node
Classification", ICLR 2020, arXiv 1907.10903, https://arxiv.org/abs/1907.10903, as its official
code computes them (https://github.com/DropEdge/DropEdge, ``src/models.py`` ``GCNModel`` and
``src/layers.py`` ``GraphBaseBlock`` / ``InecptionGCNBlock``, read at commit 63416ea). Every
backbone is an input convolution, hidden blocks of ``nbaseblocklayer`` convolutions, and an output
convolution; each convolution but the output one is a unit

.. math::
    u(H) = \mathrm{drop}\big(\sigma(\mathrm{norm}(\hat{A} H W + b))\big),
    \qquad H^{(0)} = u_{in}(X), \qquad \text{logits} = \hat{A}\, Z\, W_{out} + b_{out}

and the backbones differ in what :math:`Z` is (``GraphBaseBlock`` with ``aggrmethod`` ``add`` /
``concat``, ``InecptionGCNBlock`` with ``concat``):

- ``resgcn`` (``--type resgcn``, aggrmethod ``add``): blocks of :math:`b` units with a skip over
  each block, :math:`H \leftarrow u_b(\cdots u_1(H)) + H`, and :math:`Z` is the last block's output.
- ``densegcn`` (``--type densegcn``, aggrmethod ``concat``, ``dense=True``; the README's table
  calls it **JKNet**): a chain :math:`H^{(i)} = u_i(H^{(i-1)})`, :math:`i = 1..k`, and
  :math:`Z = [H^{(0)} \| H^{(1)} \| \cdots \| H^{(k)}]` (width ``hidden * (k+1)``; the official
  code orders the blocks :math:`[H^{(k)} \| H^{(0)} \| \cdots \| H^{(k-1)}]`, a permutation of the
  output weight's rows).
- ``incepgcn`` (``--type inceptiongcn``): :math:`k` branches from :math:`H^{(0)}`, branch
  :math:`j` a chain of :math:`j` units of its own, :math:`B_j = u_{j,j}(\cdots u_{j,1}(H^{(0)}))`,
  and :math:`Z = [H^{(0)} \| B_1 \| \cdots \| B_k]`; :math:`k(k+1)/2` hidden convolutions.

Depth convention: depth :math:`L` = number of graph convolutions on the longest input → output
path, the input (in → hidden) and output (→ out) ones included. This is the official docstring's
"total layer is nhidlayer*nbaselayer + 2" (``GCNModel``). ``densegcn`` and ``incepgcn`` use one
block of :math:`k = L - 2` layers (``--nhiddenlayer 1``, as every published script: JKNet
``nbaseblocklayer`` 2 / 14 / 30 for 4 / 16 / 32 layers, IncepGCN 62 for Cora's 64), so
:math:`L \ge 3` (the published tables start at 4). No ResGCN script is published, so its split of
:math:`L - 2` into blocks is **our choice**: ``nbaseblocklayer`` :math:`b` layers per block
(default 1, the official ``train_new.py`` default: a skip over every hidden convolution), and
:math:`(L-2)/b` blocks, so :math:`L = 2 + n b`, :math:`n \ge 1`; ``nbaseblocklayer: 0`` puts all
:math:`L - 2` in one block with a single skip (the published scripts' ``--nhiddenlayer 1`` pattern).
The repository's protocol notes leave this mapping unverified; every record stores the config.

Dropout (official placement): after the activation of every convolution but the output one,
before the block's aggregation; not on the raw features, not again before the output
convolution. ``dropout_layers`` must be ``all`` (``io`` is not defined for these backbones).
Norm: ``norm`` (DropEdge: none, or BatchNorm with ``--withbn``) after each convolution but the
output one, before the activation, with the width of that convolution's output (always
``hidden``). Differences from the official code: its ``--withbn`` also batch-normalizes the
logits, its ``--withloop`` (an extra :math:`H W_{self}` term) is not offered, the weights are
initialized as PyG's ``GCNConv`` initializes them (Glorot, bias 0; the loop model of gdepth was
built from ``GCNConv``) instead of the official :math:`U(\pm 1/\sqrt{out})`, and DropEdge itself
(random edge removal) is not part of the model.

Seed-native (:mod:`gdepth.nn.seeds`): every convolution holds its S seeds' weights stacked
(``[S, d_in, d_out]``) and computes them with one :func:`gdepth.nn.kernels.stacked_conv` (one
sparse product for all seeds); the blocks are wired identically for every seed, so seed ``s``
computes what a one-seed model with its weights computes. (Cells with ``train.dropedge`` draw a
graph per seed and train the seeds one at a time.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import ModelConfig, NormConfig, ResGCNConfig
from gdepth.models import common
from gdepth.models.gcn_tricks import SeedGCNConv
from gdepth.nn.dropout import MaskFn, relu_dropout, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput, StackedNorm
from gdepth.nn.propagation import Propagation
from gdepth.norms import build_seeded_norm
from gdepth.options import unknown

_PATH = (
    "depth L = graph convolutions on the longest input->output path, input (in->hidden) and "
    "output (->out) included (DropEdge GCNModel: nhidlayer*nbaselayer + 2); each conv but the "
    "output one is conv -> norm -> act -> dropout; "
)
RESGCN_CONVENTION = _PATH + (
    "L-2 hidden convs in residual blocks of b = nbaseblocklayer convs, h <- block(h) + h "
    "(b=1 default, b=0: one block of L-2; our choice, no ResGCN script published); "
    "valid L = 2 + n*b, n >= 1"
)
DENSEGCN_CONVENTION = _PATH + (
    "one dense block (nhidlayer 1, as DropEdge's JKNet scripts) of L-2 chained convs; the output "
    "conv reads the concatenation of the input conv's and all L-2 outputs; valid L >= 3"
)
INCEPGCN_CONVENTION = _PATH + (
    "one inception block (nhidlayer 1, as DropEdge's IncepGCN scripts) of branches of 1..L-2 "
    "convs from the input conv's output, concatenated with it for the output conv; "
    "(L-2)(L-1)/2 + 2 convs in all; valid L >= 3"
)




class GCNUnit(nn.Module):
    """``drop(act(norm(Â H W_s + b_s)))`` for S seeds: one hidden graph convolution of DropEdge's
    blocks (``GraphConvolutionBS`` followed by the block's ``F.dropout``)."""

    def __init__(self, num_seeds: int, in_dim: int, out_dim: int, norm_cfg: Any,
                 activation: str, dropout: float) -> None:
        super().__init__()
        self.conv = SeedGCNConv(num_seeds, in_dim, out_dim)
        self.norm = build_seeded_norm(norm_cfg, out_dim, num_seeds)
        self.act = common.activation(activation)
        self.dropout = float(dropout)
        self.fused = type(self.norm) is StackedNorm and isinstance(self.act, nn.ReLU)

    def forward(self, h: Tensor | StackedInput, adj: Propagation,
                mask_fn: MaskFn | None) -> Tensor:
        out = self.conv(h, adj)
        p = self.dropout if self.training else 0.0
        if self.fused:  # ReLU + dropout in place, only the output saved
            return relu_dropout(out, p, True, mask_fn)
        return stacked_dropout(self.act(self.norm(out)), p, True, mask_fn)


class DropEdgeBackbone(nn.Module):
    """Input unit, hidden blocks (:meth:`hidden`), output convolution (module docstring), for
    S seeds: ``forward(x_in, adj) -> [N, S, out_dim]``.

    Args:
        num_seeds: S.
        in_dim: input features (dense or sparse CSR).
        hidden: width of every hidden convolution.
        out_dim: output features (classes).
        depth: graph convolutions on the longest path, input and output included (module
            docstring); an invalid one raises ``ValueError`` naming the valid ones.
        norm_cfg: ``norm`` config, one after each convolution but the output one; ``None`` for
            none. (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability after each hidden unit. (default: ``0.5``)
        nbaseblocklayer: layers per residual block (``resgcn`` only; 0: one block).
            (default: ``1``)
    """

    name = ""

    def __init__(
        self,
        num_seeds: int,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        nbaseblocklayer: int = 1,
    ) -> None:
        super().__init__()
        self.num_seeds = int(num_seeds)
        self.depth, self.hidden_dim = int(depth), int(hidden)
        self.check_depth(self.depth, int(nbaseblocklayer))

        def unit(a: int) -> GCNUnit:
            return GCNUnit(self.num_seeds, a, hidden, norm_cfg, activation, dropout)

        self.input = unit(in_dim)
        out_in = self.make_blocks(unit, int(nbaseblocklayer))
        self.output = SeedGCNConv(self.num_seeds, out_in, out_dim)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    def check_depth(self, depth: int, nbaseblocklayer: int) -> None:
        if depth < 3:
            raise ValueError(f"{self.name}: depth {depth} is not valid; valid: L >= 3 (3, 4, 5, …)")

    def make_blocks(self, unit: Callable[[int], GCNUnit], nbaseblocklayer: int) -> int:
        """Create the hidden blocks; return the width the output convolution reads."""
        raise NotImplementedError

    def hidden(self, h: Tensor, adj: Propagation) -> Tensor:
        """:math:`Z` ``[N, S, ·]`` from the input unit's output :math:`H^{(0)}`."""
        raise NotImplementedError

    def _chain(self, units: nn.ModuleList, h: Tensor, adj: Propagation) -> Tensor:
        for unit in units:
            h = unit(h, adj, self.mask_fn)
        return h

    def units(self) -> list[GCNUnit]:
        """Every hidden unit, the input one first, in module order."""
        return [m for m in self.modules() if isinstance(m, GCNUnit)]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """None: the backbones have no ``first_layer()`` (Kipf & Welling's first-layer decay)."""
        raise NotBatchable(f"train.weight_decay_first_only=true but model "
                           f"{type(self).__name__} has no first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """What the one-seed PyG model named ``*weight*``: the convolutions' weights and the
        norms' (BatchNorm's scale), the output convolution's last."""
        out: list[nn.Parameter] = []
        for unit in self.units():
            out += [unit.conv.weight, *unit.norm.weight_parameters()]
        return [*out, self.output.weight]

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None) -> Tensor:
        """Logits ``[N, S, out_dim]`` (``[R, S, out_dim]`` for ``rows``) from the shared
        features and the propagation of the normalized adjacency."""
        out = self.output(self.hidden(self.input(x_in, adj, self.mask_fn), adj), adj)
        return out if rows is None else out[rows]

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, depth={self.depth}"


class ResGCN(DropEdgeBackbone):
    """DropEdge's ResGCN: blocks :math:`H \\leftarrow u_b(\\cdots u_1(H)) + H`."""

    name = "resgcn"

    def check_depth(self, depth: int, nbaseblocklayer: int) -> None:
        b = nbaseblocklayer
        if b < 0:
            raise ValueError(f"resgcn: nbaseblocklayer must be >= 0, got {b}")
        if b == 0 or b == 1:
            super().check_depth(depth, b)
        elif depth < 2 + b or (depth - 2) % b:
            valid = ", ".join(str(2 + n * b) for n in range(1, 4))
            raise ValueError(
                f"resgcn: depth {depth} is not valid with nbaseblocklayer={b}; "
                f"valid: L = 2 + n*{b}, n >= 1 ({valid}, …)"
            )

    def make_blocks(self, unit: Callable[[int], GCNUnit], nbaseblocklayer: int) -> int:
        b = nbaseblocklayer or self.depth - 2
        self.blocks = nn.ModuleList(
            nn.ModuleList(unit(self.hidden_dim) for _ in range(b))
            for _ in range((self.depth - 2) // b)
        )
        return self.hidden_dim

    def hidden(self, h: Tensor, adj: Propagation) -> Tensor:
        for block in self.blocks:
            h = self._chain(block, h, adj) + h
        return h


class DenseGCN(DropEdgeBackbone):
    """DropEdge's DenseGCN (its README's "JKNet"): :math:`Z = [H^{(0)} \\| \\cdots \\| H^{(k)}]`."""

    name = "densegcn"

    def make_blocks(self, unit: Callable[[int], GCNUnit], nbaseblocklayer: int) -> int:
        k = self.depth - 2
        self.layers = nn.ModuleList(unit(self.hidden_dim) for _ in range(k))
        return self.hidden_dim * (k + 1)

    def hidden(self, h: Tensor, adj: Propagation) -> Tensor:
        outs = [h]
        for unit in self.layers:
            outs.append(unit(outs[-1], adj, self.mask_fn))
        return torch.cat(outs, dim=-1)


class IncepGCN(DropEdgeBackbone):
    """DropEdge's IncepGCN: :math:`Z = [H^{(0)} \\| B_1 \\| \\cdots \\| B_k]`, branch
    :math:`B_j` a chain of :math:`j` units."""

    name = "incepgcn"

    def make_blocks(self, unit: Callable[[int], GCNUnit], nbaseblocklayer: int) -> int:
        k = self.depth - 2
        self.branches = nn.ModuleList(
            nn.ModuleList(unit(self.hidden_dim) for _ in range(j)) for j in range(1, k + 1)
        )
        return self.hidden_dim * (k + 1)

    def hidden(self, h: Tensor, adj: Propagation) -> Tensor:
        return torch.cat([h] + [self._chain(branch, h, adj) for branch in self.branches],
                         dim=-1)


def _build(
    cls: type[DropEdgeBackbone],
    model_cfg: ModelConfig,
    norm_cfg: NormConfig | None,
    depth: int,
    in_dim: int,
    out_dim: int,
    num_seeds: int,
    **extra: Any,
) -> DropEdgeBackbone:
    dropout_layers = str(model_cfg.dropout_layers)
    if dropout_layers != "all":
        raise unknown(f"dropout_layers for {cls.name}", dropout_layers, ["all"])
    return cls(
        num_seeds,
        in_dim,
        out_dim=out_dim,
        depth=depth,
        **extra,
        **common.model_options(model_cfg, norm_cfg, without=("dropout_layers",)),
    )


def build_resgcn(model_cfg: ResGCNConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
                 out_dim: int, num_seeds: int) -> ResGCN:
    """``resgcn`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.ResGCNConfig`:
    hidden, dropout, activation, nbaseblocklayer; 0: one block of L-2)."""
    return _build(ResGCN, model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds,
                  nbaseblocklayer=int(model_cfg.nbaseblocklayer))


def build_densegcn(model_cfg: ModelConfig, norm_cfg: NormConfig | None, depth: int,
                   in_dim: int, out_dim: int, num_seeds: int) -> DenseGCN:
    """``densegcn`` for ``num_seeds`` seeds from its config (hidden, dropout, activation)."""
    return _build(DenseGCN, model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds)


def build_incepgcn(model_cfg: ModelConfig, norm_cfg: NormConfig | None, depth: int,
                   in_dim: int, out_dim: int, num_seeds: int) -> IncepGCN:
    """``incepgcn`` for ``num_seeds`` seeds from its config (hidden, dropout, activation)."""
    return _build(IncepGCN, model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds)





