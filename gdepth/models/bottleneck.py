r"""Bottleneck: the GNN of Alon & Yahav's Tree-NeighborsMatch experiments (GCN, GIN, GAT, GGNN).

Alon and Yahav, "On the Bottleneck of Graph Neural Networks and its Practical Implications",
ICLR 2021, arXiv 2006.05205, https://arxiv.org/abs/2006.05205; official code
github.com/tech-srl/bottleneck (``models/graph_model.py`` ``GraphModel``, ``common.py``
``GNN_TYPE.get_layer``). A linear input layer, ``L`` graph layers, a linear readout:

.. math::
    H^{(0)} = X W_{in} + b_{in}, \qquad
    H^{(l)} = \mathrm{LN}\big(H^{(l-1)} + \sigma(\mathrm{conv}_l(H^{(l-1)}, E_l))\big),
    \qquad \text{logits} = H^{(L)} W_{out} \ \text{(no bias)}

with :math:`\sigma` = ReLU (``activation: identity`` for their ``--no_activation``), the residual
``+ H^{(l-1)}`` dropped by ``residual: false`` (``--no_residual``) and the LayerNorm dropped by
``layer_norm: false`` (``--no_layer_norm``); their run scripts use all three for GGNN and
``identity`` activation for GAT. ``conv`` (``hidden`` = 32 in their code):

* ``gcn``: ``GCNConv(d, d)`` (PyG defaults: symmetric normalization by in-degree, self loops);
* ``gin``: ``GINConv(Seq(Lin, BatchNorm1d, ReLU, Lin, BatchNorm1d, ReLU))``, :math:`\epsilon=0`;
* ``gat``: ``GATConv(d, d / 4, heads=4)``, heads concatenated;
* ``ggnn``: ``GatedGraphConv(d, num_layers=1)``, one per layer.

Edges :math:`E_l` are the structure of ``adj`` (row = target, column = source; its weights are
not used) plus a self loop at every node, as the authors' trees carry
(``add_remaining_self_loops``); each PyG layer treats them as in their code (GIN and GGNN sum
over the self loop too). With ``fully_adjacent_last`` the last layer uses instead one edge from
every node to its tree's root (:func:`gdepth.data.tree_match.fully_adjacent_edge_index`; §4 of
the paper), which needs ``root_of`` in :meth:`Bottleneck.forward`.

The model returns logits for every node; on Tree-NeighborsMatch only the roots are scored (the
authors apply the readout to the roots only: the same numbers), and training there computes the
roots' logits level by level instead (:mod:`gdepth.models.bottleneck_trees`, same parameters,
same numbers up to rounding). ``dropout`` (0 in their code) precedes each graph layer selected
by ``dropout_layers``.

Depth convention: depth :math:`L` = number of graph layers; the linear input and output layers
do not count. The paper uses :math:`L = r + 1` on trees of depth :math:`r`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GatedGraphConv, GCNConv, GINConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_remaining_self_loops

from gdepth.config import BottleneckConfig, NormConfig
from gdepth.models import common
from gdepth.models.adjacency import PerAdjacency, edge_index_from_adj
from gdepth.options import unknown

BOTTLENECK_CONVENTION = (
    "depth L = number of graph layers (conv: gcn | gin | gat | ggnn, hidden->hidden, each "
    "x = LN(x + act(conv(x)))); the linear input (in->hidden) and the bias-free linear readout "
    "(hidden->out) do not count (Alon & Yahav 2021, GraphModel); the paper uses L = r + 1"
)
GAT_HEADS = 4  # the authors' GATConv(d, d // 4, heads=4)


def _gin(dim: int) -> GINConv:
    mlp = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(),
                        nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU())
    return GINConv(mlp)


def _gat(dim: int) -> GATConv:
    if dim % GAT_HEADS:
        raise ValueError(f"bottleneck conv=gat: hidden={dim} must be a multiple of {GAT_HEADS}")
    return GATConv(dim, dim // GAT_HEADS, heads=GAT_HEADS)


CONVS: dict[str, Any] = {
    # normalize=False: the forward normalizes once per edge set (gcn_norm, as GCNConv's default)
    "gcn": lambda dim: GCNConv(dim, dim, normalize=False),
    "gin": _gin,
    "gat": _gat,
    "ggnn": lambda dim: GatedGraphConv(dim, num_layers=1),
}


class Bottleneck(common.LayerDropout, nn.Module):
    """Alon & Yahav's ``GraphModel`` (see the module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        out_dim: output features (classes).
        depth: number of graph layers :math:`L`, >= 1.
        conv: ``gcn``, ``gin``, ``gat`` or ``ggnn``. (default: ``"gcn"``)
        hidden: width of every layer. (default: ``32``)
        residual: add each layer's input to its output. (default: ``True``)
        layer_norm: LayerNorm after each layer (after the residual). (default: ``True``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``, on each conv's output.
            (default: ``"relu"``)
        fully_adjacent_last: the last layer connects every node to its tree's root only.
            (default: ``False``)
        dropout: dropout probability before the graph layers. (default: ``0.0``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        depth: int,
        conv: str = "gcn",
        hidden: int = 32,
        residual: bool = True,
        layer_norm: bool = True,
        activation: str = "relu",
        fully_adjacent_last: bool = False,
        dropout: float = 0.0,
        dropout_layers: str = "all",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if conv not in CONVS:
            raise unknown("bottleneck conv", conv, CONVS)
        self.conv_name = conv
        self.lin_in = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(CONVS[conv](hidden) for _ in range(depth))
        self.norms = nn.ModuleList(
            nn.LayerNorm(hidden) if layer_norm else nn.Identity() for _ in range(depth))
        self.act = common.activation(activation)
        self.residual = bool(residual)
        self.fully_adjacent_last = bool(fully_adjacent_last)
        self.lin_out = nn.Linear(hidden, out_dim, bias=False)
        self.set_dropout(dropout, dropout_layers, depth)
        self.edges = PerAdjacency(edge_index_from_adj)
        self._looped: tuple[Tensor, Tensor] | None = None  # (edges of adj, with self loops)

    def forward(self, x: Tensor, adj: Tensor, root_of: Tensor | None = None) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``.

        ``root_of [N]`` (node → index of its tree's root) is needed only with
        ``fully_adjacent_last``; :func:`gdepth.train_trees.fit_trees` passes it.
        """
        edges = self._normalized(self.edge_index(adj), x.size(0))
        x = common.tap(self, x)
        # the authors' Linear(dim0, d); F.linear so that sparse CSR features work too
        h = F.linear(x, self.lin_in.weight) + self.lin_in.bias
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if self.fully_adjacent_last and i == last:
                edges = self._normalized(self.fully_adjacent_edges(h.size(0), root_of), h.size(0))
            new = self.act(conv(self._drop(h, i), *edges))
            h = common.tap(self, norm(h + new if self.residual else new))
        return common.tap(self, self.lin_out(h))

    def edge_index(self, adj: Tensor) -> Tensor:
        """The structure of ``adj`` as ``[2, E]`` source → target edges, self loops at every
        node (the authors' tree edges; cached per adjacency object)."""
        edge_index = self.edges(adj)
        if self._looped is None or self._looped[0] is not edge_index:
            looped, _ = add_remaining_self_loops(edge_index, num_nodes=adj.size(0))
            self._looped = (edge_index, looped)
        return self._looped[1]

    def _normalized(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, ...]:
        """``(edge_index,)``, or for GCN ``gcn_norm``'s ``(edge_index, weight)``: the
        normalization ``GCNConv`` computes by default (remaining self loops added, degree =
        in-degree), once for all layers instead of once per layer."""
        if self.conv_name != "gcn":
            return (edge_index,)
        return tuple(gcn_norm(edge_index, None, num_nodes, add_self_loops=True))

    @staticmethod
    def fully_adjacent_edges(num_nodes: int, root_of: Tensor | None) -> Tensor:
        """Edges ``i → root_of[i]`` for every node ``i`` (a root's edge is its self loop), the
        authors' ``stack([arange(num_nodes), root_indices[batch]])``."""
        if root_of is None:
            raise ValueError("bottleneck fully_adjacent_last=true needs root_of (each node's "
                             "tree root); only dataset=tree_match (gdepth.train_trees) gives it")
        source = torch.arange(num_nodes, device=root_of.device)
        return torch.stack([source, root_of])

    def extra_repr(self) -> str:
        return (f"conv={self.conv_name}, residual={self.residual}, "
                f"fully_adjacent_last={self.fully_adjacent_last}, dropout={self.dropout}")


def build_bottleneck(model_cfg: BottleneckConfig, norm_cfg: NormConfig | None, depth: int,
                     in_dim: int, out_dim: int) -> Bottleneck:
    """``bottleneck`` from its config (:class:`gdepth.config.BottleneckConfig`: conv, hidden,
    residual, layer_norm, activation, fully_adjacent_last, dropout, dropout_layers). The model
    has its own ``layer_norm`` flag: ``norm`` must be ``none``."""
    norm = "none" if norm_cfg is None else norm_cfg.name
    if norm != "none":
        raise ValueError(f"model=bottleneck takes norm=none (got norm={norm}); its LayerNorm is "
                         "model.layer_norm=true|false")
    return Bottleneck(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        conv=str(model_cfg.conv),
        hidden=int(model_cfg.hidden),
        residual=bool(model_cfg.residual),
        layer_norm=bool(model_cfg.layer_norm),
        activation=str(model_cfg.activation),
        fully_adjacent_last=bool(model_cfg.fully_adjacent_last),
        dropout=float(model_cfg.dropout),
        dropout_layers=str(model_cfg.dropout_layers),
    )
