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

Seed axis (:mod:`gdepth.nn.seeds`): the model holds S seeds, the MLP's layers as
``[S, d_in, d_out]`` (:class:`gdepth.nn.seeds.SeedLinear`, drawn as the ``torch.nn.Linear``
layers of the one-seed model), features ``[N, S, d]``. The first layer multiplies the shared
features X for all seeds at once (:class:`gdepth.nn.kernels.StackedInput`). The propagation
runs for all seeds at once on the ``[N, S·C]`` view: K sparse products instead of S·K; the
propagation has no weights, so this is where the seed axis pays most (K = 10..64 steps per
seed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import APPNPConfig, NormConfig
from gdepth.models import common
from gdepth.models.mlp import norm_weight_parameters
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm

APPNP_CONVENTION = (
    "depth K = number of propagation steps Z <- (1-alpha) A Z + alpha H after a 2-layer MLP "
    "(in->hidden->out) that does not count (Gasteiger et al. 2019); norm, if any, on the MLP's "
    "hidden layer"
)


def appnp_propagate(h: Tensor, adj: Tensor | Propagation, steps: int, alpha: float,
                    tap: Callable[[Tensor], Any] | None = None) -> Tensor:
    r"""``steps`` personalized-PageRank steps :math:`Z \leftarrow (1-\alpha)\hat{A}Z + \alpha H`
    from :math:`Z = H`, on ``h [N, k]`` (k = S·C: every seed in one product) with the
    normalized adjacency ``adj`` (a :class:`gdepth.nn.propagation.Propagation`, or the sparse
    ``[N, N]`` tensor itself); each step's :math:`Z` is handed to ``tap``, if given."""
    product = adj if isinstance(adj, Propagation) else (lambda z: torch.sparse.mm(adj, z))
    z = h
    for _ in range(steps):
        z = (1.0 - alpha) * product(z) + alpha * h
        if tap is not None:
            tap(z)
    return z


class APPNP(nn.Module):
    """A 2-layer MLP then ``depth`` APPNP propagation steps, for S seeds (see the module
    docstring). ``forward(x_in, adj)`` returns logits ``[N, S, out_dim]``.

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
        num_seeds: S. (default: ``1``)
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
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds = num_seeds
        # the one-seed model's draw order: lin1, its norm, lin2 (torch.nn.Linear init)
        self.lin1 = SeedLinear(num_seeds, in_dim, hidden, init="kaiming")
        self.norm = build_seeded_norm(norm_cfg, hidden, num_seeds)
        self.act = common.activation(activation)
        self.lin2 = SeedLinear(num_seeds, hidden, out_dim, init="kaiming")
        self.steps = depth
        self.alpha = float(alpha)
        self.dropout = float(dropout)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self.layer_sink: Any = None

    def mlp(self, x_in: StackedInput) -> Tensor:
        """The prediction :math:`H = f_\\theta(X)` ``[N, S, C]`` before propagation."""
        p = self.dropout if self.training else 0.0
        h = x_in(self.lin1.weight, p, self.mask_fn) + self.lin1.bias
        h = stacked_dropout(self.act(self.norm(h)), p, True, self.mask_fn)
        return self.lin2(h)

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared features ``x_in`` and the propagation
        ``adj``."""
        common.tap(self, x_in.x)  # the input features, shared by the seeds
        h = common.tap(self, self.mlp(x_in))
        n, s, c = h.shape
        tap = None if self.layer_sink is None else (
            lambda z: common.tap(self, z.view(n, s, c)))
        out = appnp_propagate(h.reshape(n, s * c), adj, self.steps, self.alpha, tap)
        out = out.view(n, s, c)
        return out if rows is None else out[rows]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The input layer ``lin1`` (as the seed-batched engine decayed it)."""
        return [self.lin1.weight, self.lin1.bias]

    def weight_parameters(self) -> list[nn.Parameter]:
        """``lin1``'s and ``lin2``'s weights and the norm's ``*weight*`` tensors."""
        return [self.lin1.weight, *norm_weight_parameters(self.norm), self.lin2.weight]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``input``: the first linear layer and the norm; ``output``: the second linear layer."""
        return {"input": [*self.lin1.parameters(), *self.norm.parameters()],
                "output": list(self.lin2.parameters())}

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, K={self.steps}, alpha={self.alpha}, "
                f"dropout={self.dropout}")


def build_appnp(model_cfg: APPNPConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
                out_dim: int, num_seeds: int = 1) -> APPNP:
    """``appnp`` from its config (:class:`gdepth.config.APPNPConfig`: hidden, alpha, dropout,
    activation)."""
    return APPNP(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        alpha=float(model_cfg.alpha),
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg, without=("dropout_layers",)),
    )
