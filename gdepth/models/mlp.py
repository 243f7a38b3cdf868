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

Seed axis (:mod:`gdepth.nn.seeds`): the model holds S seeds, ``W^{(l)}`` as
``[S, d_in, d_out]`` (:class:`gdepth.nn.seeds.SeedLinear`, drawn as ``torch.nn.Linear``),
features ``[N, S, d]``. The first layer multiplies the shared features X once for all seeds
(:class:`gdepth.nn.kernels.StackedInput`: one product :math:`X [W_1|\dots|W_S]` without
dropout, sparse X stays sparse); each later layer is one ``bmm``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gdepth.config import ModelConfig, NormConfig
from gdepth.models import common
from gdepth.nn.dropout import MaskFn, relu_dropout, stacked_dropout
from gdepth.nn.kernels import NotBatchable, StackedInput, StackedNorm
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import build_seeded_norm

MLP_CONVENTION = (
    "depth L = number of linear layers, input (in->hidden) and output (hidden->out) included; "
    "L=1 is one in->out layer; each layer but the last is followed by norm -> activation; "
    "the graph is ignored, so this depth is not message passing"
)


def norm_weight_parameters(norm: nn.Module) -> list[nn.Parameter]:
    """The tensors of a seed-native norm that the module it replaces named ``*weight*`` (the
    L1 penalty's): the norm's ``weight_parameters()`` (none for the identity)."""
    return list(norm.weight_parameters()) if hasattr(norm, "weight_parameters") else []


def no_first_layer(name: str) -> NotBatchable:
    """The one-line error of ``train.weight_decay_first_only`` for a model without a first
    layer (the loop's message)."""
    return NotBatchable(f"train.weight_decay_first_only=true but model {name} has no "
                        "first_layer()")


class MLP(common.LayerDropout, nn.Module):
    """``depth`` linear layers on the features for S seeds, the graph ignored (see the module
    docstring). ``forward(x_in, adj)`` returns logits ``[N, S, out_dim]``.

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
        num_seeds: S. (default: ``1``)
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
        num_seeds: int = 1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_seeds = num_seeds
        dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.lins = nn.ModuleList(SeedLinear(num_seeds, a, b, init="kaiming") for a, b in pairs)
        self.norms = nn.ModuleList(build_seeded_norm(norm_cfg, hidden, num_seeds)
                                   for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.set_dropout(dropout, dropout_layers, depth)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self.layer_sink: Any = None

    def _p(self, layer: int) -> float:
        return self.dropout if self.training and layer in self.dropout_at else 0.0

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The loop MLP had no ``first_layer()``: ``weight_decay_first_only`` is refused."""
        raise no_first_layer("MLP")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The layers' weights and the norms' ``*weight*`` tensors (the L1 penalty's)."""
        return [*(lin.weight for lin in self.lins),
                *(p for norm in self.norms for p in norm_weight_parameters(norm))]

    def forward(self, x_in: StackedInput, adj: Any = None, rows: Tensor | None = None
                ) -> Tensor:
        """Logits ``[N, S, out_dim]`` from the shared features ``x_in`` (``[R, S, out_dim]`` of
        the nodes ``rows``, if given); ``adj`` is ignored."""
        common.tap(self, x_in.x)  # the input features, shared by the seeds
        first = self.lins[0]
        h = x_in(first.weight, self._p(0), self.mask_fn)
        h = h + first.bias if first.bias is not None else h
        last = len(self.lins) - 1
        for i in range(1, last + 1):
            norm, p = self.norms[i - 1], self._p(i)
            if (self.layer_sink is None and type(norm) is StackedNorm
                    and type(self.act) is nn.ReLU):
                # ReLU and dropout fused, in place on the fresh linear output
                h = relu_dropout(h, p, self.training, self.mask_fn)
            else:
                h = common.tap(self, self.act(norm(h)))
                h = stacked_dropout(h, p, True, self.mask_fn)
            h = self.lins[i](h)
        out = common.tap(self, h)
        return out if rows is None else out[rows]

    def extra_repr(self) -> str:
        return f"seeds={self.num_seeds}, {super().extra_repr()}"


def build_mlp(model_cfg: ModelConfig, norm_cfg: NormConfig | None, depth: int, in_dim: int,
              out_dim: int, num_seeds: int = 1) -> MLP:
    """``mlp`` from its config (hidden, dropout, dropout_layers, activation)."""
    return MLP(
        in_dim,
        out_dim=out_dim,
        depth=depth,
        num_seeds=num_seeds,
        **common.model_options(model_cfg, norm_cfg),
    )
