r"""GAT: a stack of PyG ``GATConv`` attention layers on the graph structure of the adjacency.

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
Attention coefficients get dropout ``attention_dropout`` (PyG's ``GATConv(dropout=...)``).

Only the structure of ``adj`` is used, not its weights: the edges are read from the sparse
``adj`` (row = target, column = source) once per adjacency object and cached on the module, self
loops dropped; ``GATConv`` adds one self loop per node itself, so every node attends to itself
whether or not the dataset adds self loops.

Depth convention: depth :math:`L` = number of GAT layers, input (in → hidden) and output
(hidden → out) included; :math:`L = 1` is one in → out layer. Each layer but the last is followed
by norm → activation. Dropout with probability ``dropout`` is applied to the input of the layers
selected by ``dropout_layers`` (``all`` or ``io``: first and last only).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch_geometric.nn import GATConv

from gdepth.models import common
from gdepth.models.adjacency import EdgeIndexCache
from gdepth.norms import build_norm
from gdepth.options import option

GAT_CONVENTION = (
    "depth L = number of GATConv layers, input (in->hidden) and output (hidden->out) included "
    "(Velickovic et al. 2018); hidden layers: `heads` concatenated heads of hidden/heads channels, "
    "each followed by norm -> activation; output: `output_heads` heads averaged; L=1 is one "
    "in->out layer; uses the edges of adj, not its weights"
)


class GAT(common.LayerDropout, nn.Module):
    """``depth`` GAT layers on the edges of ``adj`` (see the module docstring).

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
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if heads < 1 or output_heads < 1:
            raise ValueError(f"heads and output_heads must be >= 1, got {heads}, {output_heads}")
        if depth > 1 and hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        dims = [in_dim] + [hidden] * (depth - 1)
        att = float(attention_dropout)
        self.convs = nn.ModuleList(
            GATConv(a, hidden // heads, heads=heads, concat=True, dropout=att) for a in dims[:-1]
        )
        self.convs.append(GATConv(dims[-1], out_dim, heads=output_heads, concat=False, dropout=att))
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth)
        self.edges = EdgeIndexCache()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        edge_index = self.edges(adj)
        x = common.tap(self, x)
        for i, (conv, norm) in enumerate(zip(self.convs[:-1], self.norms, strict=True)):
            x = common.tap(self, self.act(norm(conv(self._drop(x, i), edge_index))))
        return common.tap(self, self.convs[-1](self._drop(x, len(self.convs) - 1), edge_index))


def build_gat(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GAT:
    """``gat`` from a ``model`` config: keys hidden (64), heads (8), output_heads (1),
    attention_dropout (0.6), dropout (0.5), dropout_layers ("all"), activation ("relu")."""
    return GAT(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        heads=int(option(model_cfg, "heads", 8)),
        output_heads=int(option(model_cfg, "output_heads", 1)),
        attention_dropout=float(option(model_cfg, "attention_dropout", 0.6)),
        **common.model_options(model_cfg, norm_cfg),
    )
