r"""GGNN: an input linear layer, PyG ``GatedGraphConv`` (L GRU propagation steps), a linear output.

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
steps, as PyG's ``GatedGraphConv(hidden, num_layers=L)``, whose parameters the model holds and
whose steps it runs one by one to put the norm after each (with no norm the result is exactly
``GatedGraphConv``'s). The paper pads :math:`\mathbf{x}` with zeros to the state width; here a
learned input linear layer maps it (dense or sparse CSR) to ``hidden``. The sum runs over the
in-neighbors from the structure of ``adj`` (its weights are not used, self loops dropped: the GRU
carries the node's own state); the edges are read once per adjacency object and cached.
The GRU gates are the nonlinearity: the config's ``activation`` is not used.

Depth convention: depth :math:`L` = number of propagation steps (``GatedGraphConv``'s
``num_layers``), each followed by norm; the input (in → hidden) and output (hidden → out) linear
layers do not count. Dropout with probability ``dropout`` precedes the input and the output
linear layer (``all`` and ``io`` are the same here).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch_geometric.nn import GatedGraphConv

from gdepth.models import common
from gdepth.models.adjacency import EdgeIndexCache
from gdepth.norms import build_norm

GGNN_CONVENTION = (
    "depth L = number of GatedGraphConv propagation steps (num_layers; per-step weight, shared "
    "GRU), each followed by norm; the input (in->hidden) and output (hidden->out) linear layers "
    "do not count (Li et al. 2016); no activation; sums over the edges of adj, not its weights"
)


class GGNN(common.LayerDropout, nn.Module):
    """Input linear, ``depth`` gated propagation steps, linear output (see the module docstring).

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
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.lin_in = nn.Linear(in_dim, hidden)
        self.ggc = GatedGraphConv(hidden, num_layers=depth, aggr="add")
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth))
        self.lin_out = nn.Linear(hidden, out_dim)
        self.set_dropout(dropout, dropout_layers, 2)  # 0: lin_in, 1: lin_out
        self.edges = EdgeIndexCache()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        edge_index = self.edges(adj)
        h = common.tap(self, self.lin_in(self._drop(common.tap(self, x), 0)))
        for weight, norm in zip(self.ggc.weight, self.norms, strict=True):
            m = self.ggc.propagate(edge_index, x=h @ weight, edge_weight=None)
            h = common.tap(self, norm(self.ggc.rnn(m, h)))
        return common.tap(self, self.lin_out(self._drop(h, 1)))


def build_ggnn(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GGNN:
    """``ggnn`` from a ``model`` config: keys hidden (64), dropout (0.5), dropout_layers ("all");
    ``activation`` is ignored (see the module docstring)."""
    return GGNN(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        **common.model_options(model_cfg, norm_cfg, without=("activation",)),
    )
