r"""GCNII and GCNII*: deep GCNs with initial residual and identity mapping.

Chen, Wei, Huang, Ding and Li, "Simple and Deep Graph Convolutional Networks", ICML 2020,
arXiv 2007.02133, https://arxiv.org/abs/2007.02133, as its official code
(https://github.com/chennnM/GCNII, ``model.py``) computes it:

.. math::
    H^{(0)} = \sigma(W_{in}\,\mathrm{drop}(X) + b_{in}), \qquad
    \theta_l = \log(\lambda / l + 1) \quad (l = 1, \dots, L)

.. math::
    S_l = (1-\alpha)\hat{A}\,\mathrm{drop}(H^{(l-1)}) + \alpha H^{(0)}, \qquad
    H^{(l)} = \sigma\big(\mathrm{norm}(\theta_l S_l W_l + (1-\theta_l) S_l)\big)

and, for GCNII* (``--variant``), with :math:`P_l = \hat{A}\,\mathrm{drop}(H^{(l-1)})` and
:math:`W_l` of shape :math:`2d \times d`,

.. math::
    H^{(l)} = \sigma\big(\mathrm{norm}(\theta_l [P_l \,\|\, H^{(0)}] W_l
              + (1-\theta_l)((1-\alpha) P_l + \alpha H^{(0)}))\big),

then :math:`\text{logits} = W_{out}\,\mathrm{drop}(H^{(L)}) + b_{out}`. The convolutions have no
bias and start from :math:`U(-1/\sqrt{d}, 1/\sqrt{d})`, as in the official code.

GCNII equals PyG's ``GCN2Conv(d, alpha, theta=lamda, layer=l, shared_weights=True)`` with the
same :math:`W_l`. GCNII* computes the same function class as ``GCN2Conv(shared_weights=False)``
(the paper's equation), but with a different parametrization: PyG's ``weight1, weight2`` equal
:math:`W_l[:d]/(1-\alpha)` and :math:`W_l[d:]/\alpha`. The official scaling is kept here, which
changes the effective initialization, weight decay and step size of the :math:`H^{(0)}` branch.

Depth convention: depth :math:`L` = number of GCNII layers; the linear input (in → hidden) and
output (hidden → out) layers do not count. Dropout precedes the input layer, every GCNII layer
and the output layer (``dropout_layers=all``, the official code) or only the input and output
layers (``io``). Norm: the official model has none (``norm=none``); any other ``norm`` is applied
after each GCNII layer, before the activation. Optimizer groups: :meth:`GCNII.parameter_groups`
separates the GCNII layers' weights from the two linear layers (official wd1 / wd2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.models import common
from gdepth.norms import build_norm
from gdepth.options import option

GCNII_CONVENTION = (
    "depth L = number of GCNII layers, plus a linear input (in->hidden) and output "
    "(hidden->out) layer that do not count (Chen et al. 2020); theta_l = log(lamda/l + 1), "
    "l = 1..L; norm, if any, after each GCNII layer before the activation"
)
GCNII_STAR_CONVENTION = GCNII_CONVENTION.replace("GCNII layers", "GCNII* layers (W is 2d x d)")


class GCNIILayer(nn.Module):
    """One GCNII (or GCNII*, ``variant=True``) layer without activation (module docstring).

    Args:
        channels: width :math:`d`.
        alpha: initial-residual strength :math:`\\alpha`.
        theta: identity-mapping strength :math:`\\theta_l = \\log(\\lambda/l + 1)`.
        variant: GCNII*: weight :math:`2d \\times d` on :math:`[\\hat{A}H \\| H^{(0)}]`.
    """

    def __init__(self, channels: int, alpha: float, theta: float, variant: bool = False) -> None:
        super().__init__()
        self.alpha, self.theta, self.variant = float(alpha), float(theta), variant
        rows = 2 * channels if variant else channels
        self.weight = nn.Parameter(torch.empty(rows, channels))
        bound = 1.0 / math.sqrt(channels)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: Tensor, adj: Tensor, h0: Tensor) -> Tensor:
        """The layer's output ``[N, d]`` from ``h``, the sparse ``adj`` and ``h0``."""
        p = torch.sparse.mm(adj, h)
        support = (1.0 - self.alpha) * p + self.alpha * h0
        if self.variant:
            d = h.size(1)
            mixed = p @ self.weight[:d] + h0 @ self.weight[d:]  # = [p ‖ h0] @ W
        else:
            mixed = support @ self.weight
        return self.theta * mixed + (1.0 - self.theta) * support

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, theta={self.theta:.4f}, variant={self.variant}"


class GCNII(common.LayerDropout, nn.Module):
    """Linear input, ``depth`` GCNII layers, linear output (see the module docstring).

    Args:
        in_dim: input features (dense or sparse CSR).
        hidden: width :math:`d`.
        out_dim: output features (classes).
        depth: number of GCNII layers :math:`L`, >= 1.
        alpha: initial-residual strength. (default: ``0.1``)
        lamda: identity-mapping :math:`\\lambda`. (default: ``0.5``)
        variant: GCNII* instead of GCNII. (default: ``False``)
        norm_cfg: ``norm`` config, one after each GCNII layer; ``None`` for none.
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
        alpha: float = 0.1,
        lamda: float = 0.5,
        variant: bool = False,
        norm_cfg: Any = None,
        activation: str = "relu",
        dropout: float = 0.5,
        dropout_layers: str = "all",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.lin_in = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(
            GCNIILayer(hidden, alpha, math.log(lamda / layer + 1), variant)
            for layer in range(1, depth + 1)
        )
        self.norms = nn.ModuleList(build_norm(norm_cfg, hidden) for _ in range(depth))
        self.lin_out = nn.Linear(hidden, out_dim)
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth + 2)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, out_dim]`` from features ``x [N, in_dim]`` and the sparse ``adj``."""
        h0 = common.tap(self, self.act(self.lin_in(self._drop(common.tap(self, x), 0))))
        h = h0
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True), start=1):
            h = common.tap(self, self.act(norm(conv(self._drop(h, i), adj, h0))))
        return common.tap(self, self.lin_out(self._drop(h, len(self.convs) + 1)))

    def parameter_groups(
        self, conv_weight_decay: float, dense_weight_decay: float
    ) -> list[dict[str, Any]]:
        """Optimizer groups as the official code's: the GCNII layers (and norms, if any) with
        ``conv_weight_decay`` (wd1), the linear input and output layers with
        ``dense_weight_decay`` (wd2)."""
        dense = [*self.lin_in.parameters(), *self.lin_out.parameters()]
        graph = [*self.convs.parameters(), *self.norms.parameters()]
        return [
            {"params": graph, "weight_decay": float(conv_weight_decay)},
            {"params": dense, "weight_decay": float(dense_weight_decay)},
        ]


def _build(
    variant: bool, model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int
) -> GCNII:
    return GCNII(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        alpha=float(option(model_cfg, "alpha", 0.1)),
        lamda=float(option(model_cfg, "lamda", 0.5)),
        variant=variant,
        **common.model_options(model_cfg, norm_cfg),
    )


def build_gcnii(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GCNII:
    """``gcnii`` from a ``model`` config: keys hidden (64), alpha (0.1), lamda (0.5), dropout
    (0.5), dropout_layers ("all"), activation ("relu")."""
    return _build(False, model_cfg, norm_cfg, depth, in_dim, out_dim)


def build_gcnii_star(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> GCNII:
    """``gcnii_star`` (GCNII*) from a ``model`` config, same keys and defaults as
    :func:`build_gcnii`."""
    return _build(True, model_cfg, norm_cfg, depth, in_dim, out_dim)
