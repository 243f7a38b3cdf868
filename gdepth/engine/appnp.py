r"""S seeds of ``appnp`` as one model: stacked MLP weights, one propagation for all seeds.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.appnp.APPNP`): the MLP
:math:`H_s = W_{2,s}\,\mathrm{drop}_s(\sigma(\mathrm{norm}(W_{1,s}\,\mathrm{drop}_s(X) + b_{1,s})))
+ b_{2,s}` (``lin1`` / ``lin2`` stacked as ``[S, d_in, d_out]``), then K personalized-PageRank
steps (Gasteiger et al., ICLR 2019)

.. math::
    Z^{(0)} = H, \qquad Z^{(k+1)} = (1 - \alpha)\,\hat{A} Z^{(k)} + \alpha H,

computed for all seeds at once on the ``[N, S·C]`` view: K sparse products instead of S·K. The
propagation has no weights, so this is where batching pays most (K = 10..64 steps per seed).
Parameter groups (``train.weight_decay_groups``): the loop model's ``input`` / ``output``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.models.appnp import APPNP
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    stack_norms,
    stacked_dropout,
)


class StackedAPPNP(nn.Module):
    """``appnp`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[APPNP]) -> None:
        super().__init__()
        first = loop_models[0]
        self.weights = nn.ParameterList([
            nn.Parameter(torch.stack([m.lin1.weight.detach().t() for m in loop_models])
                         .contiguous()),
            nn.Parameter(torch.stack([m.lin2.weight.detach().t() for m in loop_models])
                         .contiguous())])
        self.biases = nn.ParameterList([
            nn.Parameter(torch.stack([m.lin1.bias.detach() for m in loop_models]).clone()),
            nn.Parameter(torch.stack([m.lin2.bias.detach() for m in loop_models]).clone())])
        self.norm = stack_norms([m.norm for m in loop_models])
        self.act = first.act
        self.dropout, self.steps, self.alpha = first.dropout, first.steps, first.alpha
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedAPPNP:
        """Stack the parameters (copies) of S loop ``APPNP`` models."""
        if any(type(m) is not APPNP for m in loop_models):
            raise NotBatchable("StackedAPPNP stacks APPNP models only")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        return [self.weights[0], self.biases[0]]

    def named_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The loop model's groups (:meth:`APPNP.named_parameter_groups`), stacked."""
        return {"input": [self.weights[0], self.biases[0], *self.norm.parameters()],
                "output": [self.weights[1], self.biases[1]]}

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (``lin1``, ``lin2``, a norm's)."""
        norm_weight = [self.norm.weight] if hasattr(self.norm, "weight") else []
        return [self.weights[0], *norm_weight, self.weights[1]]

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        p = self.dropout if self.training else 0.0
        h = x_in(self.weights[0], p, self.mask_fn) + self.biases[0]
        h = stacked_dropout(self.act(self.norm(h)), p, True, self.mask_fn)
        h = torch.bmm(h.transpose(0, 1), self.weights[1]).transpose(0, 1) + self.biases[1]
        n, s, c = h.shape
        flat = h.reshape(n, s * c)
        z = flat
        for _ in range(self.steps):
            z = (1.0 - self.alpha) * adj(z) + self.alpha * flat
        return z.view(n, s, c)
