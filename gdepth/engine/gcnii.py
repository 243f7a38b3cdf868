r"""S seeds of ``gcnii`` (GCNII and GCNII*) as one model with stacked weights.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.gcnii.GCNII`, Chen et al.,
ICML 2020): :math:`H^{(0)}_s = \sigma(W_{in,s}\,\mathrm{drop}_s(X) + b_{in,s})`, then per layer

.. math::
    P = \hat{A}\,\mathrm{drop}_s(H_s), \qquad
    S = (1-\alpha) P + \alpha H^{(0)}_s, \qquad
    H_s \leftarrow \sigma(\mathrm{norm}(\theta_l\, S W^{(l)}_s + (1-\theta_l) S))

(GCNII*: :math:`\theta_l [P \| H^{(0)}_s] W^{(l)}_s + (1-\theta_l) S`), then the output linear
layer. The propagation of all seeds is one sparse product per layer; the seeds' transforms one
``bmm``. :meth:`StackedGCNII.parameter_groups` gives the official code's two weight decays
(``train.weight_decay_graph`` on the GCNII layers and norms, ``weight_decay`` on the linears).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.models.gcnii import GCNII
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    stack_norms,
    stacked_dropout,
)


def _bmm(h: Tensor, weight: Tensor) -> Tensor:
    """``h [N, S, a] @ weight [S, a, b]`` per seed → ``[N, S, b]``."""
    return torch.bmm(h.transpose(0, 1), weight).transpose(0, 1)


class StackedGCNII(nn.Module):
    """``gcnii`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[GCNII]) -> None:
        super().__init__()
        first = loop_models[0]

        def stacked(get: Any, transpose: bool) -> nn.Parameter:
            ts = [get(m).detach() for m in loop_models]
            return nn.Parameter(torch.stack([t.t() if transpose else t for t in ts]).clone()
                                .contiguous())

        self.in_weight = stacked(lambda m: m.lin_in.weight, True)
        self.in_bias = stacked(lambda m: m.lin_in.bias, False)
        self.weights = nn.ParameterList(
            stacked(lambda m, i=i: m.convs[i].weight, False) for i in range(len(first.convs)))
        self.norms = nn.ModuleList(stack_norms([m.norms[i] for m in loop_models])
                                   for i in range(len(first.convs)))
        self.out_weight = stacked(lambda m: m.lin_out.weight, True)
        self.out_bias = stacked(lambda m: m.lin_out.bias, False)
        self.alphas = [c.alpha for c in first.convs]
        self.thetas = [c.theta for c in first.convs]
        self.variant = first.convs[0].variant
        self.act = first.act
        self.dropout, self.dropout_at = first.dropout, first.dropout_at
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedGCNII:
        """Stack the parameters (copies) of S loop ``GCNII`` models."""
        if any(type(m) is not GCNII for m in loop_models):
            raise NotBatchable("StackedGCNII stacks GCNII models only")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        return [self.in_weight, self.in_bias]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*``."""
        norm_weights = [n.weight for n in self.norms if hasattr(n, "weight")]
        return [self.in_weight, *self.weights, *norm_weights, self.out_weight]

    def parameter_groups(self, conv_weight_decay: float, dense_weight_decay: float
                         ) -> list[dict[str, Any]]:
        """As :meth:`gdepth.models.gcnii.GCNII.parameter_groups`: GCNII layers and norms with
        ``conv_weight_decay``, the input and output linears with ``dense_weight_decay``."""
        dense = [self.in_weight, self.in_bias, self.out_weight, self.out_bias]
        graph = [*self.weights, *self.norms.parameters()]
        return [{"params": graph, "weight_decay": float(conv_weight_decay)},
                {"params": dense, "weight_decay": float(dense_weight_decay)}]

    def _p(self, position: int) -> float:
        return self.dropout if self.training and position in self.dropout_at else 0.0

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        h0 = self.act(x_in(self.in_weight, self._p(0), self.mask_fn) + self.in_bias)
        n, s, d = h0.shape
        h = h0
        for i, weight in enumerate(self.weights):
            dropped = stacked_dropout(h, self._p(i + 1), True, self.mask_fn)
            p = adj(dropped.reshape(n, s * d)).view(n, s, d)
            alpha, theta = self.alphas[i], self.thetas[i]
            support = (1.0 - alpha) * p + alpha * h0
            if self.variant:
                mixed = _bmm(p, weight[:, :d]) + _bmm(h0, weight[:, d:])
            else:
                mixed = _bmm(support, weight)
            h = self.act(self.norms[i](theta * mixed + (1.0 - theta) * support))
        last = stacked_dropout(h, self._p(len(self.weights) + 1), True, self.mask_fn)
        return _bmm(last, self.out_weight) + self.out_bias
