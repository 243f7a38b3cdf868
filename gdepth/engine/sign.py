r"""S seeds of ``sign`` as one model: the hops once, one product per hop for all seeds.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.sign.SIGN`, Frasca et al.,
ICML 2020 GRL+ workshop):

.. math::
    Z_s = \big[\,\mathrm{drop}_s(\sigma(\mathrm{norm}(X_0\Theta_{0,s} + c_{0,s})))\,\|\,\dots
    \,\|\,\mathrm{drop}_s(\sigma(\mathrm{norm}(X_K\Theta_{K,s} + c_{K,s})))\,\big],
    \qquad \text{logits}_s = Z_s\,\Omega_s + b_s.

The hop features :math:`X_k` are the same for every seed and fixed per dataset: computed once
(by the loop model's :func:`gdepth.models.sign.hop_features`) and kept on the stacked model.
No dropout acts on them, so hop k is one product :math:`X_k\,[\Theta_{k,1}|\dots|\Theta_{k,S}]`
for all seeds (sparse :math:`X_0` stays sparse), instead of S products of the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.models.sign import SIGN, hop_features
from gdepth.nn.kernels import (
    MaskFn,
    NotBatchable,
    Propagation,
    StackedInput,
    stack_norms,
    stacked_dropout,
)


class StackedSIGN(nn.Module):
    """``sign`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[SIGN]) -> None:
        super().__init__()
        first = loop_models[0]
        hops = first.steps + 1
        self.weights = nn.ParameterList(nn.Parameter(
            torch.stack([m.lins[k].weight.detach().t() for m in loop_models]).contiguous())
            for k in range(hops))
        self.biases = nn.ParameterList(nn.Parameter(
            torch.stack([m.lins[k].bias.detach() for m in loop_models]).clone())
            for k in range(hops))
        self.norms = nn.ModuleList(stack_norms([m.norms[k] for m in loop_models])
                                   for k in range(hops))
        self.out_weight = nn.Parameter(
            torch.stack([m.lin_out.weight.detach().t() for m in loop_models]).contiguous())
        self.out_bias = nn.Parameter(
            torch.stack([m.lin_out.bias.detach() for m in loop_models]).clone())
        self.act = first.act
        self.steps, self.operator, self.ppr_alpha = first.steps, first.operator, first.ppr_alpha
        self.dropout = first.dropout
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self._cache: tuple[Tensor, Tensor, int, list[StackedInput]] | None = None

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedSIGN:
        """Stack the parameters (copies) of S loop ``SIGN`` models."""
        if any(type(m) is not SIGN for m in loop_models):
            raise NotBatchable("StackedSIGN stacks SIGN models only")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """SIGN's loop model has no ``first_layer()`` either (K + 1 parallel input layers)."""
        raise NotBatchable("train.weight_decay_first_only: SIGN has no first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The parameters the loop model names ``*weight*`` (hop layers, norms', output)."""
        norm_weights = [n.weight for n in self.norms if hasattr(n, "weight")]
        return [*self.weights, *norm_weights, self.out_weight]

    def features(self, x_in: StackedInput, adj: Propagation) -> list[StackedInput]:
        """The hops ``[X_0, …, X_K]`` as shared inputs (cached per ``x`` and adjacency, as the
        loop model's cache; ``X_0`` is ``x_in`` itself)."""
        x, a = x_in.x, adj.adj
        cache = self._cache
        if cache is not None and cache[0] is x and cache[1] is a and cache[2] == x._version:
            return cache[3]
        self._cache = None  # free the old hops before computing the new ones
        with torch.no_grad():
            hops = hop_features(x, a, self.steps, self.operator, self.ppr_alpha)
        inputs = [x_in, *(StackedInput(h) for h in hops[1:])]
        self._cache = (x, a, x._version, inputs)
        return inputs

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        p = self.dropout if self.training else 0.0
        branches = zip(self.features(x_in, adj), self.weights, self.biases, self.norms,
                       strict=True)
        z = [stacked_dropout(self.act(norm(hop(weight, 0.0, None) + bias)), p, True,
                             self.mask_fn)
             for hop, weight, bias, norm in branches]
        cat = torch.cat(z, dim=-1)
        return torch.bmm(cat.transpose(0, 1), self.out_weight).transpose(0, 1) + self.out_bias
