r"""MLP: the graph-free baseline, a stack of linear layers on the node features alone.

.. math::
    H^{(0)} = X, \qquad
    H^{(l)} = \sigma\big(\mathrm{norm}(H^{(l-1)} W^{(l)} + b^{(l)})\big) \quad (l < L), \qquad
    \text{logits} = H^{(L-1)} W^{(L)} + b^{(L)}

The adjacency passed to ``forward`` is ignored: each node is classified from its own features.
The baseline every graph model must beat; on CSBM and heterophilous graphs it also shows how much
of the signal is in the features.

Depth convention: depth :math:`L` = number of linear layers, input (in → hidden) and output
(hidden → out) included; :math:`L = 1` is one in → out layer (logistic regression). This depth is
**not** message passing: no layer looks at the graph, so an MLP column measures the effect of
stacking nonlinear layers alone. Each layer but the last is followed by norm → activation.
Dropout with probability ``dropout`` precedes the layers selected by ``dropout_layers`` (``all``
or ``io``: first and last only).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gdepth.models import common
from gdepth.norms import build_norm

MLP_CONVENTION = (
    "depth L = number of linear layers, input (in->hidden) and output (hidden->out) included; "
    "L=1 is one in->out layer; each layer but the last is followed by norm -> activation; "
    "the graph is ignored, so this depth is not message passing"
)


class MLP(common.LayerDropout, nn.Module):
    """``depth`` linear layers on the features, the graph ignored (see the module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: hidden width.
        out_dim: output features (classes).
        depth: number of linear layers, >= 1.
        norm_cfg: ``norm`` config, one norm after each layer but the last; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability. (default: ``0.5``)
        dropout_layers: ``"all"``, ``"io"`` or ``"hidden"``. (default: ``"all"``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth)

    def forward(self, x: Tensor, adj: Any = None) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]``; ``adj`` is ignored."""
        x = common.tap(self, x)
        for i, (lin, norm) in enumerate(zip(self.lins[:-1], self.norms, strict=True)):
            x = common.tap(self, self.act(norm(lin(self._drop(x, i)))))
        return common.tap(self, self.lins[-1](self._drop(x, len(self.lins) - 1)))


def build_mlp(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> MLP:
    """``mlp`` from a ``model`` config: keys hidden (64), dropout (0.5), dropout_layers ("all"),
    activation ("relu")."""
    return MLP(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        **common.model_options(model_cfg, norm_cfg),
    )
