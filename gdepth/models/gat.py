r"""GAT: a stack of graph attention layers on the graph structure of the adjacency, seed-native.

Veličković, Cucurull, Casanova, Romero, Liò and Bengio, "Graph Attention Networks", ICLR 2018,
arXiv 1710.10903, https://arxiv.org/abs/1710.10903. Each head :math:`k` of a layer attends over
the neighbors :math:`j \in \mathcal{N}(i) \cup \{i\}`:

.. math::
    \alpha_{ij}^{k} = \operatorname{softmax}_j\big(\mathrm{LeakyReLU}_{0.2}
        (\mathbf{a}^{k\top} [W^{k} \mathbf{h}_i \,\|\, W^{k} \mathbf{h}_j])\big), \qquad
    \mathbf{h}_i' = \big\Vert_{k=1}^{K} \sigma\Big(\mathrm{norm}\Big(\textstyle\sum_j
        \alpha_{ij}^{k} W^{k} \mathbf{h}_j\Big)\Big)

(norm and :math:`\sigma` act on the concatenation of the heads plus the bias). Hidden layers have
``heads`` concatenated heads of ``hidden / heads`` channels each, so their width is ``hidden``;
the output layer has ``output_heads`` heads of ``out`` channels, averaged (the paper: 1 head on
Cora/Citeseer, 8 averaged on PubMed). The paper uses ELU; here ``activation`` from the config.
Attention coefficients get dropout ``attention_dropout``.

Each layer computes what PyG's ``GATConv(d_in, d / heads, heads, concat, dropout=
attention_dropout)`` (negative_slope 0.2, add_self_loops, bias) computes, for S seeds at once
(:mod:`gdepth.nn.seeds`): :math:`\mathbf{a}^{k\top} [W^{k} \mathbf{h}_i \| W^{k} \mathbf{h}_j]
= \mathbf{a}_{dst}^{k} \cdot W^k\mathbf{h}_i + \mathbf{a}_{src}^{k} \cdot W^k\mathbf{h}_j`,
one ``bmm`` for every seed's transform (seed-major ``[S, N, heads·d]``), one more for both
scores of every head, the scores of all seeds gathered at the edge endpoints at once
(``[S, E, heads]``), then the softmax over each
node's incoming edges and the weighted sum by hand (:class:`gdepth.nn.attention.EdgeSoftmax`
and :class:`gdepth.nn.attention.Aggregate`: seed by seed inside one autograd node, which keeps
each seed's edge messages in cache). The initial weights are GATConv's draws (glorot
``lin`` weight, drawn twice as PyG does, glorot ``att_src`` then ``att_dst``, zero bias, per
layer in order), so seed s starts where the PyG model built after ``torch.manual_seed(s)`` started.

Only the structure of ``adj`` is used, not its weights: the edges are read from the sparse
``adj`` (row = target, column = source) once per adjacency object and cached on the module, self
loops dropped, then one self loop per node added (as ``GATConv`` does), so every node attends to
itself whether or not the dataset adds self loops.

Depth convention: depth :math:`L` = number of GAT layers, input (in → hidden) and output
(hidden → out) included; :math:`L = 1` is one in → out layer. Each layer but the last is followed
by norm → activation. Dropout with probability ``dropout`` is applied to the input of the layers
selected by ``dropout_layers`` (``all`` or ``io``: first and last only).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth.config import GATConfig, NormConfig
from gdepth.models import common
from gdepth.models.adjacency import PerAdjacency, edge_index_from_adj
from gdepth.nn.attention import Aggregate, AttentionEdges, EdgeSoftmax
from gdepth.nn.dropout import keep_mask, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.seeds import glorot_
from gdepth.norms import build_seeded_norm

GAT_CONVENTION = (
    "depth L = number of GATConv layers, input (in->hidden) and output (hidden->out) included "
    "(Velickovic et al. 2018); hidden layers: `heads` concatenated heads of hidden/heads channels, "
    "each followed by norm -> activation; output: `output_heads` heads averaged; L=1 is one "
    "in->out layer; uses the edges of adj, not its weights"
)


def attention_edges(adj: Tensor) -> AttentionEdges:
    """The edges of the sparse ``adj`` (rows targets, columns sources; its values unused), self
    loops dropped and one per node added: the edge set ``GATConv`` attends over when given
    :func:`gdepth.models.adjacency.edge_index_from_adj` (its ``remove_self_loops`` then
    ``add_self_loops``)."""
    source, target = edge_index_from_adj(adj)
    n = adj.shape[0]
    loops = torch.arange(n, device=source.device)
    src, dst = torch.cat([source, loops]), torch.cat([target, loops])
    order = torch.argsort(dst * n + src)
    src, dst = src[order], dst[order]
    ptr = torch.zeros(n + 1, dtype=torch.long, device=src.device)
    ptr[1:] = torch.bincount(dst, minlength=n).cumsum(0)
    return AttentionEdges(src, dst, ptr)


class SeedGATConv(nn.Module):
    r"""PyG's ``GATConv(d_in, channels, heads, concat, negative_slope, dropout)`` (self loops
    added, bias) for S seeds: ``weight [S, d_in, heads·channels]`` (``lin.weight`` transposed),
    ``att_src`` / ``att_dst [S, heads, channels]``, ``bias [S, heads·channels]`` (concat) or
    ``[S, channels]`` (mean over the heads).

    ``forward(z, edges, training, mask_fn)`` takes the transformed features
    :math:`Z = HW` ``[N, S, heads·channels]`` (:meth:`transform`, or the first layer's
    :class:`gdepth.nn.kernels.StackedInput`) and returns ``[N, S, heads·channels]`` or
    ``[N, S, channels]``.
    """

    def __init__(self, num_seeds: int, d_in: int, channels: int, heads: int, concat: bool,
                 attention_dropout: float = 0.0, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.num_seeds, self.d_in, self.channels, self.heads = num_seeds, d_in, channels, heads
        self.concat, self.negative_slope = concat, float(negative_slope)
        self.attention_dropout = float(attention_dropout)
        self.weight = nn.Parameter(torch.empty(num_seeds, d_in, heads * channels))
        self.att_src = nn.Parameter(torch.empty(num_seeds, heads, channels))
        self.att_dst = nn.Parameter(torch.empty(num_seeds, heads, channels))
        self.bias = nn.Parameter(torch.zeros(num_seeds, heads * channels if concat else channels))
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        r"""GATConv's draws: glorot ``lin`` ``[heads·channels, d_in]`` twice (PyG's ``Linear``
        draws it when built, ``GATConv.reset_parameters`` again; the second stays), glorot
        ``att_src`` then ``att_dst`` (PyG's ``glorot`` on ``[1, heads, channels]``: bound
        :math:`\sqrt{6/(heads + channels)}`), zero bias."""
        with torch.no_grad():
            for _ in range(2):
                glorot_(self.weight[s], self.d_in, self.heads * self.channels)
            a = math.sqrt(6.0 / (self.heads + self.channels))
            for att in (self.att_src, self.att_dst):
                att[s].copy_(torch.empty(self.heads, self.channels, dtype=att.dtype)
                             .uniform_(-a, a))
            self.bias[s].zero_()

    def transform(self, h: Tensor) -> Tensor:
        """:math:`Z_s = H_s W_s` for every seed, ``h [N, S, d_in] -> [N, S, heads·channels]``
        (a node-major view of a seed-major tensor, the layout :meth:`forward` reads)."""
        return torch.bmm(h.transpose(0, 1), self.weight).transpose(0, 1)

    def forward(self, z: Tensor, edges: AttentionEdges, training: bool = False,
                mask_fn=None) -> Tensor:
        """The layer's output for every seed from ``z [N, S, heads·channels]``; in training the
        attention coefficients get dropout, each seed its own mask (``mask_fn((E, heads), p)
        -> [S, E, heads]`` when one is injected)."""
        n, s = z.shape[:2]
        h, c = self.heads, self.channels
        zs = z.transpose(0, 1).contiguous()  # [S, N, heads·C], seed-major
        # both scores of every head as one product with the block-diagonal [heads·C, 2 heads]
        # matrix of a_src, a_dst (instead of a product and a sum over [S, N, heads, C]).
        eye = torch.eye(h, dtype=zs.dtype, device=zs.device)
        att = torch.cat([self.att_src, self.att_dst], dim=1)  # [S, 2 heads, C]
        blocks = (att.view(s, 2, h, c, 1) * eye.view(1, 1, h, 1, h)).permute(0, 2, 3, 1, 4)
        scores = torch.bmm(zs, blocks.reshape(s, h * c, 2 * h))  # [S, N, 2·heads]
        e = F.leaky_relu(scores[..., :h].index_select(1, edges.src)
                         + scores[..., h:].index_select(1, edges.dst), self.negative_slope)
        alpha = EdgeSoftmax.apply(e, edges)  # [S, E, heads]
        if training and self.attention_dropout > 0.0:
            p = self.attention_dropout
            alpha = alpha * (mask_fn(tuple(alpha.shape[1:]), p).to(alpha.dtype)
                             if mask_fn is not None else keep_mask(alpha, p))
        out = Aggregate.apply(zs.view(s, n, h, c), alpha, edges)  # [S, N, heads, C]
        out = out.view(s, n, -1) if self.concat else out.mean(dim=2)
        return (out + self.bias.unsqueeze(1)).transpose(0, 1)

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, {self.d_in} -> {self.heads}x{self.channels}, "
                f"concat={self.concat}, attention_dropout={self.attention_dropout}")


class GAT(nn.Module):
    """``depth`` GAT layers on the edges of ``adj`` for ``num_seeds`` seeds (see the module
    docstring): ``forward(x_in, adj) -> [N, S, out_dim]``.

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: hidden width, a multiple of ``heads``.
        out_dim: output features (classes).
        depth: number of GAT layers, >= 1.
        heads: attention heads of each hidden layer, concatenated. (default: ``8``)
        output_heads: attention heads of the output layer, averaged. (default: ``1``)
        attention_dropout: dropout on the attention coefficients. (default: ``0.6``)
        norm_cfg: ``norm`` config, one norm after each layer but the last; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability of the layer inputs. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
        num_seeds: seeds held side by side. (default: ``1``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        heads: int = 8,
        output_heads: int = 1,
        attention_dropout: float = 0.6,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if heads < 1 or output_heads < 1:
            raise ValueError(f"heads and output_heads must be >= 1, got {heads}, {output_heads}")
        if depth > 1 and hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.num_seeds = num_seeds
        dims = [in_dim] + [hidden] * (depth - 1)
        att = float(attention_dropout)
        self.convs = nn.ModuleList(
            SeedGATConv(num_seeds, a, hidden // heads, heads, True, att) for a in dims[:-1])
        self.convs.append(SeedGATConv(num_seeds, dims[-1], out_dim, output_heads, False, att))
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.dropout = float(dropout)
        self.dropout_at = common.dropout_positions(dropout_layers, depth)
        self.mask_fn = None
        self.layer_sink: list | None = None
        self.edges = PerAdjacency(attention_edges)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        raise NotBatchable("train.weight_decay_first_only=true but model GAT has no "
                           "first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The layers' ``weight`` (GATConv's ``lin.weight``; ``att_src`` / ``att_dst`` are not
        named weight) and the norms' weights."""
        return [p for child in self.children() for p in common.weight_parameters_of(child)]

    def _drop(self, h: Tensor, position: int) -> Tensor:
        p = self.dropout if position in self.dropout_at else 0.0
        return stacked_dropout(h, p, self.training, self.mask_fn)

    def forward(self, x_in: Any, adj: Any, rows: Tensor | None = None) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the input features (a
        :class:`gdepth.nn.kernels.StackedInput` or ``[N, in_dim]``) and the propagation (a
        :class:`gdepth.nn.propagation.Propagation` or the sparse ``adj``); only its edges are
        read."""
        x_in = x_in if isinstance(x_in, StackedInput) else StackedInput(x_in)
        edges = self.edges(getattr(adj, "adj", adj))
        common.tap(self, x_in.x)
        first = self.convs[0]
        p = self.dropout if 0 in self.dropout_at and self.training else 0.0
        out = first(x_in(first.weight, p, self.mask_fn), edges, self.training, self.mask_fn)
        for i, conv in enumerate(self.convs[1:], start=1):
            h = common.tap(self, self.act(self.norms[i - 1](out)))
            out = conv(conv.transform(self._drop(h, i)), edges, self.training, self.mask_fn)
        common.tap(self, out)
        return out if rows is None else out[rows]


def build_gat(model_cfg: GATConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
              out_dim: int, num_seeds: int) -> GAT:
    """``gat`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.GATConfig`:
    hidden, heads, output_heads, attention_dropout, dropout, dropout_layers, activation)."""
    return GAT(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        heads=int(model_cfg.heads),
        output_heads=int(model_cfg.output_heads),
        attention_dropout=float(model_cfg.attention_dropout),
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg),
    )
