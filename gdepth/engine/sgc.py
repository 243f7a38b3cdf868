r"""S seeds of ``sgc`` as one model: the propagated features once, one linear layer per seed.

Seed ``s`` has the weights of its loop model (:class:`gdepth.models.sgc.SGC`, Wu et al., ICML
2019): :math:`\text{logits}_s = \mathrm{drop}_s(\hat{A}^K X)\,W_s + b_s`, ``lin`` stacked as
``W [S, F, C]`` and ``b [S, C]``. :math:`\hat{A}^K X` is the same for every seed and fixed per
dataset, so it is computed once (as the loop model's cache, by the same
:func:`gdepth.models.sgc.propagate_features`) and kept on the stacked model; an epoch is then
one product :math:`\hat{A}^K X\,[W_1|\dots|W_S]` for all seeds (without dropout; with dropout
each seed's masked copy, see :class:`gdepth.engine.layers.StackedInput`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gdepth.engine.layers import MaskFn, NotBatchable, Propagation, StackedInput
from gdepth.models.sgc import SGC, propagate_features

# With dropout every seed multiplies its own masked copy of the dense [N, F] features: refuse
# (the cell runs its seed loop) past this many bytes of copies.
MAX_MASKED_BYTES = 2 << 30


class StackedSGC(nn.Module):
    """``sgc`` for S seeds; build with :meth:`from_models`. ``forward(x_in, adj)`` returns
    logits ``[N, S, C]``."""

    def __init__(self, loop_models: Sequence[SGC]) -> None:
        super().__init__()
        first = loop_models[0]
        self.weights = nn.ParameterList([nn.Parameter(
            torch.stack([m.lin.weight.detach().t() for m in loop_models]).contiguous())])
        self.biases = nn.ParameterList([nn.Parameter(
            torch.stack([m.lin.bias.detach() for m in loop_models]).clone())])
        self.steps, self.dropout = first.steps, first.dropout
        self.num_seeds = len(loop_models)
        self.mask_fn: MaskFn | None = None  # injected masks (tests); None: keep_mask
        self._cache: tuple[Tensor, Tensor, int, StackedInput] | None = None

    @classmethod
    def from_models(cls, loop_models: Sequence[nn.Module]) -> StackedSGC:
        """Stack the parameters (copies) of S loop ``SGC`` models."""
        if any(type(m) is not SGC for m in loop_models):
            raise NotBatchable("StackedSGC stacks SGC models only")
        return cls(loop_models)  # type: ignore[arg-type]

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """SGC's loop model has no ``first_layer()`` either (its one layer is the output)."""
        raise NotBatchable("train.weight_decay_first_only: SGC has no first_layer()")

    def weight_parameters(self) -> list[nn.Parameter]:
        """The loop model's ``lin.weight``."""
        return [self.weights[0]]

    def features(self, x_in: StackedInput, adj: Propagation) -> StackedInput:
        r""":math:`\hat{A}^K X` as the shared input of the seeds' linear layers (cached per
        ``x`` and adjacency, as the loop model's cache)."""
        x, a = x_in.x, adj.adj
        cache = self._cache
        if cache is not None and cache[0] is x and cache[1] is a and cache[2] == x._version:
            return cache[3]
        with torch.no_grad():
            feats = StackedInput(propagate_features(x, a, self.steps))
        self._cache = (x, a, x._version, feats)
        return feats

    def forward(self, x_in: StackedInput, adj: Propagation) -> Tensor:
        feats = self.features(x_in, adj)
        p = self.dropout if self.training else 0.0
        if p > 0.0 and self.num_seeds * feats.x.numel() * feats.x.element_size() \
                > MAX_MASKED_BYTES:
            raise NotBatchable(f"sgc dropout {p}: {self.num_seeds} masked copies of the "
                               f"{tuple(feats.x.shape)} propagated features exceed "
                               f"{MAX_MASKED_BYTES >> 30} GiB")
        return feats(self.weights[0], p, self.mask_fn) + self.biases[0]
