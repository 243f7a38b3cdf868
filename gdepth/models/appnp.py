r"""APPNP: a two-layer MLP, then personalized-PageRank propagation on a normalized adjacency.

Gasteiger (né Klicpera), Bojchevski and Günnemann, "Predict then Propagate: Graph Neural Networks
meet Personalized PageRank", ICLR 2019, arXiv 1810.05997, https://arxiv.org/abs/1810.05997:

.. math::
    H = f_\theta(X) = W_2\,\sigma(\mathrm{norm}(W_1 X + b_1)) + b_2, \qquad
    Z^{(0)} = H, \qquad
    Z^{(k+1)} = (1 - \alpha)\,\hat{A} Z^{(k)} + \alpha H, \qquad
    \text{logits} = Z^{(K)}

with :math:`\hat{A} = \tilde{D}^{-1/2}(A + I)\tilde{D}^{-1/2}` and teleport probability
:math:`\alpha` (``alpha``, paper default 0.1). The propagation has no weights; it is the same
computation as PyG's ``APPNP(K, alpha)``, written here as one ``adj @ z`` per step.

Depth convention: depth :math:`K` = number of propagation steps after the 2-layer MLP
(in → hidden → out); the MLP does not count. Dropout with probability ``dropout`` precedes both
linear layers (``dropout_layers`` ``all`` and ``io`` coincide for two layers). The paper's code
also drops adjacency entries during propagation; that is not done here.

Norm: ``norm`` (if not ``none``) is applied once, to the MLP's hidden layer before the activation;
the propagation itself has no place for one.

Parameter groups (:meth:`APPNP.named_parameter_groups`, for ``train.weight_decay_groups``):
``input`` = the first linear layer and the norm, ``output`` = the second linear layer. Bag of
Tricks' APPNP (``models/APPNP.py``) decays ``input`` with ``weight_decay1`` = 5e-3 and ``output``
with ``weight_decay2`` = 0 (``options/configs/APPNP.yml``); the propagation has no weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gdepth.models import common
from gdepth.norms import build_norm
from gdepth.options import option

APPNP_CONVENTION = (
    "depth K = number of propagation steps Z <- (1-alpha) A Z + alpha H after a 2-layer MLP "
    "(in->hidden->out) that does not count (Gasteiger et al. 2019); norm, if any, on the MLP's "
    "hidden layer"
)


def appnp_propagate(h: Tensor, adj: Tensor, steps: int, alpha: float,
                    model: nn.Module | None = None) -> Tensor:
    r"""``steps`` personalized-PageRank steps :math:`Z \leftarrow (1-\alpha)\hat{A}Z + \alpha H`
    from :math:`Z = H`, on ``h [N, F]`` with the sparse normalized ``adj [N, N]`` (each step's
    :math:`Z` handed to ``model``'s diagnostics tap, if given)."""
    z = h
    for _ in range(steps):
        z = (1.0 - alpha) * torch.sparse.mm(adj, z) + alpha * h
        if model is not None:
            common.tap(model, z)
    return z


class APPNP(nn.Module):
    """A 2-layer MLP then ``depth`` APPNP propagation steps (see the module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: hidden width of the MLP.
        out_dim: output features (classes).
        depth: number of propagation steps :math:`K`, >= 1.
        alpha: teleport probability. (default: ``0.1``)
        norm_cfg: ``norm`` config for the MLP's hidden layer; ``None`` for none.
            (default: ``None``)
        activation: a key of ``gdepth.models.common.ACTIVATIONS``. (default: ``"relu"``)
        dropout: dropout probability before each linear layer. (default: ``0.5``)
    """

    layer_outputs = True  # calls common.tap (input, each layer, logits)

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        depth: int,
        alpha: float = 0.1,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.lin1 = nn.Linear(in_dim, hidden)
        self.norm = build_norm(norm_cfg, hidden)
        self.act = common.activation(activation)
        self.lin2 = nn.Linear(hidden, out_dim)
        self.steps = depth
        self.alpha = float(alpha)
        self.dropout = float(dropout)

    def mlp(self, x: Tensor) -> Tensor:
        """The prediction :math:`H = f_\\theta(X)` before propagation."""
        h = self.act(self.norm(self.lin1(common.dropout(x, self.dropout, self.training))))
        return self.lin2(common.dropout(h, self.dropout, self.training))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        h = common.tap(self, self.mlp(common.tap(self, x)))
        return appnp_propagate(h, adj, self.steps, self.alpha, self)

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``input``: the first linear layer and the norm; ``output``: the second linear layer."""
        return {"input": [*self.lin1.parameters(), *self.norm.parameters()],
                "output": list(self.lin2.parameters())}

    def extra_repr(self) -> str:
        return f"K={self.steps}, alpha={self.alpha}, dropout={self.dropout}"


def build_appnp(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> APPNP:
    """``appnp`` from a ``model`` config: keys hidden (64), alpha (0.1), dropout (0.5),
    activation ("relu")."""
    return APPNP(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        alpha=float(option(model_cfg, "alpha", 0.1)),
        **common.model_options(model_cfg, norm_cfg, without=("dropout_layers",)),
    )
