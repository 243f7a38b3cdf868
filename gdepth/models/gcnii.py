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
after each GCNII layer, before the activation. Optimizer groups
(:meth:`GCNII.named_parameter_groups`): ``graph``, the GCNII layers and norms, and ``dense``, the
two linear layers (official wd1 / wd2; ``train.weight_decay_graph`` is the ``graph`` decay).

Seed axis (:mod:`gdepth.nn.seeds`): :class:`GCNII` holds S seeds, parameters ``[S, ...]``, hidden
features ``[N, S, d]``. The propagation of all seeds is one sparse product per layer
(:math:`\hat{A}` times the ``[N, S·d]`` view); the seeds' transforms one ``bmm``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import GCNIIConfig, NormConfig
from gdepth.models import common
from gdepth.nn.dropout import MaskFn, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm

GCNII_CONVENTION = (
    "depth L = number of GCNII layers, plus a linear input (in->hidden) and output "
    "(hidden->out) layer that do not count (Chen et al. 2020); theta_l = log(lamda/l + 1), "
    "l = 1..L; norm, if any, after each GCNII layer before the activation"
)
GCNII_STAR_CONVENTION = GCNII_CONVENTION.replace("GCNII layers", "GCNII* layers (W is 2d x d)")


def _bmm(h: Tensor, weight: Tensor) -> Tensor:
    """``h [N, S, a] @ weight [S, a, b]`` per seed → ``[N, S, b]``."""
    return torch.bmm(h.transpose(0, 1), weight).transpose(0, 1)


class GCNIILayer(nn.Module):
    """One GCNII (or GCNII*, ``variant=True``) layer without activation, for S seeds (module
    docstring): ``weight [S, d, d]`` (GCNII*: ``[S, 2d, d]``, rows ``:d`` act on
    :math:`\\hat{A}H`, rows ``d:`` on :math:`H^{(0)}`), no bias.

    Args:
        num_seeds: seeds S.
        channels: width :math:`d`.
        alpha: initial-residual strength :math:`\\alpha`.
        theta: identity-mapping strength :math:`\\theta_l = \\log(\\lambda/l + 1)`.
        variant: GCNII*: weight :math:`2d \\times d` on :math:`[\\hat{A}H \\| H^{(0)}]`.
    """

    def __init__(self, num_seeds: int, channels: int, alpha: float, theta: float,
                 variant: bool = False) -> None:
        super().__init__()
        self.num_seeds, self.channels = num_seeds, channels
        self.alpha, self.theta, self.variant = float(alpha), float(theta), variant
        rows = 2 * channels if variant else channels
        self.weight = nn.Parameter(torch.empty(num_seeds, rows, channels))
        for s in range(num_seeds):
            self.reset_seed(s)

    def reset_seed(self, s: int) -> None:
        """The official code's init: :math:`U(-1/\\sqrt{d}, 1/\\sqrt{d})`."""
        bound = 1.0 / math.sqrt(self.channels)
        with torch.no_grad():
            nn.init.uniform_(self.weight[s], -bound, bound)

    def forward(self, h: Tensor, adj: Propagation, h0: Tensor) -> Tensor:
        """The layer's output ``[N, S, d]`` from ``h`` (already dropped), ``adj`` and ``h0``,
        all seeds' propagation one product on the ``[N, S·d]`` view."""
        n, s, d = h.shape
        p = adj(h.reshape(n, s * d)).view(n, s, d)
        support = (1.0 - self.alpha) * p + self.alpha * h0
        if self.variant:
            mixed = _bmm(p, self.weight[:, :d]) + _bmm(h0, self.weight[:, d:])  # [p ‖ h0] @ W
        else:
            mixed = _bmm(support, self.weight)
        return self.theta * mixed + (1.0 - self.theta) * support

    def extra_repr(self) -> str:
        return (f"seeds={self.num_seeds}, alpha={self.alpha}, theta={self.theta:.4f}, "
                f"variant={self.variant}")


class GCNII(common.LayerDropout, nn.Module):
    """Linear input, ``depth`` GCNII layers, linear output, for ``num_seeds`` seeds (module
    docstring). ``forward(x_in, adj)`` returns logits ``[N, S, C]``.

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
        num_seeds: seeds held side by side, S. (default: ``1``)
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
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds, self.variant = num_seeds, variant
        # module order = the official model's draw order: lin_in, convs, norms, lin_out
        self.lin_in = SeedLinear(num_seeds, in_dim, hidden, init="kaiming")  # nn.Linear's
        self.convs = nn.ModuleList(
            GCNIILayer(num_seeds, hidden, alpha, math.log(lamda / layer + 1), variant)
            for layer in range(1, depth + 1)
        )
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth))
        self.lin_out = SeedLinear(num_seeds, hidden, out_dim, init="kaiming")
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth + 2)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self.layer_sink: list | None = None

    def _p(self, position: int) -> float:
        return self.dropout if self.training and position in self.dropout_at else 0.0

    def forward(self, x_in: StackedInput, adj: Propagation, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared input features and the propagation."""
        common.tap(self, x_in.x)
        h0 = self.act(x_in(self.lin_in.weight, self._p(0), self.mask_fn) + self.lin_in.bias)
        h = h0 = common.tap(self, h0)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True), start=1):
            dropped = stacked_dropout(h, self._p(i), True, self.mask_fn)
            h = common.tap(self, self.act(norm(conv(dropped, adj, h0))))
        last = stacked_dropout(h, self._p(len(self.convs) + 1), True, self.mask_fn)
        logits = common.tap(self, self.lin_out(last))
        return logits if rows is None else logits[rows]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """None: the loop model had no ``first_layer()`` (``train.weight_decay_first_only``)."""
        raise NotBatchable(f"train.weight_decay_first_only=true but model {type(self).__name__} "
                           "has no first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The tensors the loop model named ``*weight*`` (linears, GCNII layers, norms)."""
        return [p for name, p in self.named_parameters() if "weight" in name]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The official code's two groups: ``graph``, the GCNII layers (and norms, if any),
        decayed by wd1 (``train.weight_decay_graph``); ``dense``, the linear input and output
        layers, by wd2."""
        return {"graph": [*self.convs.parameters(), *self.norms.parameters()],
                "dense": [*self.lin_in.parameters(), *self.lin_out.parameters()]}

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, variant={self.variant}, {super().extra_repr()}"


def _build(variant: bool, model_cfg: GCNIIConfig, norm_cfg: NormConfig | None, depth: int,
           in_dim: int, out_dim: int, num_seeds: int) -> GCNII:
    return GCNII(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        alpha=float(model_cfg.alpha),
        lamda=float(model_cfg.lamda),
        variant=variant,
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg),
    )


def build_gcnii(model_cfg: GCNIIConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
                out_dim: int, num_seeds: int) -> GCNII:
    """``gcnii`` for ``num_seeds`` seeds from its config (:class:`gdepth.config.GCNIIConfig`:
    hidden, alpha, lamda, dropout, dropout_layers, activation)."""
    return _build(False, model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds)


def build_gcnii_star(model_cfg: GCNIIConfig, norm_cfg: NormConfig | None, depth: int,
                     in_dim: int, out_dim: int, num_seeds: int) -> GCNII:
    """``gcnii_star`` (GCNII*) for ``num_seeds`` seeds, the keys of :func:`build_gcnii`."""
    return _build(True, model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds)



